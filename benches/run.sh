#!/usr/bin/env bash
# Produces every figure in BENCHMARKS.md, in one run:
#  1. taxi-enrich through WASM (batch 1, 64, 1024) vs the same code natively,
#     plus an identity component for the boundary cost alone;
#  2. end to end, file → taxi-enrich → Parquet, with peak RSS.
# Usage: benches/run.sh [records]   (default 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-500000}"
scripts/build-plugins.sh >/dev/null
cargo build --release -p weir
weir=./target/release/weir

"$weir" bench --records "$records" --repeat 5 --echo tests/fixtures/dist/hostile.wasm

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$weir" gen taxi --count "$records" --seed 7 > "$work/trips.ndjson"
for run in 1 2 3; do
  rm -rf "$work/out"
  WEIR_BENCH_INPUT="$work/trips.ndjson" WEIR_BENCH_OUT="$work/out" WEIR_LOG=warn \
    /usr/bin/time -f "peak RSS %M KiB" "$weir" run --quiet benches/e2e-taxi.toml
done
