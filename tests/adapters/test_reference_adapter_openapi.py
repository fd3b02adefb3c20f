"""Every request to and answer of the reference SQLite tech adapter conforms to the Tech Adapter API 2.2.0 document.

openapi-core validates each recorded exchange against the document (tests/tech_adapter_api.py): the answer always,
and the request whenever the adapter accepted it. tests/adapters/test_reference_adapter.py and the use-case template
round trip record their exchanges through the same harness (tests/servers/reference_adapter.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from adapters.reference import STORAGE_TEMPLATE_ID, URL_PREFIX
from tests.servers.reference_adapter import Recorder, RunningAdapter, running_adapter
from tests.tech_adapter_api import SKIP_REASON, SPEC_PATH, TechAdapterApi, assert_conform


@pytest.fixture(scope="module")
def api() -> TechAdapterApi:
    if not SPEC_PATH.is_file():
        pytest.skip(SKIP_REASON)
    return TechAdapterApi.load()


def exchange(method: str, path: str, status: int, body: Any, content_type: str = "application/json",
             sent: Any = None) -> requests.Response:
    """An answer as requests would hand it over, to a request with the JSON body `sent`."""
    request = requests.Request(method, "http://127.0.0.1:9" + URL_PREFIX + path,
                               json=sent if method == "POST" else None).prepare()
    response = requests.Response()
    response.status_code, response.url, response.request = status, request.url, request
    response.headers["Content-Type"] = content_type
    text = body if isinstance(body, str) and content_type != "application/json" else json.dumps(body)
    response._content = text.encode()
    return response


PROVISION = {"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "x: 1\n", "removeData": False}


def test_the_validator_rejects_answers_that_do_not_conform(api):
    def problems(method: str, path: str, status: int, body: Any, content_type: str = "application/json",
                 sent: Any = None) -> list[str]:
        return api.response_problems(exchange(method, path, status, body, content_type,
                                              PROVISION if sent is None and method == "POST" else sent))

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
    reverse = {"useCaseTemplateId": "u", "environment": "development"}
    assert problems("POST", "/v1/reverse-provisioning", 200, {"status": "COMPLETED", "updates": {}},
                    sent=reverse) == []
    assert problems("POST", "/v1/reverse-provisioning", 200, {"status": "COMPLETED"}, sent=reverse)
    assert problems("GET", "/v2/validate/t1/status", 200, {"status": "COMPLETED", "info": {"publicInfo": {}}})
    assert problems("GET", "/v1/nothing", 200, {})


def test_the_validator_rejects_accepted_requests_that_do_not_conform(api):
    answer = {"status": "COMPLETED", "result": ""}
    missing = {"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "x: 1\n"}  # removeData is required
    wrong_kind = {**PROVISION, "descriptorKind": "SOMETHING_ELSE"}
    assert [p for p in api.response_problems(exchange("POST", "/v1/provision", 200, answer, sent=missing))
            if "removeData" in p]
    assert api.response_problems(exchange("POST", "/v1/provision", 200, answer, sent=wrong_kind))
    refused = {"errors": ["not json"], "userMessage": "x"}
    assert api.response_problems(exchange("POST", "/v1/provision", 400, refused, sent=missing)) == [], \
        "a refused request may be malformed on purpose; only the answer is checked"


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


def test_every_operation_and_its_declared_answers_conform(api, tmp_path, monkeypatch):
    recorder = Recorder()
    for asynchronous in (False, True):
        with running_adapter(tmp_path / f"tour-{asynchronous}.db", asynchronous=asynchronous,
                             recorder=recorder) as adapter:
            _tour(adapter, monkeypatch)
    seen = {(response.request.method, template_of(api, requests.utils.urlparse(response.url).path),
             response.status_code) for response in recorder.responses}
    assert EXPECTED_ANSWERS <= seen, f"not exercised: {sorted(EXPECTED_ANSWERS - seen)}"
    assert ("POST", "/v1/provision", 500) in seen
    assert_conform(recorder, api)
    assert api.operations() == {(method, template) for method, template, _ in EXPECTED_ANSWERS}, \
        "an operation is untested"


def template_of(api: TechAdapterApi, path: str) -> str:
    """The document's path template that a URL path (with the adapter's prefix) matches."""
    parts = path.removeprefix(URL_PREFIX).split("/")
    for template in api.document["paths"]:
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(p.startswith("{") or p == q for p, q in zip(pattern, parts, strict=True)):
            return template
    raise AssertionError(f"{path}: the API has no such path")
