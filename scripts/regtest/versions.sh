# shellcheck shell=bash disable=SC2034
# Pinned versions of the regtest network's software, sourced by build.sh and
# up.sh. All but lnget come from the Go module proxy (see docs/REGTEST.md).
#
# lnd: latest v0.21 patch the proxy serves.
LND_VERSION=v0.21.3-beta
# btcd: the exact version lnd v0.21.3-beta requires in its go.mod (a
# pseudo-version of btcd's master; btcd has no v0.25 tag).
BTCD_VERSION=v0.25.1-0.20260310163610-1c55c7c18179
# aperture: v0.5.0 is the only v0.5.x the proxy serves.
APERTURE_VERSION=v0.5.0
# lnget: v1.1.0 is the newest tag; the proxy does not serve lnget at all (see
# docs/REGTEST.md), so build.sh builds it from its source archive in
# ../shared/peers (digest below, as ../shared/peers/README.md gives it), or
# from a source tree given as L402_LNGET_SRC.
LNGET_VERSION=v1.1.0
LNGET_SHA256=bc098478c9075f8881d683a8882f8f0f86128085c86e017e75a7a6dfa5aabe02

# Build tags for lnd/lncli: lnd's RELEASE_TAGS (make/release_flags.mk at
# v0.21.3-beta) minus the etcd/postgres/sqlite database backends, which the
# regtest network does not use (bbolt is the default). routerrpc is always
# compiled in since lnd v0.17.
LND_TAGS="autopilotrpc signrpc walletrpc chainrpc invoicesrpc watchtowerrpc neutrinorpc monitoring peersrpc"

L402_REGTEST_CACHE=${L402_REGTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp/regtest}
