#!/usr/bin/env python3
"""The official MCP Python SDK as the client of `l402-mcp serve`.

Usage:
  mcp_client.py --scenario NAME --gateway BASE --transport stdio -- CMD ARGS...
  mcp_client.py --scenario NAME --gateway BASE --transport http|sse --url URL [--token T]

Scenarios (each exits non-zero with a message on the first failed check):
  full          initialize; tools/list (four tools, valid JSON Schemas,
                annotations); every tool against the gateway, structured
                content validated against each tool's output schema; progress
                while paying; refusals (over cap, SSRF) returned as isError.
  two-sessions  two sessions at once each pay POST /v1/generate (250 sats)
                from their own budget (run the server with --budget 300
                --max-fee 0: one shared budget could pay only once).
  approve       --approve-above below the price: a client without
                elicitation is refused with a sentence naming the threshold,
                one whose user declines is refused, one whose user accepts pays.
  cancel-before-paying
                against the test's hold proxy (serve --approve-above 50): the
                client cancels l402_fetch /v1/data from its elicitation callback
                instead of answering, then l402_fetch /v1/demo while the proxy
                holds its 402 (on hearing "requesting"), opens that gate once
                the server has read the cancellation, and closes the session.
                The test reads the store after serve exits.
  cancel-while-paying
                against the hold proxy holding POST /dev/pay: the client cancels
                l402_fetch /v1/demo on hearing "paying", opens the gate once
                the server has read the cancellation, and closes the session at
                once. The test reads the store after serve exits.
Prints one JSON object with what it saw.
"""

import argparse
import asyncio
import json
import sys

import anyio
import httpx2
import jsonschema
import mcp_types as types
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

TOOLS = {"l402_fetch", "preview_cost", "list_tokens", "spend_summary"}
READ_ONLY = {"preview_cost", "list_tokens", "spend_summary"}


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def server_target(args):
    if args.transport == "stdio":
        return StdioServerParameters(command=args.command[0], args=args.command[1:])
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if args.transport == "http":
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0))
        return streamable_http_client(args.url, http_client=http)
    return sse_client(args.url, headers=headers, timeout=30.0)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


class Tools:
    """The listed tools, with validators for their output schemas."""

    def __init__(self, listed):
        self.by_name = {t.name: t for t in listed.tools}
        self.validators = {}
        for t in listed.tools:
            jsonschema.Draft202012Validator.check_schema(t.input_schema)
            check(t.output_schema is not None, f"{t.name} has no output schema")
            jsonschema.Draft202012Validator.check_schema(t.output_schema)
            self.validators[t.name] = jsonschema.Draft202012Validator(t.output_schema)

    async def call(self, client, name, arguments, ok=True, **kw):
        result = await client.call_tool(name, arguments, **kw)
        text = text_of(result)
        if ok is None:  # either outcome; the caller looks
            pass
        elif ok:
            check(not result.is_error, f"{name} {arguments} failed: {text}")
            check(result.structured_content is not None, f"{name}: no structured content")
            errors = list(self.validators[name].iter_errors(result.structured_content))
            check(not errors, f"{name}: structured content does not match the output schema: {errors[:3]}")
            check(text.strip(), f"{name}: no text summary")
        else:
            check(result.is_error, f"{name} {arguments} should have been refused, got: {text}")
        return result


MODE = "legacy"


