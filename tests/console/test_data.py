"""The console's lists read each deployment's small summary, never its whole record, on a real Redis (issue 18)."""

from __future__ import annotations

import json

from bot.console import data
from bot.engine.deployment import DeploymentState
from bot.engine.store import SUMMARY_FIELD, Store, deployment_key, deployment_summary
from tests.console.records import record_deployment

CASHFLOW = "urn:dmb:dp:finance:cashflow:1"
LEADS = "urn:dmb:dp:sales:leads:2"


def _mesh_of_two(connection) -> list[str]:
    """Cashflow released twice to production and once to qa, leads once; every deployment id."""
    store = Store(connection)
    ids = [record_deployment(connection, CASHFLOW, "github", "acme/cashflow", version="1.0.0"),
           record_deployment(connection, CASHFLOW, "github", "acme/cashflow", version="1.1.0"),
           record_deployment(connection, CASHFLOW, "github", "acme/cashflow", environment="qa", version="1.1.0"),
           record_deployment(connection, LEADS, "gitlab", "sales/leads", version="2.0.0")]
    for deployment_id in ids:
        store.set_state(deployment_id, DeploymentState.VALIDATING)
        store.set_state(deployment_id, DeploymentState.DEPLOYED, "2 of 2 tasks completed")
    store.set_product(CASHFLOW, "production", status="DEPLOYED", version="1.1.0", deployment=ids[1],
                      updatedAt="2026-12-06T02:00:00.000Z")
    store.set_product(LEADS, "production", status="CORRUPT", version="2.0.0", deployment=ids[3])
    return ids


def test_a_deployment_keeps_the_summary_of_its_record(redis_engine):
    connection = redis_engine.redis
    deployment_id = record_deployment(connection, CASHFLOW, "github", "acme/cashflow", version="1.0.0")
    stored = json.loads(connection.hget(deployment_key(deployment_id), SUMMARY_FIELD))
    assert stored == deployment_summary(json.loads(connection.hget(deployment_key(deployment_id), "record")))
    assert stored == {"operation": "deploy", "version": "1.0.0", "startedBy": "github:acme/cashflow@v1.0.0",
                      "createdAt": stored["createdAt"], "name": "cashflow", "domain": "finance",
                      "description": f"{CASHFLOW} for the browser tests",
                      "reportTo": {"forge": "github", "project": "acme/cashflow", "sha": "0" * 40,
                                   "context": "meshbot/deploy/production"}}


def test_the_mesh_and_histories_never_parse_a_record_that_has_a_summary(redis_engine):
    connection = redis_engine.redis
    ids = _mesh_of_two(connection)
    found = data.mesh(connection)
    histories = data.history(connection, CASHFLOW, "production")
    for deployment_id in ids:
        connection.hset(deployment_key(deployment_id), "record", "{not json: the lists must not read it")

    assert data.mesh(connection) == found
    assert data.history(connection, CASHFLOW, "production") == histories
    cashflow, leads = found["products"]
    assert (cashflow["id"], cashflow["name"], cashflow["domain"], cashflow["repositories"]) == (
        CASHFLOW, "cashflow", "finance", {"github:acme/cashflow"})
    assert cashflow["description"] == f"{CASHFLOW} for the browser tests"
    assert cashflow["environments"]["production"] == {
        "status": "DEPLOYED", "version": "1.1.0", "when": "2026-12-06T02:00:00.000Z",
        "by": "github:acme/cashflow@v1.1.0", "deployment": ids[1], "deploymentState": "DEPLOYED"}
    assert cashflow["environments"]["qa"]["status"] == "NOT_DEPLOYED"  # deployed records, no product record there
    assert (leads["domain"], leads["repositories"], leads["environments"]["production"]["status"]) == (
        "sales", {"gitlab:sales/leads"}, "CORRUPT")
    assert [entry["id"] for entry in histories] == [ids[1], ids[0]]
    assert histories[0]["origin"]["kind"] == "tag" and histories[0]["version"] == "1.1.0"


def test_deployments_recorded_before_summaries_existed_read_the_same(redis_engine):
    connection = redis_engine.redis
    ids = _mesh_of_two(connection)
    found = data.mesh(connection)
    histories = {environment: data.history(connection, CASHFLOW, environment) for environment in ("production", "qa")}
    for deployment_id in ids[1:]:  # the first keeps its summary: a mesh of old and new records
        connection.hdel(deployment_key(deployment_id), SUMMARY_FIELD)

    assert data.mesh(connection) == found
    assert {environment: data.history(connection, CASHFLOW, environment)
            for environment in ("production", "qa")} == histories
    for deployment_id in ids[1:]:  # made once from the record, then kept beside it
        record = json.loads(connection.hget(deployment_key(deployment_id), "record"))
        assert json.loads(connection.hget(deployment_key(deployment_id), SUMMARY_FIELD)) == deployment_summary(record)
    assert found["products"][0]["environments"]["qa"]["by"] == "github:acme/cashflow@v1.1.0"


def test_a_deployment_dropped_from_history_shows_with_no_summary(redis_engine):
    connection = redis_engine.redis
    ids = _mesh_of_two(connection)
    connection.delete(deployment_key(ids[3]))  # leads' only deployment, gone: the product record still names it

    leads = data.mesh(connection)["products"][1]
    assert not connection.exists(deployment_key(ids[3]))  # not brought back by keeping summaries
    assert (leads["name"], leads["description"], leads["repositories"]) == (None, None, set())
    assert leads["environments"]["production"] == {"status": "CORRUPT", "version": "2.0.0", "when": None, "by": None,
                                                   "deployment": ids[3], "deploymentState": None}


def test_the_mesh_reads_the_same_in_batches_of_any_size(redis_engine, monkeypatch):
    connection = redis_engine.redis
    _mesh_of_two(connection)
    whole = data.mesh(connection)
    monkeypatch.setattr(data, "MESH_BATCH", 1)  # one script call per pair, all in one pipeline

    assert data.mesh(connection) == whole
    assert [row["id"] for row in whole["products"]] == [CASHFLOW, LEADS] and whole["environments"] == [
        "production", "qa"]


def test_a_summary_is_kept_only_beside_its_record_and_never_over_another(redis_engine):
    connection = redis_engine.redis
    gone, summarised, older = (deployment_key(name) for name in ("gone", "summarised", "older"))
    connection.hset(summarised, mapping={"record": "{}", SUMMARY_FIELD: "kept"})
    connection.hset(older, mapping={"record": "{}"})
    connection.register_script(data.KEEP_SUMMARIES_SCRIPT)(keys=[gone, summarised, older], args=["a", "b", "c"])

    assert not connection.exists(gone)  # dropped from history while the page was read: stays dropped
    assert connection.hget(summarised, SUMMARY_FIELD) == b"kept"
    assert connection.hget(older, SUMMARY_FIELD) == b"c"
