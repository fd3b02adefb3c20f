"""Marketplace events: one signed CloudEvent per deployment end and URL, delivered by its own job with retries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bot.engine import marketplace
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.runner import queue
from tests.deploy_harness import (
    ENVIRONMENT,
    ScriptedAdapter,
    adapters_for,
    component_id,
    example_descriptor,
    scripted_adapter,
    wait_for,
)
from tests.servers.marketplace import MarketplaceReceiver, marketplace_receiver
from tests.servers.tech_adapter import Reply

SECRET = "marketplace-test-secret"
PRIVATE = {"password": "hunter2"}


@pytest.fixture
def scripted() -> Iterator[ScriptedAdapter]:
    with scripted_adapter() as adapter:
        yield adapter


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[MarketplaceReceiver]:
    # The workers start after this and inherit the environment: the secret, and retries without waiting.
    monkeypatch.setenv(marketplace.SECRET_VARIABLE, SECRET)
    monkeypatch.setenv(marketplace.RETRY_INTERVALS_VARIABLE, "0,0,0")
    with marketplace_receiver(SECRET) as running:
        yield running


def _with_private_info(scripted: ScriptedAdapter, targets: list[str], path: str) -> None:
    for target in targets:
        scripted.script(target, path, Reply(200, {"status": "COMPLETED", "result": f"done {target}", "info": {
            "publicInfo": {"target": target}, "privateInfo": PRIVATE}}))


# ---------------------------------------------------------------------- end to end, real workers


def test_a_deploy_and_an_undeploy_each_send_one_signed_event_without_private_info(start, scripted, receiver):
    descriptor = example_descriptor()
    components = [component["id"] for component in descriptor.components]
    _with_private_info(scripted, components, "/v1/provision")
    _with_private_info(scripted, components, "/v1/unprovision")
    running = start(2)
    adapters, url = adapters_for(descriptor, scripted.url), receiver.url + "/events"
    deployed = running.wait(running.request(descriptor, adapters, marketplace=[url])[0])
    assert deployed.state is DeploymentState.DEPLOYED
    [delivery] = wait_for(lambda: receiver.accepted() or None, 10, "the deployed event")
    undeployed = running.wait(running.request(descriptor, adapters, Operation.UNDEPLOY, marketplace=[url])[0])
    assert undeployed.state is DeploymentState.NOT_DEPLOYED
    wait_for(lambda: len(receiver.accepted()) == 2 or None, 10, "the undeployed event")
    running.assert_clean((descriptor.id, ENVIRONMENT))
    time.sleep(0.5)  # nothing more arrives
    first, second = receiver.deliveries
    assert [first.signed, second.signed] == [True, True]
    assert first.headers["content-type"] == second.headers["content-type"] == "application/cloudevents+json"
    for delivery in (first, second):
        assert b"privateInfo" not in delivery.body and b"hunter2" not in delivery.body
    event = first.json()
    assert {key: event[key] for key in ("specversion", "id", "source", "type", "subject")} == {
        "specversion": "1.0", "id": f"{deployed.id}-deployed", "source": f"/meshbot/{ENVIRONMENT}/{descriptor.id}",
        "type": "dev.meshbot.dataproduct.deployed", "subject": descriptor.id}
    assert event["time"] == deployed.finished_at
    ledger = component_id(descriptor, "ledger")
    assert event["data"]["components"][ledger] == {"state": "COMPLETED", "message": f"done {ledger}",
                                                   "publicInfo": {"target": ledger}}
    assert {key: event["data"][key] for key in ("dataProduct", "environment", "version", "deployment", "outcome")} == {
        "dataProduct": descriptor.id, "environment": ENVIRONMENT, "version": "1.0.0", "deployment": deployed.id,
        "outcome": "DEPLOYED"}
    assert event["data"]["descriptor"] == descriptor.data
    gone = second.json()
    assert (gone["type"], gone["id"], gone["data"]["outcome"]) == (
        "dev.meshbot.dataproduct.undeployed", f"{undeployed.id}-undeployed", "NOT_DEPLOYED")
    assert "descriptor" not in gone["data"]


def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(start, scripted, receiver):
    descriptor = example_descriptor()
    receiver.fail_first(2)
    running = start(2)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url),
                                       marketplace=[receiver.url + "/events"])
    assert running.wait(deployment_id).state is DeploymentState.DEPLOYED
    wait_for(lambda: receiver.accepted() or None, 15, "the event on a retry")
    running.assert_clean((descriptor.id, ENVIRONMENT))
    assert [delivery.status for delivery in receiver.deliveries] == [500, 500, 202]
    assert len({delivery.body for delivery in receiver.deliveries}) == 1  # the same event, byte for byte
    assert all(delivery.signed for delivery in receiver.deliveries)


def test_a_failing_marketplace_leaves_the_deployment_deployed(start, scripted, receiver):
    descriptor = example_descriptor()
    receiver.fail_first(100)
    running = start(2)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url),
                                       marketplace=[receiver.url + "/events"])
    deployment = running.wait(deployment_id)
    assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "3 completed")
    wait_for(lambda: len(receiver.deliveries) == 4 or None, 15, "the first attempt and three retries")
    running.assert_clean((descriptor.id, ENVIRONMENT))
    assert running.jobs()[marketplace.delivery_job_id(deployment_id, receiver.url + "/events")] == "failed"
    assert running.store.product(descriptor.id, ENVIRONMENT)["status"] == "DEPLOYED"


def test_without_the_secret_nothing_is_sent(start, scripted, receiver, monkeypatch):
    monkeypatch.delenv(marketplace.SECRET_VARIABLE)
    descriptor = example_descriptor()
    running = start(1)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url),
                                       marketplace=[receiver.url + "/events"])
    assert running.wait(deployment_id).state is DeploymentState.DEPLOYED
    running.assert_clean((descriptor.id, ENVIRONMENT))
    job_id = marketplace.delivery_job_id(deployment_id, receiver.url + "/events")
    assert running.jobs()[job_id] == "finished"
    assert receiver.deliveries == []


# ---------------------------------------------------------------------- the pure parts


@pytest.mark.parametrize(("operation", "state", "kind"), [
    (Operation.DEPLOY, DeploymentState.DEPLOYED, marketplace.DEPLOYED),
    (Operation.UNDEPLOY, DeploymentState.NOT_DEPLOYED, marketplace.UNDEPLOYED),
    (Operation.DEPLOY, DeploymentState.CORRUPT, marketplace.FAILED),
    (Operation.DEPLOY, DeploymentState.PARTIALLY_DEPLOYED, marketplace.FAILED),
    (Operation.DEPLOY, DeploymentState.FAILED, marketplace.FAILED),
    (Operation.UNDEPLOY, DeploymentState.CORRUPT, marketplace.FAILED),
    (Operation.UNDEPLOY, DeploymentState.PARTIALLY_DEPLOYED, marketplace.FAILED),
    (Operation.DEPLOY, DeploymentState.REFUSED, None),
    (Operation.DEPLOY, DeploymentState.IN_PROGRESS, None),
])
def test_event_type(operation, state, kind):
    assert marketplace.event_type(operation, state) == kind


def test_the_event_carries_public_info_only():
    event = marketplace.build_event(
        kind=marketplace.FAILED, deployment_id="1-a", data_product="urn:dp", environment="dev", version="2",
        operation=Operation.DEPLOY, state=DeploymentState.CORRUPT, message="1 failed", time="2026-01-01T00:00:00Z",
        tasks={"c": {"state": "FAILED", "message": "boom", "info": {"publicInfo": {"a": 1}, "privateInfo": PRIVATE}},
               "d": {"state": "SKIPPED"}})
    assert event["id"] == "1-a-failed"
    assert event["data"]["components"] == {"c": {"state": "FAILED", "message": "boom", "publicInfo": {"a": 1}},
                                           "d": {"state": "SKIPPED", "message": "", "publicInfo": {}}}
    assert b"privateInfo" not in marketplace.encode(event)


def test_signature_and_verification():
    body = b'{"specversion":"1.0"}'
    header = marketplace.signature(body, "s")
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert marketplace.verify(body, "s", header)
    assert not marketplace.verify(body + b" ", "s", header)
    assert not marketplace.verify(body, "other", header)
    assert not marketplace.verify(body, "s", None)


def test_delivery_job_ids_are_per_deployment_and_url():
    one = marketplace.delivery_job_id("1-a", "https://m/1")
    assert one == marketplace.delivery_job_id("1-a", "https://m/1")
    assert len({one, marketplace.delivery_job_id("1-a", "https://m/2"),
                marketplace.delivery_job_id("1-b", "https://m/1")}) == 3


@pytest.mark.parametrize(("value", "intervals"), [
    (None, list(marketplace.RETRY_INTERVALS)), ("", list(marketplace.RETRY_INTERVALS)), ("0,0,0", [0, 0, 0]),
    ("5, 30", [5, 30]), ("x", list(marketplace.RETRY_INTERVALS)), ("-1", list(marketplace.RETRY_INTERVALS)),
])
def test_retry_intervals(value, intervals):
    assert marketplace.retry_intervals(value) == intervals


def test_a_final_job_run_again_sends_nothing_more(start, scripted, receiver):
    descriptor = example_descriptor()
    running = start(2)
    url = receiver.url + "/events"
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url), marketplace=[url, url])
    assert running.wait(deployment_id).state is DeploymentState.DEPLOYED
    wait_for(lambda: receiver.accepted() or None, 10, "the deployed event")
    running.assert_clean((descriptor.id, ENVIRONMENT))
    queue(running.redis).enqueue("bot.engine.runner.finish", deployment_id)  # as a retried final job would
    running.assert_clean((descriptor.id, ENVIRONMENT))
    time.sleep(0.5)
    assert len(receiver.deliveries) == 1  # one URL listed twice, and a second release: one event
