"""A reader that is not weir: Polars' `scan_delta` on a Delta table, with a
filter on partition columns, the way the README shows it.

    polars_rows.py LOCATION COLUMN=VALUE [COLUMN=VALUE ...]

(S3 from AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.) Prints
one JSON object per row of the newest version whose columns equal the
given values (compared as text).
"""

import json
import os
import sys

import polars as pl

from delta_rows import storage_options


def main(location, filters):
    frame = pl.scan_delta(location, storage_options=storage_options(location))
    for column, value in filters:
        frame = frame.filter(pl.col(column).cast(pl.Utf8) == value)
    out = sys.stdout
    for row in frame.collect().to_dicts():
        out.write(json.dumps(row, default=str))
        out.write("\n")
    return 0


if __name__ == "__main__":
    pairs = [arg.split("=", 1) for arg in sys.argv[2:]]
    rc = main(sys.argv[1], pairs)
    # Leave without the interpreter's teardown: deltalake 1.6.6 beside
    # pyarrow 26 aborts in it about one exit in four ("terminate called
    # without an active exception"), after every row is printed.
    sys.stdout.flush()
    os._exit(rc)
