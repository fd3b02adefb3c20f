"""What the tech adapter client reads of one answer: at most MAX_ANSWER_BYTES, else the call fails, the rest unread.

The engine bounds what it stores of an answer (test_answer_bounds.py); this bounds what a worker holds in memory
while it reads one, against real HTTP servers on 127.0.0.1: one answering with a Content-Length, one streaming a
chunked body that never ends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapters.client import MAX_ANSWER_BYTES, TechAdapterClient
from adapters.model import Outcome
from tests.servers.tech_adapter import Reply, adapter_server

MIB = 1024 * 1024
REQUEST = {"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "id: x\n", "removeData": False}


def test_the_default_cap_is_64_mib():
    assert MAX_ANSWER_BYTES == 64 * MIB
    assert TechAdapterClient("http://127.0.0.1:1").max_answer_bytes == MAX_ANSWER_BYTES


def test_an_answer_over_the_cap_fails_the_call_and_one_under_it_is_read():
    with adapter_server() as server:
        client = TechAdapterClient(server.url, timeout=10, max_answer_bytes=MIB)
        server.reply("POST", "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "x" * (MIB - 100)}))
        assert client.provision(REQUEST).outcome is Outcome.COMPLETED
        server.reply("POST", "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "x" * MIB}))
        refused = client.provision(REQUEST)
        assert (refused.outcome, refused.http_status) == (Outcome.FAILED, 200)
        assert refused.message == (f"the tech adapter at {server.url}/v1/provision answered HTTP 200 with a body over "
                                   "1 MiB, more than meshbot reads of one answer; it was not read")
        assert len(server.requests("POST", "/v1/provision")) == 2  # refused, not asked again


class _Endless(ThreadingHTTPServer):
    daemon_threads = True
    sent = 0
    stopping: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client hangs up in the middle of the body: expected."""


class _EndlessHandler(BaseHTTPRequestHandler):
    """POST: 202 with a token; GET (the status poll): a chunked body that never ends."""

    protocol_version = "HTTP/1.1"
    server: _Endless

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""

    def do_POST(self) -> None:
        """Accept the provisioning request: a token to poll."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps("token-1").encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """A status that never ends: `{"status": "COMPLETED", "result": "zzzz…` for ever."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b'{"status": "COMPLETED", "result": "' + b"z" * (64 * 1024)
        while not self.server.stopping.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.server.sent += len(chunk)
            chunk = b"z" * (64 * 1024)


@contextmanager
def endless_adapter() -> Iterator[_Endless]:
    server = _Endless(("127.0.0.1", 0), _EndlessHandler)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_status_poll_streaming_without_end_fails_once_past_the_cap():
    with endless_adapter() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = TechAdapterClient(url, timeout=20, max_answer_bytes=4 * MIB)
        result = client.provision(REQUEST)
    assert (result.outcome, result.http_status) == (Outcome.FAILED, 200)
    assert result.message == (f"the tech adapter at {url}/v1/provision/token-1/status answered HTTP 200 with a body "
                              "over 4 MiB, more than meshbot reads of one answer; it was not read")
    assert server.sent < 64 * MIB  # it stopped reading: what was sent is the cap and what the socket buffers held
