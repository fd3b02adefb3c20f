"""Every answer of the reference SQLite tech adapter conforms to the Tech Adapter API 2.2.0 document.

The OpenAPI document is read at test time from the shared reference folder beside the repository
(../shared/reference/witboost/tech-adapter-openapi-2.2.0.yml). Its OpenAPI 3.0 schemas are converted to
JSON Schema 2020-12 (`$ref`s to components become `$defs`, `nullable` becomes a null type, `example` and
`deprecated` are dropped) and every response a test receives (status code and body) is validated against
the schema the operation declares for that status. tests/adapters/test_reference_adapter.py uses the same harness
(`running_adapter`, `Recorder`) for all of its requests.

One deliberate deviation is checked explicitly: unprovision's 202 token is sent as text/plain (the API
declares application/json string), because adapters in the field do both and clients must accept both.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from adapters.client import TechAdapterClient
from adapters.reference import STORAGE_TEMPLATE_ID, URL_PREFIX
from adapters.reference.server import base_url, start

SPEC_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "witboost" / (
    "tech-adapter-openapi-2.2.0.yml")
SKIP_REASON = (f"the Tech Adapter API 2.2.0 document is not at {SPEC_PATH.resolve()} (the shared reference folder "
               "beside the repository is absent), so responses cannot be checked against it")
_DROPPED = frozenset({"example", "examples", "deprecated", "description", "externalDocs", "xml", "discriminator"})
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


# ---------------------------------------------------------------------- OpenAPI 3.0 -> JSON Schema


def to_json_schema(schema: Any) -> Any:
    """One OpenAPI 3.0 schema object as JSON Schema 2020-12 (refs to #/components/schemas become #/$defs)."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:  # OpenAPI 3.0 ignores a $ref's siblings
        reference = schema["$ref"]
        assert reference.startswith("#/components/schemas/"), f"unsupported $ref {reference}"
        return {"$ref": "#/$defs/" + reference.rsplit("/", 1)[1]}
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED or key == "nullable":
            continue
        if key == "properties" or key == "patternProperties":
            converted[key] = {name: to_json_schema(item) for name, item in value.items()}
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [to_json_schema(item) for item in value]
        elif key in ("items", "not", "additionalProperties"):
            converted[key] = to_json_schema(value)
        else:
            converted[key] = value
    if schema.get("nullable") is True:
        if isinstance(converted.get("type"), str):
            converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


@dataclass(frozen=True)
class Exchange:
    """One HTTP answer a test received."""

    method: str
    path: str
    status: int
    content_type: str
    body: str


class OpenApiSpec:
    """The operations of an OpenAPI 3.0 document and the JSON Schema of each declared response."""

    def __init__(self, document: dict[str, Any], prefix: str = URL_PREFIX) -> None:
        self.document = document
        self.prefix = prefix
        self.definitions = {name: to_json_schema(schema)
                            for name, schema in document.get("components", {}).get("schemas", {}).items()}
        self.operations: list[tuple[str, str, re.Pattern[str], dict[str, Any]]] = []
        for template, item in document["paths"].items():
            pattern = re.compile("".join(
                "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", template)))
            for method, operation in item.items():
                if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                    self.operations.append((method.upper(), template, pattern, operation))

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> OpenApiSpec:
        """The document at path (YAML)."""
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(path template, operation) answering method and path (the URL path, with the server prefix)."""
        if not path.startswith(self.prefix):
            return None
        relative = path[len(self.prefix):]
        for candidate_method, template, pattern, operation in self.operations:
            if candidate_method == method and pattern.fullmatch(relative):
                return template, operation
        return None

    def problems(self, exchange: Exchange) -> list[str]:
        """Why the answer does not conform to the document (empty when it does)."""
        found = self.operation(exchange.method, exchange.path)
        where = f"{exchange.method} {exchange.path} -> {exchange.status}"
        if found is None:
            return [f"{where}: the API has no such operation"]
        template, operation = found
        responses = {str(code): response for code, response in operation.get("responses", {}).items()}
        response = responses.get(str(exchange.status)) or responses.get(f"{str(exchange.status)[0]}XX") or \
            responses.get("default")
        if response is None:
            return [f"{where}: {exchange.method} {template} does not declare HTTP {exchange.status} "
                    f"(it declares {', '.join(sorted(responses))})"]
        content = response.get("content") or {}
        if not content:
            return [] if not exchange.body else [f"{where}: declares no body, got {exchange.body[:80]!r}"]
        media = exchange.content_type.split(";")[0].strip().lower()
        if media == "application/json" and "application/json" in content:
            try:
                body = json.loads(exchange.body)
            except ValueError:
                return [f"{where}: the body is not JSON: {exchange.body[:80]!r}"]
            schema = content["application/json"].get("schema", {})
        elif media == "text/plain" and content.get("application/json", {}).get("schema", {}).get("type") == "string":
            body, schema = exchange.body, content["application/json"]["schema"]  # the plain-text token deviation
        else:
            return [f"{where}: content type {media!r} is not one the API declares ({', '.join(content)})"]
        validator = Draft202012Validator({"$defs": self.definitions, **to_json_schema(schema)},
                                         format_checker=FORMATS)
        return [f"{where}: {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
                for error in validator.iter_errors(body)]


# ---------------------------------------------------------------------- harness shared with the adapter tests


@dataclass
class Recorder:
    """Keeps every answer received through its session."""

    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self) -> requests.Session:
        """A requests session whose answers are recorded."""
        session = requests.Session()
        session.hooks["response"].append(self._record)
        return session

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        exchange = Exchange(str(response.request.method), urlsplit(response.url).path, response.status_code,
                            response.headers.get("Content-Type", ""), response.text)
        with self._lock:
            self.exchanges.append(exchange)

    def statuses(self, path_end: str) -> list[dict[str, Any]]:
        """The JSON bodies of the 200 answers to paths ending in path_end."""
        with self._lock:
            return [json.loads(item.body) for item in self.exchanges
                    if item.path.endswith(path_end) and item.status == 200]


@dataclass
class RunningAdapter:
    """A reference adapter serving on 127.0.0.1 in this process, and a recording session to reach it."""

    url: str
    database: Path
    recorder: Recorder
    session: requests.Session

    def client(self, **options: Any) -> TechAdapterClient:
        """The real tech adapter client, through the recording session."""
        return TechAdapterClient(self.url, timeout=20, session=self.session, **options)

    def post(self, path: str, **options: Any) -> requests.Response:
        """A raw POST to an API path (e.g. /v1/provision)."""
        return self.session.post(self.url + path, timeout=20, **options)

    def get(self, path: str) -> requests.Response:
        """A raw GET of an API path."""
        return self.session.get(self.url + path, timeout=20)


@contextmanager
def running_adapter(database: Path, *, asynchronous: bool = False, async_delay: float = 0.05,
                    recorder: Recorder | None = None) -> Iterator[RunningAdapter]:
    """Serve the adapter on a free port (werkzeug's threaded server) for the duration of the block."""
    server = start(database, "127.0.0.1", 0, asynchronous=asynchronous, async_delay=async_delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    recorder = recorder or Recorder()
    try:
        yield RunningAdapter(base_url(server), database, recorder, recorder.session())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def spec_or_none() -> OpenApiSpec | None:
    """The API document, or None when the shared reference folder is absent."""
    return OpenApiSpec.load() if SPEC_PATH.is_file() else None


def assert_conform(recorder: Recorder, spec: OpenApiSpec | None) -> None:
    """Fail with every answer that does not conform to the API (nothing to check without the document)."""
    if spec is None:
        return
    problems = [problem for exchange in recorder.exchanges for problem in spec.problems(exchange)]
    assert not problems, "answers that do not conform to the Tech Adapter API 2.2.0:\n" + "\n".join(problems)


# ---------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def spec() -> OpenApiSpec:
    if not SPEC_PATH.is_file():
        pytest.skip(SKIP_REASON)
    return OpenApiSpec.load()


def test_conversion_handles_refs_nullable_and_openapi_only_keywords():
    converted = to_json_schema({
        "type": "object", "nullable": True, "example": {"a": 1}, "deprecated": True,
        "properties": {"example": {"type": "string", "nullable": True, "example": "x"},
                       "level": {"type": "string", "enum": ["INFO"], "nullable": True},
                       "info": {"$ref": "#/components/schemas/Info", "description": "ignored sibling"}},
        "items": {"allOf": [{"$ref": "#/components/schemas/Log"}]},
    })
    assert converted == {
        "type": ["object", "null"],
        "properties": {"example": {"type": ["string", "null"]},  # a property named `example` stays
                       "level": {"type": ["string", "null"], "enum": ["INFO", None]},
                       "info": {"$ref": "#/$defs/Info"}},
        "items": {"allOf": [{"$ref": "#/$defs/Log"}]},
    }


def test_the_validator_rejects_answers_that_do_not_conform(spec):
    def problems(method: str, path: str, status: int, body: Any, content_type: str = "application/json") -> list[str]:
        text = body if isinstance(body, str) and content_type != "application/json" else json.dumps(body)
        return spec.problems(Exchange(method, URL_PREFIX + path, status, content_type, text))

    log = {"timestamp": "2026-01-02T03:04:05.678Z", "level": "INFO", "message": "ok"}
    assert problems("POST", "/v1/provision", 200, {"status": "COMPLETED", "result": "", "logs": [log]}) == []
    assert problems("GET", "/v1/provision/t1/status", 200, {"status": "RUNNING", "result": ""}) == []
    assert problems("POST", "/v1/provision", 200, {"status": "COMPLETED"})  # result is required
    assert problems("POST", "/v1/provision", 200, {"status": "DONE", "result": ""})
    assert problems("POST", "/v1/provision", 200,
                    {"status": "COMPLETED", "result": "", "logs": [{**log, "timestamp": "yesterday"}]})
    assert problems("POST", "/v1/provision", 200,
                    {"status": "COMPLETED", "result": "", "logs": [{**log, "level": "NOTICE"}]})
    assert problems("POST", "/v1/provision", 200, {"status": "COMPLETED", "result": "", "info": {"publicInfo": {}}})
    assert problems("POST", "/v1/validate", 400, {"errors": ["x"]})  # /v1/validate declares no 400
    assert problems("POST", "/v1/provision", 400, {"userMessage": "x"})  # errors is required
    assert problems("POST", "/v1/provision", 202, "t1", content_type="text/plain") == []
    assert problems("POST", "/v1/provision", 202, {"token": "t1"})
    assert problems("POST", "/v1/provision", 200, "<html>", content_type="text/html")
    assert problems("POST", "/v1/reverse-provisioning", 200, {"status": "COMPLETED", "updates": {}}) == []
    assert problems("POST", "/v1/reverse-provisioning", 200, {"status": "COMPLETED"})
    assert problems("GET", "/v2/validate/t1/status", 200, {"status": "COMPLETED", "info": {"publicInfo": {}}})
    assert problems("GET", "/v1/nothing", 200, {})


EXPECTED_ANSWERS = {
    ("POST", "/v1/validate", 200), ("POST", "/v2/validate", 202), ("POST", "/v2/validate", 400),
    ("GET", "/v2/validate/{token}/status", 200), ("GET", "/v2/validate/{token}/status", 400),
    ("POST", "/v1/provision", 200), ("POST", "/v1/provision", 202), ("POST", "/v1/provision", 400),
    ("POST", "/v1/provision", 500), ("GET", "/v1/provision/{token}/status", 200),
    ("GET", "/v1/provision/{token}/status", 400), ("POST", "/v1/unprovision", 200),
    ("POST", "/v1/unprovision", 202), ("POST", "/v1/unprovision", 400), ("POST", "/v1/updateacl", 200),
    ("POST", "/v1/updateacl", 202), ("POST", "/v1/updateacl", 400), ("POST", "/v1/reverse-provisioning", 200),
    ("POST", "/v1/reverse-provisioning", 202), ("POST", "/v1/reverse-provisioning", 400),
    ("GET", "/v1/reverse-provisioning/{token}/status", 200), ("GET", "/v1/reverse-provisioning/{token}/status", 400),
}


def _tour(adapter: RunningAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every operation, successful, refused and (for provision) crashing."""
    from adapters.payloads import component_request, data_product_request, reverse_provisioning_request
    from adapters.reference import operations

    component = {"id": "urn:dmb:cmp:t:o:0:s", "kind": "storage", "infrastructureTemplateId": STORAGE_TEMPLATE_ID,
                 "specific": {"tables": [{"tableName": "t", "schema": [{"name": "a", "dataType": "TEXT"}]}]}}
    descriptor = {"id": "urn:dmb:dp:t:o:0", "components": [component]}
    request = component_request(descriptor, component["id"])
    client = adapter.client()
    assert client.validate(request).valid and client.validate_async(request).valid
    assert client.provision(request).ok
    assert client.provision(data_product_request(descriptor)).ok
    info = {"request": json.dumps(request), "result": "ok"}
    assert client.update_acl(["user:alice"], info).ok
    assert client.reverse_provision(reverse_provisioning_request("u", "dev", {"table": "t"}, {})).ok
    assert client.unprovision(component_request(descriptor, component["id"], remove_data=True)).ok
    for path in ("/v1/provision", "/v1/unprovision", "/v1/updateacl", "/v1/reverse-provisioning", "/v2/validate"):
        assert adapter.post(path, data="{not json").status_code == 400
    assert adapter.post("/v1/validate", data="{not json").json()["valid"] is False
    for path in ("/v1/provision", "/v1/reverse-provisioning", "/v2/validate"):
        assert adapter.get(f"{path}/no-such-token/status").status_code == 400

    def crash(*args: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(operations, "provision", crash)
    adapter.post("/v1/provision", json=request)
    monkeypatch.undo()


def test_every_operation_and_its_declared_answers_conform(spec, tmp_path, monkeypatch):
    recorder = Recorder()
    for asynchronous in (False, True):
        with running_adapter(tmp_path / f"tour-{asynchronous}.db", asynchronous=asynchronous,
                             recorder=recorder) as adapter:
            _tour(adapter, monkeypatch)
    seen = set()
    for exchange in recorder.exchanges:
        found = spec.operation(exchange.method, exchange.path)
        assert found is not None, exchange
        seen.add((exchange.method, found[0], exchange.status))
    assert EXPECTED_ANSWERS <= seen, f"not exercised: {sorted(EXPECTED_ANSWERS - seen)}"
    assert ("POST", "/v1/provision", 500) in seen
    assert_conform(recorder, spec)
    declared = {(method, template) for method, template, _, _ in spec.operations}
    assert declared == {(method, template) for method, template, _ in EXPECTED_ANSWERS}, "an operation is untested"
