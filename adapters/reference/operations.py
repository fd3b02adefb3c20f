"""validate, provision, unprovision, updateacl and reverse provisioning against one SQLite database.

Each operation opens its own connection; everything that changes the schema runs under the adapter's
DDL lock and in one transaction, so concurrent provisions of independent components never interleave,
and a failed one leaves the database as it was. SQL problems end in a FAILED status with ERROR logs;
anything unexpected propagates (500 SystemError, or FAILED for an asynchronous task).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.model import DESCRIPTOR_KIND_DATA_PRODUCT
from adapters.reference import STORAGE_TEMPLATE_ID, sqlite
from adapters.reference.answers import (
    COMPLETED,
    FAILED,
    BadRequest,
    Logs,
    completed,
    failed,
    info,
    reverse_status,
    validation_result,
)
from adapters.reference.components import (
    OutputPort,
    Spec,
    Storage,
    Table,
    component_spec,
    declared_tables,
    find_component,
)
from adapters.reference.inputs import AclRequest, ProvisioningRequest, provisioning_request
from adapters.reference.plans import TablePlan, check_view_columns, declared_guarantees, plan_table
from adapters.reference.reverse import (
    OUTPUT_PORT,
    SCHEMA_PATH,
    TABLES_PATH,
    ReverseTarget,
    merge_columns,
    merge_tables,
    port_schema,
    table_entry,
)


@dataclass(slots=True)
class Adapter:
    """The database the adapter provisions into, and the lock its schema changes take."""

    database: Path
    ddl_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checked provisioning request: the data product alone (spec None) or one component's spec."""

    request: ProvisioningRequest
    spec: Spec | None


def prepare(body: Any, *, for_removal: bool = False) -> Prepared:
    """The request and its component's spec; BadRequest (400) when the descriptor cannot be acted on."""
    request = provisioning_request(body)
    if request.kind == DESCRIPTOR_KIND_DATA_PRODUCT:
        return Prepared(request, None)
    component = find_component(request)
    spec, errors = component_spec(component, for_removal=for_removal)
    if errors or spec is None:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise BadRequest(f"component {request.component_id} is not valid for the SQLite adapter: {errors[0]}{more}",
                         errors, "descriptor", ["fix the component's descriptor (run validate to see every problem)"])
    return Prepared(request, spec)


# ---------------------------------------------------------------------- validate


def validate(adapter: Adapter, body: Any) -> dict[str, Any]:
    """A ValidationResult: the descriptor's problems, then those the database would raise."""
    try:
        request = provisioning_request(body)
        if request.kind == DESCRIPTOR_KIND_DATA_PRODUCT:
            return validation_result([])
        spec, errors = component_spec(find_component(request))
    except BadRequest as bad:
        return validation_result(bad.errors)
    if spec is None or (errors and isinstance(spec, Storage)):  # partial tables would give misleading differences
        return validation_result(errors)
    with sqlite.connect(adapter.database) as connection, sqlite.snapshot(connection):
        if isinstance(spec, Storage):
            plans = [_table_plan(connection, table, spec.component_id) for table in spec.tables]
            return validation_result([problem for plan in plans for problem in plan.problems])
        return validation_result(errors + _view_problems(connection, request.data_product, spec, True))


def _table_plan(connection: sqlite3.Connection, table: Table, component_id: str) -> TablePlan:
    found = sqlite.find(connection, table.name)
    if found is None:
        return plan_table(table, None)
    if found.kind != "table":
        plan = TablePlan(table)
        plan.problems.append(f"table '{table.name}': '{found.name}' is a view in the database; choose another name")
        return plan
    owner = sqlite.table_owner(connection, found.name)
    if owner is not None and owner != component_id:
        plan = TablePlan(table)
        plan.problems.append(f"table '{table.name}' belongs to component {owner}; two components cannot share a table")
        return plan
    existing, _ = sqlite.columns(connection, found.name)
    plan = plan_table(table, existing)
    if found.name != table.name:
        plan.problems.insert(0, f"table '{table.name}' is spelled '{found.name}' in the database; declare it so")
    if owner is None and not plan.problems:
        plan.warnings.append(f"table '{found.name}' exists but meshbot did not create it; component {component_id} "
                             "takes it over")
    return plan


