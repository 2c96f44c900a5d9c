#!/usr/bin/env python3
"""The packed MCP Bundle, started as a host starts it, driven by the official
MCP Python SDK. Run by scripts/bundle-check.sh.

Usage:
  mcpb_bundle.py --bundle FILE.mcpb --mcpb-dir DIR [--manifest bundle/manifest.json]

DIR is scripts/mcpb.sh's install dir. Each check prints "ok    ..." or
"FAIL  ..."; the exit status is the number of failures (0: all passed).

1. `mcpb unpack` into a temporary directory; the manifest inside is the
   template (bundle/manifest.json) with the version and platform filled in,
   and server/l402-mcp is an executable.
2. The command a host runs: @anthropic-ai/mcpb's own getMcpConfigForManifest
   (tests/mcpb/host_config.mjs) on the unpacked manifest, a user's settings
   and the extension's directory, checked against this file's reading of the
   spec (MANIFEST.md: ${__dirname}, ${HOME}..., ${pathSeparator} and ${/},
   ${user_config.KEY} with the user's value, else the field's default).
3. The unpacked binary's own dev gateway (`gateway` on 127.0.0.1, a free
   port), as the payer's dev node and the API to pay.
4. The server started exactly so (command, args, env over the SDK's default
   environment, HOME a temporary directory so that its store is too):
   - settings with a dev node and limits: tools/list is the manifest's tools,
     names and descriptions; spend_summary shows the limits set; l402_fetch
     pays for /v1/demo (21 sats) and gets 200.
   - only a dev node: the manifest's defaults are the limits.
   - only a wallet (the sensitive field: a sample Nostr Wallet Connect string
     whose relay is a closed loopback port): the server fails to reach the
     wallet and says so, and neither the string nor its secret is in stderr;
     the same with the blanks passed as "" (what a host sends for a field left
     empty), and with a dev node too (two payers, refused).
   In every run the secret is checked against the server's stderr.
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MCPB_SH = REPO / "scripts" / "mcpb.sh"
HOST_CONFIG = REPO / "tests" / "mcpb" / "host_config.mjs"

failures = 0


def report(ok, what, detail=""):
    global failures
    print(f"{'ok   ' if ok else 'FAIL '} {what}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures += 1
    return ok


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


# ---------------------------------------------------------------- the spec


def substitute(manifest, ext_dir, user_config, system_dirs):
    """mcp_config with its variables replaced, as MANIFEST.md says."""
    variables = {"__dirname": str(ext_dir), "pathSeparator": os.sep, "/": os.sep, **system_dirs}
    merged = {k: v["default"] for k, v in manifest.get("user_config", {}).items() if "default" in v}
    merged.update(user_config)
    for key, value in merged.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            value = str(int(value))
        variables[f"user_config.{key}"] = value if isinstance(value, list) else str(value)

    def one(text):
        def repl(m):
            v = variables.get(m.group(1))
            return m.group(0) if v is None or isinstance(v, list) else v

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    config = manifest["server"]["mcp_config"]
    return {
        "command": one(config["command"]),
        "args": [one(a) for a in config.get("args", [])],
        "env": {k: one(v) for k, v in config.get("env", {}).items()},
    }


def host_config(mcpb_dir, manifest, ext_dir, user_config, system_dirs):
    """What @anthropic-ai/mcpb's getMcpConfigForManifest makes of it."""
    payload = json.dumps(
        {"manifest": manifest, "extensionPath": str(ext_dir), "userConfig": user_config, "systemDirs": system_dirs}
    )
    out = subprocess.run(
        ["bash", str(MCPB_SH), "--node", str(HOST_CONFIG)],
        input=payload,
        capture_output=True,
        text=True,
        env={**os.environ, "L402_MCPB_DIR": str(mcpb_dir)},
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def how_a_host_starts_it(mcpb_dir, manifest, ext_dir, user_config, system_dirs, what):
    theirs = host_config(mcpb_dir, manifest, ext_dir, user_config, system_dirs)
    ours = substitute(manifest, ext_dir, user_config, system_dirs)
    theirs_cmp = {k: theirs.get(k, [] if k == "args" else {}) for k in ("command", "args", "env")}
    report(theirs_cmp == ours, f"{what}: getMcpConfigForManifest agrees with the spec's substitution", f"{theirs} vs {ours}")
    leftover = [v for v in [theirs["command"], *theirs["args"], *theirs["env"].values()] if "${" in v]
    report(not leftover, f"{what}: every variable substituted", f"{leftover}")
    return theirs


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """The bundle's binary as the demo gateway on its dev node."""

    def __init__(self, binary, data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(data_dir / "gateway.log", "w+")
        self.proc = subprocess.Popen(
            [str(binary), "gateway", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.base = None
        for _ in range(200):
            self.log.seek(0)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read())
            if m:
                self.base = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.base is None:
            self.stop()
            self.log.seek(0)
            raise Failed(f"the gateway did not start: {self.log.read()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def structured(result, name):
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    check(not result.is_error, f"{name} failed: {text}")
    check(result.structured_content is not None, f"{name}: no structured content")
    return result.structured_content


async def paid_session(config, errlog, manifest_tools, gateway, limits):
    """tools/list, spend_summary's limits, and a paid l402_fetch."""
    params = StdioServerParameters(command=config["command"], args=config["args"], env=config["env"])
    seen = {}
    async with Client(stdio_client(params, errlog=errlog)) as client:
        listed = await client.list_tools()
        served = sorted((t.name, t.description) for t in listed.tools)
        wanted = sorted((t["name"], t["description"]) for t in manifest_tools)
        check(served == wanted, f"tools/list {[n for n, _ in served]} is not the manifest's tools (names and descriptions)")
        seen["tools"] = [n for n, _ in served]
        s = structured(await client.call_tool("spend_summary", {}), "spend_summary")
        got = {
            "max_cost_sats": s["limits"]["max_cost_msat"] // 1000,
            "budget_sats": s["session"]["budget_msat"] // 1000,
            "approve_above_sats": (s["limits"].get("approve_above_msat") or 0) // 1000 or None,
            "payments_per_minute": s["limits"]["payments_per_minute"],
            "daily_cap_sats": (s["limits"].get("daily_cap_msat") or 0) // 1000 or None,
        }
        check(got == limits, f"the server's limits {got}, not the settings' {limits}")
        seen["limits"] = got
        if gateway is not None:
            f = structured(await client.call_tool("l402_fetch", {"url": f"{gateway}/v1/demo"}), "l402_fetch")
            check(f["status"] == 200 and f["receipt"]["paid"], f"l402_fetch: {f}")
            check(f["receipt"]["amount_msat"] == 21_000, f"receipt: {f['receipt']}")
            check("Hello from behind the paywall" in f["body"], f"body: {f['body'][:200]}")
            seen["paid_msat"] = f["receipt"]["amount_msat"]
    return seen


def failing_start(config, home, timeout=60):
    """Starts the server as the host would and waits for it to give up."""
    env = {**host_environment(home), **config["env"]}
    proc = subprocess.run(
        [config["command"], *config["args"]],
        env=env,
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def host_environment(home):
    """The environment a host gives a server: a few inherited variables, HOME ours."""
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "TERM") if k in os.environ}
    return {**keep, "HOME": str(home), "USER": os.environ.get("USER", "user")}


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--mcpb-dir", required=True, type=Path)
    ap.add_argument("--manifest", type=Path, default=REPO / "bundle" / "manifest.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="l402-mcpb-check."))
    try:
        run(args, work)
    except Failed as e:
        report(False, "bundle check", str(e))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'all passed' if failures == 0 else f'{failures} failed'}")
    return min(failures, 100)


def run(args, work):
    # 1. Unpack as a host does.
    ext = work / "extension"
    subprocess.run(["bash", str(MCPB_SH), "--run", "unpack", str(args.bundle), str(ext)], check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((ext / "manifest.json").read_text())
    template = json.loads(args.manifest.read_text())
    cargo_version = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)
    filled = {**template, "version": cargo_version, "compatibility": manifest.get("compatibility")}
    report(manifest == filled, "unpacked manifest is bundle/manifest.json with the version and platform filled in")
    binary = ext / manifest["server"]["entry_point"]
    report(binary.is_file() and os.access(binary, os.X_OK), f"unpacked {manifest['server']['entry_point']} is executable")
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.split()
    report(version[-1:] == [cargo_version], f"unpacked binary is l402-mcp {cargo_version}", f"{version}")

    home = work / "home"
    home.mkdir()
    # What the SDK's stdio_client passes on (its default environment): HOME
    # is ours, so that the server's store and config live in the work dir.
    os.environ["HOME"] = str(home)
    system_dirs = {"HOME": str(home), "DESKTOP": str(home / "Desktop"), "DOCUMENTS": str(home / "Documents"), "DOWNLOADS": str(home / "Downloads")}
    defaults = {k: v.get("default") for k, v in manifest["user_config"].items()}

    # The secret: a sample Nostr Wallet Connect string, its relay a closed port.
    secret = secrets.token_hex(32)
    wallet = secrets.token_hex(32)
    nwc = f"nostr+walletconnect://{wallet}?relay=ws%3A%2F%2F127.0.0.1%3A{free_port()}&secret={secret}"
    check(manifest["user_config"]["nwc_uri"].get("sensitive") is True, "the wallet string is not marked sensitive")

    def secret_kept(stderr, what):
        leaked = [s for s in (secret, nwc) if s in stderr]
        report(not leaked, f"{what}: the wallet's secret is not in the server's stderr", f"found in: {stderr[:2000]}")

    gw = Gateway(binary, work / "gateway")
    try:
        # 2-4a. A dev node and limits of the user's own.
        settings = {"dev_node": gw.base, "max_cost_sats": 50, "budget_sats": 400, "approve_above_sats": 40, "payments_per_minute": 5, "daily_cap_sats": 900}
        config = how_a_host_starts_it(args.mcpb_dir, manifest, ext, settings, system_dirs, "dev node and limits")
        report(config["command"] == str(binary) and config["args"] == ["serve"], "the command is ${__dirname}/server/l402-mcp serve", f"{config}")
        errlog_path = work / "serve-1.log"
        with open(errlog_path, "w") as errlog:
            try:
                seen = asyncio.run(paid_session(config, errlog, manifest["tools"], gw.base, {k: settings[k] for k in settings if k != "dev_node"}))
                report(True, f"dev node and limits: tools/list {seen['tools']}, limits {seen['limits']}, l402_fetch paid {seen['paid_msat'] // 1000} sats, 200")
            except Failed as e:
                report(False, "dev node and limits: the paid session", str(e))
        secret_kept(errlog_path.read_text(), "dev node and limits")

        # 4b. Only a dev node: the manifest's defaults are the limits.
        config = how_a_host_starts_it(args.mcpb_dir, manifest, ext, {"dev_node": gw.base}, system_dirs, "only a dev node")
        errlog_path = work / "serve-2.log"
        with open(errlog_path, "w") as errlog:
            try:
                want = {k: defaults[k] for k in ("max_cost_sats", "budget_sats", "approve_above_sats", "payments_per_minute", "daily_cap_sats")}
                seen = asyncio.run(paid_session(config, errlog, manifest["tools"], None, want))
                report(True, f"only a dev node: the manifest's defaults are the limits {seen['limits']}")
            except Failed as e:
                report(False, "only a dev node: the defaults", str(e))

        # 4c. Only a wallet; then the blanks as ""; then two payers.
        blanks = {k: "" for k, v in manifest["user_config"].items() if v["type"] in ("string", "file", "directory")}
        for what, settings, expect in [
            ("only a wallet", {"nwc_uri": nwc}, "relay"),
            ("a wallet, the blanks as \"\"", {**blanks, "nwc_uri": nwc}, "relay"),
            ("a wallet and a dev node", {"nwc_uri": nwc, "dev_node": gw.base}, "payers are configured"),
        ]:
            config = how_a_host_starts_it(args.mcpb_dir, manifest, ext, settings, system_dirs, what)
            report(config["env"]["L402_NWC_URI"] == nwc, f"{what}: L402_NWC_URI is the wallet string")
            code, out, err = failing_start(config, home)
            report(code != 0 and expect in err.lower(), f"{what}: the server refuses to start and says why ({expect!r})", f"exit {code}, stderr {err[-1500:]}")
            secret_kept(err + out, what)
    finally:
        gw.stop()


if __name__ == "__main__":
    sys.exit(main())
