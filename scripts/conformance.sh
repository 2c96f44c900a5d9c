#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance) against
# `l402-mcp serve --http`, for the revisions 2025-11-25 (stateful: initialize)
# and 2026-07-28 (stateless: server/discover, per-request _meta), each with the
# scenarios that revision requires plus the ones it runs unscored
# (`--requirements REV`). The suite and Node 22 are pinned by
# tests/conformance/package-lock.json and installed with `npm ci` into a cache
# directory keyed by the suite's version and the lockfile, so that a second run
# installs nothing.
#
# What may fail is tests/conformance/expected-failures.yaml, each entry with
# its reason. The run fails on a failure (or warning) outside that file, on an
# entry that now passes or matched nothing, and on any wire-schema-valid check
# that did not pass (tests/conformance/verify.mjs adds these rules to the
# suite's own baseline check).
#
# Usage:
#   scripts/conformance.sh --install       install if missing; print the install dir
#   scripts/conformance.sh --path          print the install dir if installed, else exit 1
#   scripts/conformance.sh --run [--binary PATH] [--url URL] [--keep DIR]
#       start PATH (default target/debug/l402-mcp, under $CARGO_TARGET_DIR if set;
#       `cargo build` first) as
#       `serve --http 127.0.0.1:<free port>` with a dev node that does not
#       listen and a fresh data dir, run both revisions, stop it; --url tests a
#       server already running instead; --keep DIR keeps the results there
#   scripts/conformance.sh --suite ARGS... run the suite's CLI itself, e.g. --suite list --server
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$here/tests/conformance"
REVISIONS=(2025-11-25 2026-07-28)
npm_tag=conformance.sh npm_name=mcp-conformance npm_src="$src" npm_pkg=@modelcontextprotocol/conformance
npm_probe=@modelcontextprotocol/conformance/dist/index.js
# shellcheck source=lib/npm-pinned.sh
. "$here/scripts/lib/npm-pinned.sh"
SUITE_VERSION=$npm_version
suite="$cache/node_modules/$npm_probe"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_pid=
work=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -z "$work" ] || rm -rf "$work"
}

run() {
  local binary="${CARGO_TARGET_DIR:-$here/target}/debug/l402-mcp" url="" keep=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) binary=$2; shift 2 ;;
      --url) url=$2; shift 2 ;;
      --keep) keep=$2; shift 2 ;;
      *) echo "conformance.sh: unknown argument $1" >&2; exit 1 ;;
    esac
  done
  installed || install
  work=$(mktemp -d "${TMPDIR:-/tmp}/l402-conformance.XXXXXX")
  trap cleanup EXIT
  local results=${keep:-$work/results}
  mkdir -p "$results"

  if [ -z "$url" ]; then
    [ -x "$binary" ] || { echo "conformance.sh: no $binary: run cargo build first (or pass --binary)" >&2; exit 1; }
    local port dev_port
    port=$(free_port)
    dev_port=$(free_port) # nothing listens there: tools that would pay fail, which no scenario needs
    mkdir -p "$work/data"
    # No config file, no L402_* from the environment: the server runs on
    # its flags alone.
    env -u L402_CONFIG -u L402_DEV_NODE -u L402_MCP_AUTH_TOKEN -u L402_DATA_DIR \
      "$binary" serve --http "127.0.0.1:$port" --dev-node "http://127.0.0.1:$dev_port" \
      --data-dir "$work/data" --config /dev/null >"$work/serve.log" 2>&1 </dev/null &
    server_pid=$!
    local i
    for i in $(seq 1 100); do
      if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "conformance.sh: l402-mcp serve exited:" >&2; cat "$work/serve.log" >&2; exit 1
      fi
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      [ "$i" -lt 100 ] || { echo "conformance.sh: l402-mcp serve did not listen on 127.0.0.1:$port in 10 s" >&2; cat "$work/serve.log" >&2; exit 1; }
      sleep 0.1
    done
    url="http://127.0.0.1:$port/mcp"
    echo "conformance.sh: l402-mcp serve (pid $server_pid) at $url" >&2
  fi

  local rev rc failed=0 verify_args=()
  for rev in "${REVISIONS[@]}"; do
    echo "conformance.sh: conformance server --url $url --requirements $rev --expected-failures tests/conformance/expected-failures.yaml" >&2
    rc=0
    "$node" "$suite" server --url "$url" --requirements "$rev" \
      --expected-failures "$src/expected-failures.yaml" -o "$results/$rev" >"$work/suite-$rev.log" 2>&1 || rc=$?
    # The summary and the baseline verdict (the full log has every request).
    sed -n '/=== SUMMARY ===/,$p' "$work/suite-$rev.log" | sed 's/\x1b\[[0-9;]*m//g'
    cp "$work/suite-$rev.log" "$results/suite-$rev.log"
    if [ "$rc" -ne 0 ]; then
      echo "FAIL  conformance $rev: the suite exited $rc (an unexpected failure, or a stale entry)"
      grep -q '=== SUMMARY ===' "$work/suite-$rev.log" || tail -n 40 "$work/suite-$rev.log"
      failed=1
    fi
    verify_args+=("$rev=$results/$rev")
  done
  NODE_PATH="$cache/node_modules" "$node" "$src/verify.mjs" "$src/expected-failures.yaml" "${verify_args[@]}" || failed=1
  if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL  l402-mcp serve died during the run:"; cat "$work/serve.log"; failed=1
  fi
  [ -z "$keep" ] || echo "conformance.sh: results in $keep" >&2
  if [ "$failed" -ne 0 ]; then
    echo "conformance.sh: FAILED" >&2
    exit 1
  fi
  echo "conformance.sh: both revisions conform, but for the expected failures" >&2
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
    run "$@"
    ;;
  --suite)
    shift
    installed || install
    exec "$node" "$suite" "$@"
    ;;
  *)
    sed -n '2,26p' "$0" >&2
    exit 1
    ;;
esac
