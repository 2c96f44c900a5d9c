#!/usr/bin/env bash
# Alby's NIP-47 wallet service (@getalby/sdk NWCWalletService) on Node 22,
# the test peer of our Nostr Wallet Connect client: tests/nwc-wallet/wallet.mjs
# with the packages of tests/nwc-wallet/package-lock.json, installed with
# `npm ci` into a cache directory keyed by the SDK version and the lockfile,
# so that a second run installs nothing.
#
# Usage:
#   scripts/nwc-wallet.sh --install        install if missing; print the install dir
#   scripts/nwc-wallet.sh --path           print the install dir if installed, else exit 1
#   scripts/nwc-wallet.sh --run ARGS...    run wallet.mjs (installs first if needed), e.g.
#     scripts/nwc-wallet.sh --run --relay ws://127.0.0.1:7777 --pay-via dev=http://127.0.0.1:8402
#   (wallet.mjs --help lists its flags and stdin commands)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$here/tests/nwc-wallet"
SDK_VERSION=$(sed -n 's/.*"@getalby\/sdk": *"\([^"]*\)".*/\1/p' "$src/package.json" | head -n1)
lock_hash=$(sha256sum "$src/package-lock.json" | cut -c1-12)
cache_root=${L402_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp}
cache="$cache_root/nwc-wallet-$SDK_VERSION-$lock_hash"
node="$cache/node_modules/node/bin/node"
sdk="$cache/node_modules/@getalby/sdk/package.json"

present() { [ -x "$node" ] && [ -f "$sdk" ]; }
installed() { [ -f "$cache/.installed" ] && present; }

install() {
  command -v npm >/dev/null || { echo "nwc-wallet.sh: npm is needed to install the wallet service" >&2; exit 1; }
  mkdir -p "$cache_root"
  # Install into a fresh directory next to the final one, then rename: a
  # concurrent run never sees half an install.
  local tmp
  tmp=$(mktemp -d "$cache_root/.nwc-wallet-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "nwc-wallet.sh: installing @getalby/sdk@$SDK_VERSION and node (tests/nwc-wallet/package-lock.json) into $cache" >&2
  cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  [ -x "$tmp/node_modules/node/bin/node" ] && [ -f "$tmp/node_modules/@getalby/sdk/package.json" ] ||
    { echo "nwc-wallet.sh: npm ci did not produce node and @getalby/sdk in $tmp" >&2; exit 1; }
  touch "$tmp/.installed"
  if ! mv -T "$tmp" "$cache" 2>/dev/null; then
    # Another run finished first (or a broken install is in the way).
    if installed; then rm -rf "$tmp"; else rm -rf "$cache" && mv -T "$tmp" "$cache"; fi
  fi
  trap - EXIT
  present || { echo "nwc-wallet.sh: the install did not produce $node" >&2; exit 1; }
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
    export L402_NWC_WALLET_DIR="$cache"
    exec "$node" "$src/wallet.mjs" "$@"
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 1
    ;;
esac
