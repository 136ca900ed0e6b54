#!/usr/bin/env bash
# The Parquet sink's table formats side by side, in one run on the real
# services (release build):
#  1. seed 003's job (Kafka → log-extract → Parquet on S3, a commit every
#     second) writing a Delta table, then weir's manifests, paired rounds on
#     the same topic: records/s, peak RSS and the mean commit time
#     (`weir_commit_seconds`), as Delta/weir ratios;
#  2. seed 002's million shots over 735 game-day folders (examples/shots.toml,
#     Delta): the default `max-open-files` (16) against no bound (100 000
#     open files, what the sink did before it had the key), paired rounds:
#     peak RSS and records/s;
#  3. a game day of 1 800 shots, each its own commit, into a Delta table and
#     into weir's manifests, then `weir compact` of each one's 1 800 small
#     files: the commit rate, files and bytes before and after, the
#     compaction's time.
# Usage: benches/delta.sh [log records] [shots] [day shots] [rounds]
#        DELTA_PHASES="1 3" runs only those parts.
#        (defaults 2000000 1000000 1800 2)
set -euo pipefail
logs="${1:-2000000}"
season="${2:-1000000}"
day="${3:-1800}"
rounds="${4:-2}"
source "$(dirname "$0")/lib.sh"

numbers() { # a `measure` line: records/s, peak RSS MiB, mean commit ms (0 when none)
  sed -E 's/.*= *([0-9]+) records\/s, peak RSS ([0-9]+) MiB(.*mean ([0-9.]+) ms)?.*/\1 \2 \4/' | awk '{ print $1, $2, ($3 == "" ? 0 : $3) }'
}

phase() { [[ " ${DELTA_PHASES:-1 2 3} " == *" $1 "* ]]; }

# 1. Delta against weir's manifests on seed 003's job.
if phase 1; then
records=$logs
id="delta-$$"
"$weir" gen logs --count "$logs" --seed 5 --invalid-pct 0 --topic "logs-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
"$weir" bucket create "s3://$id" >/dev/null
for round in $(seq 1 "$rounds"); do
  for table in delta weir; do
    line=$(LOGS_TOPIC="logs-$id" LOGS_BUCKET="$id" LOGS_PREFIX="$table-$round" LOGS_TABLE=$table LOGS_ROLLOVER=1s \
      measure "logs → $table on S3 (round $round)" benches/kafka-logs-s3.toml logs | tail -n 1)
    line="$line; $(commits logs)"
    echo "$line"
    printf '%s\t%s\n' $table "$(numbers <<<"$line")" >>"$work/logs"
  done
done
awk -F'\t' '{ split($2, v, " "); r[$1] += v[1]; m[$1] += v[2]; c[$1] += v[3]; n[$1]++ }
  END { printf "Delta / weir manifests: records/s %.2f, peak RSS %.2f, mean commit time %.2f (means over %d rounds)\n",
    (r["delta"] / n["delta"]) / (r["weir"] / n["weir"]), (m["delta"] / n["delta"]) / (m["weir"] / n["weir"]),
    (c["delta"] / n["delta"]) / (c["weir"] / n["weir"]), n["delta"] }' "$work/logs"

fi

# 2. Many partition folders: max-open-files at its default, and unbounded.
if phase 2; then
records=$season
unbounded="$work/shots-unbounded.toml"
sed 's/^partition-by = \["season", "game_date"\]/&\nmax-open-files = 100000/' examples/shots.toml >"$unbounded"
grep -q '^max-open-files = 100000' "$unbounded"
for round in $(seq 1 "$rounds"); do
  for mode in default unbounded; do
    id="shots-$mode-$round-$$"
    "$weir" gen shots --count "$season" --seed 3 --invalid-pct 0 --topic "$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    "$weir" bucket create "s3://$id" >/dev/null
    config=examples/shots.toml
    [[ $mode == unbounded ]] && config=$unbounded
    SHOTS_TOPIC=$id SHOTS_BUCKET=$id SHOTS_ROLLOVER=1s SHOTS_COMPACT_EVERY=1000h \
      measure "shots, max-open-files $mode (round $round)" "$config" shots | tail -n 1 | tee "$work/line"
    printf '%s\t%s\n' $mode "$(numbers <"$work/line")" >>"$work/shots"
    files=$("$weir" files "s3://$id/charts" | grep '\.parquet$')
    echo "  committed: $(wc -l <<<"$files") files in $(sed 's|/[^/]*$||' <<<"$files" | sort -u | wc -l) folders"
  done
done
awk -F'\t' '{ split($2, v, " "); r[$1] += v[1]; m[$1] += v[2]; n[$1]++ }
  END { printf "max-open-files 16 / unbounded: records/s %.2f, peak RSS %.3f (means over %d rounds)\n",
    (r["default"] / n["default"]) / (r["unbounded"] / n["unbounded"]), (m["default"] / n["default"]) / (m["unbounded"] / n["unbounded"]), n["default"] }' "$work/shots"

fi

# 3. A game day committed one shot at a time, then compacted, in each format.
if phase 3; then
  records=$day
  config="$work/day.toml"
  sed 's/^batch-size = 4096/batch-size = 1\ncheckpoint-records = 1/' examples/shots.toml >"$config"
  for table in delta weir; do
    id="day-$table-$$"
    "$weir" gen shots --count "$day" --seed 2 --invalid-pct 0 --topic "$id" --brokers "$WEIR_KAFKA" 2>/dev/null
    "$weir" bucket create "s3://$id" >/dev/null
    SHOTS_TABLE=$table SHOTS_TOPIC=$id SHOTS_BUCKET=$id SHOTS_ROLLOVER=0s SHOTS_COMPACT_EVERY=1000h \
      measure "day → $table, one shot per commit" "$config" shots | tail -n 1
    echo "  $(commits shots)"
    "$weir" compact "s3://$id/charts" --sort-by shot_id | sed 's/^/  /'
  done
fi
