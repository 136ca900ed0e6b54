#!/usr/bin/env bash
# Publishing to a fleet, in one run of seed 000's second leg (Kafka →
# taxi-enrich → PostgreSQL, release build) as 3 processes of one consumer
# group whose plugin path is a published location on the S3 server:
#  - per deploy: from the start of `weir plugin deploy` (its checks
#    included) to each process's /readyz naming the new version; the
#    median and max over the deploys, over all processes;
#  - the largest gap between two batches handed to the sink, during the
#    swaps and steady (weir_batch_gap_max_seconds, the largest of the 3).
# Deploys alternate taxi-enrich v1 and v2; the location's poll-interval is
# the default (2 s), so the time is at most about one interval plus the
# swap itself.
# Usage: benches/deploy.sh [records] [deploys]   (defaults 3000000, 10)
set -euo pipefail
records="${1:-3000000}"
deploys="${2:-10}"
source "$(dirname "$0")/lib.sh"

id="deploy-$$"
table="bench_deploy_$$"
location="s3://$id/weir/plugins/taxi-enrich.wasm"
"$weir" bucket create "s3://$id" >/dev/null
config="$work/fleet.toml"
{ printf '[engine]\ncache-dir = "%s/cache"\n\n' "$work"; cat benches/kafka-taxi-postgres.toml; } >"$config"
cp plugins/dist/taxi-enrich.wasm "$work/v1.wasm"
cp tests/fixtures/dist/taxi-enrich-v2.wasm "$work/v2.wasm"
label() { printf '%s+%s' "$1" "$(sha256sum "$2" | cut -c1-12)"; }
v1=$(label taxi-enrich@0.1.0 "$work/v1.wasm")
v2=$(label taxi-enrich@2.0.0 "$work/v2.wasm")
export WEIR_PLUGINS="s3://$id/weir/plugins" TAXI_TOPIC="$id" TAXI_TABLE="$table" TAXI_ASSIGNMENT=cooperative-sticky
"$weir" plugin deploy "$work/v1.wasm" --to "$location" --config "$config" >/dev/null

"$weir" gen taxi --count "$records" --seed 8 --invalid-pct 0 --topic "$id" --partitions 12 --brokers "$WEIR_KAFKA" 2>/dev/null
ports=() pids=()
for p in 1 2 3; do
  port=$((20000 + RANDOM % 20000))
  "$weir" run --quiet --listen 127.0.0.1:$port "$config" 2>"$work/log-$p" &
  pids+=($!) ports+=($port)
done
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
readyz() { curl -s "127.0.0.1:$1/readyz" || true; }
read_by() { local n; n=$(metric weir_records_in_total taxi "$1"); echo "${n:-0}"; }
# Every process reading before the first deploy.
for port in "${ports[@]}"; do
  until [[ $(read_by "$port") -gt 1000 ]]; do sleep 0.1; done
done

echo "deploy  to                              deploy → live on each process (ms)"
for n in $(seq "$deploys"); do
  if ((n % 2)); then file=$work/v2.wasm want=$v2; else file=$work/v1.wasm want=$v1; fi
  t0=$(date +%s%N)
  "$weir" plugin deploy "$file" --to "$location" --config "$config" >/dev/null
  times=()
  for port in "${ports[@]}"; do
    until readyz "$port" | grep -q "plugin taxi-enrich: $want"; do sleep 0.01; done
    times+=("$((($(date +%s%N) - t0) / 1000000))")
  done
  printf '%6d  %-30s %s\n' "$n" "$want" "${times[*]}"
  printf '%s\n' "${times[@]}" >>"$work/times"
  sleep 1
done
for port in "${ports[@]}"; do
  (( $(read_by "$port") > 0 )) || echo "warning: a process read nothing" >&2
done
sort -n "$work/times" | awk '{ t[NR] = $1 } END { printf "deploy → live: median %d ms, max %d ms over %d deploys × 3 processes\n", t[int((NR + 1) / 2)], t[NR], NR / 3 }'
gaps() { # during
  for port in "${ports[@]}"; do
    { curl -s "127.0.0.1:$port/metrics" || true; } | sed -n "s/^weir_batch_gap_max_seconds{pipeline=\"taxi\",during=\"$1\"} //p"
  done | sort -g | tail -n 1
}
echo "largest batch gap: during swaps $(gaps swap) s, steady $(gaps steady) s (the largest over the 3 processes)"
left=$((records - $(read_by "${ports[0]}") - $(read_by "${ports[1]}") - $(read_by "${ports[2]}")))
((left > 0)) || echo "warning: the input ran out during the deploys; raise [records]" >&2
psql "$WEIR_PG" -qc "DROP TABLE IF EXISTS $table" >/dev/null
