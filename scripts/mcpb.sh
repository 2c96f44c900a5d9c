#!/usr/bin/env bash
# The MCP Bundle CLI (@anthropic-ai/mcpb: validate, pack, unpack, info, ...)
# on Node 22, pinned by tests/mcpb/package-lock.json and installed with
# `npm ci` into a cache directory keyed by the CLI's version and the
# lockfile, so that a second run installs nothing. The same install gives
# the package's own library (getMcpConfigForManifest: how a host turns a
# manifest and a user's settings into the command it runs), used by
# scripts/bundle-check.sh.
#
# Usage:
#   scripts/mcpb.sh --install        install if missing; print the install dir
#   scripts/mcpb.sh --path           print the install dir if installed, else exit 1
#   scripts/mcpb.sh --run ARGS...    run the CLI, e.g. --run validate bundle/manifest.json
#   scripts/mcpb.sh --node ARGS...   run its Node 22 (with the package resolvable), e.g. a script
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$here/tests/mcpb"
CLI_VERSION=$(sed -n 's/.*"@anthropic-ai\/mcpb": *"\([^"]*\)".*/\1/p' "$src/package.json" | head -n1)
lock_hash=$(sha256sum "$src/package-lock.json" | cut -c1-12)
cache_root=${L402_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp}
cache="$cache_root/mcpb-$CLI_VERSION-$lock_hash"
node="$cache/node_modules/node/bin/node"
cli="$cache/node_modules/@anthropic-ai/mcpb/dist/cli/cli.js"

present() { [ -x "$node" ] && [ -f "$cli" ]; }
installed() { [ -f "$cache/.installed" ] && present; }

install() {
  command -v npm >/dev/null || { echo "mcpb.sh: npm is needed to install the MCPB CLI" >&2; exit 1; }
  mkdir -p "$cache_root"
  # Install into a fresh directory next to the final one, then rename: a
  # concurrent run never sees half an install.
  local tmp
  tmp=$(mktemp -d "$cache_root/.mcpb-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "mcpb.sh: installing @anthropic-ai/mcpb@$CLI_VERSION and node (tests/mcpb/package-lock.json) into $cache" >&2
  cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  [ -x "$tmp/node_modules/node/bin/node" ] && [ -f "$tmp/node_modules/@anthropic-ai/mcpb/dist/cli/cli.js" ] ||
    { echo "mcpb.sh: npm ci did not produce node and @anthropic-ai/mcpb in $tmp" >&2; exit 1; }
  local got
  got=$("$tmp/node_modules/node/bin/node" "$tmp/node_modules/@anthropic-ai/mcpb/dist/cli/cli.js" --version)
  [ "$got" = "$CLI_VERSION" ] ||
    { echo "mcpb.sh: the installed CLI says version $got, not $CLI_VERSION" >&2; exit 1; }
  touch "$tmp/.installed"
  if ! mv -T "$tmp" "$cache" 2>/dev/null; then
    # Another run finished first (or a broken install is in the way).
    if installed; then rm -rf "$tmp"; else rm -rf "$cache" && mv -T "$tmp" "$cache"; fi
  fi
  trap - EXIT
  present || { echo "mcpb.sh: the install did not produce $cli" >&2; exit 1; }
}

case "${1:-}" in
  --install)
    installed || install
    echo "$cache"
    ;;
  --path)
    installed || exit 1
    echo "$cache"
    ;;
  --run)
    shift
    installed || install
    # No update check, no telemetry: the CLI only reads and writes files.
    NODE_PATH="$cache/node_modules" "$node" "$cli" "$@" </dev/null
    ;;
  --node)
    shift
    installed || install
    NODE_PATH="$cache/node_modules" "$node" "$@"
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 1
    ;;
esac
