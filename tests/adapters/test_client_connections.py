"""The client's kept-alive connections: validate calls and polls reuse them, provisioning opens its own."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from adapters.client import TechAdapterClient
from tests.servers.serving import serving

PREFIX = "/datamesh.specificprovisioner"
CALLS = 20


class _Recording(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[tuple[str, int], str, bytes, str]] = []  # client address, path, body, Cookie header

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{PREFIX}"

    def connections(self, path_end: str = "") -> int:
        with self.lock:
            return len({address for address, path, _, _ in self.seen if path.endswith(path_end)})


class _Handler(BaseHTTPRequestHandler):
    """Python's http.server as adapters written with it behave: Nagle on, headers and body in separate writes."""

    protocol_version = "HTTP/1.1"
    server: _Recording

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """A provision status: COMPLETED."""
        self._record(b"")
        self._answer(200, {"status": "COMPLETED", "result": "done"})

    def do_POST(self) -> None:
        """Validate: valid; provision: a task token to poll, with a cookie a load balancer would set."""
        self._record(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path.endswith("/v1/validate"):
            self._answer(200, {"valid": True})
        else:
            self._answer(202, "task-1", cookie="lb=node-7")

    def _record(self, body: bytes) -> None:
        with self.server.lock:
            self.server.seen.append((self.client_address, self.path, body, self.headers.get("Cookie", "")))

    def _answer(self, status: int, data: Any, cookie: str = "") -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if cookie:
            self.send_header("Set-Cookie", f"{cookie}; Path=/")
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[_Recording]:
    with serving(_Recording()) as httpd:
        yield httpd


REQUEST = {"descriptor": "dataProduct:\n  id: urn:dmb:dp:finance:orders:0\n" + "x" * 100_000, "removed": False}


def test_validate_calls_of_separate_clients_reuse_one_connection(server: _Recording) -> None:
    for _ in range(CALLS):
        assert TechAdapterClient(server.url, timeout=10).validate(REQUEST).valid
    assert len(server.seen) == CALLS
    assert server.connections() == 1


def test_reused_connections_do_not_wait_for_a_delayed_ack(server: _Recording) -> None:
    TechAdapterClient(server.url, timeout=10).validate(REQUEST)  # the connection is open from here on
    started = time.monotonic()
    for _ in range(CALLS):
        assert TechAdapterClient(server.url, timeout=10).validate(REQUEST).valid
    elapsed = time.monotonic() - started
    # Each call waited ~40 ms for the delayed ACK of the answer's headers before the client turned quick ACKs on.
    assert elapsed < CALLS * 0.02, f"{CALLS} validate calls took {elapsed:.3f} s"
    assert server.connections() == 1


def test_request_bodies_are_those_of_a_plain_session(server: _Recording) -> None:
    TechAdapterClient(server.url, timeout=10).validate(REQUEST)
    TechAdapterClient(server.url, timeout=10, session=requests.Session()).validate(REQUEST)
    shared, plain = (body for _, _, body, _ in server.seen)
    assert shared == plain == json.dumps(REQUEST).encode()


def test_provisioning_opens_its_own_connection_and_its_polls_keep_the_cookie(server: _Recording) -> None:
    for _ in range(3):
        result = TechAdapterClient(server.url, timeout=10, poll_interval=0.01).provision(REQUEST)
        assert result.message == "done", result
    assert server.connections("/v1/provision") == 3  # never a kept-alive one: a provision is not repeated
    polls = [cookie for _, path, _, cookie in server.seen if path.endswith("/status")]
    assert polls == ["lb=node-7"] * 3  # the client's cookie jar, though the polls go over the shared connections


def test_a_proxy_set_later_is_used_by_the_next_client(monkeypatch: pytest.MonkeyPatch, server: _Recording) -> None:
    # The proxies the environment gives a URL are read once per URL and proxy settings, not once per process.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    assert TechAdapterClient(server.url, timeout=10).validate(REQUEST).valid
    with socket.socket() as probe:  # a proxy that refuses every connection
        probe.bind(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", refusing)
    outcome = TechAdapterClient(server.url, timeout=10, retries=0).validate(REQUEST)
    assert outcome.failed and "connection refused" in outcome.message, outcome  # the proxy's, not the adapter's
    assert len(server.seen) == 1
