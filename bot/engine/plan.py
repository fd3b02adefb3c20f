"""The provisioning plan: a DAG of the data product and its components, and its parallel stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from bot.descriptor.model import Descriptor

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


def build_plan(descriptor: Descriptor) -> Plan:
    """The plan of a structurally valid descriptor (see bot.descriptor.structure)."""
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
