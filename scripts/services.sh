#!/usr/bin/env bash
# The real services the integration tests talk to, on 127.0.0.1:
#   Kafka API   nisshi broker, memory storage        127.0.0.1:9092
#   S3 API      s3s-fs, path-style, data in a folder  127.0.0.1:8014
#   PostgreSQL  Debian's server, trust auth, db test  127.0.0.1:5432
#
#   scripts/services.sh install [BIN...]  build what is missing: the broker, the S3
#                                server and cargo-component (or only the BINs named)
#   scripts/services.sh up       install what is missing, start what is down
#   scripts/services.sh status   say what runs
#   scripts/services.sh down     stop the broker and the S3 server
#   scripts/services.sh env      print the WEIR_TEST_* variables (eval it)
#
# Idempotent: a second `up` finds the binaries in ~/.cargo/bin and the
# services listening, and takes a second. The first install builds s3s-fs
# and nisshi with rustc 1.96 (their locked dependencies need it) and, with
# them, cargo-component (the one other tool the tests build from source), in
# one target folder, so the crates they share compile once. scripts/test.sh
# runs it in the background, beside the workspace build.
set -euo pipefail

STATE="${WEIR_SERVICES_DIR:-$HOME/.cache/weir/services}"
KAFKA_PORT=9092
S3_PORT=8014
PG_PORT=5432
S3_KEY=weir-test
S3_SECRET=weir-test-secret
TOOLCHAIN=1.96.0
NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"   # the versions the tests were checked with
S3S_FS_VERSION="${S3S_FS_VERSION:-0.17.0}"
CARGO_COMPONENT_VERSION="${CARGO_COMPONENT_VERSION:-0.21.1}"
mkdir -p "$STATE"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port name log
  for _ in $(seq 1 100); do
    listening "$1" && return 0
    sleep 0.2
  done
  echo "services: $2 did not start listening on 127.0.0.1:$1; its log:" >&2
  tail -n 30 "$3" >&2 || true
  exit 1
}

built=0
install_crate() { # binary crate [cargo install args...]
  local bin=$1; shift
  command -v "$bin" >/dev/null 2>&1 && return 0
  [ -x "$HOME/.cargo/bin/$bin" ] && return 0
  built=1
  rustup toolchain list | grep -q "^$TOOLCHAIN" ||
    rustup toolchain install "$TOOLCHAIN" --profile minimal
  echo "services: installing $bin (cached in ~/.cargo/bin afterwards)" >&2
  cargo +"$TOOLCHAIN" install --locked --target-dir "$STATE/build" "$@"
}

install_all() { # [BIN...]: all three when none is named
  local bins=("$@")
  [ ${#bins[@]} -gt 0 ] || bins=(s3s-fs nisshi cargo-component)
  for bin in "${bins[@]}"; do
    case "$bin" in
      s3s-fs) install_crate s3s-fs s3s-fs --version "$S3S_FS_VERSION" --features binary ;;
      nisshi) install_crate nisshi nisshi --version "$NISSHI_VERSION" ;;
      cargo-component) install_crate cargo-component cargo-component --version "$CARGO_COMPONENT_VERSION" ;;
      *) echo "services: cannot install $bin (s3s-fs, nisshi or cargo-component)" >&2; exit 2 ;;
    esac
  done
  # The build folder only speeds up the installs after the first. Left
  # alone when nothing was built here: another install may be using it.
  if [ $built = 1 ]; then rm -rf "$STATE/build"; fi
}

start_kafka() {
  if listening $KAFKA_PORT; then return 0; fi
  local log="$STATE/nisshi.log"
  setsid nohup "$(command -v nisshi || echo "$HOME/.cargo/bin/nisshi")" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://nisshi/ >"$log" 2>&1 < /dev/null &
  echo $! >"$STATE/nisshi.pid"
  wait_for $KAFKA_PORT "nisshi (Kafka API)" "$log"
}

start_s3() {
  if listening $S3_PORT; then return 0; fi
  local log="$STATE/s3s-fs.log"
  mkdir -p "$STATE/s3"
  setsid nohup "$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")" \
    --host 127.0.0.1 --port $S3_PORT \
    --access-key $S3_KEY --secret-key $S3_SECRET "$STATE/s3" >"$log" 2>&1 < /dev/null &
  echo $! >"$STATE/s3s-fs.pid"
  wait_for $S3_PORT "s3s-fs (S3 API)" "$log"
}

start_postgres() {
  if ! listening $PG_PORT; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "services: installing Debian's postgresql" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    wait_for $PG_PORT PostgreSQL "/var/log/postgresql/postgresql-$version-main.log"
  fi
  # Trust auth for local TCP connections and a `test` database, as the
  # tests expect (already so on machines that come with PostgreSQL).
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    local hba
    hba=$(su postgres -c "psql -Atc 'show hba_file'")
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
      su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
    fi
    su postgres -c "createdb test" 2>/dev/null || true
  fi
}

stop_one() { # name
  local pid="$STATE/$1.pid"
  if [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then
    kill "$(cat "$pid")" && echo "stopped $1"
  fi
  rm -f "$pid"
}

status_one() { # port name
  if listening "$1"; then echo "up   $2 127.0.0.1:$1"; else echo "down $2 127.0.0.1:$1"; return 1; fi
}

case "${1:-}" in
  install)
    shift
    install_all "$@"
    ;;
  up)
    install_all s3s-fs nisshi
    start_postgres
    start_s3
    start_kafka
    "$0" status
    ;;
  down)
    stop_one nisshi
    stop_one s3s-fs
    ;;
  status)
    rc=0
    status_one $KAFKA_PORT "kafka (nisshi)" || rc=1
    status_one $S3_PORT "s3 (s3s-fs)" || rc=1
    status_one $PG_PORT "postgres" || rc=1
    exit $rc
    ;;
  env)
    echo "export WEIR_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"
    echo "export WEIR_TEST_S3=http://127.0.0.1:$S3_PORT"
    echo "export WEIR_TEST_S3_KEY=$S3_KEY"
    echo "export WEIR_TEST_S3_SECRET=$S3_SECRET"
    echo "export WEIR_TEST_PG=postgres://postgres@127.0.0.1:$PG_PORT/test"
    ;;
  *)
    echo "usage: $0 install [BIN...]|up|down|status|env" >&2
    exit 2
    ;;
esac
