#!/usr/bin/env python3
"""The Python taxi-enrich in native CPython, shaped as `weir run` file → NDJSON
runs it: NDJSON lines in batches of 1024 through TaxiEnrich.process, outputs
to one file, failures with their reasons to another.

    PYTHONPATH=sdk/python/src:plugins/python/taxi-enrich python3 benches/taxi_native.py IN OUT DEAD
"""

import json
import sys

from weir_sdk import Record
from taxi_enrich import TaxiEnrich


def main(inp: str, out: str, dead: str) -> None:
    transform = TaxiEnrich({})
    with open(inp, "rb") as f, open(out, "wb") as ok, open(dead, "w") as bad:
        batch: list = []

        def flush():
            result = transform.process(batch, 0)
            ok.writelines(r.value + b"\n" for r in result.outputs)
            for failure in result.failures:
                bad.write(json.dumps({"reason": failure.reason}) + "\n")
            batch.clear()

        for line in f:
            line = line.rstrip(b"\n")
            if line:
                batch.append(Record(value=line))
                if len(batch) == 1024:
                    flush()
        if batch:
            flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
