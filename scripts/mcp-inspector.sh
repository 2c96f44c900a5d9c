#!/usr/bin/env bash
# The MCP Inspector CLI (@modelcontextprotocol/inspector) on Node 22, both
# installed from the npm registry into a cache directory keyed by their
# versions, so that a second run installs nothing.
#
# Usage:
#   scripts/mcp-inspector.sh --install         install if missing; print the cache dir
#   scripts/mcp-inspector.sh --path            print this script's path if installed, else exit 1
#   scripts/mcp-inspector.sh --cli ARGS... -- SERVER...   run the Inspector CLI (installs first if needed), e.g.
#     scripts/mcp-inspector.sh --cli --method tools/list -- target/debug/l402-mcp serve --dev-node http://127.0.0.1:8402
set -euo pipefail

INSPECTOR_VERSION=2.12.0
NODE_MAJOR=22 # the Inspector needs Node 22; the npm package "node" ships its binary
cache_root=${L402_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp}
cache="$cache_root/mcp-inspector-$INSPECTOR_VERSION-node$NODE_MAJOR"
node="$cache/node_modules/node/bin/node"
launcher="$cache/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"

present() { [ -x "$node" ] && [ -f "$launcher" ]; }
installed() { [ -f "$cache/.installed" ] && present; }

install() {
  command -v npm >/dev/null || { echo "mcp-inspector.sh: npm is needed to install the Inspector" >&2; exit 1; }
  mkdir -p "$cache"
  echo "mcp-inspector.sh: installing node@$NODE_MAJOR and @modelcontextprotocol/inspector@$INSPECTOR_VERSION into $cache" >&2
  [ -f "$cache/package.json" ] || echo '{"private": true}' > "$cache/package.json"
  # Node 22 first, so that the Inspector's install scripts run on it.
  (cd "$cache" && npm install --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" >&2)
  (cd "$cache" && PATH="$(dirname "$node"):$PATH" npm install --no-audit --no-fund --loglevel=error \
    "node@$NODE_MAJOR" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2)
  present || { echo "mcp-inspector.sh: the install did not produce $launcher" >&2; exit 1; }
  touch "$cache/.installed"
}

case "${1:-}" in
  --install)
    installed || install
    echo "$cache"
    ;;
  --path)
    installed || exit 1
    echo "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
    ;;
  --cli)
    shift
    installed || install
    # Node 22 first on PATH (the launcher spawns node); the Inspector's
    # catalog stays in the cache, not in ~/.mcp-inspector.
    export PATH="$(dirname "$node"):$PATH"
    export MCP_CATALOG_PATH="$cache/catalog.json"
    exec "$node" "$launcher" --cli "$@"
    ;;
  *)
    sed -n '2,11p' "$0" >&2
    exit 1
    ;;
esac
