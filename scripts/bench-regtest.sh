#!/usr/bin/env bash
# Paid and cached fetch of the same aperture route, our CLI vs lnget, on a
# regtest network (issue 5's benchmark). Run by hand; bounded (every command
# under `timeout`, RUNS of each).
#
#   scripts/bench-regtest.sh [--runs N] [--env ENV_SH]
#
# --runs N      runs of each kind (default 10)
# --env ENV_SH  a running network's env.sh (up.sh --aperture); without it the
#               script starts its own network and stops it at the end
#
# (Our budget and payment rate limit are raised for the runs.)
# Both clients pay with alice's lnd (admin macaroon) the same aperture route
# (L402_REGTEST_APERTURE_PAID_URL, bob invoices). A paid run starts without a
# token: `l402-mcp tokens clear` on our store, lnget's token dir emptied. A
# cached run reuses the token bought before the cached runs. Runs alternate
# ours / lnget, who goes first alternating. Wall time of the whole process,
# in ms; prints the medians and the ratio ours/lnget (< 1: ours faster).
#
# Our binary: $L402_MCP_BIN, else target/release/l402-mcp (built with
# `cargo build --release --bin l402-mcp` when missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=10
ENV_SH=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        --env) ENV_SH=${2:?--env needs env.sh}; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

BIN=${L402_MCP_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/l402-mcp}
if [ ! -x "$BIN" ]; then
    (cd "$REPO" && cargo build --release --bin l402-mcp)
fi

OWNED=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/l402-bench.XXXXXX")
cleanup() {
    if [ -n "$OWNED" ]; then "$HERE/regtest/down.sh" --dir "$OWNED" >&2 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
if [ -z "$ENV_SH" ]; then
    OWNED=$("$HERE/regtest/up.sh" --aperture | tail -n1)
    ENV_SH=$OWNED/env.sh
fi
# shellcheck disable=SC1090
. "$ENV_SH"
[ -n "${L402_REGTEST_APERTURE_PAID_URL:-}" ] || { echo "no aperture on this network (up.sh --aperture)" >&2; exit 1; }
URL=$L402_REGTEST_APERTURE_PAID_URL/bench
HAVE_LNGET=1
if [ -z "${L402_REGTEST_LNGET:-}" ] || [ ! -x "${L402_REGTEST_LNGET}" ]; then
    HAVE_LNGET=0
    why="lnget was not built (scripts/regtest/build.sh builds it from ../shared/peers or L402_LNGET_SRC; see docs/REGTEST.md)"
    # Under CI the comparison must run: no lnget is a failure there.
    case "${CI:-}" in ''|false) ;; *) echo "bench-regtest.sh: $why" >&2; exit 1 ;; esac
    echo "SKIPPED: $why: only our figures, no ratio" >&2
fi
LNGET_TOKENS=$(sed -n 's/^  dir: //p' "${L402_REGTEST_LNGET_CONFIG:-/dev/null}" 2>/dev/null || true)

ours() { # DATA_DIR
    timeout 60 "$BIN" fetch --allow-private \
        --lnd-host "$L402_REGTEST_ALICE_GRPC_HOST" --lnd-tls-cert "$L402_REGTEST_ALICE_TLS_CERT" \
        --lnd-macaroon "$L402_REGTEST_ALICE_ADMIN_MACAROON" --network regtest \
        --budget 1000000 --payments-per-minute 1000 --data-dir "$1" --config /dev/null "$URL"
}
theirs() { timeout 60 "$L402_REGTEST_LNGET" -q "$URL" 2>/dev/null; }

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# time_ms OUTFILE CMD...: run, check the upstream answered, append the ms.
time_ms() {
    local out=$1 t0 t1 body
    shift
    t0=$(ms)
    body=$("$@" 2>/dev/null) || { echo "FAILED: $*" >&2; exit 1; }
    t1=$(ms)
    grep -q '"upstream": "l402-regtest"' <<<"$body" || { echo "no upstream answer from: $* -> $body" >&2; exit 1; }
    echo $((t1 - t0)) >>"$out"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
payments() { "$L402_REGTEST_ALICE_LNCLI" listpayments --max_payments 100000 | grep -c '"payment_hash"' || true; }

P0=$(payments)
# Warm-up (not counted): page cache, lnd's first route lookups.
ours "$WORK/paid" >/dev/null 2>&1 || true
[ $HAVE_LNGET = 1 ] && { rm -rf "${LNGET_TOKENS:?}"/*; theirs >/dev/null || true; }

# A paid run starts with no token for the route but with the client's state
# in place, as a user's next new route would: our `tokens clear` on the
# store (which stays), lnget's token dir emptied (its config and event db stay).
paid_ours() {
    "$BIN" tokens clear --force --data-dir "$WORK/paid" --config /dev/null >/dev/null 2>&1
    time_ms "$WORK/ours-paid" ours "$WORK/paid"
}
paid_lnget() { [ $HAVE_LNGET = 1 ] || return 0; rm -rf "${LNGET_TOKENS:?}"/*; time_ms "$WORK/lnget-paid" theirs; }
cached_ours() { time_ms "$WORK/ours-cached" ours "$WORK/paid"; }
cached_lnget() { [ $HAVE_LNGET = 1 ] || return 0; time_ms "$WORK/lnget-cached" theirs; }
# Who goes first alternates between runs.
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then paid_ours; paid_lnget; else paid_lnget; paid_ours; fi
    echo "paid run $i/$RUNS" >&2
done
# Cached: the tokens of the last paid runs are in place.
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then cached_ours; cached_lnget; else cached_lnget; cached_ours; fi
done
P1=$(payments)
EXPECTED=$(( RUNS * (1 + HAVE_LNGET) + 1 + HAVE_LNGET ))
[ $((P1 - P0)) = "$EXPECTED" ] || { echo "alice made $((P1 - P0)) payments, expected $EXPECTED (a cached run paid?)" >&2; exit 1; }

echo "runs: $RUNS each; our binary: $BIN; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-8s %14s %14s %10s\n' kind "ours ms" "lnget ms" ours/lnget
for kind in paid cached; do
    o=$(median "$WORK/ours-$kind")
    if [ $HAVE_LNGET = 1 ]; then
        l=$(median "$WORK/lnget-$kind")
        r=$(awk -v o="$o" -v l="$l" 'BEGIN {printf "%.2f", o / l}')
    else
        l=SKIPPED r=-
    fi
    printf '%-8s %14s %14s %10s\n' "$kind" "$o" "$l" "$r"
done
echo "all ours:  paid $(tr '\n' ' ' <"$WORK/ours-paid")| cached $(tr '\n' ' ' <"$WORK/ours-cached")"
[ $HAVE_LNGET = 1 ] && echo "all lnget: paid $(tr '\n' ' ' <"$WORK/lnget-paid")| cached $(tr '\n' ' ' <"$WORK/lnget-cached")"
echo "alice made $((P1 - P0)) payments (${RUNS} paid runs each + warm-up), none in cached runs"
