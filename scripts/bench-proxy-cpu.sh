#!/usr/bin/env bash
# Where a proxied request's CPU goes: the CPU time each process (wrk, the
# upstream, the proxy) spends per request, and the proxy's context switches
# per request, for the upstream served directly, through a priced proxy
# route (a valid reusable credential), and through a free proxy route (the
# same forwarding, no credential, no verification), on one machine. Loopback only, bounded:
# wrk for a fixed time per run. The upstream is a dev-node gateway's free
# /health; the proxy a second gateway with one reusable priced route in front
# of it. CPU is utime+stime from /proc/PID/stat (wrk's from `time`).
#
#   scripts/bench-proxy-cpu.sh [seconds per run, default 5] [connections, default 32] [rounds, default 2]
#
# BIN=path/to/l402-mcp measures another build (both gateways run it);
# PROXY_ENV="TOKIO_WORKER_THREADS=1" sets variables for the proxy alone.
# Needs wrk and GNU time (Debian: apt-get install wrk time). With nginx
# installed (Debian: nginx-light), each round also measures nginx as the
# proxy (proxy_pass with kept-alive upstream connections, one worker per
# CPU, no access log): a reverse proxy written in C for exactly this, as a
# reference for what forwarding costs on this machine. Each round also
# measures the barest proxy hyper makes (benches/support/proxy_floor.rs,
# built the way our proxy mode is, doing nothing else): what hyper and
# tokio cost, below which our proxy cannot go without leaving them.
# FLOOR=path/to/proxy-floor measures another build of it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}; conns=${2:-32}; rounds=${3:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is not installed (apt-get install time)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then cargo build --release --quiet --bin l402-mcp; BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/l402-mcp; fi
if [ -z "${FLOOR:-}" ]; then cargo build --release --quiet --example proxy-floor; FLOOR=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/proxy-floor; fi
work=$(mktemp -d); pids=()
cleanup(){ for p in "${pids[@]}"; do kill $p 2>/dev/null||true; done; wait 2>/dev/null||true; rm -rf $work; }
trap cleanup EXIT
fp(){ python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(fp); "$BIN" -q gateway --listen 127.0.0.1:$up --data-dir $work/up >/dev/null 2>&1 & pids+=($!); uppid=$!
px=$(fp)
cat > $work/gw.toml <<T
[rate_limit]
challenges_per_minute = 10000000
burst = 1000000
[limits]
max_connections = 4096
[[routes]]
path = "/health"
price_sats = 10
upstream = "http://127.0.0.1:$up"
token = "reusable"
valid_for_secs = 86400
T
env ${PROXY_ENV:-} "$BIN" -q gateway --listen 127.0.0.1:$px --config $work/gw.toml --data-dir $work/px >/dev/null 2>&1 & pids+=($!); pxpid=$!
free=$(fp)
sed -e 's/^price_sats = 10$/free = true/' -e '/^token = /d' -e '/^valid_for_secs = /d' $work/gw.toml > $work/free.toml
env ${PROXY_ENV:-} "$BIN" -q gateway --listen 127.0.0.1:$free --config $work/free.toml --data-dir $work/free >/dev/null 2>&1 & pids+=($!); freepid=$!
ngx=""
if command -v nginx >/dev/null; then
  ngx=$(fp); mkdir -p $work/ngx
  cat > $work/ngx/nginx.conf <<N
worker_processes $(nproc);
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/ngx/body; proxy_temp_path $work/ngx/proxy;
  fastcgi_temp_path $work/ngx/fcgi; uwsgi_temp_path $work/ngx/uwsgi; scgi_temp_path $work/ngx/scgi;
  upstream up { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
N
  nginx -p $work/ngx -c $work/ngx/nginx.conf -g 'daemon off; master_process on;' 2>$work/ngx/stderr & pids+=($!); ngxpid=$!
fi
bare=$(fp); "$FLOOR" 127.0.0.1:$bare 127.0.0.1:$up & pids+=($!); barepid=$!
sleep 1
auth=$(python3 - "http://127.0.0.1:$px" <<'PY'
import json, sys, urllib.request, urllib.error
base=sys.argv[1]
try: urllib.request.urlopen(base+"/health"); sys.exit("no 402")
except urllib.error.HTTPError as e: body=json.load(e)
req=urllib.request.Request(base+"/dev/pay", data=json.dumps({"invoice": body["invoice"]}).encode(), headers={"content-type":"application/json"})
print(f"L402 {body['macaroon']}:{json.load(urllib.request.urlopen(req))['preimage']}")
PY
)
# A process and its children (nginx's workers; a gateway has none).
family(){ echo $1 $(pgrep -P $1 || true); }
ticks(){ local p; for p in $(family $1); do awk '{print $14+$15}' /proc/$p/stat; done | awk '{s+=$1} END{print s}'; }
# User time alone: steadier than the total for a change in user space.
uticks(){ local p; for p in $(family $1); do awk '{print $14}' /proc/$p/stat; done | awk '{s+=$1} END{print s}'; }
switches(){ local p; for p in $(family $1); do cat /proc/$p/task/*/status; done | awk '/ctxt_switches/{s+=$2} END{print s}'; }
measure(){ # label url [auth]; $pxpid is the proxy measured
  local u0 p0 u1 p1 c0 c1 s0 s1 out w
  u0=$(ticks $uppid); p0=$(ticks $pxpid); c0=$(switches $pxpid); s0=$(uticks $pxpid)
  if [ -n "${3:-}" ]; then out=$( { /usr/bin/time -f "WRKCPU %U %S" wrk -t2 -c$conns -d${secs}s -H "Authorization: $3" $2; } 2>&1 )
  else out=$( { /usr/bin/time -f "WRKCPU %U %S" wrk -t2 -c$conns -d${secs}s $2; } 2>&1 ); fi
  u1=$(ticks $uppid); p1=$(ticks $pxpid); c1=$(switches $pxpid); s1=$(uticks $pxpid)
  python3 - "$1" "$out" $u0 $u1 $p0 $p1 $c0 $c1 $s0 $s1 <<'PY'
import sys,re
label,out=sys.argv[1],sys.argv[2]; u0,u1,p0,p1,c0,c1,s0,s1=map(int,sys.argv[3:])
rps=float(re.search(r'Requests/sec:\s+([\d.]+)',out).group(1))
tot=int(re.search(r'(\d+) requests in',out).group(1))
w=sum(map(float,re.search(r'WRKCPU ([\d.]+) ([\d.]+)',out).groups()))
f=lambda s: s/tot*1e6
print(f"{label}: {rps:.0f} req/s; CPU µs/request: wrk {f(w):.1f}, upstream {f((u1-u0)/100):.1f}, proxy {f((p1-p0)/100):.1f} (user {f((s1-s0)/100):.1f}); total {f(w+(u1-u0)/100+(p1-p0)/100):.1f}; proxy context switches/request {(c1-c0)/tot:.2f}")
PY
}
priced=$pxpid
for _ in $(seq "$rounds"); do
pxpid=$priced
measure direct http://127.0.0.1:$up/health
measure proxied http://127.0.0.1:$px/health "$auth"
pxpid=$freepid
measure proxied-free http://127.0.0.1:$free/health
if [ -n "$ngx" ]; then pxpid=$ngxpid; measure proxied-nginx http://127.0.0.1:$ngx/health; fi
pxpid=$barepid; measure proxied-bare-hyper http://127.0.0.1:$bare/health
done
