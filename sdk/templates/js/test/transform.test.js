import assert from "node:assert/strict";
import test from "node:test";
import { defineTransform, fromJson, json } from "../src/weir.js";
import { transform } from "../src/transform.js";

test("upper-cases the field and fails a record without it", () => {
  const plugin = defineTransform(transform);
  plugin.init("{}");
  const out = plugin.process([fromJson({ message: "hi" }), fromJson({ other: 1 })], 0n);
  assert.deepEqual(out.outputs.map(json), [{ message: "HI" }]);
  assert.deepEqual(out.failures, [{ index: 1, reason: "message is missing" }]);
});
