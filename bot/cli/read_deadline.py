"""Read deadlines for gunicorn's gevent workers: a client that trickles its request is let go.

with_body_deadline, a WSGI wrapper, gives every request body a deadline (408 past it): the application reads the
body from the socket as it needs it, so without this a client sending one byte every few seconds holds its
connection (and a slot of worker_connections) for as long as it likes. PyWSGIDeadlineWorker, gunicorn's
gevent_pywsgi worker (gevent.pywsgi's server, which costs less per connection than gunicorn's own parser), adds
what pywsgi lacks: a deadline for each request's line and headers, gunicorn's `keepalive` setting, from the
connection or the previous answer; past it the connection is closed without an answer. Only for gevent workers:
the deadlines are gevent.Timeouts, which interrupt the greenlet's blocked socket read.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler
from werkzeug.exceptions import RequestTimeout


class DeadlineInput:
    """wsgi.input whose reads, all together, end by a deadline (time.monotonic()); past it, RequestTimeout (408)."""

    def __init__(self, stream: Any, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def _bounded(self, method: Callable[..., bytes], *arguments: Any) -> bytes:
        import gevent

        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout("the request body did not arrive in time")
        try:
            with gevent.Timeout(remaining):
                return method(*arguments)
        except gevent.Timeout:
            raise RequestTimeout("the request body did not arrive in time") from None

    def read(self, size: int | None = -1) -> bytes:
        return self._bounded(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._bounded(self._stream.readline, size)

    def __iter__(self) -> Iterable[bytes]:
        while line := self.readline():
            yield line


def with_body_deadline(application: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """application, with the request body to be read within `seconds` of the headers' arrival."""

    def bounded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], time.monotonic() + seconds)
        return application(environ, start_response)

    return bounded


class HeadersTooSlow(TimeoutError):
    """The request line and headers did not arrive by their deadline (an OSError: pywsgi closes the connection)."""


class HeaderDeadlineHandler(PyWSGIHandler):  # type: ignore[misc]
    """pywsgi's request handler, with a deadline for the request line and headers and none for a late body's rest."""

    header_seconds: float = 5.0  # set from gunicorn's keepalive by PyWSGIDeadlineWorker
    _headers_timer: Any = None

    def handle_one_request(self) -> Any:
        import gevent

        self._headers_timer = gevent.Timeout.start_new(self.header_seconds, HeadersTooSlow)
        try:
            return super().handle_one_request()
        finally:
            self._headers_timer.close()

    def get_environ(self) -> dict[str, Any]:
        self._headers_timer.close()  # the headers are in: the body has the application's deadline
        return super().get_environ()  # type: ignore[no-any-return]

    def _handle_client_error(self, ex: Exception) -> Any:
        if isinstance(ex, HeadersTooSlow):
            return None  # closed without an answer, as gunicorn's gevent worker does
        return super()._handle_client_error(ex)

    def run_application(self) -> None:
        super().run_application()
        if getattr(self, "code", None) == 408:  # with_body_deadline gave up on the body: so does the connection
            self.close_connection = True
            self.wsgi_input._discard = lambda: None  # pywsgi would otherwise read the trickled rest, unbounded


# The web worker is forked from `meshbot serve`, which has imported redis-py (the embedded Redis), and with it ssl
# and redis.asyncio.connection, before gevent patches ssl in the worker. gevent then warns that the modules holding
# their own references to ssl's objects stay unpatched; when that list is redis.asyncio.connection alone, it cannot
# matter (the web application uses redis-py's synchronous client), so that one warning is not shown. Any other list
# still warns.
BENIGN_LATE_SSL_PATCH = (r"Monkey-patching ssl after ssl has already been imported.*"
                         r"Modules that had direct imports \(NOT patched\): "
                         r"\['redis\.asyncio\.connection \([^)']*\)'\]\.\s*\Z")


class PyWSGIDeadlineWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's gevent_pywsgi worker whose requests' line and headers must arrive within `keepalive` seconds."""

    def patch(self) -> None:
        """gevent's monkey patching, without its warning about the one module that cannot matter (see below)."""
        from gevent.monkey import MonkeyPatchWarning

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=BENIGN_LATE_SSL_PATCH, category=MonkeyPatchWarning)
            super().patch()

    def run(self) -> None:
        self.wsgi_handler = type("Handler", (HeaderDeadlineHandler,), {"header_seconds": self.cfg.keepalive})
        super().run()
