#!/usr/bin/env bash
# Same-run A/B of weir at an older commit against the working tree, on two
# local pipelines (no services): file → taxi-enrich → Parquet
# (benches/e2e-taxi.toml) and file → weather-window (event-time windows,
# stateful) → NDJSON. Runs alternate old/new, three rounds.
# Usage: benches/ab.sh <old-commit> [records]   (default 500000)
set -euo pipefail
old_commit="$1"
records="${2:-500000}"
cd "$(dirname "$0")/.."
root=$PWD
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
scripts/build-plugins.sh >/dev/null
git worktree add -q "$work/old" "$old_commit"
(cd "$work/old" && CARGO_TARGET_DIR="$target" cargo build --release -p weir)
cp "$target/release/weir" "$work/weir-old"
cargo build --release -p weir
cp "$target/release/weir" "$work/weir-new"
"$work/weir-new" gen taxi --count "$records" --seed 7 >"$work/trips.ndjson"
"$work/weir-new" gen weather --count "$records" --seed 7 >"$work/weather.ndjson"
cat >"$work/weather.toml" <<TOML
[plugins.w]
path = "$root/plugins/dist/weather-window.wasm"
config = { window = "60s", time = "event", watermark-delay = "5s" }
[pipelines.weather]
plugins = ["w"]
source = { type = "file", path = "$work/weather.ndjson" }
sink = { type = "ndjson", path = "$work/weather-out.ndjson", truncate = true }
dead-letter = { type = "ndjson", path = "$work/weather-dead.ndjson", truncate = true }
checkpoint-dir = "$work/checkpoints"
TOML
for round in 1 2 3; do
  for v in old new; do
    rm -rf "$work/out" "$work/checkpoints"
    WEIR_BENCH_INPUT="$work/trips.ndjson" WEIR_BENCH_OUT="$work/out" WEIR_LOG=warn \
      "$work/weir-$v" run --quiet benches/e2e-taxi.toml | sed "s/^/taxi    $v round $round: /"
    WEIR_LOG=warn "$work/weir-$v" run --quiet "$work/weather.toml" | sed "s/^/weather $v round $round: /"
  done
done
