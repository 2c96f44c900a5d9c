#!/usr/bin/env python3
"""An agent that pays for an HTTP API through `l402-mcp serve`, over MCP stdio.

It uses the official MCP Python SDK (`pip install mcp`) the way any agent
framework would: spawn the server, initialize, list the tools, then

  1. preview_cost  -- what the URL costs and what every operator check says
  2. l402_fetch    -- fetch it, paying the L402 invoice if every check passes
  3. list_tokens   -- the token just bought (no secrets)
  4. spend_summary -- what this session spent and has left

Payments go through the embedded dev Lightning node of `l402-mcp gateway`
(regtest invoices only: no real money can move). Start one first:

    l402-mcp gateway                 # or: l402-mcp demo
    python examples/agent.py

or let the example start its own gateway on a free port:

    python examples/agent.py --spawn-gateway

Options: --binary PATH (default: $L402_MCP_BIN, `l402-mcp` on PATH, then
./target/{release,debug}/l402-mcp), --gateway URL (default
http://127.0.0.1:8402), --url URL (default <gateway>/v1/demo).

The run is hermetic: a temporary token store (unless --data-dir) and no
client config file, so your own settings and tokens are not touched.

Exit status: 0 when the fetch succeeded; 1 when a tool refused or failed
(its sentence is printed); 2 when the set-up is missing (no binary, no
gateway, no `mcp` package).
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TOOLS = ("l402_fetch", "preview_cost", "list_tokens", "spend_summary")
REPO = Path(__file__).resolve().parent.parent


class Failure(Exception):
    """A step failed; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- small helpers that work with both the 1.x and 2.x SDK result shapes ---


