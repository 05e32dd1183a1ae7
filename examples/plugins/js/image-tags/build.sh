#!/bin/sh
# Builds image-tags.wasm with componentize-qjs (on PATH; scripts/plugin-tools installs it), from
# app.js and the SDK in plugins/sdk-js.
set -eu
cd "$(dirname "$0")"
root=../../../..
componentize-qjs --wit $root/wit --js app.js --world renderer --sync --module-root $root --output image-tags.wasm >/dev/null