async def connect_and_list(client):
    handshake = client.session.initialize_result is not None
    if MODE == "legacy" or (MODE == "auto" and handshake):
        init = client.session.initialize_result
        check(init is not None, "no initialize result: the handshake did not run")
    else:
        # 2026-07-28: no handshake; the version rides on every request.
        init = None
        want = "2026-07-28" if MODE == "auto" else MODE
        check(client.protocol_version == want, f"protocol version {client.protocol_version!r}, not {want}")
        # In auto mode the client asked the server (server/discover); pinned,
        # it did not.
        if MODE == "auto":
            found = client.session.discover_result
            check(found is not None and want in found.supported_versions, f"server/discover: {found}")
            check(found.instructions and "Lightning" in found.instructions, f"server/discover: {found}")
            check(found.capabilities.tools is not None, "no tools capability")
    if init is not None:
        check(client.server_info.name == "l402-mcp", f"server name {client.server_info.name!r}")
        check(client.instructions, "no instructions")
        check(client.server_capabilities.tools is not None, "no tools capability")
    listed = await client.list_tools()
    names = {t.name for t in listed.tools}
    check(names == TOOLS, f"tools {sorted(names)}")
    tools = Tools(listed)
    for t in listed.tools:
        check(t.description and len(t.description) > 80, f"{t.name}: description too thin")
        check(t.annotations is not None, f"{t.name}: no annotations")
        check(bool(t.annotations.read_only_hint) == (t.name in READ_ONLY), f"{t.name}: readOnlyHint {t.annotations.read_only_hint}")
        # l402_fetch spends money and can send DELETE/PUT/PATCH: a client
        # asks before a destructive tool, so it must say so.
        check(bool(t.annotations.destructive_hint) == (t.name == "l402_fetch"), f"{t.name}: destructiveHint {t.annotations.destructive_hint}")
        # No schemars integer formats (uint64, ...): strict validators warn on each.
        schemas = json.dumps([t.input_schema, t.output_schema])
        check('"format": "uint' not in schemas and '"format": "int' not in schemas, f"{t.name}: integer format in its schemas")
    props = tools.by_name["l402_fetch"].input_schema["properties"]
    for field in ("url", "method", "headers", "body", "max_cost_msat"):
        check(field in props and props[field].get("description"), f"l402_fetch.{field} undescribed")
    check(tools.by_name["l402_fetch"].input_schema.get("required") == ["url"], "only url is required")
    return init, tools


