#!/bin/sh
# Builds require-limits.wasm with componentize-qjs (on PATH; scripts/plugin-tools installs it), from
# app.js and the SDK in plugins/sdk-js.
set -eu
cd "$(dirname "$0")"
root=../../../..
componentize-qjs --wit $root/wit --js app.js --world validator --sync --module-root $root --output require-limits.wasm >/dev/null
