"""The provisioning plan: a DAG of the data product and its components, and its parallel stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from bot.descriptor import Descriptor
from bot.errors import InputError

DATA_PRODUCT_KIND = "dataproduct"


@dataclass(frozen=True, slots=True)
class Task:
    """One provisioning step: the data product itself or one component."""

    id: str
    kind: str
    depends_on: tuple[str, ...]


@dataclass(slots=True)
class Plan:
    """Tasks in descriptor order and the stages whose tasks can run at the same time."""

    tasks: list[Task]
    stages: list[list[str]]
    graph: nx.DiGraph

    def as_json(self) -> dict[str, Any]:
        """The plan as `meshbot plan --format json` prints it."""
        return {
            "tasks": [{"id": t.id, "kind": t.kind, "depends_on": list(t.depends_on)} for t in self.tasks],
            "stages": self.stages,
        }


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
    tail = unknown.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    candidates = [identifier for identifier in known if identifier.rsplit(":", 1)[-1] == tail]
    return f" (did you mean '{candidates[0]}'?)" if len(candidates) == 1 else ""


def _cycle_errors(descriptor: Descriptor, index_of: dict[str, int]) -> list[InputError]:
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


def _component_graph(components: list[dict[str, Any]]) -> nx.DiGraph:
    """Edges from each component to the components it depends on."""
    graph = nx.DiGraph()
    for component in components:
        graph.add_node(component["id"])
        for dependency in component.get("dependsOn") or []:
            graph.add_edge(component["id"], dependency)
    return graph


def build_plan(descriptor: Descriptor) -> Plan:
    """The plan of a structurally valid descriptor (see structure_errors)."""
    data = descriptor.data
    tasks: list[Task] = []
    graph = nx.DiGraph()
    root = data.get("id") if data.get("infrastructureTemplateId") else None
    if root:
        tasks.append(Task(id=root, kind=DATA_PRODUCT_KIND, depends_on=()))
        graph.add_node(root)
    for component in descriptor.components:
        dependencies = tuple(([root] if root else []) + list(component.get("dependsOn") or []))
        tasks.append(Task(id=component["id"], kind=str(component.get("kind", "")), depends_on=dependencies))
        graph.add_node(component["id"])
        for dependency in dependencies:
            graph.add_edge(dependency, component["id"])
    order = {task.id: position for position, task in enumerate(tasks)}
    stages = [sorted(stage, key=order.__getitem__) for stage in nx.topological_generations(graph)]
    return Plan(tasks=tasks, stages=stages, graph=graph)
