"""The reference adapter's HTTP server: its connections have TCP_NODELAY, so no answer waits for a delayed ACK."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import requests

from adapters.reference.server import base_url, start


def test_accepted_connections_have_tcp_nodelay(tmp_path: Path) -> None:
    server = start(tmp_path / "adapter.sqlite", "127.0.0.1", 0)
    options: list[int] = []
    handle = server.finish_request  # werkzeug's: answers on the accepted socket, which is closed after it returns

    def finish_request(request: Any, client_address: Any) -> None:
        handle(request, client_address)
        options.append(request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server.finish_request = finish_request  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        answer = requests.get(base_url(server) + "/v1/provision/unknown/status", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert answer.status_code == 400
    # werkzeug writes headers and body separately (and closes each connection); with Nagle on, a body would wait
    # for the client's ACK of the headers whenever a connection were kept alive.
    assert options and all(options), options
