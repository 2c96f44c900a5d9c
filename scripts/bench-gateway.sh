#!/usr/bin/env bash
# Load test of the gateway, loopback only and bounded in time: requests/s of
# a paid request carrying a valid L402 credential (full verification: parse,
# preimage hash, HMAC chain, caveats) against the same server's free /health.
# Needs wrk (Debian: apt-get install wrk). Usage:
#   scripts/bench-gateway.sh [seconds per run, default 10] [connections, default 32] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
rounds=${3:-3}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/l402-mcp
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$bin" gateway --listen "127.0.0.1:$port" --data-dir "$data" -q &
gw=$!
trap 'kill $gw 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done

# Buy one token through the dev node.
auth=$(python3 - "$base" <<'PY'
import json, sys, urllib.request, urllib.error
base = sys.argv[1]
try:
    urllib.request.urlopen(base + "/v1/demo")
    sys.exit("expected 402")
except urllib.error.HTTPError as e:
    body = json.load(e)
req = urllib.request.Request(base + "/dev/pay", data=json.dumps({"invoice": body["invoice"]}).encode(),
                             headers={"content-type": "application/json"})
pre = json.load(urllib.request.urlopen(req))["preimage"]
print(f"L402 {body['macaroon']}:{pre}")
PY
)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" "$base/v1/demo")
[ "$code" = 200 ] || { echo "paid request answered $code, not 200" >&2; exit 1; }

rate() { wrk -t2 -c"$conns" -d"${secs}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t2 -c$conns -d${secs}s, free and paid alternating, $rounds rounds"
ratios=()
for round in $(seq "$rounds"); do
  free=$(rate "$base/health")
  paid=$(rate -H "Authorization: $auth" "$base/v1/demo")
  ratio=$(python3 -c "print(f'{$paid/$free*100:.1f}')")
  ratios+=("$ratio")
  echo "round $round: free /health ${free} req/s, paid /v1/demo ${paid} req/s, paid/free ${ratio}%"
done
python3 -c "import statistics,sys; print(f'median paid/free: {statistics.median(map(float, sys.argv[1:])):.1f}%')" "${ratios[@]}"
