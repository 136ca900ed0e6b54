#!/usr/bin/env bash
# Scale-out through the consumer group (README: "Running several weir
# processes"), on the real services: Kafka (12 partitions) → taxi-enrich →
# PostgreSQL with 1, 2 and 3 weir processes in group mode, and one process
# with assignment = "all" for comparison. Each run: produce N trips to a
# fresh topic, start the processes together, time from the first record
# read (any process) until every record is written (the sum over the
# processes' /metrics), then SIGTERM them all.
# Usage: benches/scale-out.sh [records]   (default 300000)
set -euo pipefail
records="${1:-300000}"
source "$(dirname "$0")/lib.sh"

sum() { # metric: summed over the running processes' ports
  local total=0 v
  for port in "${ports[@]}"; do
    v=$(metric "$1" taxi "$port"); total=$((total + ${v:-0}))
  done
  echo $total
}

group_run() { # label processes assignment
  local id="scale-$$-$RANDOM"
  "$weir" gen taxi --count "$records" --seed 5 --invalid-pct 0 --topic "taxi-$id" --partitions 12 --brokers "$WEIR_KAFKA" 2>/dev/null
  ports=() pids=()
  local start="" joined
  joined=$(date +%s.%N)
  for n in $(seq 1 "$2"); do
    local port=$((20000 + RANDOM % 20000))
    TAXI_TOPIC="taxi-$id" TAXI_TABLE="bench_scale_${id//-/_}" TAXI_ASSIGNMENT="$3" \
      "$weir" run --quiet --listen 127.0.0.1:$port benches/kafka-taxi-postgres.toml 2>"$work/log-$n" &
    pids+=($!) ports+=($port)
  done
  while :; do
    sleep 0.05
    local read out
    read=$(sum weir_records_in_total); out=$(sum weir_records_out_total)
    if [[ -z $start && $read -gt 0 ]]; then start=$(date +%s.%N); fi
    if [[ $out -ge $records ]]; then break; fi
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { cat "$work"/log-*; exit 1; }; done
  done
  local done_at; done_at=$(date +%s.%N)
  kill -TERM "${pids[@]}"; wait "${pids[@]}"
  psql "$WEIR_PG" -qc "DROP TABLE bench_scale_${id//-/_}" >/dev/null
  awk -v n="$records" -v j="$joined" -v a="$start" -v b="$done_at" -v label="$1" \
    'BEGIN { printf "%-40s %8d records in %6.2f s = %8.0f records/s (first record %.1f s after start)\n", label, n, b - a, n / (b - a), a - j }'
}

for run in 1 2; do
  group_run "assignment = all, 1 process (run $run)" 1 all
  for n in 1 2 3; do
    group_run "cooperative-sticky, $n process(es) (run $run)" "$n" cooperative-sticky
  done
done
