// The component's entry: exports the transform as the weir:transform world.
// `weir plugin build .` builds this file; the logic is in transform.js.
import { log } from "weir:transform/host@0.1.0";
import { defineTransform } from "./weir.js";
import { transform } from "./transform.js";

export const { describe, init, process, onTick, snapshot, restore } = defineTransform(transform, log);
