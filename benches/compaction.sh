#!/usr/bin/env bash
# Seed 002's small files and what compaction makes of them, in one run of
# examples/shots.toml (Kafka → shot-clean → Parquet on S3 under
# season=…/game_date=…/, release build):
#  1. a game day as a live stream writes it: each shot committed on its own
#     (one commit every ~10 s of play over a 5-hour game day = 1 800
#     commits), then `weir compact`: files and bytes before and after;
#  2. a million shots (735 game days of 8 games) written with a commit every
#     second: the writer's
#     throughput (records/s, MB/s of Parquet) without compaction, then with
#     the sink compacting beside it (`every = "1s"`), as a ratio; then
#     `weir compact` of the first plain run's files: its throughput in MB/s
#     read, next to the writer's MB/s written.
# Usage: benches/compaction.sh [day-shots] [shots]  (defaults 1800, 1000000)
set -euo pipefail
day="${1:-1800}"
season="${2:-1000000}"
source "$(dirname "$0")/lib.sh"

bytes_of() { # location: committed files and bytes
  "$weir" files --long "$1" | awk -F'\t' '{ n++; b += $2 } END { printf "%d files, %.2f MB", n, b / 1e6 }'
}
run_shots() { # label config topic bucket rollover compact-every
  "$weir" bucket create "s3://$4" >/dev/null
  SHOTS_TOPIC=$3 SHOTS_BUCKET=$4 SHOTS_ROLLOVER=$5 SHOTS_COMPACT_EVERY=$6 measure "$1" "$2" shots
}

# 1. A game day, one shot per commit.
records=$day
config="$work/day.toml"
sed 's/^batch-size = 4096/batch-size = 1\ncheckpoint-records = 1/' examples/shots.toml >"$config"
id="day-$$"
"$weir" gen shots --count "$day" --seed 2 --invalid-pct 0 --topic "$id" --brokers "$WEIR_KAFKA" 2>/dev/null
run_shots "day: one shot per commit" "$config" "$id" "$id" 0s 1000h
echo "before compaction: $(bytes_of "s3://$id/charts")"
"$weir" compact "s3://$id/charts" --sort-by shot_id | sed 's/^/  /'
echo "after compaction:  $(bytes_of "s3://$id/charts")"

# 2. A million shots, a commit every second: the writer alone, then beside the
# sink's own compaction; paired rounds.
records=$season
for round in 1 2; do
  for mode in plain compacting; do
    id="season-$mode-$round-$$"
    "$weir" gen shots --count "$season" --seed 3 --invalid-pct 0 --topic "$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    every=1000h
    [[ $mode == compacting ]] && every=1s
    line=$(run_shots "season, $mode (round $round)" examples/shots.toml "$id" "$id" 1s "$every" | tail -n 1)
    echo "$line" | tee -a "$work/season"
    secs=$(awk '{ print $(NF-8) }' <<<"$line")
    mb=$("$weir" files --long "s3://$id/charts" | awk -F'\t' '{ b += $2 } END { print b / 1e6 }')
    echo "  committed: $(bytes_of "s3://$id/charts"); $(awk -v m="$mb" -v s="$secs" 'BEGIN { printf "%.2f MB/s of Parquet", m / s }')"
  done
done
awk '/plain/ { p += $(NF-5) } /compacting/ { c += $(NF-5) } END { printf "writer beside compaction / alone: %.2f (records/s, both rounds)\n", c / p }' "$work/season"
echo "compacting the first plain run (min-files 2):"
"$weir" compact "s3://season-plain-1-$$/charts" --min-files 2 | sed 's/^/  /'
