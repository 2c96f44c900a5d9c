#!/usr/bin/env bash
# Registers `l402-mcp serve` with Claude Code (`claude mcp add`).
#
#   examples/claude-code.sh            # stdio: Claude Code spawns the server itself
#   examples/claude-code.sh http       # Streamable HTTP: you run the server, Claude Code connects
#   examples/claude-code.sh --print    # only print the commands (also: http --print)
#
# Settings (environment variables read by this script):
#   L402_MCP_BIN   the binary [default: l402-mcp, found on PATH; after
#                  `cargo install --path .` it is ~/.cargo/bin/l402-mcp]
#   SCOPE          where Claude Code keeps the entry: local (this project,
#                  only you), project (.mcp.json, shared), user (all your
#                  projects) [default: user]
#   NAME           the server's name in Claude Code [default: l402 for
#                  stdio, l402-http for http, so both can be registered];
#                  its tools then show as mcp__l402__l402_fetch and so on
#   L402_DEV_NODE  the payer: a gateway's dev node (regtest only, never real
#                  money) [default: http://127.0.0.1:8402, what
#                  `l402-mcp gateway` and `l402-mcp demo` listen on]
#   L402_MCP_HTTP  http mode: the address `serve --http` listens on
#                  [default: 127.0.0.1:8787]
#   L402_MCP_AUTH_TOKEN  http mode: the bearer token, if the server was
#                  started with one (required when it listens beyond loopback)
#
# The limits below are the operator's: the agent cannot raise them. Change
# them here, or leave them out to use ~/.config/l402-mcp/config.toml (see
# `l402-mcp config show`). Env given here beats the config file.
set -euo pipefail

mode=stdio
print_only=false
for arg in "$@"; do
  case "$arg" in
    stdio | http) mode=$arg ;;
    --print) print_only=true ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "usage: $0 [stdio|http] [--print]" >&2; exit 1 ;;
  esac
done

bin=${L402_MCP_BIN:-l402-mcp}
scope=${SCOPE:-user}
if [ "$mode" = http ]; then name=${NAME:-l402-http}; else name=${NAME:-l402}; fi
dev_node=${L402_DEV_NODE:-http://127.0.0.1:8402}
http_addr=${L402_MCP_HTTP:-127.0.0.1:8787}

run() {
  local line
  line=$(printf ' %q' "$@")
  if [ -n "${L402_MCP_AUTH_TOKEN:-}" ]; then
    # Never echo the token itself.
    line=${line//"$(printf '%q' "$L402_MCP_AUTH_TOKEN")"/'"$L402_MCP_AUTH_TOKEN"'}
  fi
  printf '+%s\n' "$line"
  if ! $print_only; then "$@"; fi
}

if ! $print_only && ! command -v claude >/dev/null; then
  echo "claude (Claude Code) is not on PATH; printing the commands instead" >&2
  print_only=true
fi
if [ "$mode" = stdio ] && ! command -v "$bin" >/dev/null; then
  echo "warning: $bin is not on PATH; run \`cargo install --path .\` or set L402_MCP_BIN=/absolute/path/to/l402-mcp" >&2
fi

case "$mode" in
  stdio)
    # Options take the --opt=value form and come before the name; `--`
    # separates the server's own command line.
    run claude mcp add --transport stdio --scope "$scope" \
      --env="L402_DEV_NODE=$dev_node" \
      --env=L402_BUDGET_SATS=1000 \
      --env=L402_MAX_COST_SATS=250 \
      --env=L402_MAX_FEE_SATS=10 \
      "$name" -- "$bin" serve
    # The same entry as JSON, if your claude's `mcp add` parses differently:
    #   claude mcp add-json --scope user l402 '{"type":"stdio","command":"l402-mcp","args":["serve"],
    #     "env":{"L402_DEV_NODE":"http://127.0.0.1:8402","L402_BUDGET_SATS":"1000",
    #            "L402_MAX_COST_SATS":"250","L402_MAX_FEE_SATS":"10"}}'
    ;;
  http)
    # Claude Code only connects; start the server yourself first, with the
    # limits on its command line (one MCP session = one budget):
    echo "# start the server first, in another terminal:" >&2
    printf '#   %s serve --http %s --dev-node %s --budget 1000 --max-cost 250\n' \
      "$bin" "$http_addr" "$dev_node" >&2
    if [ -n "${L402_MCP_AUTH_TOKEN:-}" ]; then
      # Claude Code stores the header as given in its config file.
      run claude mcp add --transport http --scope "$scope" \
        "$name" "http://$http_addr/mcp" \
        --header "Authorization: Bearer $L402_MCP_AUTH_TOKEN"
    else
      run claude mcp add --transport http --scope "$scope" \
        "$name" "http://$http_addr/mcp"
    fi
    # Clients that only speak the legacy HTTP+SSE transport use
    #   claude mcp add --transport sse l402 http://127.0.0.1:8787/sse
    ;;
esac

$print_only || echo "registered; check with: claude mcp get $name   (or /mcp inside Claude Code)" >&2
