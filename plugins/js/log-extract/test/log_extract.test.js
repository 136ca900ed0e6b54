// log-extract's logic, natively: `npm test` (node --test).
import assert from "node:assert/strict";
import test from "node:test";
import { defineTransform, fromJson, json, utf8 } from "../../../../sdk/js/weir.js";
import { logExtract, parsePath } from "../src/log_extract.js";

const LOG = {
  timestamp: "2025-08-06T09:12:30Z",
  serviceName: "user-service",
  severityText: "INFO",
  attributes: { msg: "login", url: "/a", mobile: "555-0100" },
  resources: { "host.name": "web-1" },
  body: JSON.stringify({ data: { mobile: "555-0199", tags: ["x", "y"] } }),
};

function run(config, doc) {
  const plugin = defineTransform(logExtract);
  plugin.init(JSON.stringify(config));
  return plugin.process([fromJson(doc)], 0n);
}

test("the default config prefers the body path, then the attribute", () => {
  assert.equal(json(run({}, LOG).outputs[0]).mobile, "555-0199");
  const noBody = { ...LOG, body: JSON.stringify({ data: {} }) };
  assert.equal(json(run({}, noBody).outputs[0]).mobile, "555-0100");
  const badBody = { ...LOG, body: "not json {" };
  assert.deepEqual(Object.keys(json(run({}, badBody).outputs[0])),
    ["timestamp", "serviceName", "severityText", "msg", "url", "mobile"]);
});

test("paths, indexes, resources, defaults and required fields", () => {
  const config = {
    fields: [
      { name: "tag", from: ["$.data.tags[1]"] },
      { name: "host", from: ["resources.host.name"] },
      { name: "region", from: ["attributes.region"], default: "eu" },
      { name: "quoted", from: ["$['data'].mobile"] },
    ],
  };
  assert.deepEqual(json(run(config, LOG).outputs[0]), { tag: "y", host: "web-1", region: "eu", quoted: "555-0199" });
  const required = { fields: [{ name: "trace", from: ["attributes.trace"], required: true }] };
  assert.deepEqual(run(required, LOG).failures, [
    { index: 0, reason: 'required field "trace" not found in any of its sources' },
  ]);
});

test("a record that is not a JSON object fails, and a bad config is refused", () => {
  const plugin = defineTransform(logExtract);
  const out = plugin.process([{ key: undefined, value: utf8.encode("not json"), timestampMs: 0n, headers: [] }], 0n);
  assert.match(out.failures[0].reason, /^record is not a JSON object: /);
  assert.throws(() => plugin.init(JSON.stringify({ fields: [{ name: "x", from: ["$.a["] }] })), /unclosed \[/);
  assert.throws(() => parsePath(".a..b"), /empty key/);
});