async def full(args):
    gw = args.gateway
    demo = f"{gw}/v1/demo"
    seen = {}
    async with Client(server_target(args), mode=args.mode) as client:
        init, tools = await connect_and_list(client)
        seen["protocol_version"] = client.protocol_version

        # Nothing bought yet: the price, every check, nothing paid.
        r = await tools.call(client, "preview_cost", {"url": demo})
        p = r.structured_content
        check(p["payment_required"] and p["price_msat"] == 21_000, f"preview: {p}")
        check(p["would_pay"], f"preview says it would not pay: {p}")
        names = {c["name"] for c in p["checks"]}
        check({"invoice", "amount", "expiry", "network", "payment_hash", "cap", "budget"} <= names, f"checks {names}")
        check(p["budget"]["spent_msat"] == 0, "a preview spent money")
        check(p["scheme"] == "l402" and p["prefer_scheme"] == "l402", f"preview scheme: {p}")
        # The demo's Payment route: preview names the scheme it would pay.
        r = await tools.call(client, "preview_cost", {"url": gw + "/v1/charge"})
        p = r.structured_content
        check(p["would_pay"] and p["price_msat"] == 5_000 and p["scheme"] == "payment", f"preview of a Payment route: {p}")
        check("Payment credential" in r.content[0].text, f"preview text: {r.content[0].text}")

        # Pay: 402, paid, 200; progress while paying.
        progress = []

        async def on_progress(value, total, message):
            progress.append({"progress": value, "total": total, "message": message})

        r = await tools.call(client, "l402_fetch", {"url": demo}, progress_callback=on_progress)
        f = r.structured_content
        check(f["status"] == 200 and f["receipt"]["paid"], f"first fetch: {f}")
        check(f["receipt"]["amount_msat"] == 21_000, f"receipt: {f['receipt']}")
        check("Hello from behind the paywall" in f["body"] and f["body_encoding"] == "text", "body")
        check("untrusted" in f["notice"] and "<untrusted-content" in text_of(r), "untrusted marking")
        check(any("paying 21 sats" in (m["message"] or "") for m in progress), f"progress: {progress}")
        seen["progress"] = progress
        session = f["receipt"]["session"]

        # Again: the token is reused, nothing paid.
        r = await tools.call(client, "l402_fetch", {"url": demo, "method": "get"})
        f = r.structured_content
        check(f["status"] == 200 and not f["receipt"]["paid"] and f["receipt"]["amount_msat"] == 0, f"second fetch: {f}")

        # A binary-safe body and a POST with a body, single-use token.
        r = await tools.call(
            client,
            "l402_fetch",
            {"url": f"{gw}/v1/generate", "method": "POST", "body": '{"prompt": "hi"}', "headers": {"Content-Type": "application/json"}},
        )
        check(r.structured_content["receipt"]["amount_msat"] == 250_000, f"generate: {r.structured_content}")

        # Tokens, never their secrets.
        r = await tools.call(client, "list_tokens", {})
        toks = r.structured_content["tokens"]
        # (The generate service's 401 to the demo token marks that one stale:
        # a known client-core gap; the statuses are the store's.)
        check(len(toks) == 2 and {t["status"] for t in toks} <= {"paid", "stale"}, f"tokens: {toks}")
        check({t["amount_msat"] for t in toks} == {21_000, 250_000}, f"tokens: {toks}")
        raw = json.dumps(r.structured_content) + text_of(r)
        check("macaroon" not in raw.lower() and "preimage" not in raw.lower(), "a secret leaked into list_tokens")

        # The session's spend and all time.
        r = await tools.call(client, "spend_summary", {})
        s = r.structured_content
        check(s["session"]["session"] == session, f"session {s['session']['session']} vs {session}")
        check(s["session"]["spent_msat"] == 271_000 and s["session"]["payments"] == 2, f"spend: {s['session']}")
        check(s["all_time"]["by_origin"][0]["spent_msat"] == 271_000, f"all time: {s['all_time']}")
        check(len(s["payments"]) == 2, "payments listed")

        # Refusals: tool results with isError and a sentence; nothing paid.
        r = await tools.call(client, "l402_fetch", {"url": f"{gw}/v1/data", "max_cost_msat": 50_000}, ok=False)
        t = text_of(r)
        check("asks 100 sats; the per-request cap is 50 sats" in t and "Nothing was paid" in t, f"over cap: {t}")
        seen["over_cap"] = t
        r = await tools.call(client, "l402_fetch", {"url": "http://169.254.169.254/latest/meta-data/"}, ok=False)
        check("url_refused" in text_of(r), f"SSRF: {text_of(r)}")
        r = await tools.call(client, "preview_cost", {"url": "not a url"}, ok=False)
        check("not a valid URL" in text_of(r), f"bad url: {text_of(r)}")
        r = await tools.call(client, "spend_summary", {})
        check(r.structured_content["session"]["spent_msat"] == 271_000, "a refusal spent money")

        # A request that cannot be processed at all is a JSON-RPC error.
        try:
            await client.call_tool("no_such_tool", {})
            raise Failed("an unknown tool did not raise")
        except Failed:
            raise
        except Exception as e:  # McpError
            seen["unknown_tool_error"] = str(e)
    seen["ok"] = True
    return seen


async def two_sessions(args):
    url = f"{args.gateway}/v1/generate"

    async def one(i):
        async with Client(server_target(args), mode=args.mode) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "l402_fetch", {"url": url, "method": "POST", "body": f"prompt {i}"})
            receipt = r.structured_content["receipt"]
            check(receipt["paid"] and receipt["amount_msat"] == 250_000, f"session {i}: {receipt}")
            r = await tools.call(client, "spend_summary", {})
            s = r.structured_content["session"]
            check(s["budget_msat"] == 300_000 and s["spent_msat"] == 250_000 and s["left_msat"] == 50_000, f"session {i}: {s}")
            # Its own budget is spent: a second purchase is refused.
            r = await tools.call(client, "l402_fetch", {"url": url, "method": "POST", "body": "again"}, ok=False)
            check("over_budget" in text_of(r), f"session {i} second purchase: {text_of(r)}")
            return s["session"]

    names = await asyncio.gather(one(1), one(2))
    check(names[0] != names[1], f"both sessions named {names[0]}")
    return {"ok": True, "sessions": names}


