#!/usr/bin/env bash
# End-to-end check of a regtest network with aperture (up.sh --aperture):
#
# 1. aperture answers the paid route with 402 and both challenge headers,
#    `WWW-Authenticate: LSAT ...` and `WWW-Authenticate: L402 ...`;
# 2. by hand: alice pays the challenge's invoice with lncli, and the
#    credential `L402 <macaroon>:<preimage>` gets the upstream's answer;
# 3. lnget (configured with alice's lnd) pays aperture on its own, and a
#    second fetch reuses its token (no second payment). Skipped, loudly, when
#    lnget was not built.
#
#   scripts/regtest/check.sh [--dir DIR]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) rt_die "unknown argument $1" ;;
    esac
done
if [ -z "$DIR" ]; then
    [ -f "$L402_REGTEST_CACHE/last-run" ] || rt_die "no --dir given and no last run recorded"
    DIR=$(cat "$L402_REGTEST_CACHE/last-run")
fi
# shellcheck disable=SC1091
. "$DIR/env.sh"
[ -n "${L402_REGTEST_APERTURE_URL:-}" ] || rt_die "aperture is not running for $DIR (up.sh --aperture, or aperture.sh)"

PASS=0
FAIL=0
ok() { echo "ok: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
count_payments() { "$L402_REGTEST_ALICE_LNCLI" listpayments | grep -c '"payment_hash"' || true; }
# An invoice's settle_date is non-zero once settled (its HTLCs also say
# "state": "SETTLED", so that is no count of invoices).
settled_invoices() { "$L402_REGTEST_BOB_LNCLI" listinvoices | grep '"settle_date":' | grep -vc '"settle_date": "0"' || true; }

URL=$L402_REGTEST_APERTURE_PAID_URL

# ---------------------------------------------------------------- 1. challenge
HDRS=$(curl -s -D - -o /dev/null "$URL/by-hand")
STATUS=$(head -n1 <<<"$HDRS" | awk '{print $2}')
[ "$STATUS" = 402 ] && ok "aperture answers 402 Payment Required" || bad "aperture answered $STATUS, not 402"
LSAT=$(grep -i '^www-authenticate: LSAT ' <<<"$HDRS" | tr -d '\r' || true)
L402=$(grep -i '^www-authenticate: L402 ' <<<"$HDRS" | tr -d '\r' || true)
[ -n "$LSAT" ] && ok "WWW-Authenticate: LSAT ... present" || bad "no WWW-Authenticate: LSAT header"
[ -n "$L402" ] && ok "WWW-Authenticate: L402 ... present" || bad "no WWW-Authenticate: L402 header"
echo "   $L402" | cut -c1-160

# ---------------------------------------------------------------- 2. by hand
MAC=$(sed -n 's/.*macaroon="\([^"]*\)".*/\1/p' <<<"$L402")
INVOICE=$(sed -n 's/.*invoice="\([^"]*\)".*/\1/p' <<<"$L402")
if [ -n "$MAC" ] && [ -n "$INVOICE" ]; then
    AMT=$("$L402_REGTEST_ALICE_LNCLI" decodepayreq "$INVOICE" | rt_json_val num_satoshis)
    [ "$AMT" = "$L402_REGTEST_APERTURE_PRICE_SATS" ] && ok "invoice of $AMT sats from bob" || bad "invoice of $AMT sats, expected $L402_REGTEST_APERTURE_PRICE_SATS"
    PAY=$("$L402_REGTEST_ALICE_LNCLI" payinvoice --force --json "$INVOICE" 2>&1 || true)
    PREIMAGE=$(rt_json_str payment_preimage <<<"$PAY")
    if grep -q '"status": "SUCCEEDED"' <<<"$PAY" && [ -n "$PREIMAGE" ]; then
        ok "alice paid it with lncli (preimage $PREIMAGE)"
        BODY=$(curl -s -H "Authorization: L402 $MAC:$PREIMAGE" "$URL/by-hand")
        grep -q '"upstream": "l402-regtest"' <<<"$BODY" && ok "the L402 credential gets the upstream: $BODY" || bad "L402 credential refused: $BODY"
        BODY=$(curl -s -H "Authorization: LSAT $MAC:$PREIMAGE" "$URL/by-hand")
        grep -q '"upstream": "l402-regtest"' <<<"$BODY" && ok "the same credential as LSAT works too" || bad "LSAT credential refused: $BODY"
    else
        bad "alice could not pay the invoice: $(tail -n 5 <<<"$PAY")"
    fi
else
    bad "could not read macaroon and invoice from the L402 challenge"
fi

# ---------------------------------------------------------------- 3. lnget
if [ -z "${L402_REGTEST_LNGET:-}" ] || [ ! -x "${L402_REGTEST_LNGET:-}" ]; then
    echo "SKIPPED: lnget was not built (not served by the Go module proxy; see docs/REGTEST.md, L402_LNGET_SRC)"
else
    P0=$(count_payments); S0=$(settled_invoices)
    OUT=$("$L402_REGTEST_LNGET" -q "$URL/lnget" 2>&1 || true)
    P1=$(count_payments); S1=$(settled_invoices)
    if grep -q '"upstream": "l402-regtest"' <<<"$OUT" && [ "$P1" = $((P0 + 1)) ] && [ "$S1" = $((S0 + 1)) ]; then
        ok "lnget paid aperture through alice's lnd (one payment, one settled invoice at bob): $OUT"
    else
        bad "lnget: payments $P0 -> $P1, settled $S0 -> $S1, output: $OUT"
    fi
    OUT=$("$L402_REGTEST_LNGET" -q "$URL/lnget-again" 2>&1 || true)
    P2=$(count_payments)
    if grep -q '"upstream": "l402-regtest"' <<<"$OUT" && [ "$P2" = "$P1" ]; then
        ok "lnget's second fetch reused its token (no new payment)"
    else
        bad "lnget second fetch: payments $P1 -> $P2, output: $OUT"
    fi
fi

echo "check: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
