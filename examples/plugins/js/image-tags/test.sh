#!/bin/sh
# Runs image-tags.wasm on testdata/ (read by `yaml` first) with `moor plugin test`
# (MOOR: the moor binary) and checks the images it wrote.
set -eu
cd "$(dirname "$0")"
moor=${MOOR:-moor}
fail() { printf '%s\nFAIL: %s\n' "$out" "$1" >&2; exit 1; }
digest=sha256:9b2a3f1e0c8d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa0099
out=$("$moor" plugin test image-tags.wasm --input testdata --after-yaml --output json --with '{"images": [
  {"name": "nginx", "new_tag": "1.27.3"},
  {"name": "registry.local:5000/acme/migrate", "new_name": "ghcr.io/acme/migrate", "new_tag": "1.1"},
  {"name": "ghcr.io/acme/sidecar", "digest": "'$digest'"}]}' 2>&1) || fail "the render failed"
echo "$out" | python3 -c '
import json, sys
spec = json.load(sys.stdin)["objects"][0]["spec"]["template"]["spec"]
images = [c["image"] for c in spec["initContainers"] + spec["containers"]]
assert images == ["ghcr.io/acme/migrate:1.1", "nginx:1.27.3", "ghcr.io/acme/sidecar@'$digest'", "busybox"], images
' || fail "images"
if out=$("$moor" plugin test image-tags.wasm --input testdata --after-yaml --with '{"images": [{"name": "nginx", "digest": "latest"}]}' 2>&1); then
  fail "a bad digest was accepted"
fi
echo "$out" | grep -qF 'rejected by the plugin' || fail "the schema"
echo "ok: image-tags"
