"""A remote policy engine for tests: a real HTTP server on 127.0.0.1 speaking Witboost's Remote Engine API.

`behave(...)` sets how it answers every request from then on: `pass`, `block` (satisfiesPolicy false with the
errors given), `error` (HTTP 500), `garbage` (not JSON), `shape` (JSON without satisfiesPolicy), `huge` (a JSON
answer over 1 MiB) or `sleep` (answer pass after `delay` seconds). `rules` maps a resourceId to its own behaviour.
Every request is recorded (path, headers, parsed body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = ("pass", "block", "error", "garbage", "shape", "huge", "sleep")


@dataclass(frozen=True)
class Behaviour:
    """How the engine answers."""

    kind: str = "pass"
    errors: tuple[str, ...] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class EngineRequest:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class PolicyEngine:
    """The engine's state: its default behaviour, per-resource rules and the requests it got."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    rules: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[EngineRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def behave(self, kind: str, errors: tuple[str, ...] = (), delay: float = 0.0,
               resource: str | None = None) -> None:
        """Answer every request (or those about resource) this way from now on."""
        assert kind in BEHAVIOURS, kind
        with self.lock:
            if resource is None:
                self.behaviour = Behaviour(kind, errors, delay)
            else:
                self.rules[resource] = Behaviour(kind, errors, delay)

    def received(self) -> list[EngineRequest]:
        """The requests so far."""
        with self.lock:
            return list(self.requests)

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, float]:
        """Record a request; (status, body, seconds to wait before answering)."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append(EngineRequest(path, headers, body))
            resource = body.get("resourceId") if isinstance(body, dict) else None
            behaviour = self.rules.get(str(resource), self.behaviour)
        kind = behaviour.kind
        if kind == "block":
            return 200, json.dumps({"satisfiesPolicy": False, "errors": list(behaviour.errors)}).encode(), 0.0
        if kind == "error":
            return 500, b'{"error": "boom"}', 0.0
        if kind == "garbage":
            return 200, b"<html>not json</html>", 0.0
        if kind == "shape":
            return 200, b'{"satisfied": true}', 0.0
        if kind == "huge":
            return 200, json.dumps({"satisfiesPolicy": True, "errors": ["x" * (2 * 1024 * 1024)]}).encode(), 0.0
        delay = behaviour.delay if kind == "sleep" else 0.0
        return 200, json.dumps({"satisfiesPolicy": True, "errors": []}).encode(), delay


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        engine: PolicyEngine = self.server.engine  # type: ignore[attr-defined]
        status, body, delay = engine.answer(self.path, {key.lower(): value for key, value in self.headers.items()},
                                            raw)
        if delay and engine.stopping.wait(delay):
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (its timeout)


@contextmanager
def policy_engine(path: str = "/evaluate") -> Iterator[PolicyEngine]:
    """A running engine answering pass until told otherwise; its URL is engine.url."""
    engine = PolicyEngine()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.engine = engine  # type: ignore[attr-defined]
    engine.url = f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def wait_for_requests(engine: PolicyEngine, count: int, timeout: float = 5.0) -> list[EngineRequest]:
    """The engine's requests once there are at least count (or what there is after timeout)."""
    deadline = time.monotonic() + timeout
    while len(engine.received()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return engine.received()
