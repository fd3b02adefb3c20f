"""What provisioning must change, from what is declared and what exists (pure: no database access).

Tables: a missing table is created; an existing one may gain missing nullable columns (SQLite can add
nothing else to an existing table), but meshbot never changes, renames or drops an existing column,
since that could lose data: such a difference is a problem a person resolves. Views: every output port
column must exist in the source table, with the same type, and the table must guarantee each constraint
the output port promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.reference.columns import NOT_NULL, PRIMARY_KEY, UNIQUE, Column
from adapters.reference.components import Table

MIGRATE = ("meshbot adds missing nullable columns but never changes or drops existing ones (that could lose data): "
           "migrate the table yourself, or unprovision the component with removeData: true and provision it again")


@dataclass(frozen=True, slots=True)
class Existing:
    """A column as it is (in the database, or as a storage component declares it) and what it guarantees."""

    column: Column
    guarantees: frozenset[str]


@dataclass(slots=True)
class TablePlan:
    """What provisioning one table does: create it, add columns, or nothing; problems stop everything."""

    table: Table
    create: bool = False
    add: list[Column] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def declared_guarantees(table: Table) -> list[Existing]:
    """The columns of a declared (not yet provisioned) table, with what their constraints guarantee."""
    keys = [column for column in table.columns if column.constraint == PRIMARY_KEY]
    existing = []
    for column in table.columns:
        guarantees: set[str] = set()
        if column.constraint == PRIMARY_KEY:
            guarantees |= {PRIMARY_KEY, NOT_NULL} | ({UNIQUE} if len(keys) == 1 else set())
        elif column.constraint:
            guarantees.add(column.constraint)
        existing.append(Existing(column, frozenset(guarantees)))
    return existing


def plan_table(table: Table, existing: list[Existing] | None) -> TablePlan:
    """How to bring the table (None: it does not exist) to what is declared."""
    plan = TablePlan(table)
    if existing is None:
        plan.create = True
        return plan
    by_name = {item.column.name.lower(): item.column for item in existing}
    declared = {column.name.lower() for column in table.columns}
    where = f"table '{table.name}'"
    for column in table.columns:
        found = by_name.get(column.name.lower())
        if found is None:
            if column.constraint:
                plan.problems.append(f"{where}: column '{column.name}' is missing, and SQLite cannot add a "
                                     f"{column.constraint} column to an existing table")
            else:
                plan.add.append(column)
            continue
        if found.name != column.name:
            plan.problems.append(f"{where}: column '{column.name}' is spelled '{found.name}' in the database")
        if found.type_key != column.type_key:
            plan.problems.append(f"{where}: column '{column.name}' is {found.type_text()} in the database, but the "
                                 f"descriptor declares {column.type_text()}")
        if found.constraint != column.constraint:
            plan.problems.append(f"{where}: column '{column.name}' has {_constraint(found.constraint)} in the "
                                 f"database, but the descriptor declares {_constraint(column.constraint)}")
    extra = [item.column.name for item in existing if item.column.name.lower() not in declared]
    if extra:
        plan.problems.append(f"{where} has columns the descriptor does not declare: {', '.join(extra)}")
    if plan.problems:
        plan.problems.append(f"{where}: {MIGRATE}")
    elif [item.column.name.lower() for item in existing] != [
        column.name.lower() for column in table.columns if column not in plan.add
    ]:
        plan.warnings.append(f"{where}: the database has the columns in another order than the descriptor; "
                             "reverse provisioning reports the database order")
    return plan


def check_view_columns(columns: tuple[Column, ...], table: str, existing: list[Existing], origin: str) -> list[str]:
    """Why the view cannot expose these columns of the table (origin says where the table was read)."""
    by_name = {item.column.name.lower(): item for item in existing}
    errors = []
    for index, column in enumerate(columns):
        path = f"dataContract.schema[{index}]"
        found = by_name.get(column.name.lower())
        if found is None:
            names = ", ".join(item.column.name for item in existing)
            errors.append(f"{path}.name: table '{table}' ({origin}) has no column '{column.name}'; "
                          f"its columns: {names}")
            continue
        if found.column.name != column.name:
            errors.append(f"{path}.name: the column is spelled '{found.column.name}' in table '{table}' ({origin})")
        if found.column.type_key != column.type_key:
            errors.append(f"{path}.dataType: column '{column.name}' is {found.column.type_text()} in table '{table}' "
                          f"({origin}); a view exposes the table's type, so declare {found.column.type_text()}")
        if column.constraint in (NOT_NULL, UNIQUE) and column.constraint not in found.guarantees:
            errors.append(f"{path}.constraint: column '{column.name}' of table '{table}' ({origin}) is not "
                          f"{column.constraint}, so the output port cannot promise it")
    keys = [column.name for column in columns if column.constraint == PRIMARY_KEY]
    table_keys = [item.column.name for item in existing if PRIMARY_KEY in item.guarantees]
    if keys and sorted(key.lower() for key in keys) != sorted(key.lower() for key in table_keys):
        actual = f"is ({', '.join(table_keys)})" if table_keys else "does not exist"
        errors.append(f"dataContract.schema: the output port declares the primary key ({', '.join(keys)}), but the "
                      f"primary key of table '{table}' ({origin}) {actual}")
    return errors


def _constraint(constraint: str | None) -> str:
    return constraint or "no constraint"
