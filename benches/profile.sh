#!/usr/bin/env bash
# Where the time goes on the real services: one pipeline of
# benches/connectors.sh (taxi: Kafka → taxi-enrich → PostgreSQL, or logs:
# Kafka → log-extract → Parquet on S3) run once under `perf record`, then
#  1. the CPU seconds each process spent during the run (weir, the broker,
#     PostgreSQL's backends, the S3 server), from /proc, against the wall
#     time: the two cores are shared, so this is the budget;
#  2. weir's own samples by where they fall: the plugin's WebAssembly,
#     librdkafka, the Postgres sink, the Parquet writer, the allocator, …
# Usage: benches/profile.sh [taxi|logs] [records]   (default taxi 500000)
# PERF_DATA=file keeps the recording (for perf report -g caller …).
set -euo pipefail
pipeline="${1:-taxi}"
records="${2:-500000}"
source "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || { echo "profile: perf is needed (apt-get install linux-perf)" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
ticks_of() { # pid: user+system clock ticks of the process so far (0 once gone)
  local fields
  fields=$(cut -d' ' -f14,15 "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  echo $((${fields% *} + ${fields#* }))
}
declare -A start_ticks
snapshot() { # name: remember the ticks of its processes now
  local pid
  for pid in $(pgrep -x "$1"); do start_ticks[$pid]=$(ticks_of "$pid"); done
}
spent() { # name: CPU-s its processes spent since `snapshot` (new ones wholly)
  local pid total=0
  for pid in $(pgrep -x "$1"); do total=$((total + $(ticks_of "$pid") - ${start_ticks[$pid]:-0})); done
  echo "$total / $ticks" | bc -l
}

id="profile-$$"
case $pipeline in
  taxi)
    "$weir" gen taxi --count "$records" --seed 1 --invalid-pct 0 --topic "taxi-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    export TAXI_TOPIC="taxi-$id" TAXI_TABLE="profile_taxi_$$"
    config=benches/kafka-taxi-postgres.toml ;;
  logs)
    "$weir" bucket create "s3://profile-logs-$$" >/dev/null
    "$weir" gen logs --count "$records" --seed 1 --invalid-pct 0 --topic "logs-$id" --partitions 2 --brokers "$WEIR_KAFKA" 2>/dev/null
    export LOGS_TOPIC="logs-$id" LOGS_BUCKET="profile-logs-$$" LOGS_PREFIX="profile"
    config=benches/kafka-logs-s3.toml ;;
  *) echo "profile: taxi or logs" >&2; exit 2 ;;
esac

others="nisshi postgres s3s-fs"
for name in $others; do snapshot "$name"; done
port=$((20000 + RANDOM % 20000))
start=$(date +%s.%N)
perf record -F 999 -g -o "$work/perf.data" -- "$weir" run --quiet --listen 127.0.0.1:$port "$config" 2>"$work/log" &
perf_pid=$!
weir_pid=""
while [[ -z $weir_pid ]]; do sleep 0.02; weir_pid=$(pgrep -P $perf_pid || true); done
while :; do
  sleep 0.05
  out=$(metric weir_records_out_total "$pipeline" $port); out=${out:-0}
  failed=$(metric weir_records_failed_total "$pipeline" $port); failed=${failed:-0}
  [[ $((out + failed)) -ge $records ]] && break
  kill -0 "$weir_pid" 2>/dev/null || { cat "$work/log"; exit 1; }
done
# Before weir stops: its PostgreSQL backends end with its connections.
wall=$(echo "$(date +%s.%N) - $start" | bc)
weir_cpu=$(echo "$(ticks_of "$weir_pid") / $ticks" | bc -l)
declare -A cpu
for name in $others; do cpu[$name]=$(spent "$name"); done
kill -TERM "$weir_pid"
wait $perf_pid 2>/dev/null || true

if [[ -n ${PERF_DATA:-} ]]; then cp "$work/perf.data" "$PERF_DATA"; fi
echo "$pipeline: $records records, ${wall} s wall until weir was told to stop (2 cores = $(echo "2 * $wall" | bc) CPU-s at most)"
printf '  %-10s %6.2f CPU-s\n' weir "$weir_cpu"
for name in $others; do printf '  %-10s %6.2f CPU-s\n' "$name" "${cpu[$name]}"; done

# weir's samples, by the shared object and the Rust crate or module the
# leaf frame is in (JIT-compiled WebAssembly has no symbols: it shows as
# weir's anonymous memory, "[unknown]" or "[JIT]").
echo "weir's samples by where the leaf frame is:"
perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
  awk '/^ +[0-9.]+%/ {
    pct = $1; sub("%", "", pct); dso = $2; sym = "";
    for (i = 4; i <= NF; i++) sym = sym " " $i;
    if (dso ~ /^\[(unknown|JIT)|perf-|memfd|cwasm/ || sym ~ /wasm\[[0-9]+\]::/) area = "plugin WebAssembly (compiled guest code)";
    else if (dso ~ /kernel/) area = "kernel (network, memory, scheduling)";
    else if (sym ~ /rd_kafka|rdkafka|lz4|crc32/) area = "librdkafka (fetch, queue, decompress)";
    else if (sym ~ /sink::fields|serde_json|serde::de/) area = "JSON field reading (sink and plugin glue)";
    else if (sym ~ /sink::postgres|sqlx|PgCopy/) area = "Postgres sink (encode, COPY protocol)";
    else if (sym ~ /parquet|arrow|zstd|ZSTD/) area = "Parquet writer (Arrow decode, encode, zstd)";
    else if (sym ~ /malloc|free|realloc|memcpy|memmove|_int_|cfree/) area = "allocator and copies (libc)";
    else if (sym ~ /wasmtime|cranelift|component|lift|lower/) area = "wasmtime host side (boundary)";
    else if (sym ~ /tokio|mio|futures/) area = "async runtime";
    else area = "other: " dso;
    share[area] += pct
  }
  END { for (a in share) printf "  %5.1f%%  %s\n", share[a], a }' | sort -rn | head -15 || true
echo "top symbols:"
perf report -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25 || true
if [[ $pipeline == taxi ]]; then psql "$WEIR_PG" -qc "DROP TABLE profile_taxi_$$" >/dev/null; fi
