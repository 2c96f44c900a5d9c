#!/usr/bin/env bash
# CI for the MCP Bundle and the MCP registry entry, end to end:
#   1. `mcpb validate bundle/manifest.json` (the template, as committed);
#   2. the manifest's tools are the server's: a check in
#      tests/interop/mcpb_bundle.py compares tools/list (names and
#      descriptions) with the unpacked manifest's, so they cannot drift;
#   3. scripts/bundle.sh: release build, mcpb validate, mcpb pack;
#   4. tests/interop/mcpb_bundle.py: mcpb unpack into a temporary directory,
#      the server started as the manifest tells a host to (with
#      @anthropic-ai/mcpb's own variable substitution, checked against the
#      spec's), driven by the official MCP Python SDK: the four tools, a paid
#      l402_fetch against the bundle's own dev gateway, the defaults, and the
#      sensitive wallet string never in the server's stderr;
#   5. the README's Cursor deeplink decodes to examples/cursor-mcp.json's entry;
#   6. server.json (written by bundle.sh, with the bundle's sha256) checked
#      against the bundle, then validated by the MCP registry's own code
#      (scripts/mcp-registry.sh --validate), and so is bundle/server.json.
#
# Usage: scripts/bundle-check.sh [--no-build]   (--no-build: pack the release binary already built)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
build=()
[ "${1:-}" = "--no-build" ] && build=(--no-build)

mcpb_dir=$(bash scripts/mcpb.sh --install)
bash scripts/python-env.sh
bash scripts/mcp-registry.sh --install >/dev/null
failed=0

echo "bundle-check.sh: mcpb validate bundle/manifest.json" >&2
if bash scripts/mcpb.sh --run validate bundle/manifest.json >&2; then
  echo "ok    mcpb validate bundle/manifest.json"
else
  echo "FAIL  mcpb validate bundle/manifest.json"
  failed=$((failed + 1))
fi

# The README's Cursor deeplink installs examples/cursor-mcp.json's entry.
if python3 - README.md examples/cursor-mcp.json <<'PY'
import base64, json, re, sys, urllib.parse
readme = open(sys.argv[1]).read()
links = re.findall(r"cursor://anysphere\.cursor-deeplink/mcp/install\?\S+", readme)
assert links, "no Cursor deeplink in the README"
entry = json.load(open(sys.argv[2]))["mcpServers"]["l402"]
entry = {k: v for k, v in entry.items() if k != "type"}
for link in links:
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert q["name"] == ["l402"], q["name"]
    assert json.loads(base64.b64decode(q["config"][0])) == entry, "the deeplink's config is not examples/cursor-mcp.json's"
PY
then
  echo "ok    the README's Cursor deeplink is examples/cursor-mcp.json's entry"
else
  echo "FAIL  the README's Cursor deeplink"
  failed=$((failed + 1))
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/l402-bundle.XXXXXX")
trap 'rm -rf "$out"' EXIT
bundle=$(bash scripts/bundle.sh --out "$out" "${build[@]}")
echo "ok    scripts/bundle.sh: $(basename "$bundle") ($(du -h "$bundle" | cut -f1))"

.venv/bin/python tests/interop/mcpb_bundle.py --bundle "$bundle" --mcpb-dir "$mcpb_dir" || failed=$((failed + 1))

# The registry entry names this very file.
if python3 - "$out/server.json" "$bundle" <<'PY'
import hashlib, json, sys
server = json.load(open(sys.argv[1]))
data = open(sys.argv[2], "rb").read()
[pkg] = [p for p in server["packages"] if p["registryType"] == "mcpb"]
name = sys.argv[2].rsplit("/", 1)[-1]
assert pkg["fileSha256"] == hashlib.sha256(data).hexdigest(), "fileSha256 is not the bundle's"
assert pkg["identifier"].endswith(f"/v{server['version']}/{name}"), f"identifier {pkg['identifier']} does not name {name}"
assert pkg["transport"] == {"type": "stdio"}, pkg["transport"]
PY
then
  echo "ok    server.json names $(basename "$bundle") with its sha256, over stdio"
else
  echo "FAIL  server.json does not name the bundle"
  failed=$((failed + 1))
fi
for f in "$out/server.json" bundle/server.json; do
  echo "bundle-check.sh: the MCP registry's validation of $f" >&2
  bash scripts/mcp-registry.sh --validate "$f" || failed=$((failed + 1))
done

[ "$failed" -eq 0 ] && echo "bundle-check.sh: all passed" || echo "bundle-check.sh: $failed failed"
[ "$failed" -eq 0 ]
