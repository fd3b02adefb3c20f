"""A scriptable tech adapter for client tests: a real HTTP server on 127.0.0.1 that misbehaves on demand.

Each test says, per method and path, which replies to give: the replies are used in order and the last
one repeats forever (so one RUNNING reply is a task that never ends). Every request is recorded with its
body. Paths are routed below a prefix (the usual /datamesh.specificprovisioner); anything else is a 404.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/datamesh.specificprovisioner"
_NO_DATA = object()


@dataclass(frozen=True)
class Reply:
    """One answer: status and body (data as JSON, or text as is), after delay seconds, or no answer at all.

    body_delay sends the headers at once and the body that many seconds later (a body that stalls).
    """

    status: int = 200
    data: Any = _NO_DATA
    text: str = ""
    content_type: str = "application/json"
    delay: float = 0.0
    body_delay: float = 0.0
    close: bool = False

    def body(self) -> bytes:
        """The bytes sent as the body."""
        return (self.text if self.data is _NO_DATA else json.dumps(self.data)).encode()


def close_without_answer() -> Reply:
    """Read the request, then close the connection without sending a byte."""
    return Reply(close=True)


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    body: bytes
    content_type: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class AdapterServer:
    """A ThreadingHTTPServer on an ephemeral port whose answers each test configures."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.received: list[Received] = []
        self._replies: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.adapter = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def root(self) -> str:
        """http://127.0.0.1:PORT, without the prefix."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The base URL a client should use: the root and the prefix."""
        return self.root + self.prefix

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        """Answer method path (below the prefix) with these replies in turn; the last one repeats."""
        assert replies, "give at least one reply"
        with self._lock:
            self._replies[(method, path)] = list(replies)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """The requests received so far, optionally only those of one method and path (below the prefix)."""
        with self._lock:
            return [r for r in self.received if (method is None or r.method == method)
                    and (path is None or r.path == self.prefix + path)]

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; delayed replies still waiting give up at once."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, method: str, path: str) -> Reply:
        with self._lock:
            if not path.startswith(self.prefix + "/"):
                return Reply(404, text=f"<html><body>No route for {path}</body></html>", content_type="text/html")
            replies = self._replies.get((method, path[len(self.prefix):]))
            if not replies:
                return Reply(404, text=f"nothing configured for {method} {path}", content_type="text/plain")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # as real servers: http.server's 5 resets connections under concurrent validation
    adapter: AdapterServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that gave up (timeouts) leave broken pipes behind: expected here, so stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real adapters behind most servers
    disable_nagle_algorithm = True  # else the body waits ~40 ms for the client's delayed ACK of the headers
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""

    def do_GET(self) -> None:
        """Answer a GET."""
        self._answer()

    def do_POST(self) -> None:
        """Answer a POST."""
        self._answer()

    def _answer(self) -> None:
        adapter = self.server.adapter
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        adapter._record(Received(self.command, path, body, self.headers.get("Content-Type", "")))
        reply = adapter._next(self.command, path)
        if reply.delay and adapter._stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.close:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.body()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if reply.body_delay:
            self.wfile.flush()
            if adapter._stopping.wait(reply.body_delay):
                self.close_connection = True
                return
        self.wfile.write(payload)


@contextmanager
def adapter_server(prefix: str = PREFIX) -> Iterator[AdapterServer]:
    """A started AdapterServer, stopped on exit."""
    server = AdapterServer(prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound for a moment, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
