#!/bin/sh
# Runs common-labels.wasm on testdata/ (read by `yaml` first) with `moor plugin test`
# (MOOR: the moor binary) and checks the labels it set.
set -eu
cd "$(dirname "$0")"
moor=${MOOR:-moor}
fail() { printf '%s\nFAIL: %s\n' "$out" "$1" >&2; exit 1; }
out=$("$moor" plugin test common-labels.wasm --input testdata --after-yaml --output json \
  --with '{"labels": {"team": "payments", "tier": "web"}}' 2>&1) || fail "the render failed"
echo "$out" | python3 -c '
import json, sys
report = json.load(sys.stdin)
web, settings = report["objects"]
for labels in (web["metadata"]["labels"], web["spec"]["template"]["metadata"]["labels"], settings["metadata"]["labels"]):
    assert labels["team"] == "payments" and labels["tier"] == "web", labels
assert web["metadata"]["labels"]["app"] == "web"
assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}, "the selector is immutable: left alone"
assert report["summary"]["objects_in"] == 2
' || fail "labels"
out=$("$moor" plugin test common-labels.wasm --input testdata --after-yaml --output json \
  --with '{"labels": {"team": "payments"}, "templates": false}' 2>&1) || fail "the render failed"
echo "$out" | python3 -c '
import json, sys
web = json.load(sys.stdin)["objects"][0]
assert "team" not in web["spec"]["template"]["metadata"]["labels"]
' || fail "templates = false"
if out=$("$moor" plugin test common-labels.wasm --input testdata --with '{"labels": {"team": "payments"}}' 2>&1); then
  fail "first in a chain, it rendered"
fi
echo "$out" | grep -qF 'common-labels transforms objects' || fail "the message"
echo "ok: common-labels"
