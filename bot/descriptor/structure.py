"""Structure of a descriptor: unique ids and a dependsOn graph without dangling references or cycles."""

from __future__ import annotations

import difflib
import graphlib
from typing import TYPE_CHECKING, Any

from bot.descriptor.errors import InputError
from bot.descriptor.model import Descriptor

if TYPE_CHECKING:
    import networkx as nx


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
    if not _has_cycle(descriptor.components):
        return []  # the usual case, decided without importing networkx (about 0.1 s of every check's start)
    import networkx as nx

    graph = _component_graph(descriptor.components)
    errors = []
    for members in nx.strongly_connected_components(graph):
        first = min(members, key=index_of.__getitem__)
        if len(members) == 1 and not graph.has_edge(first, first):
            continue
        edges = nx.find_cycle(graph.subgraph(members), source=first)
        ordered = [edge[0] for edge in edges]
        dependents = descriptor.components[index_of[ordered[0]]].get("dependsOn") or []
        next_one = ordered[1] if len(ordered) > 1 else ordered[0]
        where = descriptor.position(("components", index_of[ordered[0]], "dependsOn", dependents.index(next_one)))
        chain = " -> ".join([*ordered, ordered[0]])
        errors.append((index_of[first], InputError(f"dependsOn cycle: {chain} (each depends on the next)", where)))
    return [error for _, error in sorted(errors, key=lambda pair: pair[0])]


def _has_cycle(components: list[dict[str, Any]]) -> bool:
    """Whether any component depends on itself, directly or through others."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for component in components:
        sorter.add(component["id"], *(component.get("dependsOn") or []))
    try:
        sorter.prepare()
    except graphlib.CycleError:
        return True
    return False


def _component_graph(components: list[dict[str, Any]]) -> nx.DiGraph:
    """Edges from each component to the components it depends on."""
    import networkx as nx

    graph = nx.DiGraph()
    for component in components:
        graph.add_node(component["id"])
        for dependency in component.get("dependsOn") or []:
            graph.add_edge(component["id"], dependency)
    return graph
