"""Reverse provisioning without the database: what to read, and the updates to a catalog-info.yaml.

What is read comes from `params` (`view`, `table` or `tables`), else from the component's catalogInfo
(`spec.mesh.specific.viewName` of an output port, the `tableName`s of a storage's `specific.tables`).
The updates keep what the catalog already says when the database agrees with it (spelling of a type or
a constraint, extra keys such as descriptions), so that reading back what was provisioned changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from adapters.reference.answers import BadRequest
from adapters.reference.columns import identifier_problem, parse_constraint
from adapters.reference.inputs import ReverseRequest
from adapters.reference.plans import Existing

OUTPUT_PORT, STORAGE = "outputport", "storage"
SCHEMA_PATH = "spec.mesh.dataContract.schema"
TABLES_PATH = "spec.mesh.specific.tables"
_TYPE_KEYS = ("dataType", "dataLength", "precision", "scale")
_SOLUTION = ("give params {\"view\": NAME} for an output port or {\"table\": NAME} / {\"tables\": [NAMES]} for a "
             "storage, or send the component's catalogInfo")


@dataclass(frozen=True, slots=True)
class ReverseTarget:
    """What to read: one view or table for an output port, tables for a storage."""

    kind: str
    names: tuple[str, ...]
    current: Any  # the catalog's current value at the path the updates replace


def target(request: ReverseRequest) -> ReverseTarget:
    """What the request asks to read; BadRequest when it cannot be told or names are not identifiers."""
    params = request.params
    mesh = _get(request.catalog_info, "spec", "mesh")
    specific = _get(mesh, "specific")
    kind = _catalog_kind(request.catalog_info)
    if kind is None:
        kind = OUTPUT_PORT if "view" in params else STORAGE if ("table" in params or "tables" in params) else None
    if kind is None:
        raise BadRequest("cannot tell what to read", ["neither params nor catalogInfo say which table or view to read"],
                         "params", [_SOLUTION])
    if kind == OUTPUT_PORT:
        name = params.get("view", params.get("table", specific.get("viewName")))
        names: tuple[Any, ...] = (name,)
        field = "params.view" if "view" in params else "params.table" if "table" in params else "catalogInfo"
        current = _get(mesh, "dataContract").get("schema")
    else:
        if "view" in params:
            problem = "a storage component has tables, not views: give params.table or params.tables"
            raise BadRequest(problem, [problem], "params.view", [_SOLUTION])
        raw_tables = specific.get("tables")
        declared = [table.get("tableName") for table in raw_tables if isinstance(table, dict)] if isinstance(
            raw_tables, list) else []
        if "table" in params:
            names, field = (params["table"],), "params.table"
        elif "tables" in params:
            tables = params["tables"]
            names, field = (tuple(tables) if isinstance(tables, list) else (tables,)), "params.tables"
        else:
            names, field = tuple(declared), "catalogInfo"
        current = raw_tables
    names = tuple(name for name in names if name is not None)
    if not names:
        raise BadRequest("nothing to read", ["no table or view is named in params or catalogInfo"], field, [_SOLUTION])
    problems = [f"{field}: {problem}" for problem in (identifier_problem(name) for name in names) if problem]
    if problems:
        raise BadRequest(problems[0], problems, field, [_SOLUTION])
    return ReverseTarget(kind, tuple(str(name) for name in names), current)


def _catalog_kind(catalog_info: dict[str, Any]) -> str | None:
    template = _get(catalog_info, "spec", "mesh").get("infrastructureTemplateId")
    if template == OUTPUT_PORT_TEMPLATE_ID:
        return OUTPUT_PORT
    if template == STORAGE_TEMPLATE_ID:
        return STORAGE
    kind = _get(catalog_info, "spec").get("type")
    return kind if kind in (OUTPUT_PORT, STORAGE) else None


def _get(value: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def port_schema(existing: list[Existing], recorded: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The columns an output port exposes: the database's names and types; for a view meshbot created,
    the constraints (a view has none of its own) and type spellings the output port declared."""
    by_name = {str(column.get("name")).lower(): column for column in recorded or [] if isinstance(column, dict)}
    schema = []
    for item in existing:
        column = item.column.as_schema()
        promised = by_name.get(item.column.name.lower())
        if promised is not None:
            if _type_key(promised) == _type_key(column):
                for key in _TYPE_KEYS:
                    _set(column, key, promised.get(key))
            _set(column, "constraint", parse_constraint(promised.get("constraint"))[0])
        schema.append(_ordered(column))
    return schema


def table_entry(name: str, existing: list[Existing]) -> dict[str, Any]:
    """A storage table as `specific.tables` lists it."""
    return {"tableName": name, "schema": [item.column.as_schema() for item in existing]}


def merge_columns(read: list[dict[str, Any]], current: Any) -> list[dict[str, Any]]:
    """The columns read, keeping each current column's keys and spellings where the database agrees."""
    by_name: dict[str, dict[str, Any]] = {}
    for column in current if isinstance(current, list) else []:
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            by_name.setdefault(column["name"].lower(), column)
    merged = []
    for column in read:
        old = by_name.get(column["name"].lower())
        if old is None:
            merged.append(column)
            continue
        new = dict(old)
        new["name"] = column["name"]
        if _type_key(old) != _type_key(column):
            for key in _TYPE_KEYS:
                _set(new, key, column.get(key))
        if parse_constraint(old.get("constraint")) != (column.get("constraint"), None):
            _set(new, "constraint", column.get("constraint"))
        merged.append(new)
    return merged


def merge_tables(read: list[dict[str, Any]], current: Any) -> list[dict[str, Any]]:
    """The catalog's tables with those read brought up to date, and tables read that it lacks appended."""
    by_name = {table["tableName"].lower(): table for table in read}
    merged: list[dict[str, Any]] = []
    used: set[str] = set()
    for entry in current if isinstance(current, list) else []:
        name = entry.get("tableName") if isinstance(entry, dict) else None
        table = by_name.get(name.lower()) if isinstance(name, str) else None
        if table is None or not isinstance(entry, dict):
            merged.append(entry)
            continue
        used.add(table["tableName"].lower())
        merged.append({**entry, "tableName": table["tableName"],
                       "schema": merge_columns(table["schema"], entry.get("schema"))})
    merged.extend(table for table in read if table["tableName"].lower() not in used)
    return merged


def _type_key(column: dict[str, Any]) -> tuple[Any, ...]:
    data_type = column.get("dataType")
    return (data_type.upper() if isinstance(data_type, str) else data_type,
            *(column.get(key) for key in _TYPE_KEYS[1:]))


def _set(column: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        column.pop(key, None)
    else:
        column[key] = value


def _ordered(column: dict[str, Any]) -> dict[str, Any]:
    order = ("name", *_TYPE_KEYS, "constraint")
    return {key: column[key] for key in order if key in column}

