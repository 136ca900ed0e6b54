#!/usr/bin/env bash
# Builds the plugins and weir (release), then runs the quickstart on the
# bundled sample: examples/data/taxi/taxi-trips.ndjson → taxi-enrich → Parquet in
# examples/out/taxi/, failures in examples/out/dead-letter.ndjson.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --release -p weir
./target/release/weir validate examples/quickstart.toml
# The checkpoint lives with the output (examples/out/taxi/_delta_log/): a second
# run would resume after the last trip and read nothing. Start afresh.
rm -rf examples/out
./target/release/weir run examples/quickstart.toml
echo "Parquet files: $(ls examples/out/taxi/*.parquet | wc -l) in examples/out/taxi/; dead letters: $(wc -l < examples/out/dead-letter.ndjson) in examples/out/dead-letter.ndjson"
