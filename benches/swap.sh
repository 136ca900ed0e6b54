#!/usr/bin/env bash
# The cost of a hot swap under load, in one run of seed 000's second leg
# (Kafka → taxi-enrich → PostgreSQL, release build):
#  - the largest gap between two consecutive batches handed to the sink
#    across a swap vs the largest gap without one (weir's
#    weir_batch_gap_max_seconds{during="swap"|"steady"});
#  - per swap: the switch itself (snapshot + restore, `pause_us` in weir's
#    log), the time from the first file event to the new version live
#    (`change_to_live_ms`: debounce + read + compile or cache + init), and
#    the time from `mv` to /readyz naming the new version, seen from here.
# The plugin alternates between taxi-enrich v1 and v2, renamed over the
# configured file, with an empty compiled-component cache at the start (so
# the first swap to each version compiles, later ones load the cache).
# SWAP_V2=plugins/dist/taxi-enrich-py.wasm SWAP_V2_VERSION=taxi-enrich@1.0.0
# alternates the Rust plugin with its Python twin instead of v2.
# Usage: benches/swap.sh [records] [swaps]   (defaults 800000, 10)
set -euo pipefail
records="${1:-800000}"
swaps="${2:-10}"
source "$(dirname "$0")/lib.sh"
export WEIR_LOG="warn,weir::chain=info"

mkdir -p "$work/plugins"
cp plugins/dist/taxi-enrich.wasm "$work/v1.wasm"
cp "${SWAP_V2:-tests/fixtures/dist/taxi-enrich-v2.wasm}" "$work/v2.wasm"
cp "$work/v1.wasm" "$work/plugins/taxi-enrich.wasm"
config="$work/swap.toml"
{ printf '[engine]\ncache-dir = "%s/cache"\n\n' "$work"; cat benches/kafka-taxi-postgres.toml; } >"$config"
label() { printf '%s+%s' "$1" "$(sha256sum "$2" | cut -c1-12)"; }
v1=$(label taxi-enrich@0.1.0 "$work/v1.wasm")
v2=$(label "${SWAP_V2_VERSION:-taxi-enrich@2.0.0}" "$work/v2.wasm")

id="swap-$$"
table="bench_swap_$$"
"$weir" gen taxi --count "$records" --seed 7 --invalid-pct 0 --topic "$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
port=$((20000 + RANDOM % 20000))
WEIR_PLUGINS="$work/plugins" TAXI_TOPIC="$id" TAXI_TABLE="$table" \
  "$weir" run --quiet --listen 127.0.0.1:$port "$config" 2>"$work/log" &
pid=$!
readyz() { curl -s "127.0.0.1:$port/readyz" || true; }
read_so_far() { local n; n=$(metric weir_records_in_total taxi $port); echo "${n:-0}"; }
until [[ $(read_so_far) -ge $((records / 10)) ]]; do
  kill -0 $pid 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 0.05
done

echo "swap  to                              mv → /readyz"
for n in $(seq "$swaps"); do
  if ((n % 2)); then file=$work/v2.wasm want=$v2; else file=$work/v1.wasm want=$v1; fi
  cp "$file" "$work/plugins/.incoming"
  t0=$(date +%s%N)
  mv -f "$work/plugins/.incoming" "$work/plugins/taxi-enrich.wasm"
  until readyz | grep -q "plugin taxi-enrich: $want"; do sleep 0.005; done
  t1=$(date +%s%N)
  printf '%4d  %-30s %8.1f ms\n' "$n" "$want" "$(echo "($t1 - $t0) / 1000000" | bc -l)"
  sleep 0.3
done
left=$((records - $(read_so_far)))
((left > 0)) || echo "warning: the input ran out during the swaps; raise [records]" >&2

gap() { curl -s "127.0.0.1:$port/metrics" | sed -n "s/^weir_batch_gap_max_seconds{pipeline=\"taxi\",during=\"$1\"} //p"; }
until [[ $(read_so_far) -ge $records ]]; do sleep 0.1; done
steady=$(gap steady)
swap=$(gap swap)
kill -TERM $pid
wait $pid || true
echo
echo "from weir's log, per swap: the switch (snapshot + restore) and first file event → live"
grep -o 'pause_us=[0-9]* change_to_live_ms=[0-9]*' "$work/log" | nl -w4 -s'  ' || cat "$work/log"
awk -v a="$steady" -v b="$swap" 'BEGIN {
  printf "\nlargest gap between output batches: without a swap %.1f ms, across a swap %.1f ms (%+.1f ms, %.2fx)\n",
    a * 1000, b * 1000, (b - a) * 1000, b / a }'
psql "$WEIR_PG" -qc "DROP TABLE $table" >/dev/null