async def sessions_share_the_server_budget(args):
    """Four sessions of one server, whose server budget is one session's
    (the default): together they buy once, the others are refused."""
    url = f"{args.gateway}/v1/generate"

    async def one(i):
        async with Client(server_target(args), mode=args.mode) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "l402_fetch", {"url": url, "method": "POST", "body": f"prompt {i}"}, ok=None)
            s = (await tools.call(client, "spend_summary", {})).structured_content["session"]
            return (not r.is_error and r.structured_content["receipt"]["paid"], text_of(r), s)

    results = await asyncio.gather(*(one(i) for i in range(4)))
    paid = [r for r in results if r[0]]
    check(len(paid) == 1, f"{len(paid)} sessions paid: {results}")
    for ok, text, s in results:
        if not ok:
            check("over_server_budget" in text, f"refusal: {text}")
        check(s["server_budget_msat"] == 300_000, f"server budget: {s}")
    return {"ok": True, "paid": len(paid)}


async def approve(args):
    url = f"{args.gateway}/v1/demo"
    seen = {}

    # No elicitation: refused, and the sentence says how to raise the threshold.
    async with Client(server_target(args), mode=args.mode) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "preview_cost", {"url": url})
        check(not r.structured_content["would_pay"], "preview should show approval as unavailable")
        r = await tools.call(client, "l402_fetch", {"url": url}, ok=False)
        check("--approve-above" in text_of(r), f"no elicitation: {text_of(r)}")
        seen["unavailable"] = text_of(r)

    asked = []

    async def decline(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with Client(server_target(args), mode=args.mode, elicitation_callback=decline) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "l402_fetch", {"url": url}, ok=False)
        check("not approved" in text_of(r), f"declined: {text_of(r)}")
        seen["declined"] = text_of(r)

    async def accept(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async with Client(server_target(args), mode=args.mode, elicitation_callback=accept) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "l402_fetch", {"url": url})
        check(r.structured_content["receipt"]["paid"], f"accepted: {r.structured_content}")
    check(len(asked) == 2 and "21 sats" in asked[0], f"questions: {asked}")
    seen["question"] = asked[0]
    seen["ok"] = True
    return seen


class Abandoned:
    """One tools/call this client gives up on. Cancelling the task that awaits
    it is how the SDK cancels a request: it writes notifications/cancelled
    with the request's id before the task ends."""

    def __init__(self, client, name, arguments, **kw):
        self.call = (client, name, arguments, kw)
        self.scope = anyio.CancelScope()
        self.ended = anyio.Event()
        self.result = None

    def start(self, tg):
        client, name, arguments, kw = self.call

        async def run():
            try:
                with self.scope:
                    self.result = await client.call_tool(name, arguments, **kw)
            finally:
                self.ended.set()

        tg.start_soon(run)

    async def cancelled(self):
        """Waits until the call was cancelled (by `cancel()` or from a
        callback) and its notifications/cancelled written."""
        await self.ended.wait()
        check(self.scope.cancelled_caught, f"{self.call[1]} was not cancelled")
        check(self.result is None, f"{self.call[1]} answered: {self.result}")

    async def cancel(self):
        self.scope.cancel()
        await self.cancelled()


async def read_by_server(client, tools):
    """Returns once the server has read every message sent before: it reads
    them in order, and answers this request after them."""
    await tools.call(client, "list_tokens", {})


async def open_gate(gateway, gate):
    """Opens one of the test proxy's gates."""
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{gateway}/__test/release/{gate}")
        check(r.status_code == 200, f"opening the {gate} gate: {r.status_code}")


