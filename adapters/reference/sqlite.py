"""The SQL the reference adapter runs: identifiers are checked and quoted, values are parameters.

One connection per request or task (sqlite3's same-thread check stays on); DDL runs in an IMMEDIATE
transaction, so a failed provisioning changes nothing. Three bookkeeping tables record which component
owns which table or view, what an output port promised, and who may read it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.reference.columns import NOT_NULL, PRIMARY_KEY, UNIQUE, Column, column_from_database, quote
from adapters.reference.components import Table
from adapters.reference.plans import Existing

BUSY_TIMEOUT_SECONDS = 30.0
_METADATA = (
    "CREATE TABLE IF NOT EXISTS _meshbot_tables (table_name TEXT PRIMARY KEY COLLATE NOCASE, "
    "component_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _meshbot_views (view_name TEXT PRIMARY KEY COLLATE NOCASE, "
    "component_id TEXT NOT NULL, source_table TEXT NOT NULL, schema TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _meshbot_acl (component_id TEXT NOT NULL, ref TEXT NOT NULL, "
    "updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), PRIMARY KEY (component_id, ref))",
)


@dataclass(frozen=True, slots=True)
class DatabaseObject:
    """A table or a view, with its name as the database spells it."""

    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ViewRecord:
    """What meshbot recorded when it created a view: its component, source table and declared columns."""

    component_id: str
    source_table: str
    schema: list[dict[str, Any]]


@contextmanager
def connect(database: Path) -> Iterator[sqlite3.Connection]:
    """A connection for this thread only, in autocommit mode (transactions are explicit)."""
    with closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)) as connection:
        yield connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextmanager
def snapshot(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every read inside sees the same committed state."""
    connection.execute("BEGIN")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")


def owns_anything(connection: sqlite3.Connection, component_id: str) -> bool:
    """Whether meshbot created a table or a view for the component."""
    return connection.execute(
        "SELECT 1 FROM _meshbot_tables WHERE component_id = ? UNION ALL SELECT 1 FROM _meshbot_views "
        "WHERE component_id = ? LIMIT 1", (component_id, component_id)).fetchone() is not None


def prepare(database: Path) -> None:
    """Create the bookkeeping tables (and the database file) if they are missing; readers never block writers."""
    with connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        with transaction(connection):
            for statement in _METADATA:
                connection.execute(statement)


def find(connection: sqlite3.Connection, name: str) -> DatabaseObject | None:
    """The table or view of that name (SQLite names ignore case), if there is one."""
    row = connection.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", (name,)
    ).fetchone()
    return DatabaseObject(row[0], row[1]) if row else None


def columns(connection: sqlite3.Connection, name: str) -> tuple[list[Existing], list[str]]:
    """The columns of a table or view as OpenMetadata columns, and warnings about types meshbot did not declare."""
    unique = _unique_columns(connection, name)
    rows = connection.execute(f"PRAGMA table_info({quote(name)})").fetchall()
    keys = [row[1] for row in rows if row[5]]
    existing, warnings = [], []
    for _, column_name, declared, not_null, _default, key in rows:
        guarantees = set()
        if key:
            guarantees |= {PRIMARY_KEY, NOT_NULL} | ({UNIQUE} if len(keys) == 1 else set())
        if not_null:
            guarantees.add(NOT_NULL)
        if column_name in unique:
            guarantees.add(UNIQUE)
        constraint = (PRIMARY_KEY if key else UNIQUE if column_name in unique else NOT_NULL if not_null else None)
        column, warning = column_from_database(column_name, declared, constraint)
        existing.append(Existing(column, frozenset(guarantees)))
        if warning:
            warnings.append(warning)
    return existing, warnings


def _unique_columns(connection: sqlite3.Connection, name: str) -> set[str]:
    unique = set()
    for _, index, is_unique, origin, partial in connection.execute(f"PRAGMA index_list({quote(name)})"):
        if is_unique and origin != "pk" and not partial:
            indexed = connection.execute("SELECT name FROM pragma_index_info(?)", (index,)).fetchall()
            if len(indexed) == 1 and indexed[0][0] is not None:
                unique.add(indexed[0][0])
    return unique


