"""localstripe (a stateful fake Stripe API) as a subprocess on a free port, for the tests that need real Stripe behaviour."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            # localstripe with invoice payment by a given card (see localstripe_billing.py).
            [sys.executable, str(Path(__file__).with_name("localstripe_billing.py")), "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/js.stripe.com/v3/", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("localstripe did not start")
                time.sleep(0.1)

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        data = f"url={urllib.request.quote(url, safe='')}&secret={secret}".encode()
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_config/webhooks/{name}", data=data), timeout=5).read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
