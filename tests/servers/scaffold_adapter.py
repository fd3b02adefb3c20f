"""A tech adapter shaped like the public Witboost Python scaffold (FastAPI): a real HTTP server on 127.0.0.1.

It answers as FastAPI and the scaffold do: a request without `descriptorKind` or `descriptor` gets 422
`{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}`, an unknown path 404 `{"detail": "Not Found"}`,
and otherwise what the test scripted for that path (the answers are used in order, the last one repeats;
unscripted, validate says valid and provision completes). The scaffold's own shapes: ValidationResult
`{"valid": false, "error": {"errors": [...]}}` (its parser puts every pydantic error of a descriptor in ONE
multi-line string of Python reprs), ValidationError `{"errors": [...]}` with 400, SystemError `{"error": ...}`
with 500.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

PREFIX = "/datamesh.specificprovisioner"


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, and a JSON body or a text one."""

    status: int = 200
    data: Any = None
    text: str | None = None

    def response(self) -> Response:
        """The werkzeug response."""
        if self.text is not None:
            return Response(self.text, status=self.status, content_type="text/plain; charset=utf-8")
        return Response(json.dumps(self.data), status=self.status, content_type="application/json")


def valid() -> Answer:
    """200 ValidationResult: valid."""
    return Answer(200, {"valid": True})


def not_valid(*errors: str) -> Answer:
    """200 ValidationResult: not valid, with the errors."""
    return Answer(200, {"valid": False, "error": {"errors": list(errors)}})


def parse_failure(*locations: tuple[tuple[str | int, ...], str, str]) -> Answer:
    """200 not valid as the scaffold's parse_yaml_with_model says it: one string, each pydantic error's repr."""
    reprs = [repr({"type": kind, "loc": loc, "msg": message}) for loc, message, kind in locations]
    return not_valid("Failed to parse the descriptor. Details: \n" + " , \n".join(reprs))


def bad_request(*errors: str) -> Answer:
    """400 ValidationError."""
    return Answer(400, {"errors": list(errors)})


def unprocessable(*fields: tuple[tuple[str | int, ...], str, str]) -> Answer:
    """422 as FastAPI answers a request body its model rejects."""
    return Answer(422, {"detail": [{"type": kind, "loc": list(loc), "msg": message, "input": None}
                                   for loc, message, kind in fields]})


def system_error(message: str) -> Answer:
    """500 SystemError."""
    return Answer(500, {"error": message})


def plain_500() -> Answer:
    """500 as uvicorn answers an unhandled exception: text/plain."""
    return Answer(500, text="Internal Server Error")


def not_found() -> Answer:
    """404 as FastAPI answers a path it does not route."""
    return Answer(404, {"detail": "Not Found"})


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Tests read what was received, not a log line per request."""


class ScaffoldAdapter:
    """The server: script answers per path (below the prefix), read what was received."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.received: list[tuple[str, Any]] = []
        self._answers: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        """http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self) -> str:
        """The base URL a configuration names: root and prefix."""
        return self.root + self.prefix

    def answer(self, path: str, *answers: Answer) -> None:
        """Script the answers to POSTs on path (e.g. `/v1/validate`)."""
        with self._lock:
            self._answers[path] = list(answers)

    def _next(self, path: str) -> Answer | None:
        with self._lock:
            queue = self._answers.get(path)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path[len(self.prefix):] if request.path.startswith(self.prefix + "/") else None
        body = request.get_json(silent=True)
        with self._lock:
            self.received.append((request.path, body))
        if request.method != "POST" or path not in ("/v1/validate", "/v1/provision", "/v1/unprovision"):
            return not_found().response()(environ, start_response)
        missing = [name for name in ("descriptorKind", "descriptor")
                   if not isinstance(body, dict) or name not in body]
        if missing:
            return unprocessable(*((("body", name), "Field required", "missing") for name in missing)) \
                .response()(environ, start_response)
        scripted = self._next(path)
        answer = scripted or (valid() if path == "/v1/validate" else Answer(200, {"status": "COMPLETED",
                                                                                  "result": "done"}))
        return answer.response()(environ, start_response)

    def start(self) -> None:
        """Serve in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._thread.join(5)


@contextmanager
def scaffold_adapter(prefix: str = PREFIX) -> Iterator[ScaffoldAdapter]:
    """A running scaffold-shaped adapter for the length of the block."""
    server = ScaffoldAdapter(prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()
