#!/usr/bin/env bash
# The Python and JavaScript plugin toolchains, from PyPI and npm, in folders
# of their own (nothing is installed system-wide):
#   ~/.cache/weir/python   a venv with componentize-py, pytest and weir_sdk's
#                          dependencies (none: the SDK is pure Python), and
#                          the readers that are not weir in the tests:
#                          pyarrow, deltalake (delta-rs) and polars
#   ~/.cache/weir/node     @bytecodealliance/componentize-js, esbuild
#
#   scripts/toolchains.sh install   install what is missing (idempotent)
#   scripts/toolchains.sh env       print the PATH that puts both first (eval it)
#
# `weir plugin build` finds componentize-py and componentize-js on PATH (or in
# the project's .venv / node_modules); scripts/test.sh evals `env`.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${WEIR_TOOLCHAINS_DIR:-$HOME/.cache/weir}"
COMPONENTIZE_PY="componentize-py==0.25.1"   # the versions weir is tested with
PYARROW="pyarrow==26.0.1"
DELTALAKE="deltalake==1.6.6"                 # reads the Delta tables the Parquet sink writes
POLARS="polars==2.1.0"
COMPONENTIZE_JS="@bytecodealliance/componentize-js@0.23.0"
ESBUILD="esbuild@0.25.12"                    # bundles a JS plugin's npm dependencies
# componentize-js 0.23.0 imports preview2-shim at run time but lists it only
# among its devDependencies; without it here the build fails to start.
PREVIEW2_SHIM="@bytecodealliance/preview2-shim@0.25.0"
venv="$CACHE/python"
node="$CACHE/node"

install() {
  if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "0.25.1"; then
    command -v python3 >/dev/null || { echo "toolchains: python3 (3.11+) is needed: apt-get install python3 python3-venv" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade "$COMPONENTIZE_PY" pytest
  fi
  if ! "$venv/bin/python" -c "import pyarrow, deltalake, polars" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet "$PYARROW" "$DELTALAKE" "$POLARS"
  fi
  if [ ! -x "$node/node_modules/.bin/componentize-js" ] || [ ! -x "$node/node_modules/.bin/esbuild" ] ||
    [ ! -d "$node/node_modules/@bytecodealliance/preview2-shim" ]; then
    command -v npm >/dev/null || { echo "toolchains: Node.js 20 with npm is needed: apt-get install nodejs npm" >&2; exit 1; }
    mkdir -p "$node"
    [ -f "$node/package.json" ] || echo '{"private": true}' >"$node/package.json"
    npm install --prefix "$node" --no-audit --no-fund --silent "$COMPONENTIZE_JS" "$ESBUILD" "$PREVIEW2_SHIM"
  fi
}

case "${1:-install}" in
  install) install ;;
  env) echo "export PATH=\"$venv/bin:$node/node_modules/.bin:\$PATH\"" ;;
  *) echo "usage: scripts/toolchains.sh install|env" >&2; exit 2 ;;
esac
