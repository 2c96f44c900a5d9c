#!/usr/bin/env bash
# Bring up a Bitcoin regtest network with two lnd nodes and a channel:
#
#   btcd (regtest) <- lnd "alice" (payer) ==channel==> lnd "bob" (payee)
#
#   scripts/regtest/up.sh [--dir DIR] [--aperture]
#
# --dir DIR     run directory (data dirs, logs, pid files, env.sh); default a
#               new temp dir. Must be empty or absent.
# --aperture    also start aperture in front of a small upstream (aperture.sh)
#
# Environment: L402_REGTEST_CHANNEL_SATS (default 1000000) and
# L402_REGTEST_PUSH_SATS (default 300000, given to bob so he can pay too).
#
# Everything listens on 127.0.0.1 on free ports. Writes DIR/env.sh (source it)
# and records DIR as the last run for down.sh. Stops everything it started if
# it fails (logs are kept in DIR).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

DIR=""
WITH_APERTURE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --aperture) WITH_APERTURE=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) rt_die "unknown argument $1" ;;
    esac
done

CHANNEL_SATS=${L402_REGTEST_CHANNEL_SATS:-1000000}
PUSH_SATS=${L402_REGTEST_PUSH_SATS:-300000}
START=$(date +%s)

BIN=$("$HERE/build.sh" | tail -n1)
for b in btcd btcctl lnd lncli; do
    [ -x "$BIN/$b" ] || rt_die "$b missing from $BIN (build.sh failed?)"
done

if [ -z "$DIR" ]; then
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/l402-regtest.XXXXXX")
else
    mkdir -p "$DIR"
    [ -z "$(ls -A "$DIR")" ] || rt_die "$DIR is not empty (run down.sh --dir $DIR first)"
fi
RT_DIR=$(cd "$DIR" && pwd -P)
export RT_DIR
mkdir -p "$RT_DIR/bin" "$RT_DIR/pids" "$RT_DIR/logs"
echo "$RT_DIR" >"$L402_REGTEST_CACHE/last-run"