def _view_problems(connection: sqlite3.Connection, data_product: dict[str, Any], port: OutputPort,
                   at_validation: bool) -> list[str]:
    """Why the view cannot be created (at validation, tables the data product declares count as existing)."""
    errors: list[str] = []
    found = sqlite.find(connection, port.view) if port.view else None
    if found is not None and found.kind == "table":
        errors.append(f"specific.viewName: '{port.view}' is a table in the database; choose another view name")
    elif found is not None:
        record = sqlite.view_record(connection, found.name)
        if record is not None and record.component_id != port.component_id:
            errors.append(f"specific.viewName: view '{port.view}' belongs to component {record.component_id}")
    declared = declared_tables(data_product)
    if at_validation and port.view and port.view.lower() in declared:
        errors.append(f"specific.viewName: '{port.view}' is a table that component {declared[port.view.lower()][0]} "
                      "declares; choose another view name")
    source = port.source_table
    if not source:
        return errors
    if at_validation and source.lower() in declared:
        owner, table = declared[source.lower()]
        if owner not in port.depends_on:
            errors.append(f"dependsOn: the view reads table '{source}' of component {owner}; add {owner} to dependsOn "
                          "so that the table exists before the view is created")
        if table is None:
            errors.append(f"specific.sourceTable: table '{source}' is declared by component {owner}, whose descriptor "
                          "is not valid; fix that component first")
        else:
            errors.extend(check_view_columns(port.columns, table.name, declared_guarantees(table),
                                             f"as component {owner} declares it"))
        return errors
    table_found = sqlite.find(connection, source)
    if table_found is None:
        errors.append(
            f"specific.sourceTable: table '{source}' is neither declared by a storage component of this data product "
            f"({STORAGE_TEMPLATE_ID}) nor present in the database" if at_validation else
            f"specific.sourceTable: table '{source}' does not exist in the database; provision the storage component "
            "that declares it first (the output port should list it in dependsOn)")
    elif table_found.kind != "table":
        errors.append(f"specific.sourceTable: '{source}' is a view; an output port reads a table")
    else:
        existing, _ = sqlite.columns(connection, table_found.name)
        errors.extend(check_view_columns(port.columns, table_found.name, existing, "in the database"))
    return errors


# ---------------------------------------------------------------------- provision


def provision(adapter: Adapter, prepared: Prepared) -> dict[str, Any]:
    """Create the component's tables or view; provisioning twice gives the same database."""
    logs = Logs("provision")
    spec = prepared.spec
    if spec is None:
        return completed("nothing to do: the data product itself needs no SQLite resources", logs)
    try:
        with adapter.ddl_lock, sqlite.connect(adapter.database) as connection, sqlite.transaction(connection):
            if isinstance(spec, Storage):
                return _provision_storage(connection, spec, logs, adapter.database)
            return _provision_view(connection, prepared.request.data_product, spec, logs, adapter.database)
    except sqlite3.Error as error:
        return failed(f"SQLite error while provisioning {spec.component_id}: {error}; nothing was changed", logs)


def _provision_storage(connection: sqlite3.Connection, spec: Storage, logs: Logs, database: Path) -> dict[str, Any]:
    plans = [_table_plan(connection, table, spec.component_id) for table in spec.tables]
    problems = [problem for plan in plans for problem in plan.problems]
    if problems:
        return _refused(spec.component_id, problems, logs)
    for plan in plans:
        for warning in plan.warnings:
            logs.warning(warning)
        name = plan.table.name
        if plan.create:
            sqlite.create_table(connection, plan.table)
            logs.info(f"created table '{name}' ({len(plan.table.columns)} columns)")
        elif plan.add:
            for column in plan.add:
                sqlite.add_column(connection, name, column)
            logs.info(f"added columns {', '.join(column.name for column in plan.add)} to table '{name}'")
        else:
            logs.info(f"table '{name}' is already as declared")
        sqlite.set_table_owner(connection, name, spec.component_id)
    names = ", ".join(table.name for table in spec.tables)
    return completed(f"storage component {spec.component_id} provisioned: tables {names}", logs,
                     info({"tables": names}, {"database": str(database), "tables": [t.name for t in spec.tables]}))


