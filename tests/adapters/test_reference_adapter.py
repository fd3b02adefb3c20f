"""The reference SQLite tech adapter, served for real on 127.0.0.1 and driven through the real client.

Each test runs against a synchronous (200) and, where the mode matters, an asynchronous (202 + polling)
adapter; every answer received is validated against the Tech Adapter API 2.2.0 document at the end of
the test (see tests/adapters/test_reference_adapter_openapi.py).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from adapters.model import Outcome
from adapters.payloads import component_request, data_product_request, reverse_provisioning_request
from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID, operations
from adapters.reference.columns import AFFINITY, Column, sqlite_affinity
from bot.cli.main import main
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.engine.plan import build_plan
from tests.servers.reference_adapter import Recorder, RunningAdapter, running_adapter
from tests.tech_adapter_api import api_or_none, assert_conform

ROOT = Path(__file__).resolve().parents[2]
DP = "urn:dmb:dp:finance:cashflow:1"
SPEC = api_or_none()


# ---------------------------------------------------------------------- descriptors


def col(name: str, data_type: str, constraint: str | None = None, **extra: Any) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "dataType": data_type, **extra}
    if constraint is not None:
        column["constraint"] = constraint
    return column


def table(name: str, *columns: dict[str, Any]) -> dict[str, Any]:
    return {"tableName": name, "schema": list(columns)}


def storage(name: str, *tables: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"urn:dmb:cmp:finance:cashflow:1:{name}", "kind": "storage", "version": "1.0.0",
            "infrastructureTemplateId": STORAGE_TEMPLATE_ID, "useCaseTemplateId": "urn:dmb:utm:sqlite-storage:0",
            "dependsOn": [], "specific": {"tables": list(tables)}}


def output_port(name: str, view: str, source: str, *schema: dict[str, Any],
                depends_on: tuple[str, ...] = ("ledger",)) -> dict[str, Any]:
    return {"id": f"urn:dmb:cmp:finance:cashflow:1:{name}", "kind": "outputport", "version": "1.0.0",
            "infrastructureTemplateId": OUTPUT_PORT_TEMPLATE_ID, "useCaseTemplateId": "urn:dmb:utm:sqlite-op:0",
            "dependsOn": [f"urn:dmb:cmp:finance:cashflow:1:{item}" for item in depends_on],
            "dataContract": {"schema": list(schema)}, "specific": {"viewName": view, "sourceTable": source}}


def data_product(*components: dict[str, Any]) -> dict[str, Any]:
    return {"id": DP, "kind": "dataproduct", "domain": "finance", "environment": "development", "version": "1.0.0",
            "components": list(components)}


TRANSACTIONS = table(
    "transactions",
    col("transaction_id", "TEXT", "PRIMARY_KEY"),
    col("business_unit", "VARCHAR", "NOT_NULL", dataLength=20),
    col("booked_on", "DATE", "NOT_NULL"),
    col("amount", "DECIMAL", "NOT_NULL", precision=12, scale=2),
    col("reference", "STRING", "UNIQUE"),
    col("reconciled", "BOOLEAN"),
    col("booked_at", "TIMESTAMP"),
    col("rate", "double"),
    col("attachment", "VARBINARY", dataLength=64),
    col("details", "JSON"),
)
BALANCES = table(
    "balances",
    col("business_unit", "TEXT", "PRIMARY_KEY"),
    col("day", "DATE", "PRIMARY_KEY"),
    col("balance", "NUMERIC"),
)
LEDGER = storage("ledger", TRANSACTIONS, BALANCES)
TRANSACTIONS_PORT = output_port(
    "transactions", "transactions_v", "transactions",
    col("transaction_id", "TEXT", "PRIMARY_KEY"),
    col("business_unit", "VARCHAR", dataLength=20),  # the table guarantees NOT NULL; the port promises less
    col("booked_on", "DATE", "NOT_NULL"),
    col("amount", "DECIMAL", precision=12, scale=2),
    col("reconciled", "BOOLEAN"),
)
BALANCES_PORT = output_port("balances", "balances_v", "balances", col("business_unit", "TEXT", "PRIMARY_KEY"),
                            col("day", "DATE", "PRIMARY_KEY"), col("balance", "NUMERIC"))
PRODUCT = data_product(LEDGER, TRANSACTIONS_PORT, BALANCES_PORT)


def request_for(component: dict[str, Any], product: dict[str, Any] | None = None,
                remove_data: bool = False) -> dict[str, Any]:
    return component_request(product or PRODUCT, component["id"], remove_data)


def catalog_info(component: dict[str, Any]) -> dict[str, Any]:
    """The component's catalog-info.yaml, as reverse provisioning receives it."""
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": component["id"].removeprefix("urn:dmb:cmp:").replace(":", ".")},
            "spec": {"type": component["kind"], "system": "finance.cashflow.1", "mesh": component}}


def schema_sql(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                                  "ORDER BY name").fetchall()


def query(database: Path, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql, parameters).fetchall()


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def adapter(request, tmp_path) -> Iterator[RunningAdapter]:
    with running_adapter(tmp_path / "mesh.db", asynchronous=request.param) as running:
        yield running
    assert_conform(running.recorder, SPEC)


