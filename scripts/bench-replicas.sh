#!/usr/bin/env bash
# What the shared claim costs: the gateway's single-use route against its
# reusable one, with the spent-set in the data dir (one gateway) and in Redis
# (two replicas sharing it). Loopback only, bounded (wrk for a fixed time).
#
#   scripts/bench-replicas.sh [seconds per run, default 5] [connections, default 32] [rounds, default 3]
#
# Each request on a single-use route claims its credential in the spent-set
# before anything else. wrk presents one credential over and over, so after
# the first request every presentation is a claim that finds the token taken
# (401): exactly the per-request work of the claim, a round trip to the set,
# without having to buy a token per request. The runs, in alternating order:
#   reusable     a reusable route with a valid credential (no spent-set)
#   local-once   the single-use route, spent-set in the data dir (SQLite)
#   redis-once   the single-use route on two replicas sharing one Redis,
#                half the connections on each
# Needs wrk and redis-server (Debian: apt-get install wrk redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
rounds=${3:-3}
for c in wrk redis-server curl python3; do
    command -v "$c" >/dev/null || { echo "bench-replicas: $c is not installed" >&2; exit 1; }
done

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/l402-mcp
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "bench-replicas: $1 did not come up" >&2; exit 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done

(umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' >"$work/root-key")
cat >"$work/gateway.toml" <<EOF
[rate_limit]
challenges_per_minute = 1000000
burst = 100000

[limits]
max_connections = 4096

[[routes]]
path = "/reusable"
price_sats = 1
demo = "demo"
token = "reusable"

[[routes]]
path = "/once"
price_sats = 1
demo = "demo"
token = "single-use"

[[routes]]
path = "/health"
free = true
demo = "health"
EOF
start() { # NAME PORT EXTRA...
    local name=$1 port=$2; shift 2
    "$bin" -q gateway --listen "127.0.0.1:$port" --config "$work/gateway.toml" \
        --data-dir "$work/$name" --root-key-file "$work/root-key" "$@" &
    pids+=($!)
    wait_up "http://127.0.0.1:$port"
}
local_port=$(free_port); a_port=$(free_port); b_port=$(free_port)
start local "$local_port"
start replica-a "$a_port" --spent-set "redis://127.0.0.1:$redis_port/0"
start replica-b "$b_port" --spent-set "redis://127.0.0.1:$redis_port/0"

buy() { # BASE PATH -> "L402 mac:preimage"
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request, urllib.error
base, path = sys.argv[1], sys.argv[2]
try:
    urllib.request.urlopen(base + path)
    sys.exit("expected 402")
except urllib.error.HTTPError as e:
    body = json.load(e)
req = urllib.request.Request(base + "/dev/pay", data=json.dumps({"invoice": body["invoice"]}).encode(),
                             headers={"content-type": "application/json"})
print(f"L402 {body['macaroon']}:{json.load(urllib.request.urlopen(req))['preimage']}")
PY
}
reusable=$(buy "http://127.0.0.1:$local_port" /reusable)
once_local=$(buy "http://127.0.0.1:$local_port" /once)
once_redis=$(buy "http://127.0.0.1:$a_port" /once)
# The shared claim: the token bought on A is spent once, on B.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $once_redis" "http://127.0.0.1:$b_port/once")
[ "$code" = 200 ] || { echo "bench-replicas: replica B answered $code to A's token" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $once_redis" "http://127.0.0.1:$a_port/once")
[ "$code" = 401 ] || { echo "bench-replicas: a spent token got $code on A" >&2; exit 1; }

rps() { awk '/^Requests\/sec:/ {print $2}'; }
run() {
    case $1 in
        reusable) wrk -t2 -c"$conns" -d"${secs}s" -H "Authorization: $reusable" "http://127.0.0.1:$local_port/reusable" | rps ;;
        local-once) wrk -t2 -c"$conns" -d"${secs}s" -H "Authorization: $once_local" "http://127.0.0.1:$local_port/once" | rps ;;
        redis-once)
            local half=$((conns / 2))
            wrk -t1 -c"$half" -d"${secs}s" -H "Authorization: $once_redis" "http://127.0.0.1:$a_port/once" | rps >"$work/a" &
            local wa=$!
            wrk -t1 -c"$half" -d"${secs}s" -H "Authorization: $once_redis" "http://127.0.0.1:$b_port/once" | rps >"$work/b"
            wait "$wa"
            python3 -c "print(float(open('$work/a').read()) + float(open('$work/b').read()))"
            ;;
    esac
}
results="$work/results"
: >"$results"
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="reusable local-once redis-once"; else order="redis-once local-once reusable"; fi
    for which in $order; do
        echo "round $r $which $(run "$which")" | tee -a "$results" >&2
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    _, _, name, rps = line.split()
    rows.setdefault(name, []).append(float(rps))
med = {n: statistics.median(v) for n, v in rows.items()}
print("| run | req/s (median) | vs reusable | µs per request over reusable (2 cores) |")
print("|---|---|---|---|")
for n in ["reusable", "local-once", "redis-once"]:
    extra = 2e6 / med[n] - 2e6 / med["reusable"]
    print(f"| {n} | {med[n]:,.0f} | {med[n] / med['reusable']:.2f}x | {extra:.1f} |")
PY