def _provision_view(connection: sqlite3.Connection, data_product: dict[str, Any], port: OutputPort, logs: Logs,
                    database: Path) -> dict[str, Any]:
    problems = _view_problems(connection, data_product, port, at_validation=False)
    if problems:
        return _refused(port.component_id, problems, logs)
    table = sqlite.find(connection, port.source_table)
    assert table is not None  # _view_problems checked it
    existed = sqlite.find(connection, port.view) is not None
    sqlite.create_view(connection, port.view, table.name, [column.name for column in port.columns])
    sqlite.record_view(connection, port.view, sqlite.ViewRecord(
        port.component_id, table.name, [column.as_schema() for column in port.columns]))
    logs.info(f"{'replaced' if existed else 'created'} view '{port.view}' selecting "
              f"{', '.join(column.name for column in port.columns)} from table '{table.name}'")
    return completed(f"output port {port.component_id} provisioned: view {port.view} over table {table.name}", logs,
                     info({"view": port.view, "sourceTable": table.name},
                          {"database": str(database), "view": port.view, "sourceTable": table.name}))


def _refused(component_id: str, problems: list[str], logs: Logs) -> dict[str, Any]:
    for problem in problems[1:]:
        logs.error(problem)
    more = f" (and {len(problems) - 1} more problems in the logs)" if len(problems) > 1 else ""
    return failed(f"cannot provision {component_id}: {problems[0]}{more}; nothing was changed", logs)


# ---------------------------------------------------------------------- unprovision


def unprovision(adapter: Adapter, prepared: Prepared) -> dict[str, Any]:
    """Drop the view; drop tables only when removeData is true."""
    logs = Logs("unprovision")
    spec = prepared.spec
    if spec is None:
        return completed("nothing to do: the data product itself has no SQLite resources", logs)
    try:
        with adapter.ddl_lock, sqlite.connect(adapter.database) as connection, sqlite.transaction(connection):
            if isinstance(spec, Storage):
                return _unprovision_storage(connection, spec, prepared.request.remove_data, logs)
            return _unprovision_view(connection, spec, prepared.request.remove_data, logs)
    except sqlite3.Error as error:
        return failed(f"SQLite error while unprovisioning {spec.component_id}: {error}; nothing was changed", logs)


def _unprovision_storage(connection: sqlite3.Connection, spec: Storage, remove_data: bool,
                         logs: Logs) -> dict[str, Any]:
    present = [found for table in spec.tables if (found := sqlite.find(connection, table.name)) is not None]
    tables = [found for found in present if found.kind == "table"]
    if not remove_data:
        kept = ", ".join(found.name for found in tables) or "none exist"
        return completed(f"data kept: removeData is false, so the tables of {spec.component_id} stay in the "
                         f"database ({kept}); unprovision with removeData: true to drop them", logs)
    problems = []
    for found in present:
        owner = sqlite.table_owner(connection, found.name) if found.kind == "table" else None
        if found.kind != "table":
            problems.append(f"'{found.name}' is a view, not a table of {spec.component_id}; not dropped")
        elif owner is not None and owner != spec.component_id:
            problems.append(f"table '{found.name}' belongs to component {owner}; not dropped")
        for view, component in sqlite.views_reading(connection, found.name):
            if sqlite.find(connection, view) is not None:
                problems.append(f"view '{view}' of component {component} still reads table '{found.name}'; "
                                "unprovision that output port first")
    if problems:
        for problem in problems[1:]:
            logs.error(problem)
        return failed(f"cannot drop the tables of {spec.component_id}: {problems[0]}; nothing was changed", logs)
    for found in tables:
        sqlite.drop(connection, found)
        sqlite.forget_table(connection, found.name)
        logs.info(f"dropped table '{found.name}' and its data")
    missing = [table.name for table in spec.tables if table.name.lower() not in {t.name.lower() for t in tables}]
    if missing:
        logs.info(f"no table {', '.join(missing)} in the database: nothing to drop")
    dropped = ", ".join(found.name for found in tables) or "none (nothing was there)"
    return completed(f"storage component {spec.component_id} unprovisioned: tables dropped: {dropped}", logs)


