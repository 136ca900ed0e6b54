#!/usr/bin/env bash
# The cost of exactly-once on seed 000's second leg (Kafka → taxi-enrich →
# PostgreSQL), in one run so the ratios are fair:
#  - exactly-once (rows + checkpoint in one transaction per epoch) vs
#    at-least-once (a transaction per batch, checkpoint file after a flush),
#    both with a 1 s checkpoint interval;
#  - exactly-once with checkpoint intervals of 100 ms, 1 s and 5 s.
# Each measurement reads N records from its own fresh 2-partition topic.
# Usage: benches/checkpoints.sh [records] [runs]   (defaults 200000, 3)
set -euo pipefail
records="${1:-200000}"
runs="${2:-3}"
source "$(dirname "$0")/lib.sh"

for run in $(seq "$runs"); do
  for variant in "exactly-once 1s" "at-least-once 1s" "exactly-once 100ms" "exactly-once 5s"; do
    read -r delivery interval <<<"$variant"
    id="ckpt-$$-$run-${delivery}-${interval}"
    "$weir" gen taxi --count "$records" --seed "$run" --invalid-pct 0 --topic "$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    table="bench_ckpt_$$_${run}_${delivery//-/_}_${interval}"
    TAXI_TOPIC="$id" TAXI_TABLE="$table" TAXI_DELIVERY="$delivery" TAXI_CHECKPOINT="$interval" \
      measure "$delivery, every $interval (run $run)" benches/kafka-taxi-postgres.toml taxi
    psql "$WEIR_PG" -qc "DROP TABLE $table" >/dev/null
  done
done
