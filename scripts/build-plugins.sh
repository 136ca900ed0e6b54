#!/usr/bin/env bash
# Builds the reference plugins as WebAssembly components and places them,
# atomically, in plugins/dist/. The wasm32-wasip2 build also makes the
# test-only fixtures in tests/fixtures/dist/: `hostile.wasm`, the hot-swap
# tests' second versions (taxi-enrich-v2, weather-window-v2), the hostile
# builds they drop in (hostile-init-trap, -trap, -spin, -fail-half) and a
# component of another world (other-world.wasm).
#
#   scripts/build-plugins.sh               # cargo build --target wasm32-wasip2
#   scripts/build-plugins.sh --component   # cargo component build (wasip1 + adapter)
#   scripts/build-plugins.sh [--component] --out DIR   # place them in DIR instead
#   scripts/build-plugins.sh --languages   # the Python and JavaScript plugins
#                                          # (and tests/fixtures/python-probe),
#                                          # with `weir plugin build`
#
# Installs the Rust target (and cargo-component when asked for) if missing;
# --languages needs the toolchains on PATH (eval "$(scripts/toolchains.sh env)").
set -euo pipefail
cd "$(dirname "$0")/.."

mode=wasip2
dist=plugins/dist
while [[ $# -gt 0 ]]; do
  case "$1" in
    --component) mode=component ;;
    --languages) mode=languages ;;
    --out) dist="$2"; shift ;;
    *) echo "unknown argument $1 (use --component, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $mode == languages ]]; then
  # plugins/python/<name> and plugins/js/<name> become <project name>.wasm.
  cargo build --quiet -p weir --bin weir
  weir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/weir"
  for project in plugins/python/*/ plugins/js/*/; do
    "$weir" plugin build "$project" --out "$dist"
  done
  # The test-only Python plugin that probes the sandbox.
  "$weir" plugin build tests/fixtures/python-probe --out tests/fixtures/dist
  exit 0
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
plugins=(taxi-enrich weather-window log-extract user-profile shot-clean)

if [[ $mode == wasip2 ]]; then
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
  # One cargo run per crate: built together, cargo would unify their
  # dependencies' features (weather-window's serde_json float_roundtrip would
  # reach the others), and a crate would not be the bytes `weir plugin build`
  # makes of it alone.
  for p in "${plugins[@]}" hostile; do
    cargo build --release --target wasm32-wasip2 -p "$p"
  done
  out="$target_dir/wasm32-wasip2/release"
else
  rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
  command -v cargo-component >/dev/null || scripts/services.sh install cargo-component
  for p in "${plugins[@]}"; do (cd "plugins/$p" && cargo component build --release); done
  out="$target_dir/wasm32-wasip1/release"
fi

place() { # place <built file> <destination>: copy then rename, never a half-written plugin
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$"
  mv -f "$2.tmp.$$" "$2"
  echo "built $2 ($(wc -c <"$2") bytes, $mode)"
}
for p in "${plugins[@]}"; do place "$out/${p//-/_}.wasm" "$dist/$p.wasm"; done
if [[ $mode == wasip2 ]]; then
  fixtures=tests/fixtures/dist
  place "$out/hostile.wasm" "$fixtures/hostile.wasm"
  place "$out/other-world.wasm" "$fixtures/other-world.wasm"
  variant() { # variant <crate> <feature> <destination>: the same crate, another build
    cargo build --release --target wasm32-wasip2 -p "$1" --features "$2"
    place "$out/${1//-/_}.wasm" "$3"
  }
  variant taxi-enrich v2 "$fixtures/taxi-enrich-v2.wasm"
  variant weather-window v2 "$fixtures/weather-window-v2.wasm"
  for m in init-trap trap spin fail-half; do
    variant hostile "mode-$m" "$fixtures/hostile-$m.wasm"
  done
fi