on_exit() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        rt_log "up.sh failed (exit $rc): stopping what it started; logs kept in $RT_DIR/logs"
        for f in "$RT_DIR"/logs/*.log; do
            [ -f "$f" ] || continue
            echo "---- last lines of $f" >&2
            tail -n 15 "$f" >&2
        done
        "$HERE/down.sh" --dir "$RT_DIR" --keep >&2 || true
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ports
for v in BTCD_RPC ALICE_P2P ALICE_RPC ALICE_REST BOB_P2P BOB_RPC BOB_REST; do
    rt_free_port "$v"
done
RPCUSER=regtest
RPCPASS=regtest-$RANDOM$RANDOM

# ---------------------------------------------------------------- btcd
BTCD_DIR="$RT_DIR/btcd"
mkdir -p "$BTCD_DIR"
: >"$BTCD_DIR/btcd.conf"      # an empty config: btcd would write one in ~/.btcd
: >"$BTCD_DIR/btcctl.conf"    # same for btcctl in ~/.btcctl

cat >"$RT_DIR/bin/btcctl" <<EOF
#!/bin/sh
# btcctl against this run's btcd. Mine with: btcctl generate N
exec "$BIN/btcctl" --configfile="$BTCD_DIR/btcctl.conf" --regtest \\
    --rpcserver=127.0.0.1:$BTCD_RPC --rpcuser=$RPCUSER --rpcpass=$RPCPASS \\
    --rpccert="$BTCD_DIR/rpc.cert" "\$@"
EOF
chmod +x "$RT_DIR/bin/btcctl"
BTCCTL="$RT_DIR/bin/btcctl"

btcd_ready() {
    rt_alive btcd || rt_die "btcd exited: see $RT_DIR/logs/btcd.log"
    "$BTCCTL" getblockcount
}
# start_btcd [MININGADDR]
start_btcd() {
    local mining=()
    [ -z "${1:-}" ] || mining=(--miningaddr="$1")
    # btcd still creates an empty ~/.btcd (its home, from the passwd entry,
    # not $HOME); nothing is written in it.
    rt_start btcd "$RT_DIR/logs/btcd.log" "$BIN/btcd" \
        --configfile="$BTCD_DIR/btcd.conf" --regtest \
        --datadir="$BTCD_DIR/data" --logdir="$BTCD_DIR/logs" \
        --rpclisten=127.0.0.1:$BTCD_RPC --rpcuser=$RPCUSER --rpcpass=$RPCPASS \
        --rpccert="$BTCD_DIR/rpc.cert" --rpckey="$BTCD_DIR/rpc.key" \
        --nolisten --txindex --nobanning --debuglevel=info "${mining[@]}"
    rt_wait 30 "btcd's RPC" btcd_ready
}
start_btcd

# ---------------------------------------------------------------- lnd
# start_lnd NAME P2P RPC REST
start_lnd() {
    local name=$1 p2p=$2 rpc=$3 rest=$4
    local d="$RT_DIR/$name"
    mkdir -p "$d"
    : >"$d/lnd.conf"
    cat >"$RT_DIR/bin/lncli-$name" <<EOF
#!/bin/sh
# lncli against $name's lnd (admin macaroon).
exec "$BIN/lncli" --lnddir="$d" --network=regtest --rpcserver=127.0.0.1:$rpc "\$@"
EOF
    chmod +x "$RT_DIR/bin/lncli-$name"
    rt_start "$name" "$RT_DIR/logs/$name.log" "$BIN/lnd" \
        --lnddir="$d" --configfile="$d/lnd.conf" \
        --bitcoin.regtest --bitcoin.node=btcd \
        --btcd.rpchost=127.0.0.1:$BTCD_RPC --btcd.rpcuser=$RPCUSER \
        --btcd.rpcpass=$RPCPASS --btcd.rpccert="$BTCD_DIR/rpc.cert" \
        --listen=127.0.0.1:$p2p --rpclisten=127.0.0.1:$rpc \
        --restlisten=127.0.0.1:$rest \
        --alias="$name" --noseedbackup --nobootstrap --debuglevel=info \
        --bitcoin.defaultchanconfs=1 --trickledelay=50 \
        --gossip.sub-batch-delay=5ms --accept-keysend
}
lnd_ready() {
    rt_alive "$1" || rt_die "$1's lnd exited: see $RT_DIR/logs/$1.log"
    "$RT_DIR/bin/lncli-$1" getinfo
}

start_lnd alice $ALICE_P2P $ALICE_RPC $ALICE_REST
start_lnd bob $BOB_P2P $BOB_RPC $BOB_REST
rt_wait 120 "alice's lnd" lnd_ready alice
rt_wait 120 "bob's lnd" lnd_ready bob
ALICE="$RT_DIR/bin/lncli-alice"
BOB="$RT_DIR/bin/lncli-bob"
ALICE_PUBKEY=$("$ALICE" getinfo | rt_json_str identity_pubkey)
BOB_PUBKEY=$("$BOB" getinfo | rt_json_str identity_pubkey)
rt_log "alice $ALICE_PUBKEY, bob $BOB_PUBKEY"

# ---------------------------------------------------------------- fund alice
# btcd has no wallet and no generatetoaddress: `generate` pays the coinbase to
# --miningaddr, fixed at start. So restart btcd with one of alice's addresses.
ALICE_ADDR=$("$ALICE" newaddress p2wkh | rt_json_str address)
[ -n "$ALICE_ADDR" ] || rt_die "no address from alice"
rt_stop btcd
start_btcd "$ALICE_ADDR"
# Segwit (with CSV and taproot) activates at height 432 on btcd's regtest
# (BIP9: three 144-block windows); coinbases mature after 100 blocks.
"$BTCCTL" generate 450 >/dev/null
HEIGHT=$("$BTCCTL" getblockcount)
rt_log "mined to height $HEIGHT (coinbases to alice $ALICE_ADDR)"

synced() {
    local info; info=$("$RT_DIR/bin/lncli-$1" getinfo) || return 1
    grep -q '"synced_to_chain": true' <<<"$info" &&
        [ "$(rt_json_val block_height <<<"$info")" = "$2" ]
}
rt_wait 120 "alice to sync to height $HEIGHT" synced alice "$HEIGHT"
rt_wait 120 "bob to sync to height $HEIGHT" synced bob "$HEIGHT"
funded() {
    local c; c=$("$ALICE" walletbalance | rt_json_val confirmed_balance)
    [ "${c:-0}" -gt $((CHANNEL_SATS * 2)) ]
}
rt_wait 60 "alice's confirmed balance" funded

# ---------------------------------------------------------------- channel
"$ALICE" connect "$BOB_PUBKEY@127.0.0.1:$BOB_P2P" >/dev/null
rt_wait 30 "alice and bob to be peers" sh -c "'$ALICE' listpeers | grep -q '$BOB_PUBKEY'"
"$ALICE" openchannel --node_key="$BOB_PUBKEY" --local_amt="$CHANNEL_SATS" \
    --push_amt="$PUSH_SATS" >"$RT_DIR/logs/openchannel.json"
FUNDING_TXID=$(rt_json_str funding_txid <"$RT_DIR/logs/openchannel.json")
rt_log "channel funding tx $FUNDING_TXID"
rt_wait 30 "the funding tx in btcd's mempool" sh -c "'$BTCCTL' getrawmempool | grep -q '$FUNDING_TXID'"
# One confirmation opens it (defaultchanconfs=1); six announce it.
"$BTCCTL" generate 6 >/dev/null
HEIGHT=$("$BTCCTL" getblockcount)
active() { "$RT_DIR/bin/lncli-$1" listchannels --active_only | grep -q "\"remote_pubkey\": \"$2\""; }
rt_wait 120 "the channel to be active at alice" active alice "$BOB_PUBKEY"
rt_wait 120 "the channel to be active at bob" active bob "$ALICE_PUBKEY"
rt_wait 60 "alice to sync to height $HEIGHT" synced alice "$HEIGHT"
rt_wait 60 "bob to sync to height $HEIGHT" synced bob "$HEIGHT"
# Active is not yet payable: until a node's graph has the channel with both
# policies, a payment fails with "insufficient local balance". Wait until a
# route is found both ways.
routable() { "$RT_DIR/bin/lncli-$1" queryroutes --dest "$2" --amt 1000 | grep -q '"hops"'; }
rt_wait 60 "a route alice -> bob" routable alice "$BOB_PUBKEY"
rt_wait 60 "a route bob -> alice" routable bob "$ALICE_PUBKEY"
CHAN_POINT=$("$ALICE" listchannels | rt_json_str channel_point)

# ---------------------------------------------------------------- env.sh
MACDIR_ALICE="$RT_DIR/alice/data/chain/bitcoin/regtest"
MACDIR_BOB="$RT_DIR/bob/data/chain/bitcoin/regtest"
cat >"$RT_DIR/env.sh" <<EOF
# Written by scripts/regtest/up.sh: the regtest network of this run.
# Source it: . "$RT_DIR/env.sh"
export L402_REGTEST_DIR="$RT_DIR"
export L402_REGTEST_NETWORK=regtest
export L402_REGTEST_BIN="$BIN"
export L402_REGTEST_BTCCTL="$BTCCTL"
export L402_REGTEST_BTCD_RPC=127.0.0.1:$BTCD_RPC
export L402_REGTEST_CHAN_POINT=$CHAN_POINT
export L402_REGTEST_CHANNEL_SATS=$CHANNEL_SATS
export L402_REGTEST_PUSH_SATS=$PUSH_SATS

# alice: the payer (local balance = channel - push - fees)
export L402_REGTEST_ALICE_PUBKEY=$ALICE_PUBKEY
export L402_REGTEST_ALICE_GRPC_HOST=127.0.0.1:$ALICE_RPC
export L402_REGTEST_ALICE_REST_HOST=127.0.0.1:$ALICE_REST
export L402_REGTEST_ALICE_P2P_HOST=127.0.0.1:$ALICE_P2P
export L402_REGTEST_ALICE_LNDDIR="$RT_DIR/alice"
export L402_REGTEST_ALICE_TLS_CERT="$RT_DIR/alice/tls.cert"
export L402_REGTEST_ALICE_MACAROON_DIR="$MACDIR_ALICE"
export L402_REGTEST_ALICE_ADMIN_MACAROON="$MACDIR_ALICE/admin.macaroon"
export L402_REGTEST_ALICE_INVOICE_MACAROON="$MACDIR_ALICE/invoice.macaroon"
export L402_REGTEST_ALICE_READONLY_MACAROON="$MACDIR_ALICE/readonly.macaroon"
export L402_REGTEST_ALICE_LNCLI="$RT_DIR/bin/lncli-alice"

# bob: the payee (inbound liquidity from alice; push_amt to pay back)
export L402_REGTEST_BOB_PUBKEY=$BOB_PUBKEY
export L402_REGTEST_BOB_GRPC_HOST=127.0.0.1:$BOB_RPC
export L402_REGTEST_BOB_REST_HOST=127.0.0.1:$BOB_REST
export L402_REGTEST_BOB_P2P_HOST=127.0.0.1:$BOB_P2P
export L402_REGTEST_BOB_LNDDIR="$RT_DIR/bob"
export L402_REGTEST_BOB_TLS_CERT="$RT_DIR/bob/tls.cert"
export L402_REGTEST_BOB_MACAROON_DIR="$MACDIR_BOB"
export L402_REGTEST_BOB_ADMIN_MACAROON="$MACDIR_BOB/admin.macaroon"
export L402_REGTEST_BOB_INVOICE_MACAROON="$MACDIR_BOB/invoice.macaroon"
export L402_REGTEST_BOB_READONLY_MACAROON="$MACDIR_BOB/readonly.macaroon"
export L402_REGTEST_BOB_LNCLI="$RT_DIR/bin/lncli-bob"

# Helpers: lncli-alice, lncli-bob and btcctl (this run's) come first on PATH.
export PATH="$RT_DIR/bin:\$PATH"
alice() { "$RT_DIR/bin/lncli-alice" "\$@"; }
bob() { "$RT_DIR/bin/lncli-bob" "\$@"; }
mine() { "$BTCCTL" generate "\${1:-1}"; }
EOF

# lnget, when it was built: paying with alice's lnd, state kept in the run dir.
if [ -x "$BIN/lnget" ]; then
    mkdir -p "$RT_DIR/lnget/home"
    cat >"$RT_DIR/lnget/config.yaml" <<EOF
# Written by scripts/regtest/up.sh: lnget pays with alice's lnd.
l402:
  max_cost_sats: 10000
  max_fee_sats: 100
  auto_pay: true
ln:
  mode: lnd
  lnd:
    host: 127.0.0.1:$ALICE_RPC
    tls_cert: $RT_DIR/alice/tls.cert
    macaroon: $MACDIR_ALICE/admin.macaroon
    network: regtest
tokens:
  dir: $RT_DIR/lnget/tokens
events:
  enabled: true
  db_path: $RT_DIR/lnget/events.db
output:
  progress: false
EOF
    cat >"$RT_DIR/bin/lnget-alice" <<EOF
#!/bin/sh
# lnget paying with alice's lnd; its files stay in $RT_DIR/lnget.
HOME="$RT_DIR/lnget/home"; export HOME
exec "$BIN/lnget" --config "$RT_DIR/lnget/config.yaml" "\$@"
EOF
    chmod +x "$RT_DIR/bin/lnget-alice"
    cat >>"$RT_DIR/env.sh" <<EOF

# lnget (reference L402 client) paying with alice's lnd
export L402_REGTEST_LNGET="$RT_DIR/bin/lnget-alice"
export L402_REGTEST_LNGET_CONFIG="$RT_DIR/lnget/config.yaml"
EOF
else
    rt_log "WARNING: lnget is not built: L402_REGTEST_LNGET is not set (see docs/REGTEST.md)"
fi

rt_log "alice and bob have an active channel of $CHANNEL_SATS sats ($PUSH_SATS pushed to bob)"

if [ "$WITH_APERTURE" = 1 ]; then
    "$HERE/aperture.sh" --dir "$RT_DIR"
fi

trap - EXIT
rt_log "regtest network up in $(( $(date +%s) - START ))s"
echo "source $RT_DIR/env.sh" >&2
echo "$RT_DIR"
