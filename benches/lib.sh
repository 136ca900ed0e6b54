# Shared by the end-to-end benchmarks: starts the services, builds weir
# (release) and the plugins, and defines `measure`: the time from the first
# record read until weir, stopped by SIGTERM once every record is written,
# has committed its final checkpoint and exited. Source it after setting
# `records`.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
scripts/build-plugins.sh >/dev/null
# WEIR_BIN: measure another build of weir (an A/B of two commits).
if [[ -z ${WEIR_BIN:-} ]]; then cargo build --release -p weir; fi
weir=${WEIR_BIN:-$PWD/target/release/weir}
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
    if [[ $read -ge $records && $((out + failed)) -ge $read ]]; then break; fi
    kill -0 $pid 2>/dev/null || { cat "$work/log"; exit 1; }
  done
  # The metrics as they stood (for `commits` below), then until the final
  # checkpoint is committed: SIGTERM drains and commits.
  { curl -s "127.0.0.1:$port/metrics" || true; } >"$work/metrics"
  pkill -TERM -P $pid   # weir, the child of /usr/bin/time
  wait $pid
  done_at=$(date +%s.%N)
  awk -v n="$records" -v a="$start" -v b="$done_at" -v label="$1" -v rss="$(cat "$work/rss")" \
    'BEGIN { printf "%-34s %8d records in %6.2f s = %8.0f records/s, peak RSS %d MiB\n", label, n, b - a, n / (b - a), rss / 1024 }'
}


commits() { # pipeline: the commits of the last `measure` before its SIGTERM, and their mean time
  awk -v p="pipeline=\"$1\"" '
    index($0, "weir_commit_seconds_sum{" p "}") == 1 { sum = $2 }
    index($0, "weir_commit_seconds_count{" p "}") == 1 { n = $2 }
    END { if (n > 0) printf "%d commits, mean %.1f ms", n, sum / n * 1000; else printf "no commit" }' "$work/metrics"
}