@pytest.fixture
def sync_adapter(tmp_path) -> Iterator[RunningAdapter]:
    with running_adapter(tmp_path / "mesh.db") as running:
        yield running
    assert_conform(running.recorder, SPEC)


def provision_all(adapter: RunningAdapter, *components: dict[str, Any],
                  product: dict[str, Any] | None = None) -> None:
    client = adapter.client()
    for component in components:
        result = client.provision(request_for(component, product))
        assert result.ok, (result.message, result.details, result.logs)


def poll(adapter: RunningAdapter, path: str) -> list[dict[str, Any]]:
    """Every status read until it is no longer RUNNING."""
    statuses = [adapter.get(path).json()]
    deadline = time.monotonic() + 10
    while statuses[-1]["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.01)
        statuses.append(adapter.get(path).json())
    return statuses


# ---------------------------------------------------------------------- types


def test_every_supported_type_gets_the_intended_affinity_and_reads_back():
    for data_type, affinity in AFFINITY.items():
        for spelling in (data_type, data_type.lower()):
            column = Column("c", spelling, length=8 if data_type in ("CHAR", "VARCHAR", "BINARY", "VARBINARY")
                            else None, precision=10 if data_type in ("DECIMAL", "NUMERIC", "NUMBER") else None)
            assert sqlite_affinity(column.declared_type()) == affinity, column.declared_type()
    with sqlite3.connect(":memory:") as connection:
        connection.execute('CREATE TABLE t ("s" STRING TEXT, "d" DATE TEXT, "b" BOOLEAN INTEGER, "x" BINARY BLOB(4))')
        connection.execute("INSERT INTO t VALUES ('0012', '20240101', '1', '7')")
        assert connection.execute("SELECT typeof(s), typeof(d), typeof(b), typeof(x) FROM t").fetchone() == (
            "text", "text", "integer", "text")  # BLOB affinity stores what it is given, unconverted


# ---------------------------------------------------------------------- validate


def test_validate_accepts_the_components_in_both_api_versions(adapter):
    client = adapter.client()
    for component in (LEDGER, TRANSACTIONS_PORT, BALANCES_PORT):
        for outcome in (client.validate(request_for(component)), client.validate_async(request_for(component))):
            assert outcome.valid and outcome.errors == [], outcome
    assert client.validate(data_product_request(PRODUCT)).valid


def test_validate_v2_answers_a_token_then_the_result(adapter):
    answer = adapter.post("/v2/validate", json=request_for(LEDGER))
    assert answer.status_code == 202 and answer.headers["Content-Type"] == "application/json"
    statuses = poll(adapter, f"/v2/validate/{answer.json()}/status")
    assert statuses[-1] == {"status": "COMPLETED", "info": {"publicInfo": {"valid": True}}}
    assert all(status == {"status": "RUNNING"} for status in statuses[:-1])


def test_validate_says_what_is_wrong_and_where(adapter):
    bad_storage = storage("raw", table("1st", col("a", "TEXT")), table("ok", col("a", "DATETIME2"),
                          col("A", "TEXT"), col("b", "ARRAY"), col("c", "VARCHAR", dataLength=0),
                          col("d", "TEXT", "FOREIGN_KEY"), col("e", "TEXT", dataLength=5)),
                          table("_meshbot_acl", col("a", "TEXT")))
    bad_port = output_port("bad", "bad view", "transactions", col("nope", "TEXT"), col("amount", "TEXT"),
                           col("reference", "STRING", "UNIQUE"), col("booked_at", "TIMESTAMP", "NOT_NULL"),
                           col("business_unit", "VARCHAR", "PRIMARY_KEY", dataLength=20), depends_on=())
    bad_port["specific"]["query"] = "SELECT * FROM transactions"
    product = data_product(LEDGER, bad_storage, bad_port)
    client = adapter.client()
    storage_errors = client.validate(request_for(bad_storage, product)).errors
    assert client.validate_async(request_for(bad_storage, product)).errors == storage_errors
    expected_storage = [
        r"specific.tables\[0\].tableName: '1st' is not a plain identifier",
        r"specific.tables\[1\].schema\[0\].dataType: 'DATETIME2' is not supported by the SQLite adapter; use one of",
        r"specific.tables\[1\].schema\[1\].name: column 'A' is declared twice \(SQLite names ignore case\)",
        r"specific.tables\[1\].schema\[2\].dataType: 'ARRAY' is not supported .*store the value as JSON",
        r"specific.tables\[1\].schema\[3\].dataLength: expected a positive integer, not 0",
        r"specific.tables\[1\].schema\[4\].constraint: 'FOREIGN_KEY' is not a constraint; use PRIMARY_KEY",
        r"specific.tables\[1\].schema\[5\].dataLength: only BINARY, CHAR, VARBINARY, VARCHAR columns take a "
        r"dataLength; remove it",
        r"specific.tables\[2\].tableName: '_meshbot_acl' starts with a reserved prefix",
    ]
    for pattern in expected_storage:
        assert any(re.search(pattern, error) for error in storage_errors), (pattern, storage_errors)
    port_errors = client.validate(request_for(bad_port, product)).errors
    expected_port = [
        r"specific.query: the SQLite adapter never runs SQL text from a descriptor; remove specific.query",
        r"specific.viewName: 'bad view' is not a plain identifier",
        r"dependsOn: the view reads table 'transactions' of component urn:dmb:cmp:finance:cashflow:1:ledger; add",
        r"dataContract.schema\[0\].name: table 'transactions' \(as component .*ledger declares it\) has no column "
        r"'nope'; its columns: transaction_id, business_unit",
        r"dataContract.schema\[1\].dataType: column 'amount' is DECIMAL\(12,2\) in table 'transactions' .*declare "
        r"DECIMAL\(12,2\)",
        r"dataContract.schema\[3\].constraint: column 'booked_at' of table 'transactions' .* is not NOT_NULL",
        r"dataContract.schema: the output port declares the primary key \(business_unit\), but the primary key of "
        r"table 'transactions' .* is \(transaction_id\)",
    ]
    for pattern in expected_port:
        assert any(re.search(pattern, error) for error in port_errors), (pattern, port_errors)
    assert not any("column 'reference'" in error for error in port_errors)  # the table guarantees UNIQUE
    assert len(port_errors) == len(expected_port)


def test_validate_refuses_other_templates_unknown_components_and_bad_requests(adapter):
    foreign = {**LEDGER, "id": "urn:dmb:cmp:finance:cashflow:1:lake",
               "infrastructureTemplateId": "urn:dmb:itm:snowflake-storage-provisioner:0"}
    client = adapter.client()
    outcome = client.validate(request_for(foreign, data_product(foreign)))
    assert not outcome.valid
    assert outcome.errors == [
        "infrastructureTemplateId: 'urn:dmb:itm:snowflake-storage-provisioner:0' is not served by this adapter (it "
        f"serves {STORAGE_TEMPLATE_ID} for storage components and {OUTPUT_PORT_TEMPLATE_ID} for output ports)"]
    unknown = client.validate(component_request(PRODUCT, "urn:dmb:cmp:finance:cashflow:1:nope"))
    assert unknown.errors[0].startswith("componentIdToProvision 'urn:dmb:cmp:finance:cashflow:1:nope' is not a "
                                        "component of the data product (its components: urn:dmb:cmp:")
    for body, error in [
        ({"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "a: [", "removeData": False},
         "descriptor:1:"),
        ({"descriptorKind": "OTHER", "descriptor": "a: 1", "removeData": False}, "descriptorKind 'OTHER'"),
        ({"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "a: &a [*a]", "removeData": False}, "alias"),
        ({"descriptorKind": "COMPONENT_DESCRIPTOR", "descriptor": "- 1", "removeData": False}, "YAML mapping"),
    ]:
        answer = adapter.post("/v1/validate", json=body)
        assert answer.status_code == 200 and answer.json()["valid"] is False
        assert error in answer.json()["error"]["errors"][0], answer.json()
    assert adapter.post("/v1/validate", data="[").json() == {"valid": False,
                                                             "error": {"errors": ["the request body must be JSON"]}}


def test_the_example_data_product_validates_and_provisions_in_plan_order(adapter):
    assembled = assemble(DirectoryReader(ROOT / "examples" / "finance-cashflow"), "development")
    plan, descriptor = build_plan(assembled), assembled.data
    ids = {component["id"] for component in descriptor["components"]
           if component.get("infrastructureTemplateId") in (STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)}
    assert ids, "the example has no component for the SQLite adapter"
    client = adapter.client()
    for stage in plan.stages:
        for task_id in stage:
            if task_id in ids:
                request = component_request(descriptor, task_id)
                outcome = client.validate(request)
                assert outcome.valid, outcome.errors
                result = client.provision(request)
                assert result.ok, (result.message, result.logs)


# ---------------------------------------------------------------------- provision


def test_provision_creates_tables_with_types_constraints_and_logs(adapter):
    result = adapter.client().provision(request_for(LEDGER))
    assert result.outcome is Outcome.COMPLETED and result.http_status == 200
    assert result.message == f"storage component {LEDGER['id']} provisioned: tables transactions, balances"
    assert [entry["message"] for entry in result.logs] == [
        "created table 'transactions' (10 columns)", "created table 'balances' (3 columns)", result.message]
    assert all(entry["level"] == "INFO" and entry["phase"] == "provision" for entry in result.logs)
    assert result.info is not None
    assert result.info["publicInfo"]["tables"] == {"type": "string", "label": "Tables",
                                                   "value": "transactions, balances"}
    columns = query(adapter.database, "SELECT name, type, \"notnull\", pk FROM pragma_table_info('transactions')")
    assert columns == [
        ("transaction_id", "TEXT", 1, 1), ("business_unit", "VARCHAR(20)", 1, 0), ("booked_on", "DATE TEXT", 1, 0),
        ("amount", "DECIMAL(12,2)", 1, 0), ("reference", "STRING TEXT", 0, 0), ("reconciled", "BOOLEAN INTEGER", 0, 0),
        ("booked_at", "TIMESTAMP TEXT", 0, 0), ("rate", "double", 0, 0), ("attachment", "VARBINARY BLOB(64)", 0, 0),
        ("details", "JSON TEXT", 0, 0)]
    assert query(adapter.database, "SELECT name, pk FROM pragma_table_info('balances') WHERE pk > 0") == [
        ("business_unit", 1), ("day", 2)]
    with sqlite3.connect(adapter.database) as connection:
        connection.execute("INSERT INTO transactions (transaction_id, business_unit, booked_on, amount, reference, "
                           "reconciled) VALUES ('t1', 'BU', '2026-01-02', '10.50', '0012', 1)")
        assert connection.execute("SELECT typeof(amount), typeof(reference), typeof(booked_on) FROM transactions"
                                  ).fetchone() == ("real", "text", "text")
        with pytest.raises(sqlite3.IntegrityError):  # UNIQUE
            connection.execute("INSERT INTO transactions (transaction_id, business_unit, booked_on, amount, reference)"
                               " VALUES ('t2', 'BU', '2026-01-02', 1, '0012')")
        with pytest.raises(sqlite3.IntegrityError):  # NOT NULL
            connection.execute("INSERT INTO transactions (transaction_id, booked_on, amount) VALUES ('t3', 'd', 1)")


def test_provisioning_twice_gives_the_same_database(adapter):
    provision_all(adapter, LEDGER, TRANSACTIONS_PORT, BALANCES_PORT)
    before = schema_sql(adapter.database)
    client = adapter.client()
    for component in (LEDGER, TRANSACTIONS_PORT, BALANCES_PORT):
        result = client.provision(request_for(component))
        assert result.ok, result.message
    assert schema_sql(adapter.database) == before
    again = client.provision(request_for(LEDGER))
    assert [entry["message"] for entry in again.logs][:2] == ["table 'transactions' is already as declared",
                                                               "table 'balances' is already as declared"]


def test_a_changed_table_gains_nullable_columns_and_refuses_the_rest(adapter):
    provision_all(adapter, LEDGER)
    client = adapter.client()
    grown = storage("ledger", {**TRANSACTIONS, "schema": [*TRANSACTIONS["schema"], col("memo", "TEXT")]}, BALANCES)
    result = client.provision(request_for(grown, data_product(grown)))
    assert result.ok, result.message
    assert "added columns memo to table 'transactions'" in [entry["message"] for entry in result.logs]
    assert query(adapter.database, "SELECT type FROM pragma_table_info('transactions') WHERE name = 'memo'") == [
        ("TEXT",)]
    before = schema_sql(adapter.database)
    changed = storage("ledger", table("transactions", *[
        col("amount", "INT", "NOT_NULL") if column["name"] == "amount" else column
        for column in grown["specific"]["tables"][0]["schema"] if column["name"] != "rate"
    ], col("approved_by", "TEXT", "NOT_NULL")), BALANCES)
    result = client.provision(request_for(changed, data_product(changed)))
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith(f"cannot provision {LEDGER['id']}: table 'transactions': column 'amount' is "
                                     "DECIMAL(12,2) in the database, but the descriptor declares INT")
    errors = [entry["message"] for entry in result.logs if entry["level"] == "ERROR"]
    assert "table 'transactions': column 'approved_by' is missing, and SQLite cannot add a NOT_NULL column to an " \
           "existing table" in errors
    assert "table 'transactions' has columns the descriptor does not declare: rate" in errors
    assert any("never changes or drops existing ones" in error for error in errors)
    assert schema_sql(adapter.database) == before  # nothing changed
    assert not client.validate(request_for(changed, data_product(changed))).valid  # validate says so beforehand


def test_a_table_of_another_component_or_a_view_name_is_refused(sync_adapter):
    provision_all(sync_adapter, LEDGER, TRANSACTIONS_PORT)
    thief = storage("thief", TRANSACTIONS)
    clash = storage("clash", table("transactions_v", col("a", "TEXT")))
    client = sync_adapter.client()
    assert "table 'transactions' belongs to component urn:dmb:cmp:finance:cashflow:1:ledger; two components cannot " \
           "share a table" in client.provision(request_for(thief, data_product(thief))).message
    assert "'transactions_v' is a view in the database" in client.provision(request_for(clash, data_product(clash))
                                                                            ).message
    with sqlite3.connect(sync_adapter.database) as connection:
        connection.execute('CREATE TABLE "Legacy" ("id" INT NOT NULL)')
    spelled = storage("spelled", table("legacy", col("id", "INT", "NOT_NULL")))
    assert client.provision(request_for(spelled, data_product(spelled))).message == (
        f"cannot provision {spelled['id']}: table 'legacy' is spelled 'Legacy' in the database; declare it so; "
        "nothing was changed")
    adopted = storage("adopted", table("Legacy", col("id", "INT", "NOT_NULL")))
    result = client.provision(request_for(adopted, data_product(adopted)))
    assert result.ok and result.logs[0] == {**result.logs[0], "level": "WARNING", "message": (
        f"table 'Legacy' exists but meshbot did not create it; component {adopted['id']} takes it over")}


def test_an_output_port_is_a_view_of_the_declared_columns(adapter):
    provision_all(adapter, LEDGER)
    result = adapter.client().provision(request_for(TRANSACTIONS_PORT))
    assert result.ok and result.message == (f"output port {TRANSACTIONS_PORT['id']} provisioned: view transactions_v "
                                            "over table transactions")
    assert result.info is not None and result.info["publicInfo"]["view"]["value"] == "transactions_v"
    assert query(adapter.database, "SELECT sql FROM sqlite_master WHERE name = 'transactions_v'") == [(
        'CREATE VIEW "transactions_v" AS SELECT "transaction_id", "business_unit", "booked_on", "amount", "reconciled" '
        'FROM "transactions"',)]
    with sqlite3.connect(adapter.database) as connection:
        connection.execute("INSERT INTO transactions (transaction_id, business_unit, booked_on, amount) "
                           "VALUES ('t1', 'BU', '2026-01-02', 3.5)")
    assert query(adapter.database, "SELECT * FROM transactions_v") == [("t1", "BU", "2026-01-02", 3.5, None)]


def test_an_output_port_before_its_table_fails_and_a_query_is_refused(adapter):
    client = adapter.client()
    result = client.provision(request_for(TRANSACTIONS_PORT))
    assert result.outcome is Outcome.FAILED
    assert "table 'transactions' does not exist in the database; provision the storage component that declares it " \
           "first" in result.message
    with_query = {**TRANSACTIONS_PORT, "specific": {**TRANSACTIONS_PORT["specific"], "query": "DROP TABLE x"}}
    refused = client.provision(request_for(with_query, data_product(LEDGER, with_query)))
    assert refused.outcome is Outcome.FAILED and refused.http_status == 400
    assert refused.message.startswith(f"component {TRANSACTIONS_PORT['id']} is not valid for the SQLite adapter: "
                                      "specific.query: the SQLite adapter never runs SQL text")
    assert "field: descriptor" in refused.details


def test_the_data_product_itself_needs_nothing(adapter):
    client = adapter.client()
    for result in (client.provision(data_product_request(PRODUCT)), client.unprovision(data_product_request(PRODUCT))):
        assert result.ok and result.message.startswith("nothing to do: the data product itself")


# ---------------------------------------------------------------------- unprovision and updateacl


def test_unprovision_drops_the_view_and_keeps_the_data_unless_asked(adapter):
    provision_all(adapter, LEDGER, TRANSACTIONS_PORT)
    client = adapter.client()
    refused = client.unprovision(request_for(LEDGER, remove_data=True))
    assert refused.outcome is Outcome.FAILED and "view 'transactions_v' of component " \
        f"{TRANSACTIONS_PORT['id']} still reads table 'transactions'; unprovision that output port first" in \
        refused.message
    port = client.unprovision(request_for(TRANSACTIONS_PORT))
    assert port.ok
    assert port.message == f"output port {TRANSACTIONS_PORT['id']} unprovisioned: dropped view transactions_v"
    assert port.logs[-1]["phase"] == "unprovision"
    kept = client.unprovision(request_for(LEDGER))
    assert kept.ok and kept.message.startswith("data kept: removeData is false")
    assert "(transactions, balances)" in kept.message
    assert {name for name, _ in schema_sql(adapter.database)} >= {"transactions", "balances"}
    dropped = client.unprovision(request_for(LEDGER, remove_data=True))
    assert dropped.ok and dropped.message == f"storage component {LEDGER['id']} unprovisioned: tables dropped: " \
                                             "transactions, balances"
    assert {name for name, _ in schema_sql(adapter.database)} == {"_meshbot_acl", "_meshbot_tables", "_meshbot_views"}
    again = client.unprovision(request_for(LEDGER, remove_data=True))
    assert again.ok and again.message.endswith("tables dropped: none (nothing was there)")
    gone = client.unprovision(request_for(TRANSACTIONS_PORT, remove_data=True))
    assert gone.ok and "does not exist; nothing to remove (removeData changes nothing for a view" in gone.message


def test_unprovision_of_a_component_that_no_longer_validates_still_works(sync_adapter):
    provision_all(sync_adapter, LEDGER, TRANSACTIONS_PORT)
    broken = {**TRANSACTIONS_PORT, "dataContract": {}, "specific": {**TRANSACTIONS_PORT["specific"], "query": "x"}}
    result = sync_adapter.client().unprovision(request_for(broken, data_product(LEDGER, broken)))
    assert result.ok, result.message
    assert query(sync_adapter.database, "SELECT name FROM sqlite_master WHERE type = 'view'") == []


def test_updateacl_records_who_may_read(adapter):
    provision_all(adapter, LEDGER, TRANSACTIONS_PORT)
    client = adapter.client()
    info = {"request": json.dumps(request_for(TRANSACTIONS_PORT)), "result": "provisioned"}
    result = client.update_acl(["user:alice", "group:treasury", "user:alice"], info)
    assert result.ok and result.message == (f"access to {TRANSACTIONS_PORT['id']} recorded for 2 identities: "
                                            "user:alice, group:treasury")
    assert query(adapter.database, "SELECT ref FROM _meshbot_acl ORDER BY ref") == [("group:treasury",),
                                                                                  ("user:alice",)]
    descriptor_only = {"request": request_for(TRANSACTIONS_PORT)["descriptor"], "result": ""}  # YAML works too
    assert client.update_acl(["user:bob"], descriptor_only).ok
    assert query(adapter.database, "SELECT ref FROM _meshbot_acl") == [("user:bob",)]
    unknown = client.update_acl(["user:bob"], {"request": json.dumps(request_for(BALANCES_PORT)), "result": ""})
    assert unknown.ok and unknown.logs[0]["level"] == "WARNING"
    refused = client.update_acl(["user:bob"], {"request": "not a descriptor", "result": ""})
    assert refused.outcome is Outcome.FAILED and refused.http_status == 400
    assert "field: provisionInfo.request" in refused.details


# ---------------------------------------------------------------------- reverse provisioning


def test_reverse_provisioning_gives_back_exactly_what_was_declared(adapter):
    provision_all(adapter, LEDGER, TRANSACTIONS_PORT, BALANCES_PORT)
    client = adapter.client()
    for component, path, declared in (
        (LEDGER, "spec.mesh.specific.tables", LEDGER["specific"]["tables"]),
        (TRANSACTIONS_PORT, "spec.mesh.dataContract.schema", TRANSACTIONS_PORT["dataContract"]["schema"]),
        (BALANCES_PORT, "spec.mesh.dataContract.schema", BALANCES_PORT["dataContract"]["schema"]),
    ):
        result = client.reverse_provision(reverse_provisioning_request(
            component["useCaseTemplateId"], "development", {}, catalog_info(component)))
        assert result.ok, result.message
        assert result.updates == {path: declared}
        assert all(entry["phase"] == "reverse-provisioning" for entry in result.logs)
    # Without the catalog, only the database (and what meshbot recorded of the output port) speaks.
    by_view = client.reverse_provision(reverse_provisioning_request("u", "development", {"view": "transactions_v"}, {}))
    assert by_view.updates == {"spec.mesh.dataContract.schema": TRANSACTIONS_PORT["dataContract"]["schema"]}
    by_table = client.reverse_provision(reverse_provisioning_request("u", "development", {"table": "balances"}, {}))
    assert by_table.updates == {"spec.mesh.specific.tables": [BALANCES]}
    both = client.reverse_provision(reverse_provisioning_request(
        "u", "development", {"tables": ["balances", "transactions"]}, {}))
    assert both.updates == {"spec.mesh.specific.tables": [BALANCES, TRANSACTIONS]}
    assert [entry["message"] for entry in both.logs] == ["read table 'balances': 3 columns",
                                                         "read table 'transactions': 10 columns"]


def test_reverse_provisioning_keeps_the_catalogs_spellings_and_extra_keys(sync_adapter):
    provision_all(sync_adapter, LEDGER, TRANSACTIONS_PORT)
    written = [
        {"name": "transaction_id", "dataType": "text", "constraint": "primary_key", "description": "the id"},
        {"name": "business_unit", "dataType": "VARCHAR", "dataLength": 20, "constraint": "NULL", "tags": []},
        {"name": "booked_on", "dataType": "DATE", "constraint": "NOT_NULL"},
        {"name": "amount", "dataType": "DECIMAL", "precision": 12, "scale": 2, "constraint": None},
        {"name": "reconciled", "dataType": "BOOLEAN", "description": "checked by treasury"},
    ]
    component = {**TRANSACTIONS_PORT, "dataContract": {"schema": written}}
    result = sync_adapter.client().reverse_provision(reverse_provisioning_request(
        "u", "development", {}, catalog_info(component)))
    assert result.updates == {"spec.mesh.dataContract.schema": written}


def test_reverse_provisioning_reports_what_really_changed(sync_adapter):
    provision_all(sync_adapter, LEDGER)
    with sqlite3.connect(sync_adapter.database) as connection:
        connection.execute("ALTER TABLE balances ADD COLUMN note NVARCHAR(30)")
        connection.execute("CREATE TABLE legacy (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE, v REAL, x)")
        connection.execute("CREATE VIEW legacy_v AS SELECT id, label, v * 2 AS doubled FROM legacy")
    client = sync_adapter.client()
    result = client.reverse_provision(reverse_provisioning_request("u", "development", {}, catalog_info(LEDGER)))
    tables = result.updates["spec.mesh.specific.tables"]
    assert tables[0] == TRANSACTIONS
    assert tables[1]["schema"][-1] == {"name": "note", "dataType": "TEXT"}
    assert [entry for entry in result.logs if entry["level"] == "WARNING"][0]["message"] == (
        "column 'note' has SQLite type 'NVARCHAR(30)', not an OpenMetadata type meshbot declares; reported as TEXT")
    legacy = client.reverse_provision(reverse_provisioning_request("u", "development", {"table": "legacy"}, {}))
    assert legacy.updates == {"spec.mesh.specific.tables": [{"tableName": "legacy", "schema": [
        {"name": "id", "dataType": "INTEGER", "constraint": "PRIMARY_KEY"},
        {"name": "label", "dataType": "TEXT", "constraint": "UNIQUE"},
        {"name": "v", "dataType": "REAL"}, {"name": "x", "dataType": "BLOB"}]}]}
    view = client.reverse_provision(reverse_provisioning_request("u", "development", {"view": "legacy_v"}, {}))
    assert view.updates == {"spec.mesh.dataContract.schema": [
        {"name": "id", "dataType": "INTEGER"}, {"name": "label", "dataType": "TEXT"},
        {"name": "doubled", "dataType": "BLOB"}]}
    assert "has no declared type (an expression?)" in view.logs[0]["message"]


def test_reverse_provisioning_failures_and_refusals(adapter):
    client = adapter.client()
    missing = client.reverse_provision(reverse_provisioning_request("u", "development", {"view": "nothing"}, {}))
    assert missing.outcome is Outcome.FAILED
    assert missing.message == "there is no table or view 'nothing' in the database"
    for params, message in [
        ({"table": "x; DROP TABLE y"}, "params.table: 'x; DROP TABLE y' is not a plain identifier (letters, digits "
                                        "and _, not starting with a digit)"),
        ({}, "cannot tell what to read"),
        ({"tables": []}, "nothing to read"),
    ]:
        result = client.reverse_provision(reverse_provisioning_request("u", "development", params, {}))
        assert result.outcome is Outcome.FAILED and result.message == message
    for catalog, message in [
        (catalog_info({**TRANSACTIONS_PORT, "specific": {}}), "nothing to read"),
        (catalog_info({**LEDGER, "specific": {"tables": [{"tableName": "1x"}]}}),
         "catalogInfo: '1x' is not a plain identifier (letters, digits and _, not starting with a digit)"),
    ]:
        result = client.reverse_provision(reverse_provisioning_request("u", "development", {}, catalog))
        assert result.outcome is Outcome.FAILED and result.message == message
    answer = adapter.post("/v1/reverse-provisioning", json={"useCaseTemplateId": "u", "params": {}})
    assert answer.status_code == 400 and answer.json()["inputErrorField"] == "environment"
    storage_view = client.reverse_provision(reverse_provisioning_request("u", "development", {"view": "v"},
                                                                         catalog_info(LEDGER)))
    assert storage_view.message == "a storage component has tables, not views: give params.table or params.tables"


# ---------------------------------------------------------------------- asynchronous mode, errors


def test_asynchronous_mode_answers_tokens_in_both_forms_and_really_polls(tmp_path):
    with running_adapter(tmp_path / "mesh.db", asynchronous=True, async_delay=0.4) as adapter:
        provision = adapter.post("/v1/provision", json=request_for(LEDGER))
        assert provision.status_code == 202 and provision.headers["Content-Type"] == "application/json"
        token = json.loads(provision.text)
        assert adapter.get(f"/v1/reverse-provisioning/{token}/status").status_code == 400  # another operation's
        statuses = poll(adapter, f"/v1/provision/{token}/status")
        assert statuses[0] == {"status": "RUNNING", "result": "provision is running"}
        assert statuses[-1]["status"] == "COMPLETED" and statuses[-1]["logs"]
        unprovision = adapter.post("/v1/unprovision", json=request_for(LEDGER))
        assert unprovision.status_code == 202 and unprovision.headers["Content-Type"].startswith("text/plain")
        assert re.fullmatch(r"t[0-9a-f]{32}", unprovision.text)
        assert poll(adapter, f"/v1/provision/{unprovision.text}/status")[-1]["result"].startswith("data kept")
        client = adapter.client()
        assert client.provision(request_for(TRANSACTIONS_PORT)).ok
        assert client.reverse_provision(reverse_provisioning_request("u", "d", {"view": "transactions_v"}, {})).ok
        statuses = adapter.recorder.statuses("/status")
        assert {"RUNNING", "COMPLETED"} <= {status["status"] for status in statuses}
        assert {"status": "RUNNING", "updates": {}} in statuses
    assert_conform(adapter.recorder, SPEC)


def test_unknown_tokens_and_malformed_bodies_are_request_validation_errors(adapter):
    for path in ("/v1/provision", "/v1/reverse-provisioning", "/v2/validate"):
        answer = adapter.get(f"{path}/t-unknown/status")
        assert answer.status_code == 400
        body = answer.json()
        assert body["userMessage"].startswith("unknown ") and body["inputErrorField"] == "token"
        assert body["errors"] == body["moreInfo"]["problems"] and body["moreInfo"]["solutions"]
    for path in ("/v1/provision", "/v1/unprovision", "/v1/updateacl", "/v1/reverse-provisioning", "/v2/validate"):
        for data in ("{", "[]", json.dumps({"descriptorKind": "COMPONENT_DESCRIPTOR"})):
            answer = adapter.post(path, data=data, headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (path, data)
            assert set(answer.json()) >= {"errors", "userMessage", "moreInfo"}
    removal = adapter.post("/v1/unprovision", json={**request_for(LEDGER), "removeData": "yes"})
    assert removal.status_code == 400 and removal.json()["inputErrorField"] == "removeData"
    huge = adapter.post("/v1/provision", data=b"x" * (9 * 1024 * 1024))
    assert huge.status_code == 400 and "larger than 8 MiB" in huge.json()["userMessage"]


def test_an_unexpected_error_is_a_system_error_or_a_failed_task(adapter, monkeypatch):
    def crash(*args: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(operations, "provision", crash)
    result = adapter.client().provision(request_for(LEDGER))
    assert result.outcome is Outcome.FAILED
    assert "unexpected error" in result.message and "disk on fire" in result.message
    answer = adapter.post("/v1/provision", json=request_for(LEDGER))
    if answer.status_code == 500:
        assert answer.json()["error"].startswith("unexpected error in the SQLite tech adapter: RuntimeError")
    else:
        assert answer.status_code == 202


def test_sql_problems_end_in_failed_with_logs(tmp_path):
    database = tmp_path / "mesh.db"
    with running_adapter(database) as adapter:
        database.unlink()
        database.mkdir()  # the database cannot be opened any more
        result = adapter.client().provision(request_for(LEDGER))
        assert result.outcome is Outcome.FAILED and result.http_status == 200
        assert result.message == (f"SQLite error while provisioning {LEDGER['id']}: unable to open database file; "
                                  "nothing was changed")
        assert result.logs[-1]["level"] == "ERROR" and result.logs[-1]["message"] == result.message
        acl = adapter.client().update_acl(["user:a"], {"request": json.dumps(request_for(LEDGER)), "result": ""})
        assert acl.outcome is Outcome.FAILED and "unable to open database file" in acl.message
    assert_conform(adapter.recorder, SPEC)


def test_sql_errors_are_reported_not_raised(sync_adapter):
    provision_all(sync_adapter, LEDGER)
    with sqlite3.connect(sync_adapter.database) as connection:  # a view meshbot did not make, over a dropped table
        connection.execute("CREATE TABLE gone (a TEXT)")
        connection.execute("CREATE VIEW broken AS SELECT a FROM gone")
        connection.execute("DROP TABLE gone")
    result = sync_adapter.client().reverse_provision(reverse_provisioning_request("u", "d", {"view": "broken"}, {}))
    assert result.outcome is Outcome.FAILED and result.message.startswith("SQLite error while reading the database")


# ---------------------------------------------------------------------- concurrency


def test_concurrent_provisions_of_independent_components(adapter):
    components = [storage(f"part{index}", table(f"part{index}", col("id", "INT", "PRIMARY_KEY"),
                                                col("value", "TEXT"))) for index in range(8)]
    ports = [output_port(f"port{index}", f"part{index}_v", f"part{index}", col("id", "INT", "PRIMARY_KEY"),
                         depends_on=(f"part{index}",)) for index in range(8)]
    product = data_product(*components, *ports)
    client = adapter.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = list(pool.map(lambda c: client.provision(request_for(c, product)), components + components[:2]))
        exposed = list(pool.map(lambda c: client.provision(request_for(c, product)), ports))
    assert all(result.ok for result in stored + exposed), [r.message for r in stored + exposed if not r.ok]
    assert query(adapter.database, "PRAGMA integrity_check") == [("ok",)]
    names = {name for name, _ in schema_sql(adapter.database)}
    assert {f"part{index}" for index in range(8)} | {f"part{index}_v" for index in range(8)} <= names
    assert query(adapter.database, "SELECT count(*) FROM _meshbot_tables") == [(8,)]


# ---------------------------------------------------------------------- meshbot adapter serve


def _read_line(stream: Any, timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no line within {timeout} s"
    return lines[0]


@pytest.mark.parametrize(("stop", "mode"), [(signal.SIGTERM, ["--async", "--async-delay", "0.01"]),
                                           (signal.SIGINT, [])], ids=["async-sigterm", "sync-sigint"])
def test_meshbot_adapter_serve_runs_until_a_signal(tmp_path, stop, mode):
    database = tmp_path / "served.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "adapter", "serve", "--port", "0", "--db", str(database), *mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = _read_line(process.stdout, 30)
        described = "asynchronous, tasks delayed 0\\.01 s" if mode else "synchronous"
        match = re.fullmatch(r"meshbot reference tech adapter listening on (http://127\.0\.0\.1:(\d+)"
                             rf"/datamesh\.specificprovisioner) \(database .*served\.db, {described}\)\n", line)
        assert match and int(match.group(2)) > 0, line
        recorder = Recorder()
        adapter = RunningAdapter(match.group(1), database, recorder, recorder.session())
        client = adapter.client()
        assert client.validate(request_for(LEDGER)).valid
        assert client.provision(request_for(LEDGER)).ok
        assert client.unprovision(request_for(LEDGER, remove_data=True)).ok
        assert_conform(recorder, SPEC)
        process.send_signal(stop)
        assert process.wait(15) == 0
        assert process.stdout is not None and process.stdout.read() == "meshbot reference tech adapter stopped\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_meshbot_adapter_serve_refuses_bad_arguments(tmp_path, capsys):
    assert main(["adapter", "serve", "--port", "0", "--db", str(tmp_path / "no" / "such" / "dir.db")]) == 2
    assert "cannot use the SQLite database" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["adapter", "serve", "--port", "70000", "--db", str(tmp_path / "x.db")])
    assert "not a port number" in capsys.readouterr().err
    assert main(["adapter"]) == 2
