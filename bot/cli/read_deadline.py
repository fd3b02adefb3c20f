"""A WSGI wrapper that gives every request body a deadline: a client that trickles it gets 408 and is let go.

gunicorn's gevent worker bounds the request line and headers (its keep-alive timeout) but not the body, which the
application reads from the socket as it needs it; without this, a client sending one byte every few seconds holds
its connection (and a slot of worker_connections) for as long as it likes. Only for gevent workers: the deadline
is a gevent.Timeout, which interrupts the greenlet's blocked socket read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

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
