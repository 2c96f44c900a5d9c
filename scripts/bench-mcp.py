#!/usr/bin/env python3
"""Benchmark `l402-mcp serve` over stdio, with raw JSON-RPC (no SDK in the
measurement), against baselines measured in the same run.

  start     spawn -> initialize result, N times (baseline: spawn -> exit of
            `l402-mcp --version`, the process's own start cost)
  latency   tools/call list_tokens, CALLS times in a row, p50 and p99
            (baseline: `ping`, rmcp's own round trip without a tool)
  memory    resident set (VmRSS) after initialize and after CALLS calls

A gateway with its dev node runs on a loopback port so that the store holds
a token bought through the server itself. Loopback only; bounded counts.

Usage: scripts/bench-mcp.py [BINARY] [--starts N] [--calls N]
       (BINARY defaults to target/release/l402-mcp; build it first)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Server:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0

    def send(self, method, params=None, notify=False):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if not notify:
            self.next_id += 1
            msg["id"] = self.next_id
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        if notify:
            return None
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"server closed stdout waiting for {method}")
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def initialize(self):
        return self.send("initialize", {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        })

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="target/release/l402-mcp")
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    exe = os.path.abspath(args.binary)
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: cargo build --release first")

    with tempfile.TemporaryDirectory() as tmp:
        gw = subprocess.Popen([exe, "gateway", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "gw")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = None
            for line in gw.stderr:
                if "listening on http://" in line:
                    base = line.split("listening on ")[1].split()[0]
                    break
            if base is None:
                sys.exit("the gateway did not start")
            serve = [exe, "-q", "serve", "--dev-node", base, "--data-dir", os.path.join(tmp, "client"),
                     "--config", os.devnull]
            env_clean = {k: v for k, v in os.environ.items() if not k.startswith("L402_")}
            os.environ.clear()
            os.environ.update(env_clean)

            # Buy one token through the server, so list_tokens has a row.
            s = Server(serve)
            s.initialize()
            s.send("notifications/initialized", notify=True)
            r = s.send("tools/call", {"name": "l402_fetch", "arguments": {"url": f"{base}/v1/demo"}})
            assert not r.get("isError"), r
            s.close()

            # Start: spawn -> initialize result, vs spawn -> exit of --version.
            starts, base_starts = [], []
            for _ in range(args.starts):
                t = time.perf_counter()
                subprocess.run([exe, "--version"], stdout=subprocess.DEVNULL, check=True)
                base_starts.append(time.perf_counter() - t)
                t = time.perf_counter()
                s = Server(serve)
                s.initialize()
                starts.append(time.perf_counter() - t)
                s.close()

            # Latency and memory.
            s = Server(serve)
            s.initialize()
            s.send("notifications/initialized", notify=True)
            rss_start = s.rss_kib()
            for _ in range(50):  # warm-up
                s.send("tools/call", {"name": "list_tokens", "arguments": {}})
                s.send("ping")
            calls, pings = [], []
            for _ in range(args.calls):
                t = time.perf_counter()
                r = s.send("tools/call", {"name": "list_tokens", "arguments": {}})
                calls.append(time.perf_counter() - t)
                t = time.perf_counter()
                s.send("ping")
                pings.append(time.perf_counter() - t)
            assert len(r["structuredContent"]["tokens"]) == 1, r
            rss_end = s.rss_kib()
            s.close()
        finally:
            gw.terminate()
            gw.wait(timeout=10)

    ms = lambda x: f"{x * 1000:.2f} ms"
    print(f"start (spawn -> initialize result), {args.starts} runs: median {ms(statistics.median(starts))}, "
          f"p90 {ms(percentile(starts, 90))}; baseline `--version` median {ms(statistics.median(base_starts))}")
    print(f"tools/call list_tokens, {args.calls} calls: p50 {ms(percentile(calls, 50))}, p99 {ms(percentile(calls, 99))}; "
          f"baseline ping p50 {ms(percentile(pings, 50))}, p99 {ms(percentile(pings, 99))}")
    print(f"resident memory: {rss_start / 1024:.1f} MiB after initialize, "
          f"{rss_end / 1024:.1f} MiB after {args.calls} list_tokens + {args.calls} pings")
    ok = statistics.median(starts) < 0.020 and percentile(calls, 50) < 0.001 and rss_end < 20 * 1024
    print("goals (start < 20 ms, p50 < 1 ms, memory < 20 MiB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
