"""A marketplace test receiver: a real HTTP server on 127.0.0.1 that records each POST and checks its signature.

`fail_first(n)` makes it answer HTTP 500 to the next n requests (then 202 again).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.engine.marketplace import SIGNATURE_HEADER, verify


@dataclass(frozen=True)
class Delivery:
    """One POST as received: path, headers, exact body, whether its signature verified, and the status answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool
    status: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class MarketplaceReceiver:
    """Records deliveries; verifies X-Meshbot-Signature-256 with secret; fails the first N when told."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self._failures = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail_first(self, count: int) -> None:
        """Answer HTTP 500 to the next count requests."""
        with self._lock:
            self._failures = count

    def accepted(self) -> list[Delivery]:
        """The deliveries answered 2xx."""
        with self._lock:
            return [delivery for delivery in self.deliveries if delivery.status < 300]

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Record one request and say which status to answer."""
        with self._lock:
            status = 500 if self._failures > 0 else 202
            self._failures = max(0, self._failures - 1)
            signed = verify(body, self.secret, headers.get(SIGNATURE_HEADER.lower()))
            self.deliveries.append(Delivery(path, headers, body, signed, status if signed else 401))
            return status if signed else 401

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver: MarketplaceReceiver = self.server.receiver  # type: ignore[attr-defined]
        status = receiver.record(self.path, {key.lower(): value for key, value in self.headers.items()}, body)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def marketplace_receiver(secret: str) -> Iterator[MarketplaceReceiver]:
    """A running receiver that checks signatures with secret."""
    receiver = MarketplaceReceiver(secret)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
