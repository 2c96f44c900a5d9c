// A Nostr Wallet Connect (NIP-47) wallet for l402-mcp's tests: Alby's own
// NWCWalletService (npm @getalby/sdk) does the protocol (info event,
// subscription, decryption, answers); the small handler here pays through
// a test backend and can be told to misbehave.
//
// Run it through scripts/nwc-wallet.sh --run (Node 22 and the packages of
// tests/nwc-wallet/package-lock.json, installed by --install):
//
//   wallet.mjs --relay ws://127.0.0.1:PORT [--relay URL]...
//              --pay-via dev=http://127.0.0.1:PORT
//            | --pay-via lnd-rest=https://127.0.0.1:PORT --lnd-macaroon FILE --lnd-tls-cert FILE
//              [--lnd-fee-limit-msat N] [--network regtest] [--alias NAME]
//              [--balance-msat N] [--exit-on-eof]
//              [--fail-pay CODE [--fail-message TEXT]] [--answer-late-ms N]
//              [--never-answer] [--hold-pay-ms N] [--extra-fee-msat N] [--drop-expired]
//
// Stdout carries JSON lines only: first {"uri","wallet_pubkey","client_pubkey"}
// once the info event is published and the subscription answers (checked
// with Alby's NWCClient sending get_info through each relay), then one line
// per stdin command. Logs go to stderr, never the secret. Fresh random
// wallet and client keys every run (a restarted service with old keys would
// replay requests a relay stored).
//
// Stdin: one JSON object a line; its keys are applied together ("mode"
// first), then {"ok":true} (or {"ok":false,"error":...}) is printed; with
// "stats" the answer is the counters instead. Keys: "mode":"normal" (clear every
// fault), "fail_pay":CODE|null, "message":TEXT (fail_pay's message),
// "answer_late_ms":N, "never_answer":bool, "hold_pay_ms":N,
// "extra_fee_msat":N, "drop_expired":bool, "balance_msat":N,
// "reset_stats":true, "stats":true. SIGTERM, SIGINT (and stdin's end with
// --exit-on-eof) stop it cleanly.

import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import https from "node:https";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

// Stdout is the protocol: whatever a library prints goes to stderr.
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
for (const name of ["log", "info", "debug"]) console[name] = (...a) => console.error(...a);
const log = (...a) => console.error(`[nwc-wallet ${new Date().toISOString().slice(11, 23)}]`, ...a);
const die = (msg) => {
  log(`error: ${msg}`);
  process.exit(2);
};

log(`starting (pid ${process.pid})`);
if (Number(process.versions.node.split(".")[0]) < 22) {
  die(`@getalby/sdk 8 needs Node >= 22; this is ${process.version} (use scripts/nwc-wallet.sh --run)`);
}

// ------------------------------------------------------------- packages
// The packages live in the install directory of scripts/nwc-wallet.sh, not
// next to this file: resolve each through its package.json "exports".
const modulesDir = process.env.L402_NWC_WALLET_DIR || dirname(fileURLToPath(import.meta.url));
async function importPackage(name, sub = ".") {
  const root = join(modulesDir, "node_modules", name);
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  } catch (e) {
    die(`cannot read ${name} in ${modulesDir} (run scripts/nwc-wallet.sh --install): ${e.message}`);
  }
  const entry = pkg.exports?.[sub]?.import ?? (sub === "." ? pkg.module ?? pkg.main : undefined);
  if (!entry) die(`${name} exports no ${sub}`);
  return { mod: await import(pathToFileURL(join(root, entry)).href), version: pkg.version };
}
const { mod: nwc, version: sdkVersion } = await importPackage("@getalby/sdk", "./nwc");
const { NWCWalletService, NWCWalletServiceKeyPair, NWCClient } = nwc;
const { mod: bolt11 } = await importPackage("@getalby/lightning-tools", "./bolt11");
const { mod: pure } = await importPackage("nostr-tools", "./pure");
const { mod: utils } = await importPackage("nostr-tools", "./utils");

