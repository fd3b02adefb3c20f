"""The Tech Adapter API 2.2.0 document, and checks that recorded requests and answers conform to it (openapi-core).

The document is read at test time from the shared reference folder beside the repository
(../shared/reference/witboost/tech-adapter-openapi-2.2.0.yml); without it, conformance checks skip with the reason.
One deliberate deviation is allowed: a 202 token sent as text/plain (the API declares an application/json string),
because adapters in the field do both and clients must accept both; it is checked as the JSON string it stands for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from adapters.reference import URL_PREFIX
from tests.paths import SHARED_REFERENCE
from tests.servers.reference_adapter import Recorder

SPEC_PATH = SHARED_REFERENCE / "witboost" / "tech-adapter-openapi-2.2.0.yml"
SKIP_REASON = (f"the Tech Adapter API 2.2.0 document is not at {SPEC_PATH} (the shared reference folder beside "
               "the repository is absent), so requests and answers were not checked against it")


class TechAdapterApi:
    """The API document, served under the prefix adapters use (the document itself names no server)."""

    def __init__(self, document: dict[str, Any], prefix: str = URL_PREFIX) -> None:
        document = json.loads(json.dumps(document))  # YAML's integer status codes become the strings OpenAPI means
        document["servers"] = [{"url": prefix}]
        self.document = document
        self.openapi = OpenAPI.from_dict(document)

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> TechAdapterApi:
        """The document at path (YAML)."""
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    def operations(self) -> set[tuple[str, str]]:
        """Every (METHOD, path template) the document declares."""
        return {(method.upper(), template) for template, item in self.document["paths"].items()
                for method in item if method in ("get", "put", "post", "delete", "patch", "head", "options")}

    def response_problems(self, response: requests.Response) -> list[str]:
        """Why the answer (and, when the adapter accepted it, its request) does not conform; empty when both do."""
        request = RequestsOpenAPIRequest(response.request)
        where = f"{response.request.method} {requests.utils.urlparse(response.url).path} -> {response.status_code}"
        problems = []
        if _accepted(response):  # a refused request may be malformed on purpose
            problems.extend(f"{where}: request: {message}" for message in _errors(
                lambda: self.openapi.validate_request(request)))
        problems.extend(f"{where}: answer: {message}" for message in _errors(
            lambda: self.openapi.validate_response(request, RequestsOpenAPIResponse(_as_declared(response)))))
        return problems


def _accepted(response: requests.Response) -> bool:
    """Whether the adapter took the request: a success that is not a validation's `valid: false`."""
    if response.status_code >= 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("valid") is False)


def _errors(validate: Any) -> list[str]:
    """What validate() finds wrong: each schema error with its place in the body, else the error itself."""
    try:
        validate()
    except Exception as error:  # openapi-core raises one of many ValidationError subclasses
        found = []
        cause: BaseException | None = error
        while cause is not None:
            found.extend(f"{'/'.join(map(str, item.absolute_path)) or '(body)'}: {item.message}"
                         for item in getattr(cause, "schema_errors", None) or ())
            cause = cause.__cause__
        return found or [f"{type(error).__name__}: {error}"]
    return []


def _as_declared(response: requests.Response) -> requests.Response:
    """The answer as the API declares it: a text/plain 202 token becomes the JSON string it stands for."""
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if response.status_code != 202 or media != "text/plain":
        return response
    converted = requests.Response()
    converted.status_code, converted.url, converted.request = 202, response.url, response.request
    converted.headers["Content-Type"] = "application/json"
    converted._content = json.dumps(response.text).encode()
    return converted


def api_or_none() -> TechAdapterApi | None:
    """The API document, or None when the shared reference folder is absent."""
    return TechAdapterApi.load() if SPEC_PATH.is_file() else None


def assert_conform(recorder: Recorder, api: TechAdapterApi | None) -> None:
    """Fail with every exchange that does not conform to the API; skip, saying why, without the document."""
    if api is None:
        pytest.skip(SKIP_REASON)
    problems = [problem for response in recorder.responses for problem in api.response_problems(response)]
    assert not problems, "exchanges that do not conform to the Tech Adapter API 2.2.0:\n" + "\n".join(problems)