async def cancel_before_paying(args):
    gw = args.gateway
    seen = {}
    asked = []
    data = None

    async def cancel_instead_of_answering(context, params):
        asked.append(params.message)
        data.scope.cancel()
        await anyio.sleep_forever()

    async with Client(server_target(args), mode=args.mode, elicitation_callback=cancel_instead_of_answering) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "spend_summary", {})
        seen["session"] = r.structured_content["session"]["session"]

        requesting = anyio.Event()

        async def on_progress(value, total, message):
            if (message or "").startswith("requesting"):
                requesting.set()

        async with anyio.create_task_group() as tg:
            # 100 sats: the server asks the user, who cancels the call instead.
            data = Abandoned(client, "l402_fetch", {"url": f"{gw}/v1/data"})
            data.start(tg)
            await data.cancelled()
            check(len(asked) == 1 and "100 sats" in asked[0], f"questions: {asked}")

            # 21 sats, no question: cancelled while the server waits for its 402.
            demo = Abandoned(client, "l402_fetch", {"url": f"{gw}/v1/demo"}, progress_callback=on_progress)
            demo.start(tg)
            await requesting.wait()
            await demo.cancel()
            # Only once the server has read the cancellation does the 402 come.
            await read_by_server(client, tools)
            await open_gate(gw, "challenge")
        # Leaving closes stdin; serve finishes the cancelled calls, then exits.
    seen["question"] = asked[0]
    seen["ok"] = True
    return seen


async def cancel_after_redirect(args):
    """Two calls in flight: B waits on another origin; A is redirected from
    that origin to the paid one and cancelled before its 402 comes. A's
    payment must not start, whatever else is in flight."""
    gw, other = args.gateway, args.redirector
    async with Client(server_target(args), mode=args.mode) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "spend_summary", {})
        session = r.structured_content["session"]["session"]
        requesting = {"a": anyio.Event(), "b": anyio.Event()}

        def heard(name):
            async def on_progress(value, total, message):
                if (message or "").startswith("requesting"):
                    requesting[name].set()
            return on_progress

        async with anyio.create_task_group() as tg:
            b = Abandoned(client, "l402_fetch", {"url": f"{other}/hold"}, progress_callback=heard("b"))
            b.start(tg)
            await requesting["b"].wait()
            a = Abandoned(client, "l402_fetch", {"url": f"{other}/start"}, progress_callback=heard("a"))
            a.start(tg)
            await requesting["a"].wait()
            await a.cancel()
            await read_by_server(client, tools)
            # A's 402 comes now, while B is still in flight.
            await open_gate(gw, "challenge")
            await anyio.sleep(1.0)
            await b.cancel()
    return {"ok": True, "session": session}


async def cancel_while_paying(args):
    url = f"{args.gateway}/v1/demo"
    seen = {}
    async with Client(server_target(args), mode=args.mode) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "spend_summary", {})
        seen["session"] = r.structured_content["session"]["session"]
        paying = anyio.Event()
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)
            if (message or "").startswith("paying"):
                paying.set()

        async with anyio.create_task_group() as tg:
            call = Abandoned(client, "l402_fetch", {"url": url}, progress_callback=on_progress)
            call.start(tg)
            # "paying" comes once the payment started (the proxy holds it).
            await paying.wait()
            await call.cancel()
            await read_by_server(client, tools)
            await open_gate(args.gateway, "pay")
        # Leaving at once closes stdin: serve must still record the payment
        # (the test reads the store after it exits).
    check(any((m or "").startswith("requesting") for m in progress), f"progress: {progress}")
    seen["progress"] = progress
    seen["ok"] = True
    return seen


