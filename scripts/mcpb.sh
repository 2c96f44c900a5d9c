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
npm_tag=mcpb.sh npm_name=mcpb npm_src="$here/tests/mcpb" npm_pkg=@anthropic-ai/mcpb
npm_probe=@anthropic-ai/mcpb/dist/cli/cli.js
npm_verify() {
  local got
  got=$("$1/node_modules/node/bin/node" "$1/node_modules/$npm_probe" --version)
  [ "$got" = "$npm_version" ] ||
    { echo "mcpb.sh: the installed CLI says version $got, not $npm_version" >&2; return 1; }
}
# shellcheck source=lib/npm-pinned.sh
. "$here/scripts/lib/npm-pinned.sh"
CLI_VERSION=$npm_version
cli="$cache/node_modules/$npm_probe"

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
