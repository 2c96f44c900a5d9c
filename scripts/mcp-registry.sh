#!/usr/bin/env bash
# The official MCP registry's own validation of server.json, offline.
# Their code, pinned (REGISTRY_VERSION below), built with `go` into a cache
# directory keyed by that version and by tests/mcp-registry/l402_validate.go:
#
#   mcp-publisher   their CLI (cmd/publisher), `go install`ed at the version.
#                   `mcp-publisher validate` sends the file to a registry's
#                   POST /v0/validate (validateViaAPI) ...
#   l402-validate   ... which this answers on 127.0.0.1 as their handler
#                   does, validators.ValidateServerJSON(body, ValidationAll),
#                   and which also runs the publish handler's own checks
#                   (ValidatePublishRequest, ValidatePackage). It is
#                   tests/mcp-registry/l402_validate.go built inside a copy
#                   of their module from the Go module cache, since
#                   internal/validators cannot be imported from outside it.
#
# Why not their registry server (cmd/registry) itself: it needs PostgreSQL,
# and at v1.8.9 it needs github.com/danielgtaylor/huma/v2 v2.40.0, which the
# Go module proxy does not serve here ("This module version is not
# available"); the validators and the publisher do not need it.
#
# Usage:
#   scripts/mcp-registry.sh --install          build if missing; print the install dir
#   scripts/mcp-registry.sh --path             print the install dir if built, else exit 1
#   scripts/mcp-registry.sh --validate FILE    validate a server.json; exit 1 if invalid
set -euo pipefail

REGISTRY_VERSION=v1.8.9
MODULE=github.com/modelcontextprotocol/registry

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shim="$here/tests/mcp-registry/l402_validate.go"
shim_hash=$(sha256sum "$shim" | cut -c1-12)
cache_root=${L402_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp}
cache="$cache_root/mcp-registry-$REGISTRY_VERSION-$shim_hash"
publisher="$cache/bin/mcp-publisher"
validator="$cache/bin/l402-validate"

present() { [ -x "$publisher" ] && [ -x "$validator" ]; }
installed() { [ -f "$cache/.installed" ] && present; }

install() {
  command -v go >/dev/null || { echo "mcp-registry.sh: Go is needed to build the registry's validator" >&2; exit 1; }
  mkdir -p "$cache_root"
  local tmp dir
  tmp=$(mktemp -d "$cache_root/.mcp-registry-build.XXXXXX")
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
  echo "mcp-registry.sh: building $MODULE@$REGISTRY_VERSION: cmd/publisher and tests/mcp-registry/l402_validate.go into $cache" >&2
  mkdir -p "$tmp/bin"
  GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false go install -trimpath "$MODULE/cmd/publisher@$REGISTRY_VERSION" >&2
  mv "$tmp/bin/publisher" "$tmp/bin/mcp-publisher"
  # Their module, as the module cache holds it (checked against go.sum's
  # database by `go mod download`), copied so that one file can be added.
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$REGISTRY_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -d "$dir" ] || { echo "mcp-registry.sh: go mod download gave no directory for $MODULE@$REGISTRY_VERSION" >&2; exit 1; }
  cp -R "$dir" "$tmp/module"
  chmod -R u+w "$tmp/module"
  mkdir -p "$tmp/module/cmd/l402-validate"
  cp "$shim" "$tmp/module/cmd/l402-validate/main.go"
  (cd "$tmp/module" && GOFLAGS=-buildvcs=false go build -trimpath -o "$tmp/bin/l402-validate" ./cmd/l402-validate >&2)
  rm -rf "$tmp/module"
  "$tmp/bin/mcp-publisher" --version >/dev/null 2>&1 || "$tmp/bin/mcp-publisher" --help >/dev/null 2>&1 ||
    { echo "mcp-registry.sh: the built mcp-publisher does not run" >&2; exit 1; }
  touch "$tmp/.installed"
  if ! mv -T "$tmp" "$cache" 2>/dev/null; then
    if installed; then rm -rf "$tmp"; else rm -rf "$cache" && mv -T "$tmp" "$cache"; fi
  fi
  trap - EXIT
  present || { echo "mcp-registry.sh: the build did not produce $publisher and $validator" >&2; exit 1; }
}

# The validator's pid and the work dir: globals, for the EXIT trap.
pid=""
work=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  [ -z "$work" ] || rm -rf "$work"
}

validate() {
  local file=$1 url="" failed=0 out
  [ -f "$file" ] || { echo "mcp-registry.sh: no file $file" >&2; exit 1; }
  file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
  work=$(mktemp -d "${TMPDIR:-/tmp}/l402-mcp-registry.XXXXXX")
  trap cleanup EXIT

  # 1. mcp-publisher validate, against their /v0/validate on 127.0.0.1.
  "$validator" serve >"$work/url" 2>"$work/validator.log" &
  pid=$!
  for _ in $(seq 1 100); do
    url=$(head -n1 "$work/url" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$url" ] || { cat "$work/validator.log" >&2; echo "mcp-registry.sh: l402-validate serve did not start" >&2; exit 1; }
  # The publisher takes the registry's address from its token file (the
  # one `mcp-publisher login` writes), under a HOME of its own.
  mkdir -p "$work/home/.config/mcp-publisher"
  printf '{"registry": "%s"}\n' "$url" >"$work/home/.config/mcp-publisher/token.json"
  echo "mcp-registry.sh: mcp-publisher validate $file (registry: $url)" >&2
  if out=$(cd "$work" && HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" \
    timeout 60 "$publisher" validate "$file" 2>&1); then
    if grep -qi 'deprecated\|warning' <<<"$out"; then
      printf '%s\n' "$out" >&2
      echo "FAIL  mcp-publisher validate (a warning)"
      failed=$((failed + 1))
    else
      echo "ok    mcp-publisher validate (their /v0/validate: schema $(sed -n 's/.*"\$schema": *"\([^"]*\)".*/\1/p' "$file"))"
    fi
  else
    printf '%s\n' "$out" >&2
    echo "FAIL  mcp-publisher validate"
    failed=$((failed + 1))
  fi
  grep -q 'server.json is valid' <<<"$out" || [ "$failed" -gt 0 ] ||
    { printf '%s\n' "$out" >&2; echo "FAIL  mcp-publisher validate said nothing of validity"; failed=$((failed + 1)); }
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""

  # 2. The publish handler's checks.
  "$validator" publish "$file" || failed=$((failed + 1))
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
    [ $# -eq 2 ] || { sed -n '27,30p' "$0" >&2; exit 1; }
    installed || install
    validate "$2"
    ;;
  *)
    sed -n '2,30p' "$0" >&2
    exit 1
    ;;
esac