async def agents(args):
    """serve --http with two agents (alice, bob: 300 sats each) declared in
    its config file. Each agent's token opens its budget, whatever client
    or connection carries it; two clients holding alice's token share
    alice's budget; no token, or a wrong one, is refused."""
    url = f"{args.gateway}/v1/generate"
    tokens = dict(t.split("=", 1) for t in args.agent_tokens)

    def as_agent(name):
        a = argparse.Namespace(**vars(args))
        a.token = tokens[name]
        return a

    async def buy(name, body, ok):
        async with Client(server_target(as_agent(name)), mode=args.mode) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "l402_fetch", {"url": url, "method": "POST", "body": body}, ok=ok)
            s = (await tools.call(client, "spend_summary", {})).structured_content["session"]
            return text_of(r), r.structured_content, s

    # Alice and Bob at once, each from a budget of their own.
    (_, fa, sa), (_, fb, sb) = await asyncio.gather(buy("alice", "a1", True), buy("bob", "b1", True))
    check(fa["receipt"]["session"] == "agent-alice" and fb["receipt"]["session"] == "agent-bob", f"sessions: {fa['receipt']}, {fb['receipt']}")
    check(sa["budget_msat"] == 300_000 and sa["spent_msat"] == 250_000, f"alice: {sa}")
    check(sb["budget_msat"] == 300_000 and sb["spent_msat"] == 250_000, f"bob: {sb}")
    # A new client with alice's token is still alice: her budget is spent.
    text, _, s = await buy("alice", "a2", False)
    check("over_budget" in text, f"alice's second client: {text}")
    check(s["session"] == "agent-alice" and s["spent_msat"] == 250_000, f"alice after: {s}")
    # No token at all, or the operator's-looking wrong one: 401.
    for auth in ({}, {"Authorization": "Bearer " + "0" * 40}):
        async with httpx2.AsyncClient() as h:
            r = await h.post(args.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                             headers={"Accept": "application/json, text/event-stream", **auth})
        check(r.status_code == 401 and "bearer token" in r.text, f"without an agent's token: {r.status_code} {r.text}")
    return {"ok": True, "alice": sa, "bob": sb}


async def sessionless_budget(args):
    """2026-07-28 over HTTP without agents: no sessions, so a new client is
    no new budget. Two clients, one after the other, buy from one budget
    (300 sats): the second purchase is refused."""
    url = f"{args.gateway}/v1/generate"
    results = []
    for i in range(2):
        async with Client(server_target(args), mode=args.mode) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "l402_fetch", {"url": url, "method": "POST", "body": f"p{i}"}, ok=None)
            s = (await tools.call(client, "spend_summary", {})).structured_content["session"]
            results.append((r.is_error, text_of(r), s))
    check(not results[0][0], f"first purchase: {results[0][1]}")
    check(results[1][0] and "over_budget" in results[1][1], f"second client: {results[1][1]}")
    check(results[0][2]["session"] == results[1][2]["session"], f"two budgets: {results[0][2]['session']} vs {results[1][2]['session']}")
    return {"ok": True, "session": results[0][2]["session"]}


