// {{name}}: a weir transform. Edit transform(record); `npm test` tests it
// natively, `weir plugin build .` makes {{name}}.wasm.
import { Invalid, json, withJson } from "./weir.js";

export const transform = {
  name: "{{name}}",
  version: "0.1.0",
  create(config) {
    const { field = "message", ...unknown } = config;
    const extra = Object.keys(unknown);
    if (extra.length) throw new Error(`unknown key \`${extra[0]}\` (known keys: field)`);
    return {
      transform(record) {
        const doc = json(record);
        if (doc === null || typeof doc !== "object" || !(field in doc)) {
          throw new Invalid(`${field} is missing`);
        }
        doc[field] = String(doc[field]).toUpperCase();
        return withJson(record, doc);
      },
    };
  },
};
