// log-extract in JavaScript: the Rust plugin's field extraction (seed 003),
// with the same outputs and failure reasons.
//
// Each output field lists sources tried in order; the first that yields a
// non-null value wins, else the field's `default` (null unless set), or a
// failure when `required`. A source is `$.a.b`, `$.a[0]` or `$['a.b']` (a
// JSON path into `body`, itself JSON text or an object), `attributes.<key>`,
// `resources.<key>`, or a top-level field name.
import { Invalid, utf8 } from "../../../../sdk/js/weir.js";

const DEFAULT_FIELDS = [
  { name: "timestamp", from: ["timestamp"] },
  { name: "serviceName", from: ["serviceName"] },
  { name: "severityText", from: ["severityText"] },
  { name: "msg", from: ["attributes.msg"] },
  { name: "url", from: ["attributes.url"] },
  { name: "mobile", from: ["$.data.mobile", "attributes.mobile"] },
];

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const own = (map, key) => (isMap(map) && Object.hasOwn(map, key) ? map[key] : undefined);

/** Parses a JSON path after its `$` into steps: strings are keys, numbers indexes. */
export function parsePath(rest) {
  const steps = [];
  while (rest.length) {
    if (rest.startsWith("['")) {
      const end = rest.indexOf("']", 2);
      if (end < 0) throw new Error("unclosed ['");
      steps.push(rest.slice(2, end));
      rest = rest.slice(end + 2);
    } else if (rest.startsWith("[")) {
      const end = rest.indexOf("]");
      if (end < 0) throw new Error("unclosed [");
      const text = rest.slice(1, end);
      if (!/^\s*\d+\s*$/.test(text)) throw new Error(`bad index [${text}]`);
      steps.push(Number(text.trim()));
      rest = rest.slice(end + 1);
    } else if (rest.startsWith(".")) {
      const found = rest.slice(1).search(/[.[]/);
      const end = found < 0 ? rest.length - 1 : found;
      if (end === 0) throw new Error("empty key");
      steps.push(rest.slice(1, 1 + end));
      rest = rest.slice(1 + end);
    } else {
      throw new Error(`unexpected ${JSON.stringify(rest)}; write $.a.b, $.a[0] or $['a.b']`);
    }
  }
  return steps;
}

/** A source as written in the configuration, as a function of (record, body). */
function lookup(text) {
  if (text.startsWith("$")) {
    let steps;
    try {
      steps = parsePath(text.slice(1));
    } catch (e) {
      throw new Error(`JSON path ${JSON.stringify(text)}: ${e.message}`);
    }
    const walk = (body) => {
      let v = body;
      for (const step of steps) {
        if (v === undefined) return undefined;
        v = typeof step === "number" ? (Array.isArray(v) ? v[step] : undefined) : own(v, step);
      }
      return v;
    };
    return { body: true, get: (_record, body) => walk(body) };
  }
  if (text.startsWith("attributes.")) {
    const key = text.slice("attributes.".length);
    return { get: (record) => own(record.attributes, key) };
  }
  if (text.startsWith("resources.")) {
    const key = text.slice("resources.".length);
    return { get: (record) => own(record.resources, key) };
  }
  if (!text) throw new Error("empty source");
  return { get: (record) => own(record, text) };
}

function parseFields(config) {
  const { fields = DEFAULT_FIELDS, ...unknown } = config;
  const extra = Object.keys(unknown);
  if (extra.length) throw new Error(`invalid plugin config: unknown field \`${extra[0]}\`, expected \`fields\``);
  if (!fields.length) throw new Error("fields: list at least one output field");
  const seen = new Set();
  return fields.map((f) => {
    if (!f.from?.length) throw new Error(`fields.${f.name}: \`from\` lists no source`);
    const from = f.from.map((s) => {
      try {
        return lookup(s);
      } catch (e) {
        throw new Error(`fields.${f.name}: ${e.message}`);
      }
    });
    if (seen.has(f.name)) throw new Error(`fields: ${JSON.stringify(f.name)} is listed twice`);
    seen.add(f.name);
    return { name: f.name, from, fallback: f.default ?? null, required: f.required ?? false };
  });
}

export const logExtract = {
  name: "log-extract",
  version: "1.0.0",
  create(config) {
    const fields = parseFields(config);
    const needsBody = fields.some((f) => f.from.some((l) => l.body));
    const extract = (value) => {
      let record;
      try {
        record = JSON.parse(utf8.decode(value));
      } catch (e) {
        throw new Invalid(`record is not a JSON object: ${e.message}`);
      }
      if (!isMap(record)) throw new Invalid("record is not a JSON object: not a map");
      let body;
      if (needsBody) {
        const raw = own(record, "body");
        if (typeof raw === "string") {
          try {
            body = JSON.parse(raw);
          } catch {
            body = undefined;
          }
        } else if (isMap(raw)) {
          body = raw;
        }
      }
      const out = {};
      for (const field of fields) {
        let found;
        for (const source of field.from) {
          const v = source.get(record, body);
          if (v !== undefined && v !== null) {
            found = v;
            break;
          }
        }
        if (found === undefined) {
          if (field.required) {
            throw new Invalid(`required field ${JSON.stringify(field.name)} not found in any of its sources`);
          }
          found = field.fallback;
        }
        out[field.name] = found;
      }
      return utf8.encode(JSON.stringify(out));
    };
    return {
      transform(record) {
        return { ...record, value: extract(record.value) };
      },
    };
  },
};
