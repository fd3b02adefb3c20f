"""Reconciling a deploy with what is deployed: what it provisions, leaves alone, removes, and keeps (pure).

A deploy is planned against the environment's deployed state (bot.engine.deployed), at request time for what
people see and again when the deployment starts (the deployed state may have changed while it waited):
- every task of the plan runs, unless `only_changed` (then only the components whose descriptor changed since
  the last successful deployment, or that are not deployed, and everything that depends on them) or
  `--component` (then those components and whatever they depend on that is not deployed: a partial deploy);
- components deployed before and absent now are removed after every other task, dependents first, when the
  environment's prune mode says so (`auto`, or `confirm` with `--prune`); otherwise they are kept and listed.
  A partial deploy never removes anything, and `removeData` is never implied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from bot.descriptor.model import Descriptor
from bot.engine.plan import DATA_PRODUCT_KIND, build_plan
from bot.engine.plan_diff import Action, plan_diff

DEPLOYED, NOT_DEPLOYED = "DEPLOYED", "NOT_DEPLOYED"
UNVERSIONED_ROOT_FIELDS = frozenset({"version"})  # a version bump alone never reprovisions the data product


@dataclass(frozen=True, slots=True)
class Scope:
    """What a deploy was asked for beyond provisioning the whole descriptor."""

    prune: str = "auto"  # the environment's prune mode: auto | confirm | never
    prune_confirmed: bool = False  # --prune
    only_changed: bool = False
    components: tuple[str, ...] = ()  # --component: component ids (a partial deploy)

    @property
    def partial(self) -> bool:
        """Whether only named components are deployed."""
        return bool(self.components)

    def as_json(self) -> dict[str, Any]:
        """Plain data for the deployment record."""
        return {"prune": self.prune, "pruneConfirmed": self.prune_confirmed, "onlyChanged": self.only_changed,
                "components": list(self.components)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scope:
        """The inverse of as_json (a record without a scope provisions everything, as before scopes existed)."""
        data = data or {}
        return cls(prune=str(data.get("prune", "never")), prune_confirmed=bool(data.get("pruneConfirmed")),
                   only_changed=bool(data.get("onlyChanged")), components=tuple(data.get("components") or ()))

    def removes(self) -> bool:
        """Whether components absent from the repository are unprovisioned by this deploy."""
        if self.partial:
            return False
        return self.prune == "auto" or (self.prune == "confirm" and self.prune_confirmed)

    def kept_reason(self, environment: str) -> str:
        """Why a component absent from the repository stays provisioned."""
        if self.partial:
            return "not in the repository any more; a deploy of single components never removes any"
        if self.prune == "never":
            return f"not in the repository any more; kept, as prune is never in {environment}"
        return f"not in the repository any more; kept until a deploy with --prune, as prune is confirm in {environment}"


@dataclass(slots=True)
class Reconciliation:
    """What a deploy does with each task: provision (plan order), leave alone, remove (dependents first), keep."""

    provision: list[str]
    depends_on: dict[str, list[str]]  # of each provisioned or removed task, among the tasks that run
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # component id -> why it stays provisioned
    partial: bool = False

    def as_json(self) -> dict[str, Any]:
        """Plain data for the deployment record and the plan output."""
        return {"provision": self.provision, "unchanged": self.unchanged, "remove": self.remove,
                "kept": self.kept, "partial": self.partial}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reconciliation:
        """The inverse of as_json (dependencies are not kept in it)."""
        return cls(provision=list(data.get("provision") or []), depends_on={},
                   unchanged=list(data.get("unchanged") or []), remove=list(data.get("remove") or []),
                   kept=dict(data.get("kept") or {}), partial=bool(data.get("partial")))

    def summary(self) -> str:
        """`3 to provision, 196 unchanged, 1 to remove, 1 kept` (zero counts left out)."""
        parts = [(len(self.provision), "to provision"),
                 (len(self.unchanged), "left as they are" if self.partial else "unchanged"),
                 (len(self.remove), "to remove"), (len(self.kept), "kept")]
        return ", ".join(f"{count} {label}" for count, label in parts if count) or "nothing to do"

    def notes(self, environment: str) -> list[str]:
        """What a person should know of this plan beyond its tasks, one sentence each (plain text)."""
        notes = []
        if self.partial:
            notes.append(f"partial deploy: {_count(len(self.unchanged), 'other task')} left as they are in "
                         f"{environment}")
        elif self.unchanged:
            notes.append(f"{_count(len(self.unchanged), 'component')} unchanged since the last successful deployment "
                         f"in {environment}, left as deployed: deploy.only_changed is on")
        if self.remove:
            notes.append(f"{_count(len(self.remove), 'component')} no longer in the repository, unprovisioned after "
                         "the others, dependents first; their data is kept: " + ", ".join(self.remove))
        notes += [f"{identifier}: {reason}" for identifier, reason in self.kept.items()]
        return notes


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def previous_components(deployed: Mapping[str, Any] | None, last: Mapping[str, Any] | None,
                        states: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every component that may be provisioned in the environment, by id, with the definition it was sent.

    The deployed descriptor's components, then those of the latest deployment (which may have ended CORRUPT
    after provisioning some) that it lacks; never one whose recorded state is NOT_DEPLOYED.
    """
    found: dict[str, dict[str, Any]] = {}
    for source in (deployed, last):
        components = (source or {}).get("components")
        for component in components if isinstance(components, list) else []:
            if isinstance(component, dict) and isinstance(component.get("id"), str):
                identifier = component["id"]
                if identifier not in found and states.get(identifier) != NOT_DEPLOYED:
                    found[identifier] = component
    return found


