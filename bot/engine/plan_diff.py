"""The plan diff: what a deploy would add, change, remove or leave alone, desired versus deployed (domain.md §8).

Decisions the comparison makes:
- Components are matched by `id`; a deployed entry that is not a mapping with a string id is ignored.
- The root `environment` field is bookkeeping and never compared: the engine keeps one deployed descriptor per
  environment, so it names the same environment (and if it did not, that is no change a deploy makes).
- Mapping keys compare as text (the deployed descriptor went through JSON, which turns `1:` into `"1":`);
  `true` never equals `1`; `1` equals `1.0`.
- Column lists (lists under `schema` or `children` whose items all have a unique string `name`) are compared
  column by column, by name; `dataType` and `arrayDataType` compare case-insensitively (as the breaking-change
  policy and SQL do), so a column whose type differs only in case is not a change at all.
- Other lists of mappings with a unique `name`, `tableName` or `id` are matched by it; lists of scalars
  (`dependsOn`, `tags`) are compared as multisets, then by order; any other list position by position.
- A component is "change" exactly when at least one field change is found.
- Positions are in the desired descriptor: where the value is written, or, for something removed, where the
  enclosing mapping or list is; a removed component has none.

`PlanDiff.as_json()` (`meshbot diff --format json`), version 1:
    {"version": 1, "dataProduct": URN, "environment": str, "nothingDeployed": bool, "summary": str,
     "counts": {"add": int, "change": int, "remove": int, "unchanged": int},
     "product": ENTRY,            # the data product's own fields, kind "dataproduct", never "remove"
     "components": [ENTRY, ...]}  # desired components in plan order, then removals dependents first
    ENTRY = {"id", "kind", "name", "action": "add|change|remove|unchanged", "position": POSITION|null,
             "changes": [{"path", "kind": "added|removed|changed|retyped", "column": str|null,
                          "before": any, "after": any, "summary": str, "position": POSITION|null}]}
    POSITION = {"file": str, "line": int|null, "column": int|null}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

import networkx as nx

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor, format_path
from bot.descriptor.yamlsafe import DataPath
from bot.engine.plan import DATA_PRODUCT_KIND, build_plan

JSON_VERSION = 1
SHOWN_LENGTH = 40  # longest value a summary shows before clipping it with "…"
IGNORED_ROOT_FIELDS = frozenset({"components", "environment"})
COLUMN_LIST_KEYS = frozenset({"schema", "children"})
TYPE_FIELDS = ("dataType", "arrayDataType")
IDENTIFYING_KEYS = ("name", "tableName", "id")
_NO_SOURCES = Descriptor(data={}, environment="")  # positions of values compared outside any repository
CONTRACT = ("dataContract", "schema")  # the output port's columns: their summaries need no "where"


class Action(StrEnum):
    """What a deploy does to a component (or to the data product's own fields)."""

    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"
    UNCHANGED = "unchanged"


class ChangeKind(StrEnum):
    """How one field differs, deployed -> desired."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    RETYPED = "retyped"


SIGNS = {Action.ADD: "+", Action.CHANGE: "~", Action.REMOVE: "-", Action.UNCHANGED: "="}
_COLORS = {Action.ADD: "32", Action.CHANGE: "33", Action.REMOVE: "31", Action.UNCHANGED: "2"}

SummaryPart = tuple[str, bool]  # (text, shown as code)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One difference inside a component or among the data product's own fields, deployed -> desired."""

    path: str
    kind: ChangeKind
    before: Any
    after: Any
    parts: tuple[SummaryPart, ...]
    position: SourcePosition | None = None
    column: str | None = None

    @property
    def summary(self) -> str:
        """The one-line summary as plain text, code parts in backticks."""
        return "".join(f"`{text}`" if code else text for text, code in self.parts)

    def as_json(self) -> dict[str, Any]:
        """This change in the `meshbot diff --format json` document."""
        return {"path": self.path, "kind": str(self.kind), "column": self.column, "before": self.before,
                "after": self.after, "summary": self.summary, "position": position_json(self.position)}


@dataclass(frozen=True, slots=True)
class ComponentDiff:
    """One component (or the data product itself, kind `dataproduct`) and what a deploy does to it."""

    id: str
    kind: str
    name: str
    action: Action
    changes: tuple[FieldChange, ...] = ()
    position: SourcePosition | None = None

    def as_json(self) -> dict[str, Any]:
        """This entry in the `meshbot diff --format json` document."""
        return {"id": self.id, "kind": self.kind, "name": self.name, "action": str(self.action),
                "position": position_json(self.position), "changes": [change.as_json() for change in self.changes]}


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """Desired versus deployed for one data product in one environment."""

    data_product: str
    environment: str
    nothing_deployed: bool
    product: ComponentDiff
    components: tuple[ComponentDiff, ...]  # desired in plan order, then removals in unprovisioning order

    def of(self, action: Action) -> tuple[ComponentDiff, ...]:
        """The components a deploy would treat with action, in diff order."""
        return tuple(component for component in self.components if component.action is action)

    @property
    def counts(self) -> dict[str, int]:
        """How many components per action: add, change, remove, unchanged."""
        found = Counter(component.action for component in self.components)
        return {str(action): found[action] for action in Action}

    @property
    def has_changes(self) -> bool:
        """True when a deploy would do something: a component to add, change or remove, or data product fields."""
        return self.product.action is not Action.UNCHANGED or any(
            component.action is not Action.UNCHANGED for component in self.components
        )

    def summary(self) -> str:
        """One line: `1 to add, 2 to change, 1 to remove, 3 unchanged`, or why there is nothing to say."""
        counts = self.counts
        if self.nothing_deployed:
            return f"nothing deployed: {counts['add']} to add"
        if not self.has_changes:
            return "nothing to change"
        text = (f"{counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove, "
                f"{counts['unchanged']} unchanged")
        return ("data product changed; " + text) if self.product.action is Action.CHANGE else text

    def as_json(self) -> dict[str, Any]:
        """The `meshbot diff --format json` document (its shape is in this module's docstring)."""
        return {
            "version": JSON_VERSION,
            "dataProduct": self.data_product,
            "environment": self.environment,
            "nothingDeployed": self.nothing_deployed,
            "summary": self.summary(),
            "counts": self.counts,
            "product": self.product.as_json(),
            "components": [component.as_json() for component in self.components],
        }

    def to_text(self, color: bool = False, show_file: Callable[[str], str] = str) -> str:
        """A terminal report: one line per component with its sign, its field changes indented with positions."""
        def paint(action: Action, text: str) -> str:
            return f"\x1b[{_COLORS[action]}m{text}\x1b[0m" if color else text

        lines = [f"meshbot diff: {self.data_product} ({self.environment})", ""]
        entries = ([self.product] if self.product.action is not Action.UNCHANGED else []) + list(self.components)
        for entry in entries:
            lines.append(paint(entry.action, f"{SIGNS[entry.action]} {entry.id} ({entry.kind})"))
            for change in entry.changes:
                where = text_position(change.position, show_file)
                lines.append(f"    {where + ': ' if where else ''}{change.summary}")
        if entries:
            lines.append("")
        lines.append(self.summary())
        return "\n".join(lines) + "\n"


def position_json(position: SourcePosition | None) -> dict[str, Any] | None:
    """A position as `{file, line, column}` (line and column may be null), or None."""
    if position is None:
        return None
    return {"file": position.file, "line": position.line, "column": position.column}


def text_position(position: SourcePosition | None, show_file: Callable[[str], str] = str) -> str:
    """`file:line:col` for a terminal, the file shown through show_file; empty when unknown."""
    if position is None:
        return ""
    return str(SourcePosition(show_file(position.file), position.line, position.column))


def plan_diff(desired: Descriptor, deployed: dict[str, Any] | None) -> PlanDiff:
    """What deploying desired changes, compared with the deployed descriptor (None: nothing is deployed)."""
    prefix = _component_prefix(desired.id)
    wanted = _by_id(desired.components)
    raw = deployed.get("components") if deployed is not None else None
    existing = _by_id(raw if isinstance(raw, list) else [])
    entries = []
    for identifier in _plan_order(wanted, desired.environment):
        index, component = wanted[identifier]
        changes: tuple[FieldChange, ...] = ()
        if identifier not in existing:
            action = Action.ADD
        else:
            changes = tuple(_Differ(desired, ("components", index), prefix).mapping((), existing[identifier][1],
                                                                                   component))
            action = Action.CHANGE if changes else Action.UNCHANGED
        entries.append(ComponentDiff(id=identifier, kind=_kind(component), name=_name(identifier, component),
                                     action=action, changes=changes, position=desired.position(("components", index))))
    for identifier in _unprovisioning_order(existing, desired.environment):
        if identifier not in wanted:
            component = existing[identifier][1]
            entries.append(ComponentDiff(id=identifier, kind=_kind(component), name=_name(identifier, component),
                                         action=Action.REMOVE))
    root_changes: tuple[FieldChange, ...] = ()
    if deployed is None:
        product_action = Action.ADD
    else:
        root_changes = tuple(_Differ(desired, (), prefix).mapping((), _root_fields(deployed),
                                                                  _root_fields(desired.data)))
        product_action = Action.CHANGE if root_changes else Action.UNCHANGED
    product = ComponentDiff(id=desired.id, kind=DATA_PRODUCT_KIND, name=str(desired.data.get("name") or desired.id),
                            action=product_action, changes=root_changes, position=desired.position(()))
    return PlanDiff(data_product=desired.id, environment=desired.environment, nothing_deployed=deployed is None,
                    product=product, components=tuple(entries))


def field_changes(path: DataPath, before: Any, after: Any, prefix: str = "") -> tuple[FieldChange, ...]:
    """How the value at path (inside one component) differs, before -> after (absent: None), summarised as the
    plan diff does: column lists (path ending in `schema` or `children`) column by column; no positions."""
    if not path:
        return tuple(_Differ(_NO_SOURCES, (), prefix).value((), before, after))
    *parent, last = path
    old = {} if before is None else {last: before}
    new = {} if after is None else {last: after}
    return tuple(_Differ(_NO_SOURCES, (), prefix).mapping(tuple(parent), old, new))


# ---------------------------------------------------------------- components and their order


def _by_id(components: list[Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each component with a string id, by id, with its index (the first of duplicates wins)."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, component in enumerate(components):
        if isinstance(component, dict) and isinstance(component.get("id"), str):
            found.setdefault(component["id"], (index, component))
    return found


def _kind(component: dict[str, Any]) -> str:
    return str(component.get("kind") or "")


def _name(identifier: str, component: dict[str, Any]) -> str:
    return str(component.get("name") or identifier.rsplit(":", 1)[-1])


def _root_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if str(key) not in IGNORED_ROOT_FIELDS}


def _component_prefix(data_product_id: str) -> str:
    """`urn:dmb:cmp:finance:cashflow:1:` for `urn:dmb:dp:finance:cashflow:1`: summaries show those ids as `…:x`."""
    head = "urn:dmb:dp:"
    return "urn:dmb:cmp:" + data_product_id[len(head):] + ":" if data_product_id.startswith(head) else ""


def _plan_graph(components: dict[str, tuple[int, dict[str, Any]]], environment: str) -> nx.DiGraph | None:
    """The dependency graph build_plan makes of these components, or None when they have a cycle."""
    cleaned = [
        {"id": identifier, "kind": _kind(component), "dependsOn": [
            dependency for dependency in (component.get("dependsOn") or [])
            if isinstance(dependency, str) and dependency in components and dependency != identifier
        ] if isinstance(component.get("dependsOn"), list) else []}
        for identifier, (_, component) in components.items()
    ]
    try:
        return build_plan(Descriptor(data={"components": cleaned}, environment=environment)).graph
    except nx.NetworkXUnfeasible:  # a cycle: only a deployed descriptor from before cycles were refused
        return None


def _plan_order(components: dict[str, tuple[int, dict[str, Any]]], environment: str) -> list[str]:
    """Component ids in plan order: build_plan's stages one after the other (descriptor order on a cycle)."""
    graph = _plan_graph(components, environment)
    return list(components) if graph is None else _generations(graph, components)


def _unprovisioning_order(components: dict[str, tuple[int, dict[str, Any]]], environment: str) -> list[str]:
    """Component ids in the order an undeploy runs them: dependents first (reverse descriptor order on a cycle)."""
    graph = _plan_graph(components, environment)
    return list(reversed(components)) if graph is None else _generations(graph.reverse(copy=True), components)


def _generations(graph: nx.DiGraph, components: dict[str, tuple[int, dict[str, Any]]]) -> list[str]:
    order = {identifier: index for index, identifier in enumerate(components)}
    stages = nx.topological_generations(graph)
    return [identifier for stage in stages for identifier in sorted(stage, key=order.__getitem__)]


# ---------------------------------------------------------------- comparing values


def _scalar_key(value: Any) -> tuple[str, Any]:
    """A value's identity for comparison: `true` is not `1`, `1` is `1.0`."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _same(before: Any, after: Any) -> bool:
    """Equal as descriptor data (mapping keys compared as text)."""
    if isinstance(before, dict) and isinstance(after, dict):
        if len(before) != len(after):
            return False
        others = {str(key): value for key, value in after.items()}
        return all(str(key) in others and _same(value, others[str(key)]) for key, value in before.items())
    if isinstance(before, list) and isinstance(after, list):
        return len(before) == len(after) and all(map(_same, before, after))
    if isinstance(before, dict | list) or isinstance(after, dict | list):
        return False
    return _scalar_key(before) == _scalar_key(after)


def _same_type(before: Any, after: Any) -> bool:
    if before is None or after is None:
        return before is after
    return str(before).upper() == str(after).upper()


def _is_columns(value: Any) -> TypeGuard[list[Any]]:
    """A list of mappings each with a string `name`, no name twice."""
    return isinstance(value, list) and _identified_by(value, "name")


def _identified_by(items: list[Any], key: str) -> bool:
    names = [item.get(key) if isinstance(item, dict) else None for item in items]
    return all(isinstance(name, str) for name in names) and len(set(names)) == len(names)


def _show(value: Any, prefix: str = "") -> str:
    """A value on one line, at most SHOWN_LENGTH characters; this data product's component ids as `…:name`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '""' if value == "" else value
        if prefix and text.startswith(prefix) and len(text) > len(prefix):
            text = "…:" + text[len(prefix):]
    elif _is_columns(value) and value:
        text = f"{len(value)} columns: " + ", ".join(str(column["name"]) for column in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"


@dataclass(frozen=True, slots=True)
class _Differ:
    """Compares deployed with desired values under base, a path in the desired descriptor."""

    desired: Descriptor
    base: DataPath
    prefix: str

    def value_part(self, value: Any) -> SummaryPart:
        return ("(none)", False) if value is None else (_show(value, self.prefix), True)

    def change(self, path: DataPath, kind: ChangeKind, before: Any, after: Any, parts: list[SummaryPart],
               at: DataPath | None = None, column: str | None = None) -> FieldChange:
        """A change shown at path; its position is that of at (default path) in the desired descriptor."""
        return FieldChange(path=format_path(path), kind=kind, before=before, after=after, parts=tuple(parts),
                           position=self.desired.position(self.base + (path if at is None else at)), column=column)

    def value(self, path: DataPath, before: Any, after: Any) -> Iterator[FieldChange]:
        """The changes from before to after at path."""
        if _same(before, after):
            return
        if isinstance(before, dict) and isinstance(after, dict):
            yield from self.mapping(path, before, after)
        elif isinstance(before, list) and isinstance(after, list):
            yield from self.sequence(path, before, after)
        else:
            yield self.change(path, ChangeKind.CHANGED, before, after, [
                (format_path(path) + " ", False), self.value_part(before), (" -> ", False), self.value_part(after),
            ])

    def mapping(self, path: DataPath, before: dict[Any, Any], after: dict[Any, Any]) -> Iterator[FieldChange]:
        """Keys added, removed, and the changes of the keys both have."""
        old = {str(key): key for key in before}
        for key, value in after.items():
            field = (*path, key)
            if str(key) not in old:
                yield self.change(field, ChangeKind.ADDED, None, value,
                                  [(format_path(field) + " added: ", False), self.value_part(value)])
            elif str(key) in COLUMN_LIST_KEYS and _is_columns(value) and _is_columns(before[old[str(key)]]):
                yield from self.columns(field, before[old[str(key)]], value)
            else:
                yield from self.value(field, before[old[str(key)]], value)
        new = {str(key) for key in after}
        for key, value in before.items():
            if str(key) not in new:
                field = (*path, key)
                yield self.change(field, ChangeKind.REMOVED, value, None,
                                  [(format_path(field) + " removed (was ", False), self.value_part(value),
                                   (")", False)], at=path)

    def sequence(self, path: DataPath, before: list[Any], after: list[Any]) -> Iterator[FieldChange]:
        """Scalars as a multiset, named mappings by name, anything else position by position."""
        if all(map(_is_scalar, before)) and all(map(_is_scalar, after)):
            yield from self.scalars(path, before, after)
            return
        for key in IDENTIFYING_KEYS:
            if _identified_by(before, key) and _identified_by(after, key):
                yield from self.named(path, before, after, key)
                return
        label = format_path(path)
        for index, (old, new) in enumerate(zip(before, after, strict=False)):
            yield from self.value((*path, index), old, new)
        for index in range(len(before), len(after)):
            yield self.change((*path, index), ChangeKind.ADDED, None, after[index],
                              [(f"{label}[{index}] added: ", False), self.value_part(after[index])])
        for index in range(len(after), len(before)):
            yield self.change((*path, index), ChangeKind.REMOVED, before[index], None,
                              [(f"{label}[{index}] removed (was ", False), self.value_part(before[index]),
                               (")", False)], at=path)

    def scalars(self, path: DataPath, before: list[Any], after: list[Any]) -> Iterator[FieldChange]:
        """Items added and removed (`dependsOn + …:ledger`); a reordering when neither (the lists differ)."""
        label = format_path(path)
        unmatched = Counter(map(_scalar_key, before))
        found = False
        for index, item in enumerate(after):
            if unmatched[_scalar_key(item)] > 0:
                unmatched[_scalar_key(item)] -= 1
                continue
            found = True
            yield self.change(path, ChangeKind.ADDED, None, item, [(label + " + ", False), self.value_part(item)],
                              at=(*path, index))
        for item in before:
            if unmatched[_scalar_key(item)] > 0:
                unmatched[_scalar_key(item)] -= 1
                found = True
                yield self.change(path, ChangeKind.REMOVED, item, None,
                                  [(label + " - ", False), self.value_part(item)])
        if not found:
            yield self.reordered(path, label + " reordered: ", before, after)

    def named(self, path: DataPath, before: list[Any], after: list[Any], key: str) -> Iterator[FieldChange]:
        """Items matched by their key (`tableName`, …): added, removed, and the changes of items in both."""
        label = format_path(path)
        old = {item[key]: item for item in before}
        new = {item[key] for item in after}
        for index, item in enumerate(after):
            if item[key] not in old:
                yield self.change(path, ChangeKind.ADDED, None, item,
                                  [(label + " + ", False), self.value_part(item[key])], at=(*path, index))
            else:
                yield from self.value((*path, index), old[item[key]], item)
        for item in before:
            if item[key] not in new:
                yield self.change(path, ChangeKind.REMOVED, item, None,
                                  [(label + " - ", False), self.value_part(item[key])])
        yield from self.order(path, label + " reordered: ", [item[key] for item in before],
                              [item[key] for item in after])

    def order(self, path: DataPath, lead: str, before: list[str], after: list[str]) -> Iterator[FieldChange]:
        """A reordering of the names both lists have, if any."""
        common = set(before) & set(after)
        old, new = [name for name in before if name in common], [name for name in after if name in common]
        if old != new:
            yield self.reordered(path, lead, old, new)

    def reordered(self, path: DataPath, lead: str, before: list[Any], after: list[Any]) -> FieldChange:
        """The same items in another order."""
        return self.change(path, ChangeKind.CHANGED, before, after,
                           [(lead, False), self.value_part(before), (" -> ", False), self.value_part(after)])

    def columns(self, path: DataPath, before: list[Any], after: list[Any], prefix: str = "",
                where: str | None = None) -> Iterator[FieldChange]:
        """Columns added, removed, retyped or otherwise changed, matched by name."""
        if where is None:
            where = "" if path == CONTRACT else format_path(path) + ": "
        old = {column["name"]: column for column in before}
        new = {column["name"] for column in after}
        for index, column in enumerate(after):
            label = prefix + column["name"]
            if column["name"] not in old:
                kind = column.get("dataType")
                yield self.change(path, ChangeKind.ADDED, None, column, [
                    (where + "column ", False), (_show(label), True),
                    (" added" + (f" ({_show(kind)})" if kind is not None else ""), False),
                ], at=(*path, index), column=label)
            else:
                yield from self.column(path, index, old[column["name"]], column, label, where)
        for column in before:
            if column["name"] not in new:
                label = prefix + column["name"]
                yield self.change(path, ChangeKind.REMOVED, column, None,
                                  [(where + "column ", False), (_show(label), True), (" removed", False)],
                                  column=label)
        yield from self.order(path, where + "columns reordered: ", [column["name"] for column in before],
                              [column["name"] for column in after])

    def column(self, path: DataPath, index: int, before: dict[str, Any], after: dict[str, Any], label: str,
               where: str) -> Iterator[FieldChange]:
        """The changes of one column present on both sides."""
        for field in TYPE_FIELDS:
            old, new = before.get(field), after.get(field)
            if not _same_type(old, new):
                verb = " retyped " if field == "dataType" else f" {field} retyped "
                yield self.change(path, ChangeKind.RETYPED, old, new, [
                    (where + "column ", False), (_show(label), True),
                    (verb + (_show(old) if old is not None else "(none)") + " -> "
                     + (_show(new) if new is not None else "(none)"), False),
                ], at=(*path, index, field), column=label)
        old_children, new_children = before.get("children"), after.get("children")
        nested = False
        if _is_columns(old_children) and _is_columns(new_children):
            nested = True
            yield from self.columns((*path, index, "children"), old_children, new_children, label + ".", where)
        keys = list(after) + [key for key in before if key not in after]
        for key in keys:
            if key == "name" or key in TYPE_FIELDS or (key == "children" and nested):
                continue
            old, new = before.get(key), after.get(key)
            if not _same(old, new):
                yield self.change(path, ChangeKind.CHANGED, old, new, [
                    (where + "column ", False), (_show(label), True), (f" {_show(key)} ", False),
                    self.value_part(old), (" -> ", False), self.value_part(new),
                ], at=(*path, index, key), column=label)
