#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (Rust
# targets, cargo-component, cargo-nextest, the test services), starts the
# services (Kafka API, S3, PostgreSQL on 127.0.0.1), builds the plugins
# both ways, then runs every unit and integration test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real services for the connector tests; they fail loudly without them.
scripts/services.sh up
eval "$(scripts/services.sh env)"

# Plugins: wasm32-wasip2 into plugins/dist/, cargo-component into
# plugins/dist/component/ (a test checks both builds behave the same).
scripts/build-plugins.sh
scripts/build-plugins.sh --component --out plugins/dist/component

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --no-fail-fast
# Doc tests (nextest does not run them).
cargo test --workspace --doc --quiet