def reconcile(desired: Descriptor, deployed: Mapping[str, Any] | None, previous: Mapping[str, dict[str, Any]],
              states: Mapping[str, str], scope: Scope) -> Reconciliation:
    """Decide every task of a deploy of desired (see the module's docstring); states: component id -> status."""
    plan = build_plan(desired)
    order = [task.id for task in plan.tasks]
    graph = plan.graph
    if scope.partial:
        wanted = set(scope.components)
        run = wanted | {ancestor for target in wanted for ancestor in nx.ancestors(graph, target)
                        if states.get(ancestor) != DEPLOYED}
    elif scope.only_changed and deployed is not None:
        seeds = _changed(desired, deployed, states, {task.id: task.kind for task in plan.tasks})
        run = seeds | {descendant for seed in seeds for descendant in nx.descendants(graph, seed)}
    else:
        run = set(order)
    provision = [identifier for identifier in order if identifier in run]
    depends_on = {task.id: [dependency for dependency in task.depends_on if dependency in run]
                  for task in plan.tasks if task.id in run}
    reconciliation = Reconciliation(provision=provision, depends_on=depends_on,
                                    unchanged=[identifier for identifier in order if identifier not in run],
                                    partial=scope.partial)
    absent = {identifier: component for identifier, component in previous.items() if identifier not in graph}
    if not absent:
        return reconciliation
    if not scope.removes():
        reconciliation.kept = {identifier: scope.kept_reason(desired.environment) for identifier in absent}
        return reconciliation
    removal_order, removal_dependencies = _removals(absent)
    reconciliation.remove = removal_order
    for identifier in removal_order:  # after every provisioned task; dependents first among themselves
        reconciliation.depends_on[identifier] = removal_dependencies[identifier] + provision
    return reconciliation


def _changed(desired: Descriptor, deployed: Mapping[str, Any], states: Mapping[str, str],
             kinds: Mapping[str, str]) -> set[str]:
    """Tasks whose definition differs from the deployed one, or that are not deployed."""
    diff = plan_diff(desired, dict(deployed))
    seeds = {entry.id for entry in diff.components if entry.action in (Action.ADD, Action.CHANGE)}
    seeds |= {identifier for identifier, kind in kinds.items()
              if kind != DATA_PRODUCT_KIND and states.get(identifier) != DEPLOYED}
    root = next((identifier for identifier, kind in kinds.items() if kind == DATA_PRODUCT_KIND), None)
    if root is not None:
        root_changes = [change for change in diff.product.changes
                        if change.path.split(".", 1)[0].split("[", 1)[0] not in UNVERSIONED_ROOT_FIELDS]
        if root_changes or states.get(root) not in (DEPLOYED, None) or not deployed.get("infrastructureTemplateId"):
            seeds.add(root)
    return seeds


def _removals(absent: Mapping[str, dict[str, Any]]) -> tuple[list[str], dict[str, list[str]]]:
    """The order removals run in (dependents first) and, for each, the removals it waits for."""
    graph = nx.DiGraph()
    graph.add_nodes_from(absent)
    for identifier, component in absent.items():
        dependencies = component.get("dependsOn")
        for dependency in dependencies if isinstance(dependencies, list) else []:
            if dependency in absent and dependency != identifier:
                graph.add_edge(dependency, identifier)  # identifier depends on dependency: remove it first
    order_in = {identifier: index for index, identifier in enumerate(absent)}
    reverse = graph.reverse(copy=True)
    try:
        order = [identifier for stage in nx.topological_generations(reverse)
                 for identifier in sorted(stage, key=order_in.__getitem__)]
    except nx.NetworkXUnfeasible:  # a cycle among removed components: one after the other, last defined first
        order = list(reversed(list(absent)))
        return order, {identifier: order[:index][-1:] for index, identifier in enumerate(order)}
    return order, {identifier: sorted(reverse.predecessors(identifier), key=order_in.__getitem__)
                   for identifier in order}


def deployed_after(desired: Mapping[str, Any], previous: Mapping[str, dict[str, Any]], provisioned: Iterable[str],
                   unchanged: Iterable[str], removed: Iterable[str]) -> dict[str, Any]:
    """The descriptor of what is deployed once a deploy of desired ended well: the record reviews compare with.

    Components provisioned or unchanged (only_changed) by this deploy have their desired definition; the others
    of desired keep the deployed definition they had (a partial deploy), or are left out when never deployed;
    components no longer desired stay with their previous definition unless this deploy removed them.
    """
    current = set(provisioned) | set(unchanged)
    gone = set(removed)
    components: list[Any] = []
    desired_components = desired.get("components")
    for component in desired_components if isinstance(desired_components, list) else []:
        identifier = str(component.get("id")) if isinstance(component, dict) else ""
        if identifier in current:
            components.append(component)
        elif identifier in previous:
            components.append(previous[identifier])
    listed = {component.get("id") for component in components if isinstance(component, dict)}
    desired_ids = {component.get("id") for component in desired_components or [] if isinstance(component, dict)}
    components += [component for identifier, component in previous.items()
                   if identifier not in gone and identifier not in listed and identifier not in desired_ids]
    return {**desired, "components": components}
