#!/usr/bin/env bash
# End-to-end throughput on the real services (scripts/services.sh):
#  1. taxi: Kafka → taxi-enrich → PostgreSQL (COPY), seed 000's second leg;
#  2. logs: Kafka → log-extract → Parquet on S3, seed 003.
#  0. the Kafka source alone into /dev/null: the ceiling of this broker.
# Each run: produce N records to a fresh topic first, then time weir from
# the first record read to the last one written (polled from /metrics every
# 50 ms), with the process's peak RSS.
# Usage: benches/connectors.sh [records]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-200000}"
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
scripts/build-plugins.sh >/dev/null
cargo build --release -p weir
weir=$PWD/target/release/weir
export WEIR_KAFKA=$WEIR_TEST_KAFKA WEIR_PG=$WEIR_TEST_PG WEIR_S3_ENDPOINT=$WEIR_TEST_S3 \
  WEIR_S3_KEY=$WEIR_TEST_S3_KEY WEIR_S3_SECRET=$WEIR_TEST_S3_SECRET WEIR_PLUGINS=$PWD/plugins/dist \
  AWS_ENDPOINT=$WEIR_TEST_S3 AWS_ACCESS_KEY_ID=$WEIR_TEST_S3_KEY AWS_SECRET_ACCESS_KEY=$WEIR_TEST_S3_SECRET \
  AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 WEIR_LOG=warn
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

metric() { # name pipeline port
  { curl -s "127.0.0.1:$3/metrics" || true; } | sed -n "s/^$1{pipeline=\"$2\"} //p"
}

measure() { # label config pipeline
  local port=$((20000 + RANDOM % 20000)) start="" done_at=""
  /usr/bin/time -f "%M" -o "$work/rss" "$weir" run --quiet --listen 127.0.0.1:$port "$2" 2>"$work/log" &
  local pid=$!
  while :; do
    sleep 0.05
    local read out failed
    read=$(metric weir_records_in_total "$3" $port); read=${read:-0}
    out=$(metric weir_records_out_total "$3" $port); out=${out:-0}
    failed=$(metric weir_records_failed_total "$3" $port); failed=${failed:-0}
    if [[ -z $start && $read -gt 0 ]]; then start=$(date +%s.%N); fi
    if [[ $read -ge $records && $((out + failed)) -ge $read ]]; then done_at=$(date +%s.%N); break; fi
    kill -0 $pid 2>/dev/null || { cat "$work/log"; exit 1; }
  done
  pkill -TERM -P $pid   # weir, the child of /usr/bin/time
  wait $pid
  awk -v n="$records" -v a="$start" -v b="$done_at" -v label="$1" -v rss="$(cat "$work/rss")" \
    'BEGIN { printf "%-34s %8d records in %6.2f s = %8.0f records/s, peak RSS %d MiB\n", label, n, b - a, n / (b - a), rss / 1024 }'
}

for run in 1 2 3; do
  id="bench-$$-$run"
  "$weir" gen taxi --count "$records" --seed $run --invalid-pct 0 --topic "taxi-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
  TAXI_TOPIC="taxi-$id" measure "Kafka → /dev/null (run $run)" benches/kafka-null.toml null
  TAXI_TOPIC="taxi-$id" TAXI_TABLE="bench_taxi_${run}_$$" measure "taxi Kafka → Postgres (run $run)" benches/kafka-taxi-postgres.toml taxi
  psql "$WEIR_PG" -qc "DROP TABLE bench_taxi_${run}_$$" >/dev/null

  "$weir" bucket create "s3://bench-logs-$$" >/dev/null
  "$weir" gen logs --count "$records" --seed $run --invalid-pct 0 --topic "logs-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
  LOGS_TOPIC="logs-$id" LOGS_BUCKET="bench-logs-$$" LOGS_PREFIX="run-$run" measure "logs Kafka → Parquet on S3 (run $run)" benches/kafka-logs-s3.toml logs
done
