"""The tech adapter client against real HTTP servers that misbehave on purpose (see tests/servers/tech_adapter.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from adapters.client import TechAdapterClient
from adapters.model import AdapterResult, JsonBody, Outcome, ReverseProvisioningResult, ValidationOutcome
from adapters.payloads import component_request, data_product_request, reverse_provisioning_request
from tests.servers.tech_adapter import PREFIX, AdapterServer, Reply, adapter_server, close_without_answer, closed_port

COMPONENT = "urn:dmb:cmp:finance:cashflow:1:output"
DESCRIPTOR: dict[str, Any] = {
    "id": "urn:dmb:dp:finance:cashflow:1",
    "name": "cashflow",
    "domain": "finance",
    "version": "1.0.0",
    "components": [{"id": COMPONENT, "kind": "outputport", "description": "Daily cash flow.\nOne row per day."}],
}
REQUEST = component_request(DESCRIPTOR, COMPONENT)
PROVISION_INFO = {"request": '{"descriptorKind": "COMPONENT_DESCRIPTOR"}', "result": "deployed"}
REVERSE_REQUEST = reverse_provisioning_request(
    "urn:dmb:utm:op-standard:0.0.0", "development", {"table": "cash"}, {"spec": {"mesh": {"name": "output"}}}
)
INFO = {"publicInfo": {"table": {"type": "string", "label": "Table", "value": "cash"}}, "privateInfo": {"id": 7}}
LOGS = [
    {"timestamp": "2024-05-01T10:00:00Z", "level": "INFO", "message": "creating table", "phase": "deploy"},
    {"timestamp": "2024-05-01T10:00:01Z", "level": "INFO", "message": "table created"},
]
RUNNING = Reply(data={"status": "RUNNING", "result": ""})
COMPLETED = Reply(data={"status": "COMPLETED", "result": "deployed", "info": INFO, "logs": LOGS})
DEADLINE_TAIL = ("; the operation may still be running on the adapter. Raise this adapter's `timeout` in the server "
                 "configuration if it needs longer.")

Operation = Callable[[TechAdapterClient], AdapterResult]
OPERATIONS: dict[str, tuple[str, Operation]] = {
    "provision": ("/v1/provision", lambda client: client.provision(REQUEST)),
    "unprovision": ("/v1/unprovision", lambda client: client.unprovision(REQUEST)),
    "updateacl": ("/v1/updateacl", lambda client: client.update_acl(["user:alice", "group:finance"], PROVISION_INFO)),
}


@pytest.fixture
def server() -> Iterator[AdapterServer]:
    """A scriptable adapter under /datamesh.specificprovisioner."""
    with adapter_server() as started:
        yield started


@pytest.fixture
def sleeps() -> list[float]:
    """Every pause the clients of a test took (they still really sleep)."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., TechAdapterClient]]:
    """Builds fast clients (timeout 1 s, request timeout 0.3 s, tiny backoff and poll interval); closes them."""
    clients: list[TechAdapterClient] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    def make(base_url: str, **settings: Any) -> TechAdapterClient:
        fast: dict[str, Any] = {"timeout": 1.0, "request_timeout": 0.3, "poll_interval": 0.01, "backoff": 0.01}
        client = TechAdapterClient(base_url, **(fast | settings), sleep=sleep)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.session.close()


@pytest.fixture
def client(server: AdapterServer, make_client: Callable[..., TechAdapterClient]) -> TechAdapterClient:
    """A fast client of the test's server."""
    return make_client(server.url)


def polls(server: AdapterServer, path: str) -> int:
    """How many status GETs the server received on path."""
    return len(server.requests("GET", path))


# ---------------------------------------------------------------------- provision answered at once (200)


def test_provision_200_completed_keeps_result_info_and_logs(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", COMPLETED)
    result = client.provision(REQUEST)
    assert result == AdapterResult(outcome=Outcome.COMPLETED, message="deployed", info=INFO, logs=LOGS, http_status=200)
    assert result.ok
    assert result.info is not None and result.info["publicInfo"]["table"]["value"] == "cash"
    assert result.info["privateInfo"] == {"id": 7}
    assert len(server.requests()) == 1


def test_provision_200_completed_without_result_text(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED"}))
    assert client.provision(REQUEST) == AdapterResult(outcome=Outcome.COMPLETED, message="completed", http_status=200)


def test_provision_200_failed_reports_the_result(server: AdapterServer, client: TechAdapterClient) -> None:
    logs = [*LOGS, {"timestamp": "2024-05-01T10:00:02Z", "level": "ERROR", "message": "quota exceeded"}]
    server.reply("POST", "/v1/provision", Reply(data={"status": "FAILED", "result": "table exists", "logs": logs}))
    result = client.provision(REQUEST)
    assert result == AdapterResult(outcome=Outcome.FAILED, message="table exists", logs=logs, http_status=200)
    assert not result.ok


def test_provision_200_failed_without_result_reports_the_last_error_log(
    server: AdapterServer, client: TechAdapterClient
) -> None:
    logs = [
        {"timestamp": "2024-05-01T10:00:00Z", "level": "ERROR", "message": "first error"},
        {"timestamp": "2024-05-01T10:00:01Z", "level": "INFO", "message": "retrying"},
        {"timestamp": "2024-05-01T10:00:02Z", "level": "error", "message": "permission denied on schema cash"},
        {"timestamp": "2024-05-01T10:00:03Z", "level": "WARNING", "message": "rolling back"},
        "not a log entry",
    ]
    server.reply("POST", "/v1/provision", Reply(data={"status": "FAILED", "result": "", "logs": logs, "info": INFO}))
    result = client.provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message == "permission denied on schema cash"
    assert result.logs == logs[:4]
    assert result.info == INFO


def test_provision_200_failed_without_any_message(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "FAILED", "result": ""}))
    result = client.provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message == "the adapter reported FAILED without a message"


