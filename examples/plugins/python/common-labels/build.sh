#!/bin/sh
# Builds common-labels.wasm with componentize-py (on PATH; scripts/plugin-tools installs it), from
# app.py and the SDK in plugins/sdk-python.
set -eu
cd "$(dirname "$0")"
root=../../../..
componentize-py -d $root/wit -w renderer componentize app -p . -p $root/plugins/sdk-python -o common-labels.wasm
