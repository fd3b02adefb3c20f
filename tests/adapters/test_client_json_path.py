"""A validate call with an encoded body skips requests' Session: the adapter sees what requests' own path sends."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from adapters.client import TechAdapterClient
from adapters.model import JsonBody, ValidationOutcome
from tests.servers.serving import serving

PREFIX = "/datamesh.specificprovisioner"
BODY = JsonBody(json.dumps({"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "x" * 70_000}).encode())


@dataclass
class Answer:
    """One scripted answer: status, JSON data, extra headers, or a connection closed without a byte."""

    status: int = 200
    data: Any = field(default_factory=lambda: {"valid": True})
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


class _Script(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: dict[str, list[Answer]] = {}
        self.seen: list[tuple[str, list[tuple[str, str]], bytes]] = []  # path, headers in order, body
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{PREFIX}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer path (below the prefix) with these in turn; the last repeats."""
        self.answers[PREFIX + path] = list(answers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Script

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """Record the request, then answer as scripted."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append((self.path, list(self.headers.items()), body))
            answers = self.server.answers.get(self.path) or [Answer(404, {"error": "no route"})]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer.close:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(answer.data).encode()
        self.send_response(answer.status)
        for name, value in {"Content-Type": "application/json", **answer.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[_Script]:
    with serving(_Script()) as httpd:
        yield httpd


def plain_session() -> requests.Session:
    """A session as the client's own, sent through requests' usual path (the client uses a given one as is)."""
    session = requests.Session()
    session.trust_env = False
    return session


def both(server: _Script, answers: dict[str, list[Answer]], url: str = "",
         **settings: Any) -> tuple[ValidationOutcome, ValidationOutcome]:
    """The outcome of a validate call through the client's own path, then through a plain session; the adapter
    sees the same requests (paths, headers in order, bodies) from both."""
    outcomes, seen = [], []
    for session in (None, plain_session()):
        for path, scripted in answers.items():
            server.script(path, *scripted)
        start = len(server.seen)
        client = TechAdapterClient(url or server.url, timeout=5, request_timeout=2, backoff=0.01, session=session,
                                   **settings)
        outcomes.append(client.validate(BODY))
        seen.append(server.seen[start:])
    assert seen[0] == seen[1]
    assert seen[0], "no request reached the adapter"
    return outcomes[0], outcomes[1]


def test_the_request_is_the_same_as_requests_sends(server: _Script) -> None:
    own, plain = both(server, {"/v1/validate": [Answer()]})
    assert own == plain == ValidationOutcome(valid=True, message="valid")
    path, headers, body = server.seen[0]
    assert body == BODY.data and path == PREFIX + "/v1/validate"
    assert [name for name, _ in headers] == ["Host", "User-Agent", "Accept-Encoding", "Accept", "Connection",
                                             "Content-Type", "Content-Length"]


@pytest.mark.parametrize("answers", [
    [Answer(400, {"errors": ["bad id"]})],
    [Answer(500, {"error": "cannot parse"})],
    [Answer(422, {"detail": [{"loc": ["body", "descriptor"], "msg": "field required"}]})],
    [Answer(503, {}), Answer(503, {}), Answer()],
    [Answer(close=True), Answer()],
    [Answer(200, ["not an object"])],
], ids=["refusal", "system-error", "422", "503-then-valid", "closed-then-valid", "not-an-object"])
def test_answers_end_the_same(server: _Script, answers: list[Answer]) -> None:
    own, plain = both(server, {"/v1/validate": answers})
    assert own == plain


def test_a_cookie_set_on_a_retried_answer_is_sent_with_the_retry(server: _Script) -> None:
    own, plain = both(server, {"/v1/validate": [Answer(503, {}, {"Set-Cookie": "lb=node-3; Path=/"}), Answer()]})
    assert own == plain and own.valid
    retry_headers = dict(server.seen[1][1])
    assert retry_headers["Cookie"] == "lb=node-3"
    assert list(retry_headers)[-2:] == ["Cookie", "Content-Length"]  # where requests puts it


def test_a_redirect_is_followed_with_the_body(server: _Script) -> None:
    own, plain = both(server, {"/v1/validate": [Answer(307, {}, {"Location": PREFIX + "/v1/validate-here"})],
                               "/v1/validate-here": [Answer()]})
    assert own == plain and own.valid
    assert [path for path, _, _ in server.seen[:2]] == [PREFIX + "/v1/validate", PREFIX + "/v1/validate-here"]
    assert server.seen[1][2] == BODY.data


def test_credentials_in_the_url_are_sent(server: _Script) -> None:
    url = server.url.replace("http://", "http://meshbot:s3cret@")
    own, plain = both(server, {"/v1/validate": [Answer()]}, url=url)
    assert own == plain and own.valid
    assert dict(server.seen[0][1])["Authorization"] == "Basic bWVzaGJvdDpzM2NyZXQ="


def test_an_answer_over_the_limit_is_not_read(server: _Script) -> None:
    large = Answer(data={"valid": True, "pad": "x" * 2000})
    own, plain = both(server, {"/v1/validate": [large]}, max_answer_bytes=1000)
    assert own == plain and own.failed
    assert "with a body over 1000 bytes" in own.message


def test_an_unusable_url_fails_with_requests_message() -> None:
    own = TechAdapterClient("adapter.example/x", timeout=5, retries=0).validate(BODY)
    plain = TechAdapterClient("adapter.example/x", timeout=5, retries=0, session=plain_session()).validate(BODY)
    assert own == plain and own.failed
    assert own.message.startswith("cannot call the tech adapter at adapter.example/x/v1/validate: "), own.message


def test_a_refused_connection_is_retried_as_before() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}{PREFIX}"
    own = TechAdapterClient(url, timeout=5, retries=1, backoff=0.01).validate(BODY)
    plain = TechAdapterClient(url, timeout=5, retries=1, backoff=0.01, session=plain_session()).validate(BODY)
    assert own == plain
    assert own.message == (f"cannot connect to the tech adapter at {url}/v1/validate (connection refused) after 2 "
                           "attempts")
