"""Drift detection: the pure comparison, and the check through the real reference SQLite adapter over HTTP.

The reference adapter reads a view's columns back into `spec.mesh.dataContract.schema`, keeping what the catalog
says where the database agrees: a deployed example reads back unchanged, and a column added to a deployed view by
hand is drift naming that column.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.config import AdapterSettings, ServerConfig
from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.deployment import DeploymentState
from bot.engine.drift import (
    ComponentState,
    DriftReport,
    DriftStatus,
    catalog_info,
    check_deployed,
    checked_seconds_ago,
    deployed_products,
    differences,
    due,
    load_report,
    refused_paths,
    round_seconds,
    save_report,
    sweep_enabled,
)
from bot.metrics import Batch, render
from tests.deploy_harness import ENVIRONMENT, Engine, example_descriptor
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply, adapter_server

PORT = {
    "id": "urn:dmb:cmp:finance:cashflow:1:daily-cashflow", "kind": "outputport", "useCaseTemplateId": "urn:x:1",
    "infrastructureTemplateId": OUTPUT_PORT_TEMPLATE_ID, "specific": {"viewName": "daily_cashflow_v"},
    "dataContract": {"schema": [{"name": "business_unit", "dataType": "TEXT", "description": "who booked it"},
                                {"name": "net_amount", "dataType": "DECIMAL", "precision": 18, "scale": 2}]},
}
SCHEMA = "spec.mesh.dataContract.schema"


def schema(*extra: dict[str, Any], retype: str | None = None) -> list[dict[str, Any]]:
    """The port's columns as an adapter reads them back, with extra columns and net_amount's type changed."""
    columns = [dict(column) for column in PORT["dataContract"]["schema"]]
    if retype:
        columns[1]["dataType"] = retype
    return columns + list(extra)


# ---------------------------------------------------------------------- the comparison (pure)


def test_what_the_catalog_says_read_back_is_no_drift():
    assert differences(PORT, {SCHEMA: schema(), "spec.mesh.specific.viewName": "daily_cashflow_v"}) == []
    assert differences(PORT, {SCHEMA: schema(retype="decimal")}) == []  # types compare case-insensitively
    assert differences(PORT, {}) == []


def test_a_column_added_retyped_or_removed_is_named():
    [added] = differences(PORT, {SCHEMA: schema({"name": "currency", "dataType": "TEXT"})})
    assert (added.path, added.kind, added.column, added.summary) == (
        "dataContract.schema", "added", "currency", "column `currency` added (TEXT)")
    assert added.parts == (("column ", False), ("currency", True), (" added (TEXT)", False))
    [retyped] = differences(PORT, {SCHEMA: schema(retype="DOUBLE")})
    assert retyped.summary == "column `net_amount` retyped DECIMAL -> DOUBLE"
    [removed] = differences(PORT, {SCHEMA: schema()[:1]})
    assert (removed.kind, removed.summary) == ("removed", "column `net_amount` removed")


def test_other_fields_below_spec_mesh_compare_too_and_identity_is_never_compared():
    updates = {"spec.mesh.specific.viewName": "cashflow_by_day", "spec.mesh.description": "new",
               "spec.mesh.id": "urn:dmb:cmp:other", "metadata.name": "other", "spec.owner": "group:x"}
    found = differences(PORT, updates, prefix="urn:dmb:cmp:finance:cashflow:1:")
    assert [item.summary for item in found] == ["specific.viewName `daily_cashflow_v` -> `cashflow_by_day`",
                                                "description added: `new`"]
    assert refused_paths(updates) == ["spec.mesh.id", "metadata.name", "spec.owner"]


def test_the_catalog_info_of_a_deployed_component():
    assert catalog_info(PORT) == {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                                  "metadata": {"name": "daily-cashflow"}, "spec": {"mesh": PORT}}


def test_when_the_sweep_runs_and_what_is_due():
    assert round_seconds([86400, 0]) == 3600 and round_seconds([600, 86400]) == 600
    assert round_seconds([1]) == 60 and round_seconds([0]) == 3600
    assert due(None, 86400) and due(86400.0, 86400) and not due(86399.0, 86400) and not due(None, 0)
    assert sweep_enabled(ServerConfig())  # the default interval applies everywhere
    off = {"development": {"drift_interval_seconds": 0}, "production": {"drift_interval_seconds": 0}}
    assert not sweep_enabled(ServerConfig(environments=off))
    assert sweep_enabled(ServerConfig(environments={**off, "qa": None}))


# ---------------------------------------------------------------------- the check, through real adapters


def deploy_example(running: Engine, url: str) -> Deployed:
    """Deploy the bundled example to the reference adapter at url; what the engine recorded as deployed."""
    from adapters.registry import AdapterRegistry

    descriptor = example_descriptor()
    registry = AdapterRegistry(config(url).adapters)
    deployment_id = running.request(descriptor, registry.resolve_all(descriptor))[0]
    assert running.wait(deployment_id).state is DeploymentState.DEPLOYED
    deployed = RedisDeployedStates(running.redis).deployed(descriptor.id, ENVIRONMENT)
    assert deployed is not None
    return deployed


def config(url: str, *templates: str) -> ServerConfig:
    """A configuration whose adapters all live at url."""
    chosen = templates or (STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)
    return ServerConfig(adapters=[AdapterSettings(template, url, timeout=20) for template in chosen])


def add_a_column_by_hand(database: Path) -> None:
    """A DBA adds a column to the deployed view (and its table)."""
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE daily_cashflow ADD COLUMN currency TEXT")
        connection.execute("DROP VIEW daily_cashflow_v")
        connection.execute("CREATE VIEW daily_cashflow_v AS SELECT business_unit, booked_on, net_amount, currency "
                           "FROM daily_cashflow")


def test_the_reference_adapter_reports_a_column_added_by_hand_and_nothing_before(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(2)
        deployed = deploy_example(running, adapter.url)
        metrics = Batch()
        before = check_deployed(deployed, config(adapter.url), metrics=metrics)
        assert before.status is DriftStatus.IN_SYNC, before.to_text()
        metrics.send(running.redis)  # each reverse provisioning call is timed, by adapter
        scraped = render(running.redis).decode()
        assert 'meshbot_adapter_call_duration_seconds_count{adapter="127.0.0.1:' in scraped
        assert 'operation="reverse_provision"} 3.0' in scraped
        assert [component.state for component in before.components] == [ComponentState.IN_SYNC] * 3

        add_a_column_by_hand(adapter.database)
        after = check_deployed(deployed, config(adapter.url))
    assert after.status is DriftStatus.DRIFT
    drifted = {component.name: [item.summary for item in component.differences]
               for component in after.of(ComponentState.DRIFTED)}
    assert drifted == {"daily-cashflow": ["column `currency` added (TEXT)"],  # the view
                       "ledger": ["specific.tables[1].schema: column `currency` added (TEXT)"]}  # its table
    assert [component.name for component in after.of(ComponentState.IN_SYNC)] == ["transactions"]
    text = after.to_text()
    assert "~ urn:dmb:cmp:finance:cashflow:1:daily-cashflow (outputport): drifted" in text
    assert "    column `currency` added (TEXT)" in text
    assert "/import daily-cashflow" in text and "/deploy development" in text
    assert text.endswith("\ndrift: 2 drifted, 1 in sync\n")
    document = after.as_json()
    assert (document["status"], document["deployment"], document["environment"]) == (
        "drift", deployed.deployment, ENVIRONMENT)
    port = next(item for item in document["components"] if item["name"] == "daily-cashflow")
    assert (port["state"], port["differences"][0]["column"]) == ("drifted", "currency")
    assert DriftReport.from_json(document) == after


def test_an_adapter_without_reverse_provisioning_is_not_checkable_and_a_failing_one_unchecked(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter, adapter_server() as missing, \
            adapter_server() as failing, adapter_server() as unrouted:
        running = start(1)
        deployed = deploy_example(running, adapter.url)
        missing.reply("POST", "/v1/reverse-provisioning", Reply(501, {"error": "not implemented"}))
        failing.reply("POST", "/v1/reverse-provisioning", Reply(500, {"error": "database unreachable"}))
        settings = ServerConfig(adapters=[AdapterSettings(STORAGE_TEMPLATE_ID, missing.url, timeout=5),
                                          AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, failing.url, timeout=5)])
        report = check_deployed(deployed, settings)
        unknown_path = check_deployed(deployed, config(unrouted.url, STORAGE_TEMPLATE_ID))
    states = {component.name: (component.state, component.reason) for component in report.components}
    assert states["ledger"] == (ComponentState.NOT_CHECKABLE, "its tech adapter has no reverse provisioning")
    assert states["daily-cashflow"][0] is ComponentState.UNCHECKED
    assert "database unreachable" in states["daily-cashflow"][1]
    assert report.status is DriftStatus.UNCHECKED  # never "in sync" when something could not be checked
    assert report.summary() == "could not check: 1 not checkable, 2 could not be checked"
    unknown = {component.name: component for component in unknown_path.components}
    assert unknown["ledger"].state is ComponentState.NOT_CHECKABLE  # a 404 on the path: no reverse provisioning
    assert unknown["daily-cashflow"].state is ComponentState.UNCHECKED  # no adapter serves it now
    assert "no tech adapter serves infrastructureTemplateId" in unknown["daily-cashflow"].reason


def test_the_latest_report_is_kept_in_redis_and_products_are_found(redis_engine):
    assert deployed_products(redis_engine.redis) == []
    product, other = "urn:dmb:dp:finance:cashflow:1", "urn:dmb:dp:sales:orders:2"
    redis_engine.store.set_product(product, "production", deployed={"descriptor": {"id": product}}, status="DEPLOYED")
    redis_engine.store.set_product(other, "qa", status="NOT_DEPLOYED")
    assert deployed_products(redis_engine.redis) == [(product, "production")]

    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    report = DriftReport(product, "production", "d1", "1.0.0", "2026-05-01T11:00:00Z")
    save_report(redis_engine.redis, report)
    loaded = load_report(redis_engine.redis, product, "production")
    assert loaded == report and load_report(redis_engine.redis, product, "qa") is None
    assert checked_seconds_ago(loaded, now) == timedelta(hours=1).total_seconds()


def test_the_drift_sweep_starts_only_when_something_deployed_is_checked(redis_engine):
    from rq import Queue
    from rq.serializers import JSONSerializer

    from bot.engine.periodic import DRIFT, start_drift_sweep
    from bot.engine.runner import QUEUE_NAME

    queue = Queue(QUEUE_NAME, connection=redis_engine.redis, serializer=JSONSerializer)
    assert start_drift_sweep(queue, ServerConfig()) is None  # nothing deployed: no job (workers start quietly)
    redis_engine.store.set_product("urn:dmb:dp:a:b:1", "qa", deployed={"descriptor": {}}, status="DEPLOYED")
    off = ServerConfig(environments={"qa": {"drift_interval_seconds": 0}, "production": None})
    assert start_drift_sweep(queue, off) is None  # deployed only where drift is off
    started = start_drift_sweep(queue, ServerConfig())
    assert started is not None and queue.job_ids == [started]
    redis_engine.redis.delete(f"meshbot:periodic:{DRIFT}:started")
    redis_engine.redis.set(f"meshbot:periodic:{DRIFT}:next", "scheduled-round")
    assert start_drift_sweep(queue, ServerConfig()) is None  # a round is scheduled already
