#!/usr/bin/env bash
# Start aperture (Lightning Labs' L402 gateway) on a regtest network that
# up.sh brought up, in front of a small upstream (upstream.py), with bob's lnd
# as its invoice backend and sqlite as its store (no etcd, no other service).
#
#   scripts/regtest/aperture.sh [--dir DIR] [--price SATS]
#
# Priced services, each proxied to the upstream, SATS each (default 100):
# "quote" (every path under /quote; authscheme left unset), and, for the
# `Payment` scheme (enablempp is on), "mpp" under /mpp (authscheme mpp:
# aperture still offers LSAT and L402 there, then refuses them) and "both"
# under /both (authscheme l402+mpp). Other paths answer 404 from aperture.
# Appends APERTURE_* variables to DIR/env.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

DIR=""
PRICE=100
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --price) PRICE=${2:?--price needs sats}; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) rt_die "unknown argument $1" ;;
    esac
done
if [ -z "$DIR" ]; then
    [ -f "$L402_REGTEST_CACHE/last-run" ] || rt_die "no --dir given and no last run recorded"
    DIR=$(cat "$L402_REGTEST_CACHE/last-run")
fi
RT_DIR=$(cd "$DIR" && pwd -P)
export RT_DIR
[ -f "$RT_DIR/env.sh" ] || rt_die "$RT_DIR/env.sh missing: run up.sh first"
# shellcheck disable=SC1091
. "$RT_DIR/env.sh"
rt_alive aperture && rt_die "aperture already runs for $RT_DIR"

BIN=$("$HERE/build.sh" | tail -n1)
[ -x "$BIN/aperture" ] || rt_die "aperture missing from $BIN (build.sh failed?)"
command -v python3 >/dev/null 2>&1 || rt_die "python3 is needed for the upstream (upstream.py)"
command -v curl >/dev/null 2>&1 || rt_die "curl is needed to check that aperture answers"

# On failure, stop what this script started (the rest of the network stays).
on_exit() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        rt_log "aperture.sh failed (exit $rc); see $RT_DIR/logs/aperture.log"
        tail -n 15 "$RT_DIR/logs/aperture.log" >&2 2>/dev/null || true
        rt_stop aperture
        rt_stop upstream
    fi
}
trap on_exit EXIT

rt_free_port UPSTREAM_PORT
rt_free_port APERTURE_PORT
AP_DIR="$RT_DIR/aperture"
mkdir -p "$AP_DIR"

rt_start upstream "$RT_DIR/logs/upstream.log" python3 "$HERE/upstream.py" "$UPSTREAM_PORT" "$RT_DIR"
rt_wait 20 "the upstream" rt_port_busy "$UPSTREAM_PORT"

# Services can only be given in the YAML file; everything else is given as
# flags, which take precedence over the file.
cat >"$AP_DIR/aperture.yaml" <<EOF
# Written by scripts/regtest/aperture.sh
services:
  - name: "quote"
    hostregexp: '.*'
    pathregexp: '^/quote.*$'
    address: "127.0.0.1:$UPSTREAM_PORT"
    protocol: http
    price: $PRICE
    timeout: 86400
  - name: "mpp"
    hostregexp: '.*'
    pathregexp: '^/mpp.*$'
    address: "127.0.0.1:$UPSTREAM_PORT"
    protocol: http
    price: $PRICE
    timeout: 86400
    authscheme: "mpp"
  - name: "both"
    hostregexp: '.*'
    pathregexp: '^/both.*$'
    address: "127.0.0.1:$UPSTREAM_PORT"
    protocol: http
    price: $PRICE
    timeout: 86400
    authscheme: "l402+mpp"
EOF

rt_start aperture "$RT_DIR/logs/aperture.log" "$BIN/aperture" \
    --configfile="$AP_DIR/aperture.yaml" --basedir="$AP_DIR" \
    --listenaddr="127.0.0.1:$APERTURE_PORT" --insecure \
    --dbbackend=sqlite --sqlite.dbfile="$AP_DIR/aperture.db" \
    --authenticator.network=regtest \
    --authenticator.enablempp --authenticator.mpprealm=aperture-regtest \
    --authenticator.lndhost="$L402_REGTEST_BOB_GRPC_HOST" \
    --authenticator.tlspath="$L402_REGTEST_BOB_TLS_CERT" \
    --authenticator.macdir="$L402_REGTEST_BOB_MACAROON_DIR" \
    --debuglevel=info

APERTURE_URL="http://127.0.0.1:$APERTURE_PORT"
challenged() {
    rt_alive aperture || rt_die "aperture exited"
    curl -s -o /dev/null -w '%{http_code}' "$APERTURE_URL/quote" | grep -q 402
}
rt_wait 60 "aperture to answer 402" challenged

cat >>"$RT_DIR/env.sh" <<EOF

# aperture (L402 gateway) in front of upstream.py, invoices from bob's lnd
export L402_REGTEST_APERTURE_URL=$APERTURE_URL
export L402_REGTEST_APERTURE_PAID_URL=$APERTURE_URL/quote
export L402_REGTEST_APERTURE_MPP_URL=$APERTURE_URL/mpp
export L402_REGTEST_APERTURE_BOTH_URL=$APERTURE_URL/both
export L402_REGTEST_APERTURE_PRICE_SATS=$PRICE
export L402_REGTEST_APERTURE_DIR="$AP_DIR"
export L402_REGTEST_UPSTREAM_URL=http://127.0.0.1:$UPSTREAM_PORT
EOF
trap - EXIT
rt_log "aperture at $APERTURE_URL (paid route $APERTURE_URL/quote, $PRICE sats)"