def browser():
    """Headless Debian Chromium through its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


async def approve_url(args):
    """2026-07-28, --approve-above below the price: the server answers
    input_required with a URL-mode elicitation of its approval page; the
    person (headless Chromium) reads the payment there and approves or
    declines it; the client's retry pays, or is refused. A client that
    cannot show a URL is refused with the sentence it gets today."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    url = f"{args.gateway}/v1/demo"
    seen = {"pages": []}
    driver = await asyncio.to_thread(browser)
    try:
        def on_page(page_url, press):
            driver.get(page_url)
            shown = {k: driver.find_element(By.ID, k).text for k in ("amount", "fee", "url", "payee", "left")}
            driver.find_element(By.ID, press).click()
            try:
                decided = WebDriverWait(driver, 10).until(
                    expected_conditions.presence_of_element_located((By.ID, "decision"))).text
            except Exception:
                raise Failed(f"after pressing {press}, the page says: {driver.page_source[:600]}")
            return shown, decided

        def callback(press):
            async def elicit(context, params):
                check(params.mode == "url", f"elicitation mode {params.mode!r}")
                check(params.url.startswith("http://127.0.0.1:"), f"page {params.url}")
                check("wants to pay" in params.message and " sats" in params.message, f"message: {params.message}")
                shown, decided = await asyncio.to_thread(on_page, params.url, press)
                seen["pages"].append({"url": params.url, "shown": shown, "decided": decided})
                # accept: the person went to the page (their decision is there).
                return types.ElicitResult(action="accept")
            return elicit

        # Approve on the page: paid.
        async with Client(server_target(args), mode=args.mode, elicitation_callback=callback("approve")) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "preview_cost", {"url": url})
            check(r.structured_content["would_pay"], f"preview with a URL-capable client: {r.structured_content}")
            r = await tools.call(client, "l402_fetch", {"url": url})
            check(r.structured_content["receipt"]["paid"], f"approved: {r.structured_content}")
            page = seen["pages"][0]
            check(page["shown"]["amount"] == "21 sats" and page["shown"]["url"] == url, f"page showed {page['shown']}")
            check(page["decided"].startswith("Approved"), f"page said {page['decided']}")
            # The approval paid once: its page now says so, and cannot be reused.
            await asyncio.to_thread(driver.get, page["url"])
            again = await asyncio.to_thread(lambda: driver.find_element(By.ID, "decision").text)
            check("paid" in again, f"used approval's page: {again}")

        # Decline on the page: refused, nothing paid.
        async with Client(server_target(args), mode=args.mode, elicitation_callback=callback("decline")) as client:
            _, tools = await connect_and_list(client)
            r = await tools.call(client, "l402_fetch", {"url": f"{args.gateway}/v1/data"}, ok=False)
            check("not approved" in text_of(r) and "declined it on the approval page" in text_of(r), f"declined: {text_of(r)}")
            seen["declined"] = text_of(r)
    finally:
        await asyncio.to_thread(driver.quit)

    # No elicitation at all: the sentence of today (/v1/data: never paid).
    async with Client(server_target(args), mode=args.mode) as client:
        _, tools = await connect_and_list(client)
        r = await tools.call(client, "l402_fetch", {"url": f"{args.gateway}/v1/data"}, ok=False)
        check("--approve-above" in text_of(r), f"no elicitation: {text_of(r)}")
    seen["ok"] = True
    return seen


def first_failure(e):
    if isinstance(e, Failed):
        return e
    for inner in getattr(e, "exceptions", ()):
        found = first_failure(inner)
        if found is not None:
            return found
    return None


def main():
    ap = argparse.ArgumentParser()
    scenarios = ["full", "two-sessions", "server-budget", "approve", "cancel-before-paying",
                 "cancel-after-redirect", "cancel-while-paying", "agents", "sessionless-budget",
                 "approve-url"]
    ap.add_argument("--scenario", required=True, choices=scenarios)
    ap.add_argument("--transport", required=True, choices=["stdio", "http", "sse"])
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--url")
    ap.add_argument("--token")
    ap.add_argument("--redirector", help="a second origin (cancel-after-redirect)")
    ap.add_argument("--mode", default="legacy", help="legacy (the initialize handshake), 2026-07-28, or auto")
    ap.add_argument("--agent-token", dest="agent_tokens", action="append", default=[], help="NAME=TOKEN (agents)")
    ap.add_argument("command", nargs="*")
    args = ap.parse_args()
    run = {
        "full": full,
        "two-sessions": two_sessions,
        "server-budget": sessions_share_the_server_budget,
        "approve": approve,
        "cancel-before-paying": cancel_before_paying,
        "cancel-after-redirect": cancel_after_redirect,
        "cancel-while-paying": cancel_while_paying,
        "agents": agents,
        "sessionless-budget": sessionless_budget,
        "approve-url": approve_url,
    }[args.scenario]
    global MODE
    MODE = args.mode
    try:
        seen = asyncio.run(asyncio.wait_for(run(args), timeout=120))
    except BaseException as e:  # anyio wraps failures in exception groups
        failed = first_failure(e)
        if failed is None:
            raise
        print(f"FAILED ({args.scenario} over {args.transport} at {args.mode}): {failed}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