def test_provision_200_running_without_token_fails(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", RUNNING)
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message="/v1/provision answered 200 with status RUNNING but gave no token to poll",
        http_status=200,
    )
    assert server.requests("GET") == []


def test_provision_200_with_unknown_status(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "DONE", "result": "ok"}))
    result = client.provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message == "the adapter answered without a valid status: '{\"status\": \"DONE\", \"result\": \"ok\"}'"
    assert result.http_status == 200


# ---------------------------------------------------------------------- tokens (202)


@pytest.mark.parametrize(
    ("reply", "token", "status_path"),
    [
        (Reply(202, data="tok-1"), "tok-1", "/v1/provision/tok-1/status"),
        (Reply(202, text="tok-1\n", content_type="text/plain"), "tok-1", "/v1/provision/tok-1/status"),
        (Reply(202, data={"token": "tok-1"}), "tok-1", "/v1/provision/tok-1/status"),
        (Reply(202, text="  \"tok-1\"  "), "tok-1", "/v1/provision/tok-1/status"),
        (Reply(202, text="20240501", content_type="text/plain"), "20240501", "/v1/provision/20240501/status"),
        (Reply(202, data="job/7?x=1"), "job/7?x=1", "/v1/provision/job%2F7%3Fx%3D1/status"),
    ],
    ids=["json-string", "plain-text", "object", "json-string-padded", "plain-text-number", "needs-quoting"],
)
def test_provision_202_token_forms_are_polled(
    server: AdapterServer, client: TechAdapterClient, reply: Reply, token: str, status_path: str
) -> None:
    server.reply("POST", "/v1/provision", reply)
    server.reply("GET", status_path, COMPLETED)
    result = client.provision(REQUEST)
    assert result == AdapterResult(outcome=Outcome.COMPLETED, message="deployed", info=INFO, logs=LOGS, http_status=200)
    assert [(r.method, r.path) for r in server.requests()] == [
        ("POST", PREFIX + "/v1/provision"), ("GET", PREFIX + status_path)
    ]


@pytest.mark.parametrize(
    ("reply", "excerpt"),
    [
        (Reply(202), "(empty body)"),
        (Reply(202, text="  \n ", content_type="text/plain"), "(empty body)"),
        (Reply(202, data=""), "'\"\"'"),
        (Reply(202, data="   "), "'\" \"'"),
        (Reply(202, data=None), "'null'"),
        (Reply(202, data={"id": "tok-1"}), "'{\"id\": \"tok-1\"}'"),
        (Reply(202, data={"token": 42}), "'{\"token\": 42}'"),
        (Reply(202, text="task accepted, token follows", content_type="text/plain"),
         "'task accepted, token follows'"),
    ],
    ids=["empty", "whitespace", "empty-json-string", "blank-json-string", "null", "object-without-token",
         "object-with-number", "sentence"],
)
def test_provision_202_without_usable_token_fails(
    server: AdapterServer, client: TechAdapterClient, reply: Reply, excerpt: str
) -> None:
    server.reply("POST", "/v1/provision", reply)
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message=f"/v1/provision answered 202 without a usable task token: {excerpt}",
        http_status=202,
    )
    assert server.requests("GET") == []


@pytest.mark.parametrize("operation", OPERATIONS, ids=list(OPERATIONS))
def test_202_polls_the_provision_status_until_done(
    server: AdapterServer, client: TechAdapterClient, operation: str
) -> None:
    path, call = OPERATIONS[operation]
    server.reply("POST", path, Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", RUNNING, RUNNING, COMPLETED)
    result = call(client)
    assert result == AdapterResult(outcome=Outcome.COMPLETED, message="deployed", info=INFO, logs=LOGS, http_status=200)
    assert [(r.method, r.path) for r in server.requests()] == [("POST", PREFIX + path)] + [
        ("GET", PREFIX + "/v1/provision/tok-1/status")
    ] * 3


def test_202_then_failed_status_reports_the_last_error_log(server: AdapterServer, client: TechAdapterClient) -> None:
    logs = [{"timestamp": "2024-05-01T10:00:00Z", "level": "ERROR", "message": "bucket is not empty"}]
    server.reply("POST", "/v1/unprovision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", RUNNING, Reply(data={"status": "FAILED", "logs": logs}))
    result = client.unprovision(REQUEST)
    assert result == AdapterResult(outcome=Outcome.FAILED, message="bucket is not empty", logs=logs, http_status=200)
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_status_running_past_the_timeout_fails_with_the_token(
    server: AdapterServer, client: TechAdapterClient
) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-forever"))
    server.reply("GET", "/v1/provision/tok-forever/status", RUNNING)
    started = time.monotonic()
    result = client.provision(REQUEST)
    elapsed = time.monotonic() - started
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message=f"the tech adapter at {server.url}/v1/provision/tok-forever/status did not finish within 1 s "
        f"(still RUNNING; token tok-forever){DEADLINE_TAIL}",
    )
    assert 0.9 < elapsed < 1.6
    assert polls(server, "/v1/provision/tok-forever/status") >= 5


