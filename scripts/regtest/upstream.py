#!/usr/bin/env python3
"""A small upstream for aperture on the regtest network.

Answers every request (any method, any path) with 200 and a JSON echo of what
it received, so a test can tell the request went through the gateway:

    {"upstream": "l402-regtest", "method": "GET", "path": "/quote", "body_bytes": 0}

Usage: upstream.py PORT [PIDFILE-DIR-MARKER]
The optional second argument is ignored; up.sh passes the run directory so
that down.sh can tell this process is its own.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server_version = "l402-regtest-upstream/1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = json.dumps(
            {
                "upstream": "l402-regtest",
                "method": self.command,
                "path": self.path,
                "body_bytes": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("upstream: " + (fmt % args) + "\n")


def main() -> None:
    port = int(sys.argv[1])
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
