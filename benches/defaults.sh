#!/usr/bin/env bash
# The memory defaults against the ones before them, on the real services
# (release build), paired rounds in one run, same binary:
#   now:    the defaults (the Kafka source's prefetch 1 MiB, the Parquet
#           sink's max-open-files 4);
#   before: prefetch = "8MiB", max-open-files = 16, written into a copy of
#           each configuration.
# Three jobs, each on a topic produced once:
#  1. taxi: Kafka → taxi-enrich → PostgreSQL (benches/kafka-taxi-postgres.toml);
#  2. logs: Kafka → log-extract → Delta on S3 (benches/kafka-logs-s3.toml);
#  3. shots: seed 002's shots over 736 game-day folders (examples/shots.toml).
# Prints records/s and peak RSS of each run and the now/before ratios.
# Usage: benches/defaults.sh [taxi and logs records] [shots] [rounds]
#        (defaults 500000 1000000 2)
set -euo pipefail
count="${1:-500000}"
season="${2:-1000000}"
rounds="${3:-2}"
records=$count
source "$(dirname "$0")/lib.sh"

numbers() { # a `measure` line: records/s, peak RSS MiB
  sed -E 's/.*= *([0-9]+) records\/s, peak RSS ([0-9]+) MiB.*/\1 \2/'
}

# The configuration with the earlier defaults written in.
before() { # config → path of the copy
  local copy="$work/before-$(basename "$1")"
  sed -e 's/^\(source = { type = "kafka",\)/\1 prefetch = "8MiB",/' \
    -e '/^\[pipelines\.[a-z-]*\.source\]$/,/^type = "kafka"$/ s/^type = "kafka"$/&\nprefetch = "8MiB"/' \
    -e 's/^type = "parquet"$/&\nmax-open-files = 16/' "$1" >"$copy"
  grep -q 'prefetch = "8MiB"' "$copy"
  echo "$copy"
}

id="defaults-$$"
"$weir" gen taxi --count "$count" --seed 4 --invalid-pct 0 --topic "taxi-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
"$weir" gen logs --count "$count" --seed 5 --invalid-pct 0 --topic "logs-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
"$weir" bucket create "s3://$id" >/dev/null
for round in $(seq 1 "$rounds"); do
  for mode in now before; do
    taxi=benches/kafka-taxi-postgres.toml logs=benches/kafka-logs-s3.toml shots=examples/shots.toml
    if [[ $mode == before ]]; then
      taxi=$(before $taxi) logs=$(before $logs) shots=$(before $shots)
    fi
    records=$count
    TAXI_BATCH=1024 TAXI_TOPIC="taxi-$id" TAXI_TABLE="defaults_${mode}_${round}_$$" \
      measure "taxi → Postgres, $mode (round $round)" "$taxi" taxi | tail -n 1 | tee "$work/line"
    printf 'taxi-%s\t%s\n' $mode "$(numbers <"$work/line")" >>"$work/all"
    psql "$WEIR_PG" -qc "DROP TABLE defaults_${mode}_${round}_$$" >/dev/null
    LOGS_TOPIC="logs-$id" LOGS_BUCKET=$id LOGS_PREFIX="logs-$mode-$round" \
      measure "logs → Delta on S3, $mode (round $round)" "$logs" logs | tail -n 1 | tee "$work/line"
    printf 'logs-%s\t%s\n' $mode "$(numbers <"$work/line")" >>"$work/all"
    # A topic and a bucket of their own: the shots job's consumer group
    # is fixed, and its table holds its checkpoint.
    records=$season shots_id="$id-shots-$mode-$round"
    "$weir" gen shots --count "$season" --seed 3 --invalid-pct 0 --topic "$shots_id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    "$weir" bucket create "s3://$shots_id" >/dev/null
    SHOTS_TOPIC=$shots_id SHOTS_BUCKET=$shots_id SHOTS_ROLLOVER=1s SHOTS_COMPACT_EVERY=1000h \
      measure "shots → Delta, 736 folders, $mode (round $round)" "$shots" shots | tail -n 1 | tee "$work/line"
    printf 'shots-%s\t%s\n' $mode "$(numbers <"$work/line")" >>"$work/all"
    # Each round reads the topics from the start: forget the checkpoints.
    rm -rf "${TMPDIR:-/tmp}/weir-bench-checkpoints"
    psql "$WEIR_PG" -qc "DELETE FROM weir_checkpoints WHERE pipeline = 'taxi'; DELETE FROM weir_epochs WHERE pipeline = 'taxi'" 2>/dev/null || true
  done
done
awk -F'\t' '{ split($2, v, " "); r[$1] += v[1]; m[$1] += v[2]; n[$1]++ }
  END { for (job in r) if (job ~ /-now$/) { j = substr(job, 1, length(job) - 4);
    printf "%-6s now/before: records/s %.2f, peak RSS %.2f (means over %d rounds; now %.0f MiB, before %.0f MiB)\n", j,
      (r[job] / n[job]) / (r[j "-before"] / n[j "-before"]), (m[job] / n[job]) / (m[j "-before"] / n[j "-before"]), n[job],
      m[job] / n[job], m[j "-before"] / n[j "-before"] } }' "$work/all"