def test_status_unavailable_past_the_timeout_names_the_last_problem(
    server: AdapterServer, make_client: Callable[..., TechAdapterClient]
) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(503, text="Service Unavailable", content_type="text/plain"))
    result = make_client(server.url, timeout=0.3).provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message == (f"the tech adapter at {server.url}/v1/provision/tok-1/status did not finish within "
                              f"0.3 s (last poll answered HTTP 503; token tok-1){DEADLINE_TAIL}")
    assert polls(server, "/v1/provision/tok-1/status") >= 3


def test_poll_cut_short_by_the_deadline_keeps_the_last_answer(
    server: AdapterServer, make_client: Callable[..., TechAdapterClient]
) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(503, text="busy", content_type="text/plain"),
                 Reply(data={"status": "COMPLETED"}, delay=2.0))
    result = make_client(server.url, timeout=0.2).provision(REQUEST)
    assert result.message == (f"the tech adapter at {server.url}/v1/provision/tok-1/status did not finish within "
                              f"0.2 s (last poll answered HTTP 503; token tok-1){DEADLINE_TAIL}")
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_poll_answering_503_once_is_retried(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(503, text="busy", content_type="text/plain"), COMPLETED)
    assert client.provision(REQUEST).outcome is Outcome.COMPLETED
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_poll_whose_connection_breaks_is_retried(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", close_without_answer(), COMPLETED)
    assert client.provision(REQUEST).outcome is Outcome.COMPLETED
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_slow_poll_is_retried(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(data={"status": "RUNNING"}, delay=2.0), COMPLETED)
    assert client.provision(REQUEST).outcome is Outcome.COMPLETED
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_poll_answering_500_system_error_fails(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(500, data={"error": "task store unavailable"}), COMPLETED)
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message="the tech adapter reported a system error: task store unavailable",
        http_status=500,
    )
    assert polls(server, "/v1/provision/tok-1/status") == 1


def test_poll_answering_unknown_token_fails(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status",
                 Reply(400, data={"errors": ["unknown token"], "userMessage": "No task tok-1"}))
    result = client.provision(REQUEST)
    assert result == AdapterResult(outcome=Outcome.FAILED, message="No task tok-1", details=["error: unknown token"],
                                   http_status=400)


def test_poll_with_garbage_json_fails(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(text='{"status": "COMPLETED",'), COMPLETED)
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message="/v1/provision/tok-1/status answered HTTP 200 with a body that is not JSON: "
        "'{\"status\": \"COMPLETED\",'",
        http_status=200,
    )
    assert polls(server, "/v1/provision/tok-1/status") == 1


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(data={"result": "done"}),
         "/v1/provision/tok-1/status answered without a valid status: '{\"result\": \"done\"}'"),
        (Reply(data=["COMPLETED"]),
         "/v1/provision/tok-1/status answered HTTP 200 with JSON that is not an object: '[\"COMPLETED\"]'"),
    ],
    ids=["no-status", "array"],
)
def test_poll_with_a_wrong_shape_fails(
    server: AdapterServer, client: TechAdapterClient, reply: Reply, message: str
) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", reply)
    assert client.provision(REQUEST) == AdapterResult(outcome=Outcome.FAILED, message=message, http_status=200)


# ---------------------------------------------------------------------- error answers


def test_400_request_validation_error_gives_user_message_and_details(
    server: AdapterServer, client: TechAdapterClient
) -> None:
    server.reply("POST", "/v1/provision", Reply(400, data={
        "errors": ["schema is missing", "owner is empty"],
        "userMessage": "The output port descriptor is not valid",
        "input": "kind: outputport\nspec: {}",
        "inputErrorField": "dataProduct.components[0].dataContract.schema",
        "moreInfo": {"problems": ["no schema"], "solutions": ["add spec.mesh.dataContract.schema"]},
    }))
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message="The output port descriptor is not valid",
        details=[
            "error: schema is missing",
            "error: owner is empty",
            "field: dataProduct.components[0].dataContract.schema",
            "input: 'kind: outputport spec: {}'",
            "problem: no schema",
            "solution: add spec.mesh.dataContract.schema",
        ],
        http_status=400,
    )
    assert len(server.requests()) == 1


def test_400_with_only_errors(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(400, data={"errors": ["schema is missing", "owner is empty"]}))
    assert client.provision(REQUEST) == AdapterResult(
        outcome=Outcome.FAILED, message="schema is missing; owner is empty", http_status=400
    )


