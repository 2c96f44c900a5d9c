#!/usr/bin/env bash
# Side by side on one machine: our gateway and aperture (Lightning Labs' L402
# gateway, the version scripts/regtest builds), each in proxy mode in front of
# the same fast upstream, both invoicing on bob's lnd on a regtest network, at
# the same price. Bounded: loopback only, wrk for a fixed time per run.
#
#   scripts/bench-aperture.sh [seconds per run, default 5] [connections, default 32] [rounds, default 3]
#
# The upstream is `l402-mcp gateway`'s free /health (Rust, no Python in the
# way: it is not what limits the run). Per round, in an order that alternates:
#   direct    wrk on the upstream's /health itself (the baseline)
#   ours      wrk on our gateway's priced /health with a valid L402 credential
#   aperture  wrk on aperture's priced /health with a valid L402 credential
# then the challenge path (a 402 with a fresh invoice from bob's lnd per
# request), shorter runs at fewer connections:
#   ours-402, aperture-402
# Prints requests/s and p99 latency per run, the medians, and the ratios.
# Needs wrk (Debian: apt-get install wrk) and the regtest binaries
# (scripts/regtest/build.sh). L402_REGTEST_ENV=<run dir>/env.sh uses a running
# network; otherwise the script brings one up and takes it down.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
rounds=${3:-3}
price=10
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/l402-mcp
work=$(mktemp -d)
pids=()
started_net=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$started_net" ]; then scripts/regtest/down.sh --dir "$started_net" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_status() { # URL STATUS
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    echo "bench-aperture: $1 never answered $2" >&2
    exit 1
}

# ------------------------------------------------------------- the network
if [ -n "${L402_REGTEST_ENV:-}" ]; then
    # shellcheck disable=SC1090
    . "$L402_REGTEST_ENV"
else
    echo "bench-aperture: bringing up a regtest network (btcd, alice, bob)" >&2
    scripts/regtest/up.sh --dir "$work/rt" >&2
    started_net="$work/rt"
    # shellcheck disable=SC1091
    . "$work/rt/env.sh"
fi
apbin="$L402_REGTEST_BIN/aperture"
[ -x "$apbin" ] || { echo "bench-aperture: $apbin missing (scripts/regtest/build.sh)" >&2; exit 1; }

# ------------------------------------------------------------ the upstream
up_port=$(free_port)
"$bin" -q gateway --listen "127.0.0.1:$up_port" --data-dir "$work/upstream" &
pids+=($!)
upstream="http://127.0.0.1:$up_port"
wait_status "$upstream/health" 200

# ---------------------------------------------------------------- aperture
ap_port=$(free_port)
mkdir -p "$work/aperture"
cat >"$work/aperture/aperture.yaml" <<EOF
services:
  - name: "bench"
    hostregexp: '.*'
    pathregexp: '^/health.*$'
    address: "127.0.0.1:$up_port"
    protocol: http
    price: $price
    timeout: 86400
EOF
"$apbin" --configfile="$work/aperture/aperture.yaml" --basedir="$work/aperture" \
    --listenaddr="127.0.0.1:$ap_port" --insecure \
    --dbbackend=sqlite --sqlite.dbfile="$work/aperture/aperture.db" \
    --authenticator.network=regtest \
    --authenticator.lndhost="$L402_REGTEST_BOB_GRPC_HOST" \
    --authenticator.tlspath="$L402_REGTEST_BOB_TLS_CERT" \
    --authenticator.macdir="$L402_REGTEST_BOB_MACAROON_DIR" \
    --debuglevel=error >"$work/aperture.log" 2>&1 &
pids+=($!)
aperture="http://127.0.0.1:$ap_port"
wait_status "$aperture/health" 402

# --------------------------------------------------------------------- ours
# The invoice-only macaroon the README tells operators to bake.
"$L402_REGTEST_BOB_LNCLI" bakemacaroon --save_to "$work/gateway.macaroon" \
    uri:/lnrpc.Lightning/GetInfo uri:/lnrpc.Lightning/AddInvoice >/dev/null
our_port=$(free_port)
cat >"$work/gateway.toml" <<EOF
[rate_limit]
challenges_per_minute = 10000000
burst = 1000000

[limits]
max_connections = 4096

[[routes]]
path = "/health"
price_sats = $price
upstream = "$upstream"
token = "reusable"
valid_for_secs = 86400
EOF
"$bin" -q gateway --listen "127.0.0.1:$our_port" --config "$work/gateway.toml" \
    --data-dir "$work/ours" --network regtest \
    --lnd-host "$L402_REGTEST_BOB_GRPC_HOST" --lnd-tls-cert "$L402_REGTEST_BOB_TLS_CERT" \
    --lnd-macaroon "$work/gateway.macaroon" &
