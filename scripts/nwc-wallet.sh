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
npm_tag=nwc-wallet.sh npm_name=nwc-wallet npm_src="$src" npm_pkg=@getalby/sdk
npm_probe=@getalby/sdk/package.json
# shellcheck source=lib/npm-pinned.sh
. "$here/scripts/lib/npm-pinned.sh"
SDK_VERSION=$npm_version

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