@pytest.mark.parametrize(
    ("body", "message", "details"),
    [
        ({"errors": "schema is missing"}, "schema is missing", []),
        ({"errors": 3}, "the adapter refused the request", []),
        ({"errors": []}, "the adapter refused the request", []),
        ({"userMessage": "Bad descriptor", "errors": ["a"], "moreInfo": {"problems": "no schema", "solutions": None}},
         "Bad descriptor", ["error: a", "problem: no schema"]),
    ],
    ids=["errors-string", "errors-number", "errors-empty", "problems-string"],
)
def test_400_with_loose_shapes(
    server: AdapterServer, client: TechAdapterClient, body: dict[str, Any], message: str, details: list[str]
) -> None:
    server.reply("POST", "/v1/provision", Reply(400, data=body))
    assert client.provision(REQUEST) == AdapterResult(
        outcome=Outcome.FAILED, message=message, details=details, http_status=400
    )


@pytest.mark.parametrize(
    ("body", "message", "details"),
    [
        ({"error": "NullPointerException"}, "the tech adapter reported a system error: NullPointerException", []),
        ({"error": "NullPointerException", "userMessage": "The provisioner could not reach the warehouse",
          "inputErrorField": "dataProduct.id",
          "moreInfo": {"problems": ["warehouse down"], "solutions": ["retry later"]}},
         "the tech adapter reported a system error: The provisioner could not reach the warehouse",
         ["field: dataProduct.id", "problem: warehouse down", "solution: retry later"]),
        ({}, "the tech adapter reported a system error: system error", []),
    ],
    ids=["error", "userMessage", "empty"],
)
def test_500_system_error(
    server: AdapterServer, client: TechAdapterClient, body: dict[str, Any], message: str, details: list[str]
) -> None:
    server.reply("POST", "/v1/provision", Reply(500, data=body))
    assert client.provision(REQUEST) == AdapterResult(
        outcome=Outcome.FAILED, message=message, details=details, http_status=500
    )
    assert len(server.requests()) == 1  # a 500 is not retried: the adapter may have acted


def test_404_names_the_url_and_hints_at_the_usual_prefix(
    server: AdapterServer, make_client: Callable[..., TechAdapterClient]
) -> None:
    result = make_client(server.root).provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message=f"{server.root}/v1/provision answered HTTP 404 (is the URL right? adapters usually serve under "
        "/datamesh.specificprovisioner): '<html><body>No route for /v1/provision</body></html>'",
        http_status=404,
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(401, text="Unauthorized", content_type="text/plain"), "/v1/provision answered HTTP 401: 'Unauthorized'"),
        (Reply(401, data={"error": "token expired"}),
         "/v1/provision answered HTTP 401: '{\"error\": \"token expired\"}'"),
        (Reply(415, data={"message": "Unsupported Media Type"}),
         "/v1/provision answered HTTP 415: '{\"message\": \"Unsupported Media Type\"}'"),
        (Reply(400, text="<html>\n  <h1>400 Bad Request</h1>\n</html>\n", content_type="text/html"),
         "/v1/provision answered HTTP 400: '<html> <h1>400 Bad Request</h1> </html>'"),
        (Reply(500, text="<html><body>Internal Server Error</body></html>", content_type="text/html"),
         "/v1/provision answered HTTP 500: '<html><body>Internal Server Error</body></html>'"),
        (Reply(400, data=["schema is missing"]), "/v1/provision answered HTTP 400: '[\"schema is missing\"]'"),
        (Reply(500, data="boom"), "/v1/provision answered HTTP 500: '\"boom\"'"),
        (Reply(500), "/v1/provision answered HTTP 500: (empty body)"),
        (Reply(418, text="x" * 300, content_type="text/plain"), f"/v1/provision answered HTTP 418: '{'x' * 200}…'"),
    ],
    ids=["401-text", "401-json", "415", "400-html", "500-html", "400-array", "500-string", "500-empty", "418-long"],
)
def test_other_error_answers(server: AdapterServer, client: TechAdapterClient, reply: Reply, message: str) -> None:
    server.reply("POST", "/v1/provision", reply)
    assert client.provision(REQUEST) == AdapterResult(outcome=Outcome.FAILED, message=message,
                                                      http_status=reply.status)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(text="<html><body>OK</body></html>", content_type="text/html"),
         "/v1/provision answered HTTP 200 with a body that is not JSON: '<html><body>OK</body></html>'"),
        (Reply(data=[{"status": "COMPLETED"}]),
         "/v1/provision answered HTTP 200 with JSON that is not an object: '[{\"status\": \"COMPLETED\"}]'"),
        (Reply(data=None), "/v1/provision answered HTTP 200 with JSON that is not an object: 'null'"),
        (Reply(data="COMPLETED"), "/v1/provision answered HTTP 200 with JSON that is not an object: '\"COMPLETED\"'"),
        (Reply(), "/v1/provision answered HTTP 200 with a body that is not JSON: (empty body)"),
    ],
    ids=["html", "array", "null", "string", "empty"],
)
def test_200_bodies_that_are_not_a_status(
    server: AdapterServer, client: TechAdapterClient, reply: Reply, message: str
) -> None:
    server.reply("POST", "/v1/provision", reply)
    assert client.provision(REQUEST) == AdapterResult(outcome=Outcome.FAILED, message=message, http_status=200)


