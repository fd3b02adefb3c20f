"""What a component descriptor asks of the SQLite adapter, checked without looking at the database.

A storage component declares tables (`specific.tables: [{tableName, schema: [column...]}]`); an output
port declares a view (`specific.viewName`) exposing columns (`dataContract.schema`, by name) of a table
(`specific.sourceTable`). Problems are messages prefixed with the descriptor path they are about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID, TEMPLATE_IDS
from adapters.reference.answers import BadRequest
from adapters.reference.columns import Column, identifier_problem, parse_column
from adapters.reference.inputs import ProvisioningRequest

_KINDS = {STORAGE_TEMPLATE_ID: "storage", OUTPUT_PORT_TEMPLATE_ID: "outputport"}
NO_QUERY = ("the SQLite adapter never runs SQL text from a descriptor; remove specific.query and list the columns "
            "to expose in dataContract.schema (the view selects them by name from specific.sourceTable)")


@dataclass(frozen=True, slots=True)
class Table:
    """A table a storage component declares."""

    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Storage:
    """A storage component: its tables."""

    component_id: str
    tables: tuple[Table, ...]


@dataclass(frozen=True, slots=True)
class OutputPort:
    """An output port: a view over columns of one table (no columns when only its removal is asked)."""

    component_id: str
    view: str
    source_table: str
    columns: tuple[Column, ...]
    depends_on: tuple[str, ...]


Spec = Storage | OutputPort


def find_component(request: ProvisioningRequest) -> dict[str, Any]:
    """The component the request names; BadRequest when the data product has no such component."""
    components = request.data_product.get("components")
    components = components if isinstance(components, list) else []
    for component in components:
        if isinstance(component, dict) and component.get("id") == request.component_id:
            return component
    known = [str(component.get("id")) for component in components if isinstance(component, dict)]
    problem = (f"componentIdToProvision '{request.component_id}' is not a component of the data product "
               f"(its components: {', '.join(known) or 'none'})")
    raise BadRequest(problem, [problem], "descriptor.componentIdToProvision",
                     ["name one of the data product's component ids"])


def component_spec(component: dict[str, Any], *, for_removal: bool = False) -> tuple[Spec | None, list[str]]:
    """The component's storage or output port spec, and the problems in its descriptor.

    With problems, the spec holds what is valid (None when nothing is). for_removal checks only what
    removing it needs (its names): a component that can no longer be provisioned can still be unprovisioned.
    """
    component_id = str(component.get("id"))
    template = component.get("infrastructureTemplateId")
    if template not in TEMPLATE_IDS:
        return None, [f"infrastructureTemplateId: {template!r} is not served by this adapter (it serves "
                      f"{STORAGE_TEMPLATE_ID} for storage components and {OUTPUT_PORT_TEMPLATE_ID} for output ports)"]
    errors = []
    if component.get("kind") != _KINDS[template]:
        errors.append(f"kind: {template} provisions components of kind {_KINDS[template]}, "
                      f"not {component.get('kind')!r}")
    specific = component.get("specific")
    if not isinstance(specific, dict):
        return None, [*errors, "specific: missing; it says what to create in SQLite"]
    if "query" in specific and not for_removal:
        errors.append(f"specific.query: {NO_QUERY}")
    if template == STORAGE_TEMPLATE_ID:
        storage, problems = _storage(component_id, specific, for_removal)
        return storage, errors + problems
    port, problems = _output_port(component_id, component, specific, for_removal)
    return port, errors + problems


def _storage(component_id: str, specific: dict[str, Any], for_removal: bool) -> tuple[Storage, list[str]]:
    raw_tables = specific.get("tables")
    if not isinstance(raw_tables, list) or not raw_tables:
        return Storage(component_id, ()), [
            "specific.tables: expected a non-empty list of {tableName, schema: [{name, dataType, constraint?}]}"
        ]
    errors: list[str] = []
    tables: list[Table] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_tables):
        path = f"specific.tables[{index}]"
        if not isinstance(raw, dict):
            errors.append(f"{path}: expected a mapping {{tableName, schema}}")
            continue
        problem = identifier_problem(raw.get("tableName"))
        if problem:
            errors.append(f"{path}.tableName: {problem}")
            continue
        name = raw["tableName"]
        if name.lower() in seen:
            errors.append(f"{path}.tableName: table '{name}' is declared twice (SQLite names ignore case)")
        seen.add(name.lower())
        columns, problems = ((), []) if for_removal else parse_columns(raw.get("schema"), f"{path}.schema")
        errors.extend(problems)
        tables.append(Table(name, columns))
    return Storage(component_id, tuple(tables)), errors


def _output_port(component_id: str, component: dict[str, Any], specific: dict[str, Any],
                 for_removal: bool) -> tuple[OutputPort, list[str]]:
    errors = []
    names: dict[str, str] = {}
    for key in ("viewName", "sourceTable"):
        problem = identifier_problem(specific.get(key))
        if problem and (key == "viewName" or not for_removal):
            errors.append(f"specific.{key}: {problem}")
        names[key] = "" if problem else str(specific[key])
    view, source = names["viewName"], names["sourceTable"]
    if view and source and view.lower() == source.lower():
        errors.append(f"specific.viewName: the view cannot have the name of its source table '{source}'")
    columns: tuple[Column, ...] = ()
    if not for_removal:
        contract = component.get("dataContract")
        schema = contract.get("schema") if isinstance(contract, dict) else None
        columns, problems = parse_columns(schema, "dataContract.schema")
        errors.extend(problems)
    depends = component.get("dependsOn")
    depends_on = tuple(item for item in depends if isinstance(item, str)) if isinstance(depends, list) else ()
    return OutputPort(component_id, view, source, columns, depends_on), errors


def parse_columns(raw: Any, path: str) -> tuple[tuple[Column, ...], list[str]]:
    """A non-empty list of columns with distinct names, or the problems."""
    if not isinstance(raw, list) or not raw:
        return (), [f"{path}: expected a non-empty list of columns {{name, dataType, constraint?}}"]
    columns: list[Column] = []
    errors: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        column, problems = parse_column(item, f"{path}[{index}]")
        errors.extend(problems)
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.lower() in seen:
            errors.append(f"{path}[{index}].name: column '{name}' is declared twice (SQLite names ignore case)")
        if isinstance(name, str):
            seen.add(name.lower())
        if column is not None:
            columns.append(column)
    return tuple(columns), errors


def declared_tables(data_product: dict[str, Any]) -> dict[str, tuple[str, Table | None]]:
    """The tables this adapter's storage components of the data product declare, by lower-case name.

    Each maps to (component id, table), the table None when that storage component is itself invalid.
    """
    tables: dict[str, tuple[str, Table | None]] = {}
    components = data_product.get("components")
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict) or component.get("infrastructureTemplateId") != STORAGE_TEMPLATE_ID:
            continue
        specific = component.get("specific")
        raw_tables = specific.get("tables") if isinstance(specific, dict) else None
        spec, problems = component_spec(component)
        valid = {table.name.lower(): table for table in spec.tables} if isinstance(spec, Storage) else {}
        for raw in raw_tables if isinstance(raw_tables, list) else []:
            name = raw.get("tableName") if isinstance(raw, dict) else None
            if isinstance(name, str) and name:
                table = None if problems else valid.get(name.lower())
                tables.setdefault(name.lower(), (str(component.get("id")), table))
    return tables
