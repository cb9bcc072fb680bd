"""Test helpers at the edge of the internet: recorded PSP payloads, real signatures, a fake PSP over HTTP.

``FakePSP`` is a real HTTP server on a free port that answers the routes a test
registers with recorded payloads (tests/fixtures/stripe, tests/fixtures/razorpay)
and records every request it got (method, path, headers, body), so tests can
assert what reached the PSP, e.g. the Idempotency-Key header. Tinko's code talks
to it through the SDKs, pointed at it by TINKO_STRIPE_API_BASE / TINKO_RAZORPAY_API_BASE.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(provider: str, name: str, **replace) -> dict:
    """A recorded payload, with placeholder strings replaced (LINK_ID → 7 …) and its times made recent."""
    text = (FIXTURES / provider / f"{name}.json").read_text()
    for placeholder, value in replace.items():
        text = text.replace(placeholder, str(value))
    return _fresh(json.loads(text), int(time.time()) - 30)


def _fresh(value, now):
    if isinstance(value, dict):
        return {k: (now if k in ("created", "created_at") and isinstance(v, int) else _fresh(v, now)) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v, now) for v in value]
    return value


def stripe_signature(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send (HMAC-SHA256 over "<t>.<body>")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def razorpay_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: str

    @property
    def form(self) -> dict:
        return {k: v[-1] for k, v in parse_qs(self.body).items()}

    @property
    def json(self) -> dict:
        return json.loads(self.body or "{}")


@dataclass
class FakePSP:
    routes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    url: str = ""

    def add(self, method: str, path: str, body, status: int = 200) -> None:
        self.routes[(method.upper(), path)] = (status, body)

    def answer(self, request: Recorded) -> tuple[int, dict]:
        """(status, body) for a request: the registered route's recorded payload. A stateful fake overrides this."""
        return self.routes.get((request.method, request.path), (404, {"error": {
            "type": "invalid_request_error", "code": "resource_missing", "message": f"No route {request.path}",
            "description": f"No route {request.path}"}}))

    def start(self):
        psp = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                request = Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers), raw)
                psp.requests.append(request)
                status, body = psp.answer(request)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped waiting (a timeout test)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]
