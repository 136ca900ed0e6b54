#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (Rust
# targets, cargo-component, cargo-nextest, the test services, the Python
# and JavaScript plugin toolchains), starts the
# services (Kafka API, S3, PostgreSQL on 127.0.0.1), builds the plugins
# both ways, then runs every unit and integration test of the workspace.
#
# On a fresh machine the test broker, the S3 server and cargo-component
# (built with their own toolchain, in one target folder) take the longest;
# they build in the background while the plugins and the test binaries
# build. Each phase's time is printed at the
# end; the background install's log is in ~/.cache/weir/services/install.log.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
phases=()
phase() { # phase <name> <command...>: runs it, notes how long it took
  local name=$1 t=$SECONDS rc=0
  shift
  "$@" || rc=$?
  phases+=("$(printf '%-28s %5d s' "$name" $((SECONDS - t)))")
  return $rc
}

# The plugins' targets first: rustup is then left to the services build.
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null 2>&1 ||
  rustup target add wasm32-wasip2 wasm32-wasip1

# Real services for the connector tests; they fail loudly without them.
logs="${WEIR_SERVICES_DIR:-$HOME/.cache/weir/services}"
mkdir -p "$logs"
scripts/services.sh install >"$logs/install.log" 2>&1 &
install=$!
# The Python and JavaScript toolchains (PyPI, npm) download beside the builds.
scripts/toolchains.sh install >"$logs/toolchains.log" 2>&1 &
toolchains=$!
# A failed build must not leave the services build running on its own.
# (errexit off inside: pkill finding nothing must not become the exit code.)
trap 'set +e; pkill -P "$install" 2>/dev/null; kill "$install" "$toolchains" 2>/dev/null; :' EXIT

# Plugins: wasm32-wasip2 into plugins/dist/ now; cargo-component's build
# into plugins/dist/component/ (a test checks both builds behave the same)
# once the background install has made cargo-component.
phase "plugins (wasm32-wasip2)" scripts/build-plugins.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  phase "install cargo-nextest" cargo install cargo-nextest --locked
fi
phase "build the tests" cargo nextest run --workspace --no-run

if ! wait "$toolchains"; then
  echo "test.sh: installing the Python and JavaScript toolchains failed; its log:" >&2
  tail -n 40 "$logs/toolchains.log" >&2
  exit 1
fi
eval "$(scripts/toolchains.sh env)"
phase "plugins (Python, JS)" scripts/build-plugins.sh --languages

t=$SECONDS
if ! wait "$install"; then
  echo "test.sh: installing the test services failed; its log:" >&2
  tail -n 40 "$logs/install.log" >&2
  exit 1
fi
phases+=("$(printf '%-28s %5d s' "wait for the services build" $((SECONDS - t)))")
phase "plugins (cargo component)" scripts/build-plugins.sh --component --out plugins/dist/component
phase "start the services" scripts/services.sh up
eval "$(scripts/services.sh env)"

status=0
phase "run the tests" cargo nextest run --workspace --no-fail-fast || status=$?
# Doc tests (nextest does not run them).
phase "doc tests" cargo test --workspace --doc --quiet || status=$?
# The Python SDK and plugins, and the JavaScript ones, natively.
phase "pytest (SDK, plugins)" env PYTHONPATH=sdk/python/src \
  python -m pytest -q -p no:cacheprovider sdk/python plugins/python || status=$?
phase "node --test (plugins)" node --test plugins/js/ || status=$?

echo "test.sh: where the time went (the services and cargo-component build ran beside the builds):"
printf '  %s\n' "${phases[@]}"
printf '  %-28s %5d s\n' "total" $((SECONDS - started))
exit $status
