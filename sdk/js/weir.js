// weir's JavaScript SDK: turns a transform object into the exports of the
// weir:transform world (describe, init, process, onTick, snapshot, restore).
// No imports: the same file runs under `node --test` and inside a component.
//
//   export const { describe, init, process, onTick, snapshot, restore } =
//     defineTransform(myTransform, log);   // log: weir:transform/host's log
//
// A transform is { name, version, stateVersion?, create(config) } where
// create returns an object with transform(record) (one record in; a record,
// an array of records, or null out; throw Invalid for a bad record) or
// process(records, nowMs), and optionally onTick(nowMs), snapshot() and
// restore(bytes). Records are { key, value, timestampMs, headers }: value
// and key are Uint8Array, timestampMs a BigInt (WIT s64).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A record that cannot be processed; the message is the dead letter's reason. */
export class Invalid extends Error {}

/** The record's value parsed as JSON. */
export function json(record) {
  return JSON.parse(decoder.decode(record.value));
}

/** A record with this one's key, timestamp and headers and `doc` as JSON. */
export function withJson(record, doc) {
  return { ...record, value: encoder.encode(JSON.stringify(doc)) };
}

/** A new record whose value is `doc` as JSON. */
export function fromJson(doc, { key, timestampMs = 0n, headers = [] } = {}) {
  return {
    key: typeof key === "string" ? encoder.encode(key) : key,
    value: encoder.encode(JSON.stringify(doc)),
    timestampMs: BigInt(timestampMs),
    headers,
  };
}

/** Text as UTF-8 bytes, and back. */
export const utf8 = {
  encode: (text) => encoder.encode(text),
  decode: (bytes) => decoder.decode(bytes),
};

/** Runs transform(record) over a batch, turning exceptions into failures. */
export function eachRecord(records, transform) {
  const outputs = [];
  const failures = [];
  records.forEach((record, index) => {
    try {
      const out = transform(record);
      if (out == null) return;
      if (Array.isArray(out)) outputs.push(...out);
      else outputs.push(out);
    } catch (e) {
      if (e instanceof RangeError || e instanceof ReferenceError) throw e; // plugin faults
      const reason = e instanceof Invalid ? e.message : `${e?.name ?? "Error"}: ${e?.message ?? e}`;
      failures.push({ index, reason });
    }
  });
  return { outputs, failures };
}

/** The world's exports for `transform`; `log(level, message)` is the host's. */
export function defineTransform(transform, log = () => {}) {
  let instance = null;
  const live = () => (instance ??= transform.create({}));
  const levels = { trace: "trace", debug: "debug", info: "info", warn: "warn", error: "error" };
  transform.log = (level, message) => log(levels[level] ?? "info", String(message));
  return {
    describe: () => ({
      name: transform.name,
      version: transform.version,
      stateVersion: transform.stateVersion ?? 0,
    }),
    init(config) {
      try {
        instance = transform.create(JSON.parse(config || "{}"));
      } catch (e) {
        throw `the configuration is refused: ${e?.message ?? e}`;
      }
    },
    process(batch, nowMs) {
      const t = live();
      if (t.process) return t.process(batch, nowMs);
      return eachRecord(batch, (record) => t.transform(record));
    },
    onTick: (nowMs) => live().onTick?.(nowMs) ?? [],
    snapshot: () => live().snapshot?.() ?? new Uint8Array(),
    restore(state) {
      const t = live();
      if (t.restore) {
        try {
          t.restore(state);
        } catch (e) {
          throw `the state is refused: ${e?.message ?? e}`;
        }
      } else if (state.length) {
        throw `${transform.name} keeps no state but was given ${state.length} bytes`;
      }
    },
  };
}
