#!/bin/sh
# Runs require-limits.wasm on testdata/ with `moor plugin test` (MOOR: the moor binary).
set -eu
cd "$(dirname "$0")"
moor=${MOOR:-moor}
fail() { printf '%s\nFAIL: %s\n' "$out" "$1" >&2; exit 1; }
if out=$("$moor" plugin test require-limits.wasm --input testdata 2>&1); then fail "missing limits passed"; fi
echo "$out" | grep -qF 'app.yaml:1: error: container proxy sets no requests for memory (Deployment/web) [require-limits]' || fail "requests"
echo "$out" | grep -qF 'app.yaml:1: error: container proxy sets no limits for cpu, memory (Deployment/web) [require-limits]' || fail "limits"
echo "$out" | grep -qF 'summary: 2 objects in, 0 out; 2 errors, 0 warnings, 0 infos' || fail "the summary (the Job opted out)"
out=$("$moor" plugin test require-limits.wasm --input testdata --with '{"resources": ["cpu"], "severity": "warning"}' 2>&1) || fail "warnings failed the run"
echo "$out" | grep -qF 'app.yaml:1: warning: container proxy sets no limits for cpu' || fail "the warning"
echo "ok: require-limits"
