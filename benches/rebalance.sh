#!/usr/bin/env bash
# Group mode under moves, on the real services: Kafka (12 partitions) →
# taxi-enrich → PostgreSQL, checkpoint every 200 ms, a producer writing
# all along (a `weir gen` of 1 000 trips every 100 ms). Two processes run; then
#   1. a third joins (a cooperative rebalance): the largest gap between two
#      commits of a partition that did not move, against the largest gap of
#      the steady state before;
#   2. the third is killed (kill -9): the time from the kill until every
#      partition it owned has been committed by its new owner;
#   3. the second gets SIGTERM: the same, until the first process has
#      committed every partition the second owned.
# Commit times are PostgreSQL's clock at each commit (weir_epochs.committed_at),
# polled every 50 ms with the owner of each partition and when it claimed it
# (weir_owners); a takeover counts the new owner's first commit after its claim.
# Usage: benches/rebalance.sh [seconds of steady state]   (default 20)
set -euo pipefail
steady="${1:-20}"
source "$(dirname "$0")/lib.sh"

id="rebal-$$-$RANDOM"
topic="taxi-$id"
table="bench_rebal_${id//-/_}"
"$weir" gen taxi --count 12 --seed 1 --invalid-pct 0 --topic "$topic" --partitions 12 --brokers "$WEIR_KAFKA" 2>/dev/null
now() { date +%s.%N; }

pids=() ports=()
start_weir() {
  local port=$((20000 + RANDOM % 20000))
  TAXI_TOPIC="$topic" TAXI_TABLE="$table" TAXI_ASSIGNMENT=cooperative-sticky TAXI_CHECKPOINT=200ms \
    "$weir" run --quiet --listen 127.0.0.1:$port benches/kafka-taxi-postgres.toml 2>"$work/log-$1" &
  pids[$1]=$! ports[$1]=$port
}
owned() { # the partitions owned by each running process, e.g. "6 6"
  local out=() p
  for n in "${!ports[@]}"; do
    p=$(metric weir_partitions_owned taxi "${ports[$n]}"); out+=("${p:-0}")
  done
  echo "${out[@]}"
}
wait_owned() { # "6 6": until the processes own these counts (any order)
  local want; want=$(tr ' ' '\n' <<<"$1" | sort | xargs)
  for _ in $(seq 1 600); do
    [[ $(owned | tr ' ' '\n' | sort | xargs) == "$want" ]] && return
    sleep 0.1
  done
  echo "rebalance.sh: the processes did not reach \"$1\" (owned: $(owned))" >&2
  cat "$work"/log-* >&2
  exit 1
}
holders() { # partition owner_epoch owner, for every partition
  psql "$WEIR_PG" -At -F' ' -c "SELECT pipeline, owner_epoch, owner FROM weir_owners WHERE starts_with(pipeline, 'taxi@$topic.') ORDER BY 1"
}

( i=0; while :; do
    "$weir" gen taxi --count 1000 --seed $((i += 1)) --invalid-pct 0 --topic "$topic" --brokers "$WEIR_KAFKA" 2>/dev/null
    sleep 0.1
  done ) &
producer=$!
( while :; do
    psql "$WEIR_PG" -At -F' ' -c "SELECT e.pipeline, extract(epoch FROM e.committed_at), o.owner, extract(epoch FROM o.claimed_at) FROM weir_epochs e JOIN weir_owners o USING (pipeline) WHERE starts_with(e.pipeline, 'taxi@$topic.')" 2>/dev/null || true
    sleep 0.05
  done >"$work/commits" ) &
poller=$!
trap 'kill $producer $poller 2>/dev/null; kill -TERM "${pids[@]}" 2>/dev/null; wait; rm -rf "$work"' EXIT

start_weir 1
start_weir 2
wait_owned "6 6"
sleep 2   # every partition has committed since it was claimed
t_steady=$(now)
sleep "$steady"
holders >"$work/before-join"
t_join=$(now)
start_weir 3
wait_owned "4 4 4"
sleep 5
t_joined=$(now)
holders >"$work/after-join"
victim=$(awk -v pid="${pids[3]}" '$3 ~ ":" pid "$" { print $1 }' "$work/after-join" | xargs)
victim_pid=${pids[3]}
t_kill=$(now)
kill -9 "$victim_pid"
unset 'pids[3]' 'ports[3]'
wait_owned "6 6"
sleep 3
leaver_pid=${pids[2]}
leaver=$(holders | awk -v pid="$leaver_pid" '$3 ~ ":" pid "$" { print $1 }' | xargs)
t_term=$(now)
kill -TERM "$leaver_pid"
wait "$leaver_pid"
unset 'pids[2]' 'ports[2]'
wait_owned "12"
sleep 3
t_end=$(now)

# One pass per question, each over the deduplicated commits (key, time, owner).
sort -u "$work/commits" | sort -k1,1 -k2,2n >"$work/sorted"
awk -v a="$t_steady" -v b="$t_join" -v c="$t_joined" -v steady="$steady" '
  FILENAME == ARGV[1] { epoch_before[$1] = $2; next }
  FILENAME == ARGV[2] { moved[$1] = ($2 != epoch_before[$1]); next }
  {
    if ($1 == key && $2 > a) {
      gap = $2 - last
      if ($2 <= b && gap > steady_max) steady_max = gap
      if ($2 > b && $2 <= c) {
        if (moved[$1]) { if (gap > moved_max) moved_max = gap }
        else if (gap > still_max) still_max = gap
      }
    }
    key = $1; last = $2
  }
  END {
    for (k in moved) { total++; if (moved[k]) m++ }
    printf "steady state, 2 processes, %d s: largest gap between two commits of a partition %4.0f ms\n", steady, steady_max * 1000
    printf "a 3rd process joins (%d of %d partitions move): largest gap on the %d that stay %4.0f ms, on the moved %4.0f ms\n", m, total, total - m, still_max * 1000, moved_max * 1000
  }' "$work/before-join" "$work/after-join" "$work/sorted"
takeover() { # label t0 "partitions" old-owner-pid
  awk -v t0="$2" -v keys="$3" -v pid="$4" -v label="$1" '
    BEGIN { n = split(keys, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
    # A commit by the new owner: after its claim, which came after t0.
    ($1 in want) && $4 > t0 && $2 > $4 && $3 !~ (":" pid "$") && !($1 in first) { first[$1] = $2 }
    END {
      for (k in want) { if (!(k in first)) { printf "%s: partition %s never committed by a new owner\n", label, k; exit 1 } ; if (first[k] - t0 > worst) worst = first[k] - t0 }
      printf "%s: every one of its %d partitions committed by the new owner %.2f s after\n", label, n, worst
    }' "$work/sorted"
}
takeover "kill -9 of the 3rd process" "$t_kill" "$victim" "$victim_pid"
takeover "SIGTERM to the 2nd process" "$t_term" "$leaver" "$leaver_pid"
