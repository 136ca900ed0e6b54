#!/usr/bin/env bash
# End-to-end throughput and memory on the real services (scripts/services.sh),
# each pipeline beside the Kafka source alone, in one run:
#  0. null: the Kafka source alone into /dev/null: the ceiling of this broker;
#  1. taxi: Kafka → taxi-enrich → PostgreSQL (COPY), seed 000's second leg;
#  2. quix: the same job in Quix Streams (PyPI), one Python process, the same
#     enrichment class and its own PostgreSQL sink (benches/quix_taxi.py);
#     its table is checked equal to weir's, row for row;
#  3. logs: Kafka → log-extract → Parquet on S3, seed 003.
# Each run: produce N records to a fresh topic first, then time weir from the
# first record read to the last one written (polled from /metrics every
# 50 ms) and its final checkpoint committed, with the process's peak RSS.
# Usage: benches/connectors.sh [records] [runs]   (default 500000 3)
# QUIX_PYTHON: a python with quixstreams and psycopg2 (default: a venv made
# in ~/.cache/weir/quix on first use); QUIX=0 leaves the peer out.
# WEIR_BASE: another weir binary (an earlier commit's) measured on the same
# topics in the same run, for before/after ratios.
set -euo pipefail
records="${1:-500000}"
runs="${2:-3}"
source "$(dirname "$0")/lib.sh"
# The taxi leg at the pipeline defaults, as examples/taxi.toml runs it.
export TAXI_BATCH=1024

quix_python="${QUIX_PYTHON:-$HOME/.cache/weir/quix/bin/python}"
if [[ ${QUIX:-1} != 0 && ! -x $quix_python ]]; then
  python3 -m venv "$HOME/.cache/weir/quix"
  "$HOME/.cache/weir/quix/bin/pip" install --quiet quixstreams==3.28.1 psycopg2-binary==2.9.13
fi

# The Quix Streams job on the taxi topic: its time from first record to its
# final checkpoint, its peak RSS, and its table checked against weir's.
quix() { # topic table weir-table
  /usr/bin/time -f "%M" -o "$work/rss" env PYTHONPATH="$PWD/sdk/python/src:$PWD/plugins/python/taxi-enrich" \
    "$quix_python" benches/quix_taxi.py "$WEIR_KAFKA" "$1" "quix-$1" "$WEIR_PG" "$2" "$records" 1 \
    >"$work/quix" 2>"$work/quix.log" || { tail -n 20 "$work/quix.log"; exit 1; }
  local seconds rows differ
  seconds=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$work/quix")
  rows=$(sed -n 's/.*"rows": \([0-9]*\).*/\1/p' "$work/quix")
  differ=$(psql "$WEIR_PG" -tAc "SELECT (SELECT count(*) FROM (TABLE $2 EXCEPT ALL TABLE $3) a) + (SELECT count(*) FROM (TABLE $3 EXCEPT ALL TABLE $2) b)")
  awk -v n="$records" -v s="$seconds" -v rss="$(cat "$work/rss")" -v rows="$rows" -v differ="$differ" -v label="$4" \
    'BEGIN { printf "%-34s %8d records in %6.2f s = %8.0f records/s, peak RSS %d MiB; %d rows, %d differ from weir'"'"'s\n", label, n, s, n / s, rss / 1024, rows, differ }'
  [[ $rows == "$records" && $differ == 0 ]] || { echo "connectors: the Quix Streams table is not weir's" >&2; exit 1; }
}

for run in $(seq 1 "$runs"); do
  id="bench-$$-$run"
  "$weir" gen taxi --count "$records" --seed $run --invalid-pct 0 --topic "taxi-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
  NULL_TOPIC="taxi-$id" measure "Kafka → /dev/null, taxi (run $run)" benches/kafka-null.toml null
  TAXI_TOPIC="taxi-$id" TAXI_TABLE="bench_taxi_${run}_$$" measure "taxi Kafka → Postgres (run $run)" benches/kafka-taxi-postgres.toml taxi
  if [[ -n ${WEIR_BASE:-} ]]; then
    this=$weir weir=$WEIR_BASE
    # The same pipeline name on the same topic: forget the first build's
    # checkpoint, or this one would resume at its end.
    psql "$WEIR_PG" -qc "DELETE FROM weir_checkpoints WHERE pipeline = 'taxi'; DELETE FROM weir_epochs WHERE pipeline = 'taxi'"
    TAXI_TOPIC="taxi-$id" TAXI_TABLE="bench_base_${run}_$$" measure "  base: taxi → Postgres (run $run)" benches/kafka-taxi-postgres.toml taxi
    weir=$this
    psql "$WEIR_PG" -qc "DROP TABLE bench_base_${run}_$$" >/dev/null
  fi
  if [[ ${QUIX:-1} != 0 ]]; then
    quix "taxi-$id" "bench_quix_${run}_$$" "bench_taxi_${run}_$$" "Quix Streams → Postgres (run $run)"
    psql "$WEIR_PG" -qc "DROP TABLE bench_quix_${run}_$$" >/dev/null
  fi
  psql "$WEIR_PG" -qc "DROP TABLE bench_taxi_${run}_$$" >/dev/null

  "$weir" bucket create "s3://bench-logs-$$" >/dev/null
  "$weir" gen logs --count "$records" --seed $run --invalid-pct 0 --topic "logs-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
  NULL_TOPIC="logs-$id" measure "Kafka → /dev/null, logs (run $run)" benches/kafka-null.toml null
  LOGS_TOPIC="logs-$id" LOGS_BUCKET="bench-logs-$$" LOGS_PREFIX="run-$run" measure "logs Kafka → Parquet on S3 (run $run)" benches/kafka-logs-s3.toml logs
  if [[ -n ${WEIR_BASE:-} ]]; then
    this=$weir weir=$WEIR_BASE
    LOGS_TOPIC="logs-$id" LOGS_BUCKET="bench-logs-$$" LOGS_PREFIX="base-$run" measure "  base: logs → Parquet on S3 (run $run)" benches/kafka-logs-s3.toml logs
    weir=$this
  fi
done
