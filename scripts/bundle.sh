#!/usr/bin/env bash
# Builds the release binary and packs it as an MCP Bundle for Claude Desktop
# (and any MCPB host): l402-mcp-<version>-<os>-<arch>.mcpb, with the
# official CLI (scripts/mcpb.sh: @anthropic-ai/mcpb, pinned). The manifest
# is bundle/manifest.json with the version from Cargo.toml and the platform
# of this build filled in; `mcpb validate` checks it before `mcpb pack`.
# Next to the bundle it writes server.json, the entry for the official MCP
# registry (bundle/server.json with the version, the bundle's release URL
# and its sha256 filled in).
#
# Prints the .mcpb path on stdout (everything else goes to stderr).
#
# Usage:
#   scripts/bundle.sh [--out DIR] [--no-build]
#     --out DIR    where the bundle and server.json go (default: target/bundle)
#     --no-build   pack the binary already built (cargo build --release --bin l402-mcp)
# The binary is taken from $CARGO_TARGET_DIR/release (default: target/release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/target/bundle"
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) sed -n '2,17p' "$0" >&2; exit 1 ;;
  esac
done

# The version of the [package] in Cargo.toml (its first `version =` line).
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$here/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "bundle.sh: no version in Cargo.toml" >&2; exit 1; }

# The platform, named as MCPB names it (Node's process.platform) and the
# architecture as Rust names it.
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "bundle.sh: $(uname -s) is not supported yet (Linux and macOS are)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  arm64 | aarch64) arch=aarch64 ;;
  *) echo "bundle.sh: architecture $(uname -m) is not supported yet" >&2; exit 1 ;;
esac
name="l402-mcp-$version-$os-$arch"

bin="${CARGO_TARGET_DIR:-$here/target}/release/l402-mcp"
if [ "$build" = 1 ]; then
  echo "bundle.sh: cargo build --release --locked --bin l402-mcp" >&2
  (cd "$here" && cargo build --release --locked --bin l402-mcp >&2)
fi
[ -x "$bin" ] || { echo "bundle.sh: $bin is missing (build it, or drop --no-build)" >&2; exit 1; }
built=$("$bin" --version | awk '{print $2}')
[ "$built" = "$version" ] ||
  { echo "bundle.sh: $bin is version $built, Cargo.toml says $version: rebuild it" >&2; exit 1; }

bash "$here/scripts/mcpb.sh" --install >/dev/null

# The bundle's directory: manifest.json, icon.png, server/l402-mcp.
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/server"
cp "$bin" "$stage/server/l402-mcp"
chmod 0755 "$stage/server/l402-mcp"
cp "$here/.claude-plugin/icon.png" "$stage/icon.png"
python3 - "$here/bundle/manifest.json" "$stage/manifest.json" "$version" "$os" <<'PY'
import json, sys
src, dst, version, os_name = sys.argv[1:]
manifest = json.load(open(src))
manifest["version"] = version
# The binary runs on this platform only.
manifest.setdefault("compatibility", {})["platforms"] = [os_name]
with open(dst, "w") as f:
    json.dump(manifest, f, indent=2, ensure_ascii=False)
    f.write("\n")
PY

echo "bundle.sh: mcpb validate, mcpb pack ($name.mcpb)" >&2
bash "$here/scripts/mcpb.sh" --run validate "$stage/manifest.json" >&2
rm -f "$out/$name.mcpb"
bash "$here/scripts/mcpb.sh" --run pack "$stage" "$out/$name.mcpb" >&2
[ -s "$out/$name.mcpb" ] || { echo "bundle.sh: mcpb pack wrote no $out/$name.mcpb" >&2; exit 1; }

# The registry entry: this bundle, as a release asset, with its sha256.
sha=$(sha256sum "$out/$name.mcpb" | cut -d' ' -f1)
python3 - "$here/bundle/server.json" "$out/server.json" "$version" "$name.mcpb" "$sha" <<'PY'
import json, sys
src, dst, version, file_name, sha = sys.argv[1:]
server = json.load(open(src))
server["version"] = version
for package in server["packages"]:
    if package["registryType"] == "mcpb":
        package["identifier"] = package["identifier"].replace("{version}", version).replace("{file}", file_name)
        package["version"] = version
        package["fileSha256"] = sha
with open(dst, "w") as f:
    json.dump(server, f, indent=2, ensure_ascii=False)
    f.write("\n")
PY
echo "bundle.sh: $out/server.json (sha256 $sha)" >&2
echo "$out/$name.mcpb"
