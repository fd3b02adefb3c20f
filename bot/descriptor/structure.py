"""Structure of a descriptor: unique ids and a dependsOn graph without dangling references or cycles."""

from __future__ import annotations

import difflib
from typing import Any

from bot.descriptor.errors import InputError
from bot.descriptor.model import Descriptor


def structure_errors(descriptor: Descriptor) -> list[InputError]:
    """Duplicate ids, malformed or dangling dependsOn and dependency cycles: what makes a plan impossible."""
    errors: list[InputError] = []
    components = descriptor.components
    first_index: dict[str, int] = {}
    for index, component in enumerate(components):
        component_id = component.get("id")
        if not isinstance(component_id, str) or not component_id:
            errors.append(InputError("component has no id", descriptor.position(("components", index))))
            continue
        if component_id == descriptor.id or component_id in first_index:
            other = descriptor.position(("components", first_index[component_id], "id")) \
                if component_id in first_index else descriptor.position(("id",))
            errors.append(InputError(
                f"duplicate id '{component_id}' (also used at {other})",
                descriptor.position(("components", index, "id")),
            ))
            continue
        first_index[component_id] = index
    for index, component in enumerate(components):
        errors.extend(_dependency_errors(descriptor, index, component, first_index))
    if not errors:
        errors.extend(_cycle_errors(descriptor, first_index))
    return errors


def _dependency_errors(
    descriptor: Descriptor, index: int, component: dict[str, Any], known: dict[str, int]
) -> list[InputError]:
    depends_on = component.get("dependsOn")
    if depends_on is None:
        return []
    if not isinstance(depends_on, list):
        return [InputError("dependsOn must be a list of component ids",
                           descriptor.position(("components", index, "dependsOn")))]
    errors = []
    for position_index, dependency in enumerate(depends_on):
        where = descriptor.position(("components", index, "dependsOn", position_index))
        if not isinstance(dependency, str):
            errors.append(InputError("dependsOn entries must be component ids (strings)", where))
        elif dependency == descriptor.id:
            errors.append(InputError(
                f"dependsOn '{dependency}' names the data product itself; it is always provisioned first",
                where,
            ))
        elif dependency not in known:
            errors.append(InputError(
                f"dependsOn '{dependency}' is not a component of this data product{_suggestion(dependency, known)}",
                where,
            ))
    return errors


def _suggestion(unknown: str, known: dict[str, int]) -> str:
    """` (did you mean 'ID'?)` naming the component whose name (the id's last part) is closest to unknown's."""
    tail = unknown.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    candidates = [identifier for identifier in known if identifier.rsplit(":", 1)[-1] == tail]
    if len(candidates) != 1:
        # Ids share their long data product prefix, so only the component names are compared.
        by_name = {identifier.rsplit(":", 1)[-1].lower(): identifier for identifier in known}
        names = difflib.get_close_matches(tail.lower(), list(by_name), n=1, cutoff=0.6)
        candidates = [by_name[names[0]]] if names else []
    return f" (did you mean '{candidates[0]}'?)" if candidates else ""


def _cycle_errors(descriptor: Descriptor, index_of: dict[str, int]) -> list[InputError]:
    successors = _successors(descriptor.components)
    errors = []
    for members in _strongly_connected(successors):
        first = min(members, key=index_of.__getitem__)
        if len(members) == 1 and first not in successors[first]:
            continue
        ordered = _first_cycle(successors, members, first)
        dependents = descriptor.components[index_of[ordered[0]]].get("dependsOn") or []
        next_one = ordered[1] if len(ordered) > 1 else ordered[0]
        where = descriptor.position(("components", index_of[ordered[0]], "dependsOn", dependents.index(next_one)))
        chain = " -> ".join([*ordered, ordered[0]])
        errors.append((index_of[first], InputError(f"dependsOn cycle: {chain} (each depends on the next)", where)))
    return [error for _, error in sorted(errors, key=lambda pair: pair[0])]


def _successors(components: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each component's id to the ids it depends on, in dependsOn order without repeats."""
    return {component["id"]: list(dict.fromkeys(component.get("dependsOn") or [])) for component in components}


def _strongly_connected(successors: dict[str, list[str]]) -> list[set[str]]:
    """The graph's strongly connected components (Tarjan's algorithm, iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for root in successors:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors[root]))]
        while work:
            node, pending = work[-1]
            for successor in pending:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(successors[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.add(member)
                        if member == node:
                            break
                    found.append(members)
    return found


def _first_cycle(successors: dict[str, list[str]], members: set[str], source: str) -> list[str]:
    """The cycle networkx's `find_cycle(graph.subgraph(members), source)` returns, as its nodes in order.

    Its depth-first walk over edges: a node reached again continues its own list of edges; the walk stops at the
    first edge back to a node on the current path, and the cycle starts at that node.
    """
    pending: dict[str, list[str]] = {}
    walk = [source]
    path: list[tuple[str, str]] = []
    active = {source}
    previous_head: str | None = None
    while walk:
        tail = walk[-1]
        if tail not in pending:
            pending[tail] = [node for node in reversed(successors[tail]) if node in members]
        if not pending[tail]:
            walk.pop()
            continue
        head = pending[tail].pop()
        walk.append(head)
        if previous_head is not None and tail != previous_head:
            while True:  # backtracked: drop the path's edges down to the one ending at tail
                if not path:
                    active = {tail}
                    break
                active.remove(path.pop()[1])
                if path and path[-1][1] == tail:
                    break
        path.append((tail, head))
        if head in active:
            start = next(position for position, edge in enumerate(path) if edge[0] == head)
            return [edge[0] for edge in path[start:]]
        active.add(head)
        previous_head = head
    raise ValueError("no cycle in a strongly connected component")  # cannot happen: members hold a cycle