// ------------------------------------------------------------- flags
let args;
try {
  args = parseArgs({
    options: {
      relay: { type: "string", multiple: true },
      "pay-via": { type: "string" },
      "lnd-macaroon": { type: "string" },
      "lnd-tls-cert": { type: "string" },
      "lnd-fee-limit-msat": { type: "string", default: "100000" },
      network: { type: "string", default: "regtest" },
      alias: { type: "string", default: "l402-mcp test wallet (Alby NWCWalletService)" },
      "balance-msat": { type: "string" },
      "exit-on-eof": { type: "boolean", default: false },
      "fail-pay": { type: "string" },
      "fail-message": { type: "string" },
      "answer-late-ms": { type: "string" },
      "never-answer": { type: "boolean", default: false },
      "hold-pay-ms": { type: "string" },
      "extra-fee-msat": { type: "string" },
      "drop-expired": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  die(e.message);
}
if (args.help) {
  const me = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
  console.error(me.slice(0, me.findIndex((l) => l.startsWith("import"))).join("\n"));
  process.exit(0);
}
const relays = args.relay ?? [];
if (relays.length === 0) die("give at least one --relay ws://...");
const count = (flag, value) => {
  if (value === undefined || value === null) return 0;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} must be a whole number >= 0, not ${JSON.stringify(value)}`);
  return n;
};

// ------------------------------------------------------------- faults
const NORMAL = {
  fail_pay: null,
  message: null,
  answer_late_ms: 0,
  never_answer: false,
  hold_pay_ms: 0,
  extra_fee_msat: 0,
  drop_expired: false,
};
let faults = { ...NORMAL };
let balanceMsat = 1_000_000_000; // 1M sat unless told
let balanceGiven = false;
try {
  faults = {
    fail_pay: args["fail-pay"] ?? null,
    message: args["fail-message"] ?? null,
    answer_late_ms: count("--answer-late-ms", args["answer-late-ms"]),
    never_answer: args["never-answer"],
    hold_pay_ms: count("--hold-pay-ms", args["hold-pay-ms"]),
    extra_fee_msat: count("--extra-fee-msat", args["extra-fee-msat"]),
    drop_expired: args["drop-expired"],
  };
  if (args["balance-msat"] !== undefined) {
    balanceMsat = count("--balance-msat", args["balance-msat"]);
    balanceGiven = true;
  }
} catch (e) {
  die(e.message);
}

// ------------------------------------------------------------- backends
function devBackend(base) {
  base = base.replace(/\/+$/, "");
  const json = async (resp) => {
    const text = await resp.text();
    try {
      return JSON.parse(text);
    } catch {
      return { error: `the dev node answered ${resp.status} with ${text.slice(0, 200)}` };
    }
  };
  return {
    name: `dev node ${base}`,
    async pay(invoice) {
      const resp = await fetch(`${base}/dev/pay`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ invoice }),
      });
      const body = await json(resp);
      if (resp.ok && typeof body.preimage === "string") {
        return { ok: true, preimage: body.preimage, fee_msat: body.fee_msat ?? 0, amount_msat: body.amount_msat };
      }
      return { ok: false, message: body.error ?? `the dev node answered ${resp.status}` };
    },
    // -> {state: "settled", preimage, fee_msat, amount_msat} | {state: "pending"} | null (unknown)
    async lookup(hash) {
      const resp = await fetch(`${base}/dev/payments/${hash}`);
      if (resp.status === 404 || resp.status === 400) return null;
      const body = await json(resp);
      if (!resp.ok) throw new Error(body.error ?? `the dev node answered ${resp.status}`);
      if (body.status === "succeeded") {
        return { state: "settled", preimage: body.preimage, fee_msat: body.fee_msat ?? 0, amount_msat: body.amount_msat };
      }
      return null; // issued but unpaid: this wallet has no such payment
    },
    async info() {
      return { pubkey: "" };
    },
    balance: undefined,
  };
}

function lndRestBackend(base, macaroonFile, certFile, feeLimitMsat) {
  if (!macaroonFile || !certFile) die("--pay-via lnd-rest=... needs --lnd-macaroon FILE and --lnd-tls-cert FILE");
  const url = new URL(base);
  const macaroon = readFileSync(macaroonFile).toString("hex");
  const ca = readFileSync(certFile);
  // One request; `final(line)` sees each JSON line of a streamed answer
  // (lnd's REST proxy sends {"result": ...} or {"error": ...} lines) and
  // returns a value to stop at. Resolves {status, body} or {status, final}.
  const call = (method, path, body, final) =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        {
          host: url.hostname,
          port: url.port || 443,
          method,
          path,
          ca, // this certificate only
          headers: {
            "Grpc-Metadata-macaroon": macaroon,
            ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}),
          },
          timeout: 120_000,
        },
        (resp) => {
          let text = "";
          let done = false;
          resp.setEncoding("utf8");
          resp.on("data", (c) => {
            text += c;
            if (!final || done) return;
            let nl;
            while (!done && (nl = text.indexOf("\n")) >= 0) {
              const line = text.slice(0, nl).trim();
              text = text.slice(nl + 1);
              if (!line) continue;
              let v;
              try {
                v = JSON.parse(line);
              } catch {
                continue;
              }
              const f = final(v);
              if (f !== undefined) {
                done = true;
                resolve({ status: resp.statusCode, final: f });
                req.destroy();
              }
            }
          });
          resp.on("end", () => {
            if (done) return;
            let parsed;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = { message: text.slice(0, 300) };
            }
            const f = final && parsed ? final(parsed) : undefined;
            resolve(f !== undefined ? { status: resp.statusCode, final: f } : { status: resp.statusCode, body: parsed });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`lnd ${path} timed out`)));
      req.on("error", reject); // a no-op once resolved
      if (data) req.write(data);
      req.end();
    });
  const lndError = (r) => r.body?.message ?? r.body?.error?.message ?? `lnd answered ${r.status}`;
  return {
    name: `lnd REST ${url.host}`,
    // SendPaymentV2 (POST /v2/router/send; lnd 0.21 has no SendPaymentSync),
    // streamed until the payment is final.
    async pay(invoice) {
      const r = await call(
        "POST",
        "/v2/router/send",
        { payment_request: invoice, timeout_seconds: 60, fee_limit_msat: String(feeLimitMsat), no_inflight_updates: true },
        (line) => {
          if (line.error) return { ok: false, message: line.error.message ?? JSON.stringify(line.error) };
          const p = line.result;
          if (p?.status === "SUCCEEDED") {
            return { ok: true, preimage: p.payment_preimage, fee_msat: Number(p.fee_msat ?? 0), amount_msat: Number(p.value_msat ?? 0) };
          }
          if (p?.status === "FAILED") return { ok: false, message: `lnd: the payment failed (${p.failure_reason})` };
          return undefined;
        },
      );
      if (r.final) return r.final;
      return { ok: false, message: lndError(r) };
    },
    async lookup(hash) {
      const r = await call("GET", "/v1/payments?include_incomplete=true&max_payments=10000");
      if (r.status !== 200) throw new Error(lndError(r));
      const p = (r.body.payments ?? []).filter((p) => p.payment_hash === hash);
      if (p.length === 0) return null;
      const ok = p.find((x) => x.status === "SUCCEEDED");
      if (ok) {
        const resolved = (ok.htlcs ?? []).map((h) => Number(h.resolve_time_ns ?? 0)).filter((t) => t > 0);
        return {
          state: "settled",
          preimage: ok.payment_preimage,
          fee_msat: Number(ok.fee_msat ?? 0),
          amount_msat: Number(ok.value_msat ?? 0),
          settled_at: resolved.length ? Math.floor(Math.max(...resolved) / 1e9) : undefined,
          created_at: Math.floor(Number(ok.creation_time_ns ?? 0) / 1e9),
        };
      }
      if (p.some((x) => x.status === "IN_FLIGHT" || x.status === "INITIATED")) return { state: "pending" };
      return { state: "failed", amount_msat: Number(p[0].value_msat ?? 0) };
    },
    async info() {
      const r = await call("GET", "/v1/getinfo");
      if (r.status !== 200) throw new Error(lndError(r));
      return { pubkey: r.body.identity_pubkey, block_height: r.body.block_height, block_hash: r.body.block_hash };
    },
    async balance() {
      const r = await call("GET", "/v1/balance/channels");
      if (r.status !== 200) throw new Error(lndError(r));
      return Number(r.body.local_balance?.msat ?? 0);
    },
  };
}

const via = args["pay-via"];
if (!via) die("give --pay-via dev=http://... or --pay-via lnd-rest=https://...");
const [kind, ...rest] = via.split("=");
const target = rest.join("=");
let backend;
if (kind === "dev" && target) backend = devBackend(target);
else if (kind === "lnd-rest" && target)
  backend = lndRestBackend(target, args["lnd-macaroon"], args["lnd-tls-cert"], count("--lnd-fee-limit-msat", args["lnd-fee-limit-msat"]));
else die(`--pay-via must be dev=<base URL> or lnd-rest=<https URL>, not ${JSON.stringify(via)}`);

// ------------------------------------------------------------- the handler
const METHODS = ["get_info", "get_balance", "pay_invoice", "lookup_invoice"];
const HANDLER_TO_METHOD = {
  getInfo: "get_info",
  makeInvoice: "make_invoice",
  payInvoice: "pay_invoice",
  payKeysend: "pay_keysend",
  getBalance: "get_balance",
  lookupInvoice: "lookup_invoice",
  listTransactions: "list_transactions",
  signMessage: "sign_message",
};
const stats = {};
const bump = (key) => (stats[key] = (stats[key] ?? 0) + 1);
const request = new AsyncLocalStorage(); // the event being handled
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowSecs = () => Math.floor(Date.now() / 1000);
const ok = (result) => ({ result, error: undefined });
const fail = (code, message) => ({ result: undefined, error: { code, message } });
/** payment hash -> {state, preimage, fee_msat (as reported), amount_msat, invoice, created_at, settled_at} */
const payments = new Map();
let spentMsat = 0;

const expiration = (event) => {
  const t = event?.tags?.find((t) => t[0] === "expiration");
  return t ? Number(t[1]) : undefined;
};
const expired = (event) => {
  const at = expiration(event);
  return at !== undefined && Number.isFinite(at) && at < nowSecs();
};
const eventId = () => request.getStore()?.id?.slice(0, 12) ?? "?";

function decode(invoice) {
  try {
    const inv = new bolt11.Invoice({ pr: invoice });
    return { hash: inv.paymentHash, amount_msat: inv.millisatoshi ?? inv.satoshi * 1000, expires_at: inv.timestamp + (inv.expiry ?? 3600), created_at: inv.timestamp };
  } catch (e) {
    return { error: e.message };
  }
}

function transaction(p, hash) {
  return {
    type: "outgoing",
    state: p.state,
    invoice: p.invoice ?? "",
    description: "",
    description_hash: "",
    preimage: p.state === "settled" ? p.preimage : "",
    payment_hash: hash,
    amount: p.amount_msat ?? 0,
    fees_paid: p.state === "settled" ? p.fee_msat ?? 0 : 0,
    created_at: p.created_at ?? nowSecs(),
    expires_at: p.expires_at,
    settled_at: p.state === "settled" ? p.settled_at ?? nowSecs() : undefined,
  };
}

async function payInvoice(params) {
  const f = { ...faults }; // as they were when the request came
  const invoice = params?.invoice;
  if (typeof invoice !== "string" || invoice === "") return fail("OTHER", "pay_invoice needs params.invoice");
  if (f.fail_pay) {
    log(`pay_invoice ${eventId()}: answering ${f.fail_pay} without paying (fail_pay)`);
    return fail(f.fail_pay, f.message ?? `test wallet told to answer ${f.fail_pay}`);
  }
  const d = decode(invoice);
  if (d.error) return fail("OTHER", `the invoice does not decode: ${d.error}`);
  // The simulated balance (a backend with its own, lnd, decides itself).
  const simulated = balanceGiven || !backend.balance;
  if (simulated && d.amount_msat && d.amount_msat > balanceMsat - spentMsat) {
    return fail("INSUFFICIENT_BALANCE", `the test wallet has ${balanceMsat - spentMsat} msat, the invoice asks ${d.amount_msat}`);
  }
  const before = payments.get(d.hash);
  if (before?.state === "pending") {
    log(`pay_invoice ${eventId()}: ${d.hash} is already being paid`);
    return fail("PAYMENT_FAILED", "this invoice is already being paid");
  }
  // Paid before: the backend decides (it refuses a paid invoice); the
  // record of the earlier payment stays.
  const restore = () => (before ? payments.set(d.hash, before) : payments.delete(d.hash));
  payments.set(d.hash, { state: "pending", invoice, amount_msat: d.amount_msat, created_at: nowSecs(), expires_at: d.expires_at });
  if (f.hold_pay_ms) {
    log(`pay_invoice ${eventId()}: holding ${f.hold_pay_ms} ms before paying (hold_pay_ms)`);
    await sleep(f.hold_pay_ms);
    if (f.drop_expired && expired(request.getStore())) {
      restore();
      bump("dropped_expired");
      log(`pay_invoice ${eventId()}: expired while held: not paid, not answered (drop_expired)`);
      return new Promise(() => {});
    }
  }
  bump("backend_pay_calls");
  let r;
  try {
    r = await backend.pay(invoice);
  } catch (e) {
    r = { ok: false, message: `the backend failed: ${e.message}` };
  }
  if (!r.ok) {
    if (before?.state === "settled") restore();
    else payments.set(d.hash, { ...payments.get(d.hash), state: "failed" });
    log(`pay_invoice ${eventId()}: ${backend.name} refused: ${r.message}`);
    return fail("PAYMENT_FAILED", r.message);
  }
  bump("paid");
  const fee = r.fee_msat + f.extra_fee_msat;
  const amount = d.amount_msat || r.amount_msat || 0;
  spentMsat += amount + fee;
  payments.set(d.hash, { ...payments.get(d.hash), state: "settled", preimage: r.preimage, fee_msat: fee, amount_msat: amount, settled_at: nowSecs() });
  log(`pay_invoice ${eventId()}: paid ${d.hash} (${amount} msat, fees_paid ${fee} msat${f.extra_fee_msat ? `, ${f.extra_fee_msat} more than the backend's` : ""})`);
  if (f.never_answer) {
    log(`pay_invoice ${eventId()}: paid and never answering (never_answer)`);
    return new Promise(() => {});
  }
  if (f.answer_late_ms) {
    log(`pay_invoice ${eventId()}: answering in ${f.answer_late_ms} ms (answer_late_ms)`);
    await sleep(f.answer_late_ms);
  }
  return ok({ preimage: r.preimage, fees_paid: fee });
}

async function lookupInvoice(params) {
  let hash = params?.payment_hash;
  if (!hash && params?.invoice) hash = decode(params.invoice).hash;
  if (typeof hash !== "string" || !/^[0-9a-f]{64}$/i.test(hash)) {
    return fail("OTHER", "lookup_invoice needs params.payment_hash (64 hex digits) or params.invoice");
  }
  hash = hash.toLowerCase();
  const mine = payments.get(hash);
  if (mine?.state === "pending") return ok(transaction(mine, hash));
  let b;
  try {
    b = await backend.lookup(hash);
  } catch (e) {
    return fail("INTERNAL", `the backend failed: ${e.message}`);
  }
  if (b === null && mine?.state === "failed") b = { state: "failed" };
  if (b === null) return fail("NOT_FOUND", `no payment with payment hash ${hash}`);
  // What this wallet reported when it paid (extra_fee_msat included) wins.
  const p = { ...b, ...(mine?.state === b.state ? mine : {}) };
  return ok(transaction(p, hash));
}

const handler = {
  async getInfo() {
    const i = await backend.info().catch(() => ({}));
    return ok({
      alias: args.alias,
      color: "#000000",
      pubkey: i.pubkey ?? "",
      network: args.network,
      block_height: i.block_height ?? 0,
      block_hash: i.block_hash ?? "",
      methods: METHODS,
      notifications: [],
    });
  },
  async getBalance() {
    if (backend.balance && !balanceGiven) {
      try {
        return ok({ balance: await backend.balance() });
      } catch (e) {
        return fail("INTERNAL", `the backend failed: ${e.message}`);
      }
    }
    return ok({ balance: Math.max(0, balanceMsat - spentMsat) });
  },
  payInvoice,
  lookupInvoice,
};
// Counts each method as Alby's service asks for its handler; methods not
// here are answered NOT_IMPLEMENTED by the service itself.
const counted = new Proxy(handler, {
  get(target, prop) {
    if (typeof prop === "string" && HANDLER_TO_METHOD[prop]) {
      bump(HANDLER_TO_METHOD[prop]);
      log(`${HANDLER_TO_METHOD[prop]} ${eventId()}${target[prop] ? "" : " (not implemented)"}`);
    }
    return target[prop];
  },
});

// ------------------------------------------------------------- the service
const walletSecret = utils.bytesToHex(pure.generateSecretKey());
const walletPubkey = pure.getPublicKey(utils.hexToBytes(walletSecret));
const clientSecret = utils.bytesToHex(pure.generateSecretKey());
const clientPubkey = pure.getPublicKey(utils.hexToBytes(clientSecret));
const uri =
  `nostr+walletconnect://${walletPubkey}?` +
  relays.map((r) => `relay=${encodeURIComponent(r)}`).join("&") +
  `&secret=${clientSecret}`;

const logger = {
  debug: (...a) => log("alby:", ...a),
  info: (...a) => log("alby:", ...a),
  warn: (...a) => log("alby warn:", ...a),
  error: (...a) => log("alby error:", ...a),
};
const service = new NWCWalletService({ relayUrls: relays, logger });
// In front of the service's own subscription: count every request event,
// and with drop_expired ignore expired ones (the service does not honour
// NIP-40); the event is kept in an AsyncLocalStorage for the handler.
const subscribe = service.pool.subscribe.bind(service.pool);
service.pool.subscribe = (urls, filter, params) =>
  subscribe(urls, filter, {
    ...params,
    onevent: (event) => {
      bump("requests");
      if (faults.drop_expired && expired(event)) {
        bump("dropped_expired");
        log(`request ${event.id.slice(0, 12)} expired at ${expiration(event)} (now ${nowSecs()}): ignored (drop_expired)`);
        return;
      }
      return request.run(event, () => params.onevent(event));
    },
  });
process.on("unhandledRejection", (e) => log("unhandled rejection (the service does not await its answer's publish):", e?.message ?? e));

let unsubscribe = () => {};
let stopping = false;
function stop(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  try {
    unsubscribe();
    service.close();
  } catch (e) {
    log("while closing:", e.message);
  }
  process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

log(`@getalby/sdk ${sdkVersion} on node ${process.version}; wallet ${walletPubkey}; relays ${relays.join(" ")}; paying via ${backend.name}`);
try {
  await service.publishWalletServiceInfoEvent(walletSecret, METHODS, []);
  const keypair = new NWCWalletServiceKeyPair(walletSecret, clientPubkey);
  unsubscribe = await service.subscribe(keypair, counted);
} catch (e) {
  die(`cannot start the wallet service on ${relays.join(" ")}: ${e.message}`);
}

// Ready means answering: Alby's client sends get_info through each relay
// until the service answers (its subscription is live there).
async function probe(relay) {
  const deadline = Date.now() + 8000;
  for (let attempt = 1; ; attempt++) {
    const client = new NWCClient({ relayUrls: [relay], walletPubkey, secret: clientSecret });
    try {
      const info = await Promise.race([
        client.getInfo(),
        sleep(1500).then(() => {
          throw new Error("no answer in 1.5 s");
        }),
      ]);
      if (info.network !== args.network) throw new Error(`get_info said network ${info.network}`);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${relay}: ${e.message}`);
      log(`readiness probe through ${relay}, attempt ${attempt}: ${e.message}; again`);
    } finally {
      client.close();
    }
  }
}
try {
  await Promise.all(relays.map(probe));
} catch (e) {
  die(`the service did not answer get_info: ${e.message}`);
}
for (const k of Object.keys(stats)) delete stats[k]; // the probes are not the test's

out({ uri, wallet_pubkey: walletPubkey, client_pubkey: clientPubkey });
log("ready");

// ------------------------------------------------------------- stdin control
const CODE = /^[A-Z0-9_]+$/;
function apply(cmd) {
  if (typeof cmd !== "object" || cmd === null || Array.isArray(cmd)) throw new Error("a command is a JSON object");
  // "mode":"normal" clears the faults first, whatever the keys' order:
  // the others of the same line then apply on top.
  if ("mode" in cmd && cmd.mode !== "normal") throw new Error(`mode must be "normal"`);
  const next = "mode" in cmd ? { ...NORMAL } : { ...faults };
  let nextBalance = balanceMsat;
  for (const [key, value] of Object.entries(cmd)) {
    switch (key) {
      case "mode":
        break;
      case "fail_pay":
        if (value !== null && (typeof value !== "string" || value === "")) throw new Error("fail_pay is a code string or null");
        next.fail_pay = value;
        if (value !== null && !CODE.test(value)) log(`note: fail_pay ${JSON.stringify(value)} is not an upper-case code`);
        break;
      case "message":
        if (value !== null && typeof value !== "string") throw new Error("message is a string or null");
        next.message = value;
        break;
      case "answer_late_ms":
      case "hold_pay_ms":
      case "extra_fee_msat":
        next[key] = count(key, value);
        break;
      case "never_answer":
      case "drop_expired":
        if (typeof value !== "boolean") throw new Error(`${key} is true or false`);
        next[key] = value;
        break;
      case "balance_msat":
        nextBalance = count(key, value);
        break;
      case "stats":
      case "reset_stats":
        break;
      default:
        throw new Error(`unknown key ${JSON.stringify(key)}`);
    }
  }
  faults = next;
  if (nextBalance !== balanceMsat) {
    balanceMsat = nextBalance;
    balanceGiven = true;
  }
  const answer = cmd.stats ? { ...stats } : { ok: true };
  if (cmd.reset_stats) for (const k of Object.keys(stats)) delete stats[k];
  return answer;
}
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  try {
    out(apply(JSON.parse(line)));
    log(`control: ${line.trim()}`);
  } catch (e) {
    out({ ok: false, error: e.message });
  }
});
lines.on("close", () => {
  if (args["exit-on-eof"]) stop("stdin closed");
});
