#!/usr/bin/env bash
# Claude Code's own validator on this repository's plugin: `claude plugin
# validate --strict --profile directory` (warnings are errors, and so are the
# plugin directory's findings, such as a missing icon) on the plugin manifest
# and on the marketplace. Claude Code's CLI (@anthropic-ai/claude-code, its
# Linux binary in a registry package) and Node 22 are pinned by
# tests/claude-code/package-lock.json and installed with `npm ci` into a cache
# directory keyed by the CLI's version and the lockfile, so that a second run
# installs nothing. The validator runs offline and needs no login; it gets a
# config dir of its own (CLAUDE_CONFIG_DIR), never ~/.claude.
#
# Usage:
#   scripts/claude-plugin.sh --install     install if missing; print the install dir
#   scripts/claude-plugin.sh --path        print the install dir if installed, else exit 1
#   scripts/claude-plugin.sh --validate [DIR]   validate the plugin in DIR (default: this repo); exit 1 if invalid
#   scripts/claude-plugin.sh --claude ARGS...   run the CLI itself, e.g. --claude plugin validate --help
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$here/tests/claude-code"
npm_tag=claude-plugin.sh npm_name=claude-code npm_src="$src" npm_pkg=@anthropic-ai/claude-code
npm_probe=.bin/claude
# The CLI's install script links its platform's binary (from the optional
# dependency npm chose) in place of bin/claude.exe: it must run.
npm_verify() { "$1/node_modules/.bin/claude" --version >/dev/null; }
# shellcheck source=lib/npm-pinned.sh
. "$here/scripts/lib/npm-pinned.sh"
CLI_VERSION=$npm_version
claude="$cache/node_modules/.bin/claude"

# The CLI with a throwaway config dir and nothing that phones home.
run_claude() {
  local config rc=0
  config=$(mktemp -d "${TMPDIR:-/tmp}/l402-claude-config.XXXXXX")
  PATH="$(dirname "$node"):$PATH" CLAUDE_CONFIG_DIR="$config" DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
    timeout 120 "$claude" "$@" </dev/null || rc=$?
  rm -rf "$config"
  return "$rc"
}

validate() {
  local dir=${1:-$here} failed=0 target label
  dir=$(cd "$dir" && pwd)
  # The plugin manifest (with its skills and MCP server), then the folder
  # (the marketplace manifest, and the directory's checks of the plugin in it).
  for target in "$dir/.claude-plugin/plugin.json" "$dir"; do
    label=${target#"$dir"}
    label=${label#/}
    label=${label:-.}
    echo "claude-plugin.sh: claude plugin validate --strict --profile directory $target" >&2
    if run_claude plugin validate --strict --profile directory "$target"; then
      echo "ok    claude plugin validate --strict --profile directory $label"
    else
      echo "FAIL  claude plugin validate --strict --profile directory $label"
      failed=$((failed + 1))
    fi
  done
  echo "$((2 - failed)) passed, $failed failed"
  [ "$failed" -eq 0 ]
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
  --validate)
    shift
    installed || install
    validate "$@"
    ;;
  --claude)
    shift
    installed || install
    run_claude "$@"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 1
    ;;
esac
