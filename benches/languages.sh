#!/usr/bin/env bash
# The figures of BENCHMARKS.md's "Plugins in Python and JavaScript", in one run:
#  1. each reference plugin's component: size, compile time cold and from the
#     compiled cache (weir plugin test with a fresh --cache-dir, then again);
#  2. taxi-enrich end to end, NDJSON file → plugin → NDJSON file, paired runs
#     alternating: the Rust component, the Python component, and the same
#     Python class in native CPython (benches/taxi_native.py) — wall time and
#     peak RSS;
#  3. process() alone (weir bench): the Python component against native Rust,
#     and a Python identity component (benches/python-echo) for what crossing
#     the boundary costs with no work.
# With FLINKPY (a python with `pip install apache-flink==2.3.0`) and
# PYFLINK_UDF (the peer benchmark's pyflink_udf.py, a Python ProcessFunction
# doing the same enrichment) set, each round also runs PyFlink on the same
# file with 2 Python worker processes.
# Usage: benches/languages.sh [records] [rounds]   (default 100000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-100000}"
rounds="${2:-3}"
scripts/toolchains.sh install
eval "$(scripts/toolchains.sh env)"
cargo build --release -p weir
weir=./target/release/weir
scripts/build-plugins.sh >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for project in plugins/python/*/ plugins/js/*/; do "$weir" plugin build "$project" --out plugins/dist >/dev/null; done
"$weir" plugin build benches/python-echo --out "$work" >/dev/null

echo "== components: size, compile cold, load from the cache"
"$weir" gen taxi --count 10 > "$work/one.ndjson"
for p in taxi-enrich taxi-enrich-py weather-window weather-window-py log-extract log-extract-js; do
  wasm="plugins/dist/$p.wasm"
  cache="$work/cache-$p"
  cold=$("$weir" plugin test "$wasm" --input "$work/one.ndjson" --cache-dir "$cache" 2>&1 >/dev/null | grep -o 'in [0-9]* ms' | head -1)
  warm=$("$weir" plugin test "$wasm" --input "$work/one.ndjson" --cache-dir "$cache" 2>&1 >/dev/null | grep -o 'in [0-9]* ms' | head -1)
  printf '%-20s %9d bytes  compiled %-10s cached %s\n' "$p" "$(wc -c <"$wasm")" "$cold" "$warm"
done

echo "== taxi-enrich end to end: $records records, file → NDJSON, $rounds rounds"
"$weir" gen taxi --count "$records" --seed 7 > "$work/trips.ndjson"
for p in taxi-enrich taxi-enrich-py; do # compile once, outside the timed runs
  "$weir" plugin test "plugins/dist/$p.wasm" --input "$work/one.ndjson" >/dev/null 2>&1
done
timed() { # timed <label> <command...>: wall seconds and peak RSS
  /usr/bin/time -f "$1 %e s, peak RSS %M KiB" "${@:2}" 2>&1 >/dev/null | grep "peak RSS"
}
for round in $(seq 1 "$rounds"); do
  for p in taxi-enrich taxi-enrich-py; do
    rm -rf "$work/out" && mkdir -p "$work/out"
    WEIR_BENCH_PLUGIN="$PWD/plugins/dist/$p.wasm" WEIR_BENCH_INPUT="$work/trips.ndjson" \
      WEIR_BENCH_OUT="$work/out" WEIR_LOG=warn timed "round $round weir + $p" \
      "$weir" run --quiet benches/e2e-plugin-ndjson.toml
    echo "  outputs $(wc -l <"$work/out/out.ndjson"), dead letters $(wc -l <"$work/out/dead.ndjson")"
  done
  PYTHONPATH=sdk/python/src:plugins/python/taxi-enrich timed "round $round native CPython" \
    python3 benches/taxi_native.py "$work/trips.ndjson" "$work/native.ndjson" "$work/native-dead.ndjson"
  echo "  outputs $(wc -l <"$work/native.ndjson"), dead letters $(wc -l <"$work/native-dead.ndjson")"
  if [ -n "${FLINKPY:-}" ] && [ -n "${PYFLINK_UDF:-}" ]; then
    rm -rf "$work/pyflink"
    timed "round $round PyFlink UDF, 2 workers" "$FLINKPY" "$PYFLINK_UDF" "$work/trips.ndjson" "$work/pyflink" 2 --workers process
    echo "  outputs $(find "$work/pyflink/valid" -type f -exec cat {} + | wc -l)"
  fi
done
cmp <(sort "$work/out/out.ndjson") <(sort "$work/native.ndjson") && echo "  the Python component's outputs equal native CPython's"

echo "== process() alone: the Python component vs the same logic in native Rust; boundary with a Python identity"
"$weir" bench --wasm plugins/dist/taxi-enrich-py.wasm --echo "$work/python-echo.wasm" \
  --records "$((records / 2))" --repeat 3
echo "== the same in native CPython: TaxiEnrich.process and an identity, batches of 1024"
PYTHONPATH=sdk/python/src:plugins/python/taxi-enrich:benches/python-echo python3 - "$work/trips.ndjson" "$((records / 2))" <<'PY'
import sys, time
from weir_sdk import Record
from taxi_enrich import TaxiEnrich
from echo import Echo
lines = open(sys.argv[1], "rb").read().splitlines()[: int(sys.argv[2])]
for name, t in (("taxi-enrich", TaxiEnrich({})), ("identity", Echo({}))):
    best = 0.0
    for _ in range(3):
        batches = [[Record(value=l) for l in lines[i : i + 1024]] for i in range(0, len(lines), 1024)]
        start = time.perf_counter()
        for b in batches:
            t.process(b, 0)
        best = max(best, len(lines) / (time.perf_counter() - start))
    print(f"native CPython {name:12} {best / 1000:8.1f} k records/s (batch 1024, records built outside the timing)")
PY
