// The component's entry: log-extract as the weir:transform world.
import { log } from "weir:transform/host@0.1.0";
import { defineTransform } from "../../../../sdk/js/weir.js";
import { logExtract } from "./log_extract.js";

export const { describe, init, process, onTick, snapshot, restore } = defineTransform(logExtract, log);
