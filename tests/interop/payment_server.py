"""A `Payment` scheme server (Machine Payments Protocol, Lightning `charge`
intent), written from the drafts (draft-httpauth-payment-00 and
draft-lightning-charge-00, as summarised in docs/PAYMENT-NOTES.md) and not
from the Rust code it tests: an independent peer that challenges our client
and verifies its credentials.

Usage: payment_server.py [--secret-hex HEX] [--realm REALM]

Listens on 127.0.0.1, on a port the system picks, and prints that port as
the first line of stdout. It exits when stdin reaches end of file (the test
that started it is gone) or on SIGTERM/SIGKILL.

Routes:

  GET  /paid    The paid resource, 21 sat per request. Without a credential:
                402 with a `Payment` challenge (a fresh regtest invoice).
                With `Authorization: Payment <token>`: 200 and a
                `Payment-Receipt`, or 402 with a fresh challenge and a
                problem+json body naming why the credential was refused.
  POST /pay     Plays the Lightning network for the test: the body is a
                BOLT11 invoice this server issued; the answer is its
                preimage, in hex (once per invoice; 409 after that).
  GET  /stats   Counters, as JSON.

Standard library only, apart from the `bolt11` package, which decodes and
signs the invoices.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tags

PRICE_SAT = 21
CHALLENGE_TTL = 600  # seconds; well inside the invoice's expiry
INVOICE_EXPIRY = 3600
# A fixed node key: the invoices' payee.
NODE_KEY = "5a" * 32
PROBLEMS = "https://paymentauth.org/problems/"
MAX_BODY = 64 * 1024


# --- encodings --------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5), as the draft writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding (the draft: accept both). Strict:
    characters outside the URL-safe alphabet are an error."""
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2:
        raise ValueError("too much padding")
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if not stripped or any(c not in alphabet for c in stripped):
        raise ValueError("not base64url")
    if len(stripped) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def jcs(value) -> bytes:
    """RFC 8785 canonical JSON for the values used here (strings and
    objects of them): keys sorted, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def rfc3339(t: float) -> str:
    return (
        datetime.datetime.fromtimestamp(int(t), tz=datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def parse_rfc3339(s: str) -> float:
    dt = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("no offset")
    return dt.timestamp()


# --- the server's state -----------------------------------------------------


class Peer:
    """Issued invoices, spent challenge ids and counters, under one lock."""

    def __init__(self, secret: bytes, realm: str):
        self.secret = secret
        self.realm = realm
        self.lock = threading.Lock()
        # payment_hash hex -> {"preimage", "bolt11", "paid"}
        self.invoices = {}
        self.used_ids = set()
        self.stats = {
            "challenges": 0,
            "payments": 0,
            "pay_refused": 0,
            "accepted": 0,
            "padded_credentials": 0,
            "refused": {},
            "reasons": {},
        }

    # The draft's recommended binding: HMAC-SHA256 over seven slots joined
    # by "|", an absent optional one empty.
    def challenge_id(self, realm, method, intent, request, expires, digest, opaque):
        slots = [realm, method, intent, request, expires, digest, opaque]
        mac = hmac.new(self.secret, "|".join(slots).encode("utf-8"), hashlib.sha256)
        return b64url_encode(mac.digest())

    def mint_invoice(self):
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        invoice = Bolt11(
            currency="bcrt",
            amount_msat=MilliSatoshi(PRICE_SAT * 1000),
            date=int(time.time()),
            tags=Tags.from_dict(
                {
                    "payment_hash": payment_hash,
                    "payment_secret": secrets.token_hex(32),
                    "description": "l402-mcp Payment interop",
                    "expire_time": INVOICE_EXPIRY,
                    "min_final_cltv_expiry": 18,
                    "features": {
                        "var_onion_optin": "required",
                        "payment_secret": "required",
                    },
                }
            ),
        )
        text = bolt11.encode(invoice, private_key=NODE_KEY)
        with self.lock:
            self.invoices[payment_hash] = {
                "preimage": preimage.hex(),
                "bolt11": text,
                "paid": False,
            }
        return text, payment_hash

    def challenge_header(self) -> str:
        text, payment_hash = self.mint_invoice()
        request = b64url_encode(
            jcs(
                {
                    "amount": str(PRICE_SAT),
                    "currency": "sat",
                    "methodDetails": {
                        "invoice": text,
                        "network": "regtest",
                        "paymentHash": payment_hash,
                    },
                }
            )
        )
        expires = rfc3339(time.time() + CHALLENGE_TTL)
        cid = self.challenge_id(
            self.realm, "lightning", "charge", request, expires, "", ""
        )
        with self.lock:
            self.stats["challenges"] += 1
        return (
            f'Payment id="{cid}", realm="{self.realm}", method="lightning", '
            f'intent="charge", request="{request}", expires="{expires}"'
        )

    def pay(self, text: str):
        """(status, body) for POST /pay."""
        try:
            decoded = bolt11.decode(text.strip())
        except Exception as exc:  # noqa: BLE001 - any decode failure
            with self.lock:
                self.stats["pay_refused"] += 1
            return 400, f"not a BOLT11 invoice: {exc}"
        with self.lock:
            issued = self.invoices.get(decoded.payment_hash)
            if issued is None or issued["bolt11"] != text.strip():
                self.stats["pay_refused"] += 1
                return 404, "no such invoice here"
            if issued["paid"]:
                self.stats["pay_refused"] += 1
                return 409, "invoice already paid"
            issued["paid"] = True
            self.stats["payments"] += 1
            return 200, issued["preimage"]

    def refuse(self, kind: str, reason: str):
        with self.lock:
            self.stats["refused"][kind] = self.stats["refused"].get(kind, 0) + 1
            self.stats["reasons"][reason] = self.stats["reasons"].get(reason, 0) + 1
        return ("refused", kind, reason)

    def verify(self, token: str):
        """("accepted", payment_hash, id) or ("refused", problem type, reason)."""
        # 1. The token: base64url (padded or not) of a JSON object.
        try:
            raw = b64url_decode(token)
            cred = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return self.refuse("malformed-credential", "undecodable")
        if token.endswith("="):
            with self.lock:
                self.stats["padded_credentials"] += 1
        if not isinstance(cred, dict):
            return self.refuse("malformed-credential", "not-an-object")
        echo = cred.get("challenge")
        payload = cred.get("payload")
        if not isinstance(echo, dict) or not isinstance(payload, dict):
            return self.refuse("malformed-credential", "no-challenge-or-payload")
        fields = {}
        for name in ("id", "realm", "method", "intent", "request"):
            v = echo.get(name)
            if not isinstance(v, str) or not v:
                return self.refuse("malformed-credential", f"no-{name}")
            fields[name] = v
        for name in ("expires", "digest", "opaque", "description"):
            v = echo.get(name, "")
            if not isinstance(v, str):
                return self.refuse("malformed-credential", f"bad-{name}")
            fields[name] = v
        preimage = payload.get("preimage")
        if (
            not isinstance(preimage, str)
            or len(preimage) != 64
            or any(c not in "0123456789abcdef" for c in preimage)
        ):
            return self.refuse("malformed-credential", "bad-preimage-format")

        # 2. The echo is a challenge this server issued: recompute the id
        # from the echoed fields (constant-time compare).
        expected = self.challenge_id(
            fields["realm"],
            fields["method"],
            fields["intent"],
            fields["request"],
            fields["expires"],
            fields["digest"],
            fields["opaque"],
        )
        if not hmac.compare_digest(expected.encode(), fields["id"].encode()):
            return self.refuse("invalid-challenge", "bad-id")
        if fields["realm"] != self.realm:
            return self.refuse("invalid-challenge", "other-realm")
        if fields["method"] != "lightning" or fields["intent"] != "charge":
            return self.refuse("invalid-challenge", "other-method-or-intent")
        # 3. Not expired.
        if not fields["expires"]:
            return self.refuse("invalid-challenge", "no-expires")
        try:
            expires = parse_rfc3339(fields["expires"])
        except ValueError:
            return self.refuse("invalid-challenge", "bad-expires")
        if time.time() > expires:
            return self.refuse("invalid-challenge", "expired")
        # 4. The request is one this server issued, unchanged in amount and
        # currency (the HMAC covers it; checked anyway, as the draft's
        # verification step says).
        try:
            request = json.loads(b64url_decode(fields["request"]).decode("utf-8"))
            details = request["methodDetails"]
            payment_hash = details["paymentHash"]
            invoice_text = details["invoice"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, binascii.Error):
            return self.refuse("malformed-credential", "bad-request")
        with self.lock:
            issued = self.invoices.get(payment_hash)
        if issued is None or issued["bolt11"] != invoice_text:
            return self.refuse("invalid-challenge", "unknown-invoice")
        if request.get("amount") != str(PRICE_SAT) or request.get("currency") != "sat":
            return self.refuse("invalid-challenge", "other-amount")
        # 5. The proof of payment.
        if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != payment_hash:
            return self.refuse("verification-failed", "wrong-preimage")
        # 6. Single use: consumed atomically, on success only.
        with self.lock:
            if fields["id"] in self.used_ids:
                used = True
            else:
                used = False
                self.used_ids.add(fields["id"])
                self.stats["accepted"] += 1
        if used:
            return self.refuse("invalid-challenge", "used")
        return ("accepted", payment_hash, fields["id"])


# --- HTTP -------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "payment-interop-peer"
    peer: Peer  # set on the class before serving

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        port = self.server.server_address[1]
        sys.stderr.write(f"payment_server :{port}: {format % args}\n")

    def send(self, status, body: bytes, content_type: str, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, value, headers=()):
        self.send(status, json.dumps(value).encode(), "application/json", headers)

    def payment_required(self, kind: str, detail: str):
        problem = {
            "type": PROBLEMS + kind,
            "title": kind.replace("-", " ").capitalize(),
            "status": 402,
            "detail": detail,
        }
        self.send(
            402,
            json.dumps(problem).encode(),
            "application/problem+json",
            [
                ("WWW-Authenticate", self.peer.challenge_header()),
                ("Cache-Control", "no-store"),
            ],
        )

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path == "/stats":
            with self.peer.lock:
                snapshot = json.loads(json.dumps(self.peer.stats))
            self.send_json(200, snapshot)
            return
        if self.path != "/paid":
            self.send_json(404, {"error": "not found"})
            return
        token = None
        for value in self.headers.get_all("Authorization") or []:
            scheme, _, rest = value.strip().partition(" ")
            # Scheme names are case-insensitive (RFC 9110).
            if scheme.lower() == "payment":
                token = rest.strip()
                break
        if token is None:
            self.payment_required("payment-required", "Payment required for access.")
            return
        outcome = self.peer.verify(token)
        if outcome[0] != "accepted":
            _, kind, reason = outcome
            self.payment_required(kind, f"The credential was refused ({reason}).")
            return
        _, payment_hash, cid = outcome
        receipt = {
            "status": "success",
            "method": "lightning",
            "timestamp": rfc3339(time.time()),
            "reference": payment_hash,
            "challengeId": cid,
        }
        self.send(
            200,
            b"paid content: 21 sat well spent\n",
            "text/plain; charset=utf-8",
            [
                ("Payment-Receipt", b64url_encode(jcs(receipt))),
                ("Cache-Control", "private"),
            ],
        )

    def do_POST(self):  # noqa: N802 - the stdlib's name
        try:
            body = self.read_body()
        except ValueError as exc:
            self.send_json(413, {"error": str(exc)})
            return
        if self.path != "/pay":
            self.send_json(404, {"error": "not found"})
            return
        status, text = self.peer.pay(body.decode("utf-8", "replace"))
        self.send(status, text.encode(), "text/plain; charset=utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-hex", default=None)
    parser.add_argument("--realm", default="interop.l402-mcp.test")
    args = parser.parse_args()
    secret = bytes.fromhex(args.secret_hex) if args.secret_hex else os.urandom(32)

    Handler.peer = Peer(secret, args.realm)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)

    # Stop when whoever started us is gone (stdin closes).
    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            server.shutdown()

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