def create_table(connection: sqlite3.Connection, table: Table) -> None:
    """CREATE TABLE with the declared columns; a composite primary key becomes a table constraint."""
    keys = [column for column in table.columns if column.constraint == PRIMARY_KEY]
    definitions = [_definition(column, inline_key=len(keys) == 1) for column in table.columns]
    if len(keys) > 1:
        definitions.append(f"PRIMARY KEY ({', '.join(quote(column.name) for column in keys)})")
    connection.execute(f"CREATE TABLE {quote(table.name)} ({', '.join(definitions)})")


def add_column(connection: sqlite3.Connection, table: str, column: Column) -> None:
    """ALTER TABLE ... ADD COLUMN (only nullable, unconstrained columns can be added)."""
    connection.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {_definition(column, inline_key=False)}")


def _definition(column: Column, inline_key: bool) -> str:
    constraint = {PRIMARY_KEY: " PRIMARY KEY NOT NULL" if inline_key else " NOT NULL", NOT_NULL: " NOT NULL",
                  UNIQUE: " UNIQUE", None: ""}[column.constraint]
    return f"{quote(column.name)} {column.declared_type()}{constraint}"


def create_view(connection: sqlite3.Connection, view: str, table: str, names: list[str]) -> None:
    """(Re)create a view selecting columns of a table by name: no SQL text from the descriptor."""
    connection.execute(f"DROP VIEW IF EXISTS {quote(view)}")
    selected = ", ".join(quote(name) for name in names)
    connection.execute(f"CREATE VIEW {quote(view)} AS SELECT {selected} FROM {quote(table)}")


def drop(connection: sqlite3.Connection, found: DatabaseObject) -> None:
    """DROP TABLE or DROP VIEW."""
    connection.execute(f"DROP {'VIEW' if found.kind == 'view' else 'TABLE'} {quote(found.name)}")


def table_owner(connection: sqlite3.Connection, table: str) -> str | None:
    """The component that created the table, if meshbot did."""
    row = connection.execute("SELECT component_id FROM _meshbot_tables WHERE table_name = ?", (table,)).fetchone()
    return row[0] if row else None


def set_table_owner(connection: sqlite3.Connection, table: str, component_id: str) -> None:
    """Record that the component owns the table."""
    connection.execute("INSERT OR REPLACE INTO _meshbot_tables (table_name, component_id) VALUES (?, ?)",
                       (table, component_id))


def forget_table(connection: sqlite3.Connection, table: str) -> None:
    """Forget who owned a dropped table."""
    connection.execute("DELETE FROM _meshbot_tables WHERE table_name = ?", (table,))


def view_record(connection: sqlite3.Connection, view: str) -> ViewRecord | None:
    """What meshbot recorded about the view, if it created it."""
    row = connection.execute("SELECT component_id, source_table, schema FROM _meshbot_views WHERE view_name = ?",
                             (view,)).fetchone()
    return ViewRecord(row[0], row[1], json.loads(row[2])) if row else None


def record_view(connection: sqlite3.Connection, view: str, record: ViewRecord) -> None:
    """Record the view's component, source table and declared columns."""
    connection.execute(
        "INSERT OR REPLACE INTO _meshbot_views (view_name, component_id, source_table, schema) VALUES (?, ?, ?, ?)",
        (view, record.component_id, record.source_table, json.dumps(record.schema)),
    )


def forget_view(connection: sqlite3.Connection, view: str) -> None:
    """Forget a dropped view."""
    connection.execute("DELETE FROM _meshbot_views WHERE view_name = ?", (view,))


def views_reading(connection: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """The views meshbot created over the table, with their components."""
    return [(row[0], row[1]) for row in connection.execute(
        "SELECT view_name, component_id FROM _meshbot_views WHERE source_table = ? COLLATE NOCASE", (table,))]


def set_acl(connection: sqlite3.Connection, component_id: str, refs: tuple[str, ...]) -> None:
    """Replace who may read the component's data."""
    connection.execute("DELETE FROM _meshbot_acl WHERE component_id = ?", (component_id,))
    connection.executemany("INSERT INTO _meshbot_acl (component_id, ref) VALUES (?, ?)",
                           [(component_id, ref) for ref in refs])


def acl(connection: sqlite3.Connection, component_id: str) -> list[str]:
    """Who may read the component's data."""
    return [row[0] for row in connection.execute(
        "SELECT ref FROM _meshbot_acl WHERE component_id = ? ORDER BY ref", (component_id,))]


def forget_acl(connection: sqlite3.Connection, component_id: str) -> None:
    """Forget the access list of a removed component."""
    connection.execute("DELETE FROM _meshbot_acl WHERE component_id = ?", (component_id,))
