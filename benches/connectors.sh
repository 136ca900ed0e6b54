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
records="${1:-200000}"
source "$(dirname "$0")/lib.sh"

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
