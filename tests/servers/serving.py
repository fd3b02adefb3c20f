"""Run a standard-library HTTP server in a background thread for the length of a test."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

Server = TypeVar("Server", bound=socketserver.BaseServer)


@contextmanager
def serving(httpd: Server, poll_interval: float = 0.01) -> Iterator[Server]:
    """Serve httpd in a daemon thread; on exit stop it, close its socket and wait for the thread."""
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