def _unprovision_view(connection: sqlite3.Connection, port: OutputPort, remove_data: bool,
                      logs: Logs) -> dict[str, Any]:
    found = sqlite.find(connection, port.view)
    note = " (removeData changes nothing for a view: its data lives in the source table)" if remove_data else ""
    if found is None:
        sqlite.forget_view(connection, port.view)
        return completed(f"output port {port.component_id}: view {port.view} does not exist; nothing to remove{note}",
                         logs)
    if found.kind != "view":
        return failed(f"cannot unprovision {port.component_id}: '{found.name}' is a table, not its view; not dropped",
                      logs)
    record = sqlite.view_record(connection, found.name)
    if record is not None and record.component_id != port.component_id:
        return failed(f"cannot unprovision {port.component_id}: view '{found.name}' belongs to component "
                      f"{record.component_id}; not dropped", logs)
    sqlite.drop(connection, found)
    sqlite.forget_view(connection, found.name)
    sqlite.forget_acl(connection, port.component_id)
    return completed(f"output port {port.component_id} unprovisioned: dropped view {found.name}{note}", logs)


# ---------------------------------------------------------------------- updateacl


def update_acl(adapter: Adapter, request: AclRequest) -> dict[str, Any]:
    """Record who may read the component (SQLite has no users: the list is kept in _meshbot_acl)."""
    logs = Logs("updateacl")
    try:
        with adapter.ddl_lock, sqlite.connect(adapter.database) as connection, sqlite.transaction(connection):
            if not sqlite.owns_anything(connection, request.component_id):
                logs.warning(f"component {request.component_id} has no table or view in this database (not "
                             "provisioned yet?); its access list is recorded anyway")
            sqlite.set_acl(connection, request.component_id, request.refs)
    except sqlite3.Error as error:
        return failed(f"SQLite error while recording the access list of {request.component_id}: {error}", logs)
    who = ", ".join(request.refs) or "nobody"
    return completed(f"access to {request.component_id} recorded for {len(request.refs)} identities: {who}", logs)


# ---------------------------------------------------------------------- reverse provisioning


def reverse(adapter: Adapter, what: ReverseTarget) -> dict[str, Any]:
    """The catalog-info.yaml updates that describe the real table or view."""
    logs = Logs("reverse-provisioning")
    try:
        with sqlite.connect(adapter.database) as connection, sqlite.snapshot(connection):
            read = []
            for name in what.names:
                found = sqlite.find(connection, name)
                if found is None or (what.kind != OUTPUT_PORT and found.kind != "table"):
                    logs.error(f"there is no {'table or view' if what.kind == OUTPUT_PORT else 'table'} '{name}' in "
                               "the database")
                    return reverse_status(FAILED, {}, logs)
                existing, warnings = sqlite.columns(connection, found.name)
                for warning in warnings:
                    logs.warning(warning)
                record = sqlite.view_record(connection, found.name) if found.kind == "view" else None
                read.append((found, existing, record))
                logs.info(f"read {found.kind} '{found.name}': {len(existing)} columns")
    except sqlite3.Error as error:
        logs.error(f"SQLite error while reading the database: {error}")
        return reverse_status(FAILED, {}, logs)
    if what.kind == OUTPUT_PORT:
        found, existing, record = read[0]
        schema = merge_columns(port_schema(existing, record.schema if record else None), what.current)
        return reverse_status(COMPLETED, {SCHEMA_PATH: schema}, logs)
    tables = [table_entry(found.name, existing) for found, existing, _ in read]
    return reverse_status(COMPLETED, {TABLES_PATH: merge_tables(tables, what.current)}, logs)
