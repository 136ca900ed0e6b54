"""A reader that is not weir: reads a Parquet location's committed rows the
way the README tells Spark, DuckDB or pyarrow users to, with pyarrow alone.

    committed_rows.py s3://bucket/prefix   (S3 from AWS_ENDPOINT,
                                            AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    committed_rows.py /local/folder

Reads `_weir/committed` (one committed file per line, relative to the
location), then each listed file, and prints one JSON object per row with
`_file` (the file's path) added. Exits 1 if a listed file is missing;
prints nothing while nothing is committed (no list yet).
"""

import json
import os
import sys
from urllib.parse import urlparse

import pyarrow.fs as pafs
import pyarrow.parquet as pq


def filesystem(location):
    url = urlparse(location)
    if url.scheme == "s3":
        endpoint = urlparse(os.environ["AWS_ENDPOINT"])
        fs = pafs.S3FileSystem(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=endpoint.netloc,
            scheme=endpoint.scheme or "http",
            region=os.environ.get("AWS_REGION", "us-east-1"),
        )
        return fs, (url.netloc + url.path).rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(location).rstrip("/")


def main(location):
    fs, base = filesystem(location)
    try:
        with fs.open_input_stream(f"{base}/_weir/committed") as listing:
            names = [line for line in listing.read().decode().splitlines() if line]
    except FileNotFoundError:
        print(f"{location}: nothing committed yet (no _weir/committed)", file=sys.stderr)
        return 0
    out = sys.stdout
    for name in names:
        try:
            table = pq.read_table(f"{base}/{name}", filesystem=fs)
        except FileNotFoundError:
            print(f"listed file {name} is missing", file=sys.stderr)
            return 1
        for row in table.to_pylist():
            row["_file"] = name
            out.write(json.dumps(row, default=str))
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
