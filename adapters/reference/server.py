"""`meshbot adapter serve`: the reference adapter on werkzeug's threaded WSGI server, until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from adapters.reference import URL_PREFIX
from adapters.reference.app import EXTENSION, AdapterState, create_app

SHUTDOWN_GRACE_SECONDS = 10.0


class _Handler(WSGIRequestHandler):
    """werkzeug's handler on kept-alive connections with TCP_NODELAY.

    werkzeug writes an answer's headers and body in separate writes; with Nagle's algorithm the body waits for the
    client's delayed ACK of the headers, up to 40 ms on a kept-alive connection.
    """

    protocol_version = "HTTP/1.1"  # what werkzeug picks for a threaded server, said here as the class is our own
    disable_nagle_algorithm = True


def start(database: Path, host: str, port: int, *, asynchronous: bool = False,
          async_delay: float = 0.05) -> BaseWSGIServer:
    """A bound, threaded server (port 0 picks a free port: see server.port); call serve_forever() to run it."""
    app = create_app(database, asynchronous=asynchronous, async_delay=async_delay)
    return make_server(host, port, app, threaded=True, request_handler=_Handler)


def base_url(server: BaseWSGIServer) -> str:
    """Where the Tech Adapter API answers."""
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"http://{host}:{server.port}{URL_PREFIX}"


def serve(database: Path, host: str, port: int, *, asynchronous: bool = False, async_delay: float = 0.05,
          out: TextIO = sys.stdout) -> int:
    """Serve until SIGINT or SIGTERM; running asynchronous tasks get a grace period to finish."""
    server = start(database, host, port, asynchronous=asynchronous, async_delay=async_delay)
    state: AdapterState = server.app.extensions[EXTENSION]  # type: ignore[attr-defined]

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: call it from another thread than the serving one.
        threading.Thread(target=server.shutdown, name="meshbot-adapter-shutdown", daemon=True).start()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    mode = f"asynchronous, tasks delayed {async_delay:g} s" if asynchronous else "synchronous"
    print(f"meshbot reference tech adapter listening on {base_url(server)} (database {database}, {mode})",
          file=out, flush=True)
    try:
        server.serve_forever(poll_interval=0.05)  # stops within 50 ms of SIGTERM (the default polls every 0.5 s)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.server_close()
    finished = state.tasks.wait(SHUTDOWN_GRACE_SECONDS)
    print("meshbot reference tech adapter stopped" + ("" if finished else " (some tasks were still running)"),
          file=out, flush=True)
    return 0