# ---------------------------------------------------------------------- connections, retries, time limits


def test_connection_refused_is_retried_with_backoff(
    make_client: Callable[..., TechAdapterClient], sleeps: list[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}{PREFIX}"
    result = make_client(url, retries=3).provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message=f"cannot connect to the tech adapter at {url}/v1/provision (connection refused) after 4 attempts",
    )
    assert sleeps == [0.01, 0.02, 0.04]


def test_connection_refused_without_retries(
    make_client: Callable[..., TechAdapterClient], sleeps: list[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = make_client(url, retries=0).unprovision(REQUEST)
    assert result.message == f"cannot connect to the tech adapter at {url}/v1/unprovision (connection refused) " \
        "after 1 attempt"
    assert sleeps == []


def test_connection_refused_retries_stop_at_the_deadline(
    make_client: Callable[..., TechAdapterClient], sleeps: list[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = make_client(url, retries=10, backoff=0.2, timeout=1.0).provision(REQUEST)
    assert result.message == f"cannot connect to the tech adapter at {url}/v1/provision (connection refused) " \
        "after 3 attempts"
    assert sleeps == [0.2, 0.4]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_on_the_post_are_retried_then_reported(
    server: AdapterServer, make_client: Callable[..., TechAdapterClient], sleeps: list[float], status: int
) -> None:
    server.reply("POST", "/v1/provision", Reply(status, text="<html>Gateway says no</html>", content_type="text/html"))
    result = make_client(server.url, retries=2).provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message=f"/v1/provision answered HTTP {status}: '<html>Gateway says no</html>'",
        http_status=status,
    )
    assert len(server.requests("POST", "/v1/provision")) == 3
    assert sleeps == [0.01, 0.02]


def test_gateway_error_once_then_completed(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(503, text="starting", content_type="text/plain"), COMPLETED)
    assert client.provision(REQUEST).outcome is Outcome.COMPLETED
    assert len(server.requests("POST", "/v1/provision")) == 2


def test_connection_closed_after_the_request_is_not_retried(
    server: AdapterServer, client: TechAdapterClient, sleeps: list[float]
) -> None:
    server.reply("POST", "/v1/provision", close_without_answer(), COMPLETED)
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message=f"the connection to the tech adapter at {server.url}/v1/provision broke after the request was sent "
        "(connection closed); not retried, since the adapter may have acted on it",
    )
    assert len(server.requests()) == 1
    assert server.requests()[0].json() == REQUEST
    assert sleeps == []


def test_a_validation_whose_connection_broke_is_asked_again(
    server: AdapterServer, client: TechAdapterClient, sleeps: list[float]
) -> None:
    # Validation changes nothing at the adapter, so unlike provisioning it is safe to send again.
    server.reply("POST", "/v1/validate", close_without_answer(), Reply(data={"valid": True}))
    assert client.validate(REQUEST).valid
    assert len(server.requests("POST", "/v1/validate")) == 2 and len(sleeps) == 1


def test_a_validation_whose_connection_always_breaks_says_so(
    server: AdapterServer, client: TechAdapterClient
) -> None:
    server.reply("POST", "/v1/validate", close_without_answer())
    outcome = client.validate(REQUEST)
    assert (outcome.valid, outcome.reachable) == (False, False)
    assert outcome.message.endswith(f"the connection to the tech adapter at {server.url}/v1/validate broke after the "
                                    "request was sent (connection closed), on each of 4 attempts"), outcome.message
    assert len(server.requests("POST", "/v1/validate")) == 4


def test_slow_server_is_not_retried(server: AdapterServer, client: TechAdapterClient, sleeps: list[float]) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED", "result": "late"}, delay=2.0))
    started = time.monotonic()
    result = client.provision(REQUEST)
    assert time.monotonic() - started < 0.8
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message=f"the tech adapter at {server.url}/v1/provision did not answer within 0.3 s"
    )
    assert len(server.requests()) == 1
    assert sleeps == []


def test_body_that_stalls_is_a_timeout_not_retried(
    server: AdapterServer, client: TechAdapterClient, sleeps: list[float]
) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED", "result": "late"}, body_delay=2.0))
    result = client.provision(REQUEST)
    assert result == AdapterResult(
        outcome=Outcome.FAILED, message=f"the tech adapter at {server.url}/v1/provision did not answer within 0.3 s"
    )
    assert len(server.requests()) == 1
    assert sleeps == []


def test_poll_whose_body_stalls_is_retried(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", Reply(202, data="tok-1"))
    server.reply("GET", "/v1/provision/tok-1/status", Reply(data={"status": "RUNNING"}, body_delay=2.0), COMPLETED)
    assert client.provision(REQUEST).outcome is Outcome.COMPLETED
    assert polls(server, "/v1/provision/tok-1/status") == 2


def test_request_timeout_is_capped_by_the_overall_timeout(
    server: AdapterServer, make_client: Callable[..., TechAdapterClient]
) -> None:
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED"}, delay=2.0))
    result = make_client(server.url, timeout=0.2, request_timeout=30.0).provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith(f"the tech adapter at {server.url}/v1/provision did not answer within 0.")
    assert result.message.endswith(" s")


# ---------------------------------------------------------------------- validate


def test_validate_v1_valid(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/validate", Reply(data={"valid": True}))
    assert client.validate(REQUEST) == ValidationOutcome(valid=True, errors=[], message="valid", reachable=True)
    assert server.requests("POST", "/v1/validate")[0].json() == REQUEST


def test_validate_v1_not_valid_with_errors(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/validate",
                 Reply(data={"valid": False, "error": {"errors": ["schema is missing", "owner is empty"]}}))
    assert client.validate(REQUEST) == ValidationOutcome(
        valid=False, errors=["schema is missing", "owner is empty"], message="schema is missing; owner is empty"
    )


def test_validate_v1_not_valid_without_errors(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/validate", Reply(data={"valid": False}))
    assert client.validate(REQUEST) == ValidationOutcome(valid=False, message="not valid")


def test_validate_v1_system_error_is_a_failure_not_a_refusal(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/validate", Reply(500, data={"error": "cannot parse descriptor"}))
    outcome = client.validate(REQUEST)
    assert outcome == ValidationOutcome(
        valid=False, message="the tech adapter reported a system error: cannot parse descriptor", reachable=True,
        failed=True, http_status=500,
    )
    assert not outcome.refused


def test_validate_v1_answer_without_valid_is_a_failure(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/validate", Reply(data={"valid": "yes"}))
    assert client.validate(REQUEST) == ValidationOutcome(
        valid=False, message="the validation answer has no boolean 'valid': '{\"valid\": \"yes\"}'", reachable=True,
        failed=True, http_status=200,
    )


def test_validate_v1_connection_refused_is_unreachable(make_client: Callable[..., TechAdapterClient]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert make_client(url, retries=1).validate(REQUEST) == ValidationOutcome(
        valid=False,
        message=f"cannot connect to the tech adapter at {url}/v1/validate (connection refused) after 2 attempts",
        reachable=False, failed=True,
    )


@pytest.mark.parametrize(
    ("public_info", "expected"),
    [
        ({"valid": True}, ValidationOutcome(valid=True, message="valid")),
        ({"valid": False, "error": {"errors": ["schema is missing"]}},
         ValidationOutcome(valid=False, errors=["schema is missing"], message="schema is missing")),
    ],
    ids=["valid", "not-valid"],
)
def test_validate_v2_polls_until_completed(
    server: AdapterServer, client: TechAdapterClient, public_info: dict[str, Any], expected: ValidationOutcome
) -> None:
    server.reply("POST", "/v2/validate", Reply(202, data="val-1"))
    server.reply("GET", "/v2/validate/val-1/status", Reply(data={"status": "RUNNING"}),
                 Reply(data={"status": "COMPLETED", "info": {"publicInfo": public_info}}))
    assert client.validate_async(REQUEST) == expected
    assert polls(server, "/v2/validate/val-1/status") == 2
    assert server.requests("POST", "/v2/validate")[0].json() == REQUEST


def test_validate_v2_legacy_result_shape(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v2/validate", Reply(202, text="val-1", content_type="text/plain"))
    server.reply("GET", "/v2/validate/val-1/status",
                 Reply(data={"status": "COMPLETED", "result": {"valid": False, "error": {"errors": ["bad id"]}}}))
    assert client.validate_async(REQUEST) == ValidationOutcome(valid=False, errors=["bad id"], message="bad id")


def test_validate_v2_failed_task(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v2/validate", Reply(202, data="val-1"))
    server.reply("GET", "/v2/validate/val-1/status", Reply(data={"status": "RUNNING"}),
                 Reply(data={"status": "FAILED"}))
    assert client.validate_async(REQUEST) == ValidationOutcome(
        valid=False, message="the adapter's validation task FAILED", reachable=True, failed=True, http_status=200
    )


def test_validate_v2_completed_without_result(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v2/validate", Reply(202, data="val-1"))
    server.reply("GET", "/v2/validate/val-1/status", Reply(data={"status": "COMPLETED", "info": {"privateInfo": {}}}))
    assert client.validate_async(REQUEST) == ValidationOutcome(
        valid=False, message="the validation status has no result (expected info.publicInfo)", reachable=True,
        failed=True, http_status=200,
    )


def test_validate_v2_answered_at_once(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v2/validate", Reply(data={"valid": True}))
    assert client.validate_async(REQUEST) == ValidationOutcome(valid=True, message="valid")


def test_validate_v2_not_served(server: AdapterServer, client: TechAdapterClient) -> None:
    assert client.validate_async(REQUEST) == ValidationOutcome(
        valid=False,
        message=f"{server.url}/v2/validate answered HTTP 404 (the adapter does not serve this path): "
        "'nothing configured for POST /datamesh.specificprovisioner/v2/validate'",
        reachable=True, failed=True, http_status=404,
    )


# ---------------------------------------------------------------------- reverse provisioning

UPDATES = {"spec.mesh.description": "Daily cash flow", "spec.mesh.dataContract.schema": [{"name": "day"}]}


def test_reverse_provisioning_200_completed(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/reverse-provisioning", Reply(data={"status": "COMPLETED", "updates": UPDATES,
                                                                  "logs": LOGS}))
    result = client.reverse_provision(REVERSE_REQUEST)
    assert result == ReverseProvisioningResult(outcome=Outcome.COMPLETED, updates=UPDATES, logs=LOGS,
                                               message="completed")
    assert result.ok
    assert server.requests("POST", "/v1/reverse-provisioning")[0].json() == {
        "useCaseTemplateId": "urn:dmb:utm:op-standard:0.0.0",
        "environment": "development",
        "params": {"table": "cash"},
        "catalogInfo": {"spec": {"mesh": {"name": "output"}}},
    }


def test_reverse_provisioning_202_polls_its_own_status(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/reverse-provisioning", Reply(202, data="rev-1"))
    server.reply("GET", "/v1/reverse-provisioning/rev-1/status", Reply(data={"status": "RUNNING", "updates": {}}),
                 Reply(data={"status": "COMPLETED", "updates": UPDATES}))
    result = client.reverse_provision(REVERSE_REQUEST)
    assert result == ReverseProvisioningResult(outcome=Outcome.COMPLETED, updates=UPDATES, message="completed")
    assert polls(server, "/v1/reverse-provisioning/rev-1/status") == 2
    assert [r.method for r in server.requests()] == ["POST", "GET", "GET"]


def test_reverse_provisioning_completed_without_updates(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/reverse-provisioning", Reply(data={"status": "COMPLETED", "updates": None}))
    assert client.reverse_provision(REVERSE_REQUEST) == ReverseProvisioningResult(
        outcome=Outcome.FAILED, message="the reverse provisioning completed without an 'updates' object"
    )


def test_reverse_provisioning_failed_with_error_logs(server: AdapterServer, client: TechAdapterClient) -> None:
    logs = [
        {"timestamp": "2024-05-01T10:00:00Z", "level": "INFO", "message": "reading table"},
        {"timestamp": "2024-05-01T10:00:01Z", "level": "ERROR", "message": "table cash does not exist"},
        {"timestamp": "2024-05-01T10:00:02Z", "level": "DEBUG", "message": "done"},
    ]
    server.reply("POST", "/v1/reverse-provisioning", Reply(202, data="rev-1"))
    server.reply("GET", "/v1/reverse-provisioning/rev-1/status", Reply(data={"status": "FAILED", "logs": logs}))
    assert client.reverse_provision(REVERSE_REQUEST) == ReverseProvisioningResult(
        outcome=Outcome.FAILED, logs=logs, message="table cash does not exist"
    )


def test_reverse_provisioning_failed_without_logs(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/reverse-provisioning", Reply(data={"status": "FAILED", "updates": {}}))
    assert client.reverse_provision(REVERSE_REQUEST) == ReverseProvisioningResult(
        outcome=Outcome.FAILED, message="the adapter reported FAILED"
    )


def test_reverse_provisioning_request_validation_error(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/reverse-provisioning", Reply(400, data={
        "errors": ["params.table is required"], "userMessage": "Missing parameter",
        "moreInfo": {"problems": ["no table"], "solutions": ["set params.table"]},
    }))
    assert client.reverse_provision(REVERSE_REQUEST) == ReverseProvisioningResult(
        outcome=Outcome.FAILED, message="Missing parameter",
        details=["error: params.table is required", "problem: no table", "solution: set params.table"],
    )


# ---------------------------------------------------------------------- request bodies


def test_component_provision_body(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/provision", COMPLETED)
    client.provision(component_request(DESCRIPTOR, COMPONENT))
    (received,) = server.requests("POST", "/v1/provision")
    assert received.content_type == "application/json"
    body = received.json()
    assert set(body) == {"descriptorKind", "descriptor", "removeData"}
    assert body["descriptorKind"] == "COMPONENT_DESCRIPTOR"
    assert body["removeData"] is False
    assert isinstance(body["descriptor"], str)
    assert yaml.safe_load(body["descriptor"]) == {"dataProduct": DESCRIPTOR, "componentIdToProvision": COMPONENT}


def test_data_product_unprovision_body_with_remove_data(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/unprovision", COMPLETED)
    client.unprovision(data_product_request(DESCRIPTOR, remove_data=True))
    body = server.requests("POST", "/v1/unprovision")[0].json()
    assert body["descriptorKind"] == "DATAPRODUCT_DESCRIPTOR"
    assert body["removeData"] is True
    assert yaml.safe_load(body["descriptor"]) == DESCRIPTOR


def test_updateacl_body(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v1/updateacl", Reply(data={"status": "COMPLETED", "result": "granted"}))
    assert client.update_acl(["user:alice", "group:finance"], PROVISION_INFO).message == "granted"
    assert server.requests("POST", "/v1/updateacl")[0].json() == {
        "refs": ["user:alice", "group:finance"], "provisionInfo": PROVISION_INFO
    }


# ---------------------------------------------------------------------- nothing escapes


def test_not_a_url_fails_every_operation_without_raising(make_client: Callable[..., TechAdapterClient]) -> None:
    client = make_client("not a url")
    for path, call in OPERATIONS.values():
        result = call(client)
        assert result == AdapterResult(
            outcome=Outcome.FAILED,
            message=f"cannot call the tech adapter at not a url{path}: Host 'not a url' contains invalid character ' '",
        )
    assert client.validate(REQUEST).reachable is False
    assert client.validate_async(REQUEST).reachable is False
    reverse = client.reverse_provision(REVERSE_REQUEST)
    assert reverse.outcome is Outcome.FAILED
    assert reverse.message.startswith("cannot call the tech adapter at not a url/v1/reverse-provisioning: ")


def test_unreachable_host_name_fails_without_raising(make_client: Callable[..., TechAdapterClient]) -> None:
    result = make_client("http://[::1", retries=0).provision(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith("cannot call the tech adapter at http://[::1/v1/provision: ")


def test_request_that_is_not_json_fails_without_raising(server: AdapterServer, client: TechAdapterClient) -> None:
    result = client.provision({"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": {1, 2}})
    assert result == AdapterResult(
        outcome=Outcome.FAILED,
        message="unexpected client error: TypeError('Object of type set is not JSON serializable')",
    )
    assert server.requests() == []


@pytest.mark.parametrize("body", [None, [], "COMPLETED", 7, True], ids=["null", "array", "string", "number", "bool"])
def test_null_and_scalar_answers_never_raise(server: AdapterServer, client: TechAdapterClient, body: Any) -> None:
    for path in ("/v1/provision", "/v1/unprovision", "/v1/updateacl", "/v1/validate", "/v2/validate",
                 "/v1/reverse-provisioning"):
        server.reply("POST", path, Reply(data=body))
    for _, call in OPERATIONS.values():
        assert call(client).outcome is Outcome.FAILED
    assert client.validate(REQUEST).valid is False
    assert client.validate_async(REQUEST).valid is False
    assert client.reverse_provision(REVERSE_REQUEST).outcome is Outcome.FAILED


def test_polled_null_never_raises(server: AdapterServer, client: TechAdapterClient) -> None:
    server.reply("POST", "/v2/validate", Reply(202, data="val-1"))
    server.reply("GET", "/v2/validate/val-1/status", Reply(data={"status": "COMPLETED", "info": None,
                                                                 "result": None}))
    server.reply("POST", "/v1/reverse-provisioning", Reply(202, data="rev-1"))
    server.reply("GET", "/v1/reverse-provisioning/rev-1/status", Reply(data=None))
    assert client.validate_async(REQUEST) == ValidationOutcome(
        valid=False, message="the validation status has no result (expected info.publicInfo)", reachable=True,
        failed=True, http_status=200,
    )
    assert client.reverse_provision(REVERSE_REQUEST) == ReverseProvisioningResult(
        outcome=Outcome.FAILED,
        message="/v1/reverse-provisioning/rev-1/status answered HTTP 200 with JSON that is not an object: 'null'",
    )


def test_component_request_from_yaml_is_the_same_document():
    from adapters.payloads import component_request, component_request_from_yaml
    from bot.descriptor.yamldump import dump_yaml
    from bot.descriptor.yamlsafe import load_single

    descriptor = {"id": "urn:dmb:dp:a:b:1", "description": "line one\nline two\n\n  indented after a blank\n",
                  "flag": "no", "empty": {}, "list": [], "components": [
                      {"id": "urn:dmb:cmp:a:b:1:c", "specific": {"query": "  leading spaces\nsecond\n"}}]}
    whole = dump_yaml({"dataProduct": descriptor, "componentIdToProvision": "urn:dmb:cmp:a:b:1:c"})
    nested = component_request_from_yaml(dump_yaml(descriptor), "urn:dmb:cmp:a:b:1:c", True)
    assert nested["descriptor"] == whole  # byte for byte what one dump of the whole request writes
    assert component_request(descriptor, "urn:dmb:cmp:a:b:1:c", True) == nested
    parsed = load_single(nested["descriptor"], "request")
    assert parsed is not None
    assert parsed.value == {"dataProduct": descriptor, "componentIdToProvision": "urn:dmb:cmp:a:b:1:c"}


# ---------------------------------------------------------------------- encoded bodies, proxies


def test_an_encoded_body_is_sent_as_it_is_as_json(server: AdapterServer, client: TechAdapterClient) -> None:
    body = JsonBody(b'{"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "a: 1\\n", "removeData": true}')
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED", "result": "ok"}))
    assert client.provision(body).ok
    [received] = server.requests("POST", "/v1/provision")
    assert received.body == body.data
    assert received.content_type == "application/json"


def test_the_environment_proxy_is_used(monkeypatch: pytest.MonkeyPatch,
                                       make_client: Callable[..., TechAdapterClient]) -> None:
    # The adapter's host name never resolves: only a request through the proxy can reach an answer.
    target = "http://adapter.invalid" + PREFIX
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with adapter_server(prefix=target) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root)
        proxy.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED", "result": "via the proxy"}))
        result = make_client(target).provision(REQUEST)
    assert result.ok and result.message == "via the proxy"
    assert [received.path for received in proxy.received] == [target + "/v1/provision"]


def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch, server: AdapterServer,
                              make_client: Callable[..., TechAdapterClient]) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server.reply("POST", "/v1/provision", Reply(data={"status": "COMPLETED", "result": "direct"}))
    assert make_client(server.url).provision(REQUEST).message == "direct"