pids+=($!)
ours="http://127.0.0.1:$our_port"
wait_status "$ours/health" 402

# ---------------------------------------------- one token from each, by hand
buy() { # BASE -> "L402 mac:preimage"
    local hdr mac invoice pay pre
    hdr=$(curl -s -D - -o /dev/null "$1/health" | tr -d '\r' | grep -i '^www-authenticate: L402 ' | head -n1)
    mac=$(sed -n 's/.*macaroon="\([^"]*\)".*/\1/p' <<<"$hdr")
    invoice=$(sed -n 's/.*invoice="\([^"]*\)".*/\1/p' <<<"$hdr")
    [ -n "$mac" ] && [ -n "$invoice" ] || { echo "bench-aperture: no L402 challenge from $1" >&2; exit 1; }
    pay=$("$L402_REGTEST_ALICE_LNCLI" payinvoice --force --json "$invoice")
    pre=$(sed -n 's/^[[:space:]]*"payment_preimage": "\([^"]*\)".*/\1/p' <<<"$pay" | head -n1)
    [ -n "$pre" ] || { echo "bench-aperture: alice could not pay $1's invoice" >&2; exit 1; }
    echo "L402 $mac:$pre"
}
our_auth=$(buy "$ours")
ap_auth=$(buy "$aperture")
for pair in "$ours|$our_auth" "$aperture|$ap_auth"; do
    base=${pair%%|*}; auth=${pair#*|}
    code=$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: $auth" "$base/health")
    [ "$code" = 200 ] || { echo "bench-aperture: the paid credential got $code from $base" >&2; exit 1; }
done

# --------------------------------------------------------------------- runs
# run NAME URL CONNS SECS [AUTH]: prints "NAME req/s p99ms non2xx"
run() {
    local name=$1 url=$2 c=$3 s=$4 auth=${5:-} out rps p99 bad
    if [ -n "$auth" ]; then
        out=$(wrk -t2 -c"$c" -d"${s}s" --latency -H "Authorization: $auth" "$url")
    else
        out=$(wrk -t2 -c"$c" -d"${s}s" --latency "$url")
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    echo "$name ${rps:-0} ${p99:-0} ${bad:-0}"
}

results="$work/results"
: >"$results"
challenge_secs=$(( secs < 3 ? secs : 3 ))
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="direct ours aperture"; else order="aperture ours direct"; fi
    for which in $order; do
        case $which in
            direct) line=$(run direct "$upstream/health" "$conns" "$secs") ;;
            ours) line=$(run ours "$ours/health" "$conns" "$secs" "$our_auth") ;;
            aperture) line=$(run aperture "$aperture/health" "$conns" "$secs" "$ap_auth") ;;
        esac
        echo "round $r $line" | tee -a "$results" >&2
        # A verified run must be all 200s.
        [ "$(awk '{print $4}' <<<"$line")" = 0 ] || { echo "bench-aperture: $which answered non-2xx" >&2; exit 1; }
    done
    if [ $((r % 2)) -eq 1 ]; then order="ours-402 aperture-402"; else order="aperture-402 ours-402"; fi
    for which in $order; do
        case $which in
            ours-402) line=$(run ours-402 "$ours/health" 8 "$challenge_secs") ;;
            aperture-402) line=$(run aperture-402 "$aperture/health" 8 "$challenge_secs") ;;
        esac
        echo "round $r $line" | tee -a "$results" >&2
    done
done

# ---------------------------------------------------------------- summary
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    _, rnd, name, rps, p99, _bad = line.split()
    rows.setdefault(name, []).append((float(rps), float(p99)))
med = {n: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for n, v in rows.items()}
print("| run | req/s (median) | p99 ms (median) | rounds |")
print("|---|---|---|---|")
for n in ["direct", "ours", "aperture", "ours-402", "aperture-402"]:
    if n in med:
        print(f"| {n} | {med[n][0]:,.0f} | {med[n][1]:.2f} | {len(rows[n])} |")
def ratio(a, b):
    return med[a][0] / med[b][0] if a in med and b in med and med[b][0] else float("nan")
print()
print(f"verified path: ours / direct upstream = {ratio('ours', 'direct'):.2f}x; aperture / direct = {ratio('aperture', 'direct'):.2f}x; ours / aperture = {ratio('ours', 'aperture'):.2f}x")
print(f"challenge path: ours / aperture = {ratio('ours-402', 'aperture-402'):.2f}x")
print(f"p99 verified: ours {med['ours'][1]:.2f} ms vs aperture {med['aperture'][1]:.2f} ms")
PY
