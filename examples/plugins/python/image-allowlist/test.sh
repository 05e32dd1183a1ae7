#!/bin/sh
# Runs image-allowlist.wasm on testdata/ with `moor plugin test` (MOOR: the moor binary).
set -eu
cd "$(dirname "$0")"
moor=${MOOR:-moor}
fail() { printf '%s\nFAIL: %s\n' "$out" "$1" >&2; exit 1; }
if out=$("$moor" plugin test image-allowlist.wasm --input testdata --with '{"allowed": ["ghcr.io/acme/"]}' 2>&1); then
  fail "unpinned and foreign images passed"
fi
echo "$out" | grep -qF 'web.yaml:1: error: image ghcr.io/acme/web:1.4.0 is not pinned by digest (image@sha256:…) (Deployment/web) [image-allowlist]' || fail "the unpinned image"
echo "$out" | grep -qF 'web.yaml:1: error: image docker.io/library/nginx:latest is not from an allowed registry (ghcr.io/acme/) (Deployment/web) [image-allowlist]' || fail "the foreign image"
echo "$out" | grep -qF 'summary: 2 objects in, 0 out; 2 errors, 0 warnings, 0 infos' || fail "the summary"
out=$("$moor" plugin test image-allowlist.wasm --input testdata --with '{"allowed": ["ghcr.io/acme/", "docker.io/library/"], "require_digest": false}' 2>&1) || fail "everything allowed, yet it failed"
if out=$("$moor" plugin test image-allowlist.wasm --input testdata --with '{"allowed": []}' 2>&1); then fail "an empty allow-list was accepted"; fi
echo "$out" | grep -qF 'rejected by the plugin' || fail "the schema"
echo "ok: image-allowlist"