def field(obj: Any, *names: str, default: Any = None) -> Any:
    """The first attribute of `obj` found among `names` (snake or camel case)."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


def text_of(result: Any) -> str:
    """The text blocks of a tool result, joined."""
    parts = []
    for block in field(result, "content", default=[]):
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
    return "\n".join(parts)


def structured_of(result: Any) -> dict | None:
    """The structured content; failing that, the text if it is a JSON object."""
    data = field(result, "structured_content", "structuredContent")
    if data is None:
        try:
            data = json.loads(text_of(result))
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def is_error(result: Any) -> bool:
    return bool(field(result, "is_error", "isError", default=False))


def show(title: str, value: Any) -> None:
    print(f"\n== {title}")
    if isinstance(value, str):
        print(value)
    else:
        print(json.dumps(value, indent=2, sort_keys=True))


# --- set-up: the binary and the gateway ---


def find_binary(given: str | None) -> str:
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given
        raise Failure(f"--binary {given}: not an executable file", 2)
    candidates = [os.environ.get("L402_MCP_BIN"), shutil.which("l402-mcp")]
    candidates += [str(REPO / "target" / p / "l402-mcp") for p in ("release", "debug")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise Failure(
        "cannot find the l402-mcp binary: run `cargo install --path .` "
        "(it lands in ~/.cargo/bin), or pass --binary PATH",
        2,
    )


def gateway_up(base: str) -> bool:
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_gateway(binary: str, workdir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        binary, "gateway",
        "--listen", f"127.0.0.1:{port}",
        "--data-dir", os.path.join(workdir, "gateway"),
    ]
    print(f"starting a gateway: {' '.join(cmd)}", file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"the gateway exited at start (status {proc.returncode})", 2)
        if gateway_up(base):
            return proc, base
        time.sleep(0.1)
    proc.terminate()
    raise Failure(f"the gateway did not answer on {base}/health within 15 s", 2)


# --- the agent ---


async def run_agent(args: argparse.Namespace, binary: str, gateway: str, workdir: str) -> None:
    try:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError:
        raise Failure("the MCP Python SDK is missing: pip install mcp", 2) from None

    url = args.url or gateway.rstrip("/") + "/v1/demo"
    data_dir = args.data_dir or os.path.join(workdir, "client")
    server_args = [
        "serve",
        "--dev-node", gateway,
        "--data-dir", data_dir,
        # An empty config: no settings from your own config file.
        "--config", os.devnull,
        "--budget", str(args.budget),
        "--max-cost", str(args.max_cost),
    ]
    print(f"server: {binary} {' '.join(server_args)}", file=sys.stderr)
    params = StdioServerParameters(command=binary, args=server_args)

    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            info = field(init, "server_info", "serverInfo")
            print(f"connected to {field(info, 'name', default='?')} {field(info, 'version', default='')}")

            listed = await session.list_tools()
            names = [t.name for t in listed.tools]
            missing = [t for t in TOOLS if t not in names]
            show("tools", {t.name: (t.description or "").split("\n")[0] for t in listed.tools})
            if missing:
                raise Failure(f"the server does not offer {', '.join(missing)}")

            async def call(name: str, arguments: dict) -> Any:
                result = await session.call_tool(name, arguments)
                if is_error(result):
                    # A refusal: the sentence says why, and what would change it.
                    raise Failure(f"{name} refused: {text_of(result) or '(no text)'}")
                return result

            preview = await call("preview_cost", {"url": url})
            show(f"preview_cost {url}", text_of(preview))

            # max_cost_msat can only lower the operator's cap (--max-cost);
            # an agent passes the most it is willing to pay for this call, in
            # millisatoshis like every amount of the tools.
            fetched = await call("l402_fetch", {"url": url, "max_cost_msat": args.max_cost * 1000})
            data = structured_of(fetched) or {}
            show("l402_fetch", text_of(fetched))
            if "receipt" in data:
                show("receipt", data["receipt"])
            status = data.get("status")
            if isinstance(status, int) and not 200 <= status < 300:
                raise Failure(f"l402_fetch answered HTTP {status}")

            show("list_tokens", text_of(await call("list_tokens", {})))
            summary = await call("spend_summary", {})
            show("spend_summary", structured_of(summary) or text_of(summary))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", help="the l402-mcp binary")
    p.add_argument("--gateway", default="http://127.0.0.1:8402",
                   help="the gateway and dev node (default: %(default)s)")
    p.add_argument("--url", help="what to fetch (default: <gateway>/v1/demo)")
    p.add_argument("--spawn-gateway", action="store_true",
                   help="start `l402-mcp gateway` on a free port instead of using --gateway")
    p.add_argument("--data-dir", help="the token store's directory (default: a temporary one)")
    p.add_argument("--budget", type=int, default=1000, help="session budget, sats (default: %(default)s)")
    p.add_argument("--max-cost", type=int, default=100, help="per-request cap, sats (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=60, help="seconds for the whole run (default: %(default)s)")
    args = p.parse_args()

    try:
        import anyio  # a dependency of the mcp package
    except ImportError:
        print("error: the MCP Python SDK is missing: pip install mcp", file=sys.stderr)
        return 2

    try:
        binary = find_binary(args.binary)
        with tempfile.TemporaryDirectory(prefix="l402-agent-") as workdir:
            gateway_proc = None
            gateway = args.gateway
            try:
                if args.spawn_gateway:
                    gateway_proc, gateway = spawn_gateway(binary, workdir)
                elif not gateway_up(gateway):
                    raise Failure(
                        f"no gateway answers at {gateway}/health: start one with "
                        "`l402-mcp gateway` (or `l402-mcp demo`), or pass --spawn-gateway",
                        2,
                    )

                async def bounded() -> None:
                    with anyio.fail_after(args.timeout):
                        await run_agent(args, binary, gateway, workdir)

                anyio.run(bounded)
            finally:
                if gateway_proc is not None:
                    gateway_proc.terminate()
                    try:
                        gateway_proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        gateway_proc.kill()
                        gateway_proc.wait()
    except Exception as e:  # noqa: BLE001 -- every failure becomes one line and an exit status
        e = first_leaf(e)
        if isinstance(e, Failure):
            print(f"error: {e}", file=sys.stderr)
            return e.code
        if isinstance(e, TimeoutError):
            print(f"error: the run took longer than {args.timeout:g} s", file=sys.stderr)
            return 1
        # The SDK's errors, a server that died, ...
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("\nok")
    return 0


def first_leaf(e: BaseException) -> BaseException:
    """anyio wraps task failures in exception groups: the first real one."""
    group = getattr(builtins, "BaseExceptionGroup", None)
    while group is not None and isinstance(e, group) and e.exceptions:
        e = e.exceptions[0]
    return e


if __name__ == "__main__":
    sys.exit(main())
