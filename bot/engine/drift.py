"""Drift: the live infrastructure no longer matches the deployed descriptor (domain.md §8).

Each deployed component's tech adapter is asked for its live state through reverse provisioning, with a
catalogInfo made from the deployed component (`{apiVersion, kind: Component, metadata: {name}, spec: {mesh:
<deployed component>}}`) and no params. The updates it proposes are screened as `/import` screens them (only
paths below `spec.mesh`, never identity keys: `bot.descriptor.update_scope`), and each allowed update
`spec.mesh.X` is compared with the deployed component's value at X the way the plan diff compares (columns by
name, type spellings case-insensitively): a difference is drift.

A component is one of: drifted (with its differences), in sync, not checkable (its adapter has no reverse
provisioning: HTTP 404, 405 or 501; or it names no use case template), could not be checked (no adapter serves
it now, the adapter failed, timed out or answered something unusable). A component that could not be checked is
never reported as in sync.

The comparison is pure (`differences`); `check_deployed` calls the adapters; the latest report of each data
product and environment is kept in Redis (`save_report` / `load_report`) for the sweep (handlers/drift.py).

`DriftReport.as_json()` (`meshbot drift --format json`), version 1:
    {"version": 1, "dataProduct": URN, "environment": str, "deployment": str, "deployedVersion": str,
     "checkedAt": ISO time, "status": "drift|in sync|could not check", "summary": str,
     "components": [{"id", "name", "kind", "state": "drifted|in sync|not checkable|could not be checked",
                     "reason": str, "refused": [str], "differences": [
                         {"path", "kind": "added|removed|changed|retyped", "column": str|null, "before": any,
                          "after": any, "summary": str, "parts": [[text, isCode], ...]}]}]}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from adapters.client import TechAdapterClient
from adapters.payloads import reverse_provisioning_request
from adapters.registry import AdapterRegistry, AdapterTarget
from bot.config import AdapterSettings, ServerConfig
from bot.descriptor.model import component_name
from bot.descriptor.update_scope import MESH, screen_updates
from bot.engine.deployed import Deployed
from bot.engine.plan_diff import field_changes
from bot.engine.store import PREFIX, as_text
from bot.metrics import Batch, observe_adapter_call

JSON_VERSION = 1
CHECK_TIMEOUT_SECONDS = 120.0  # the longest one component's reverse provisioning may take in a drift check
REPORT_TTL_SECONDS = 90 * 86400  # a report of a product no longer deployed fades away

ClientFor = Callable[[AdapterSettings], TechAdapterClient]


class ComponentState(StrEnum):
    """What a drift check found for one component."""

    DRIFTED = "drifted"
    IN_SYNC = "in sync"
    NOT_CHECKABLE = "not checkable"
    UNCHECKED = "could not be checked"


class DriftStatus(StrEnum):
    """What a drift check found for a whole data product in an environment."""

    DRIFT = "drift"  # at least one component drifted
    UNCHECKED = "could not check"  # no drift found, but some component could not be checked
    IN_SYNC = "in sync"  # every checkable component matches


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a component's live state differs from its deployed descriptor, deployed -> live."""

    path: str  # below the component's spec.mesh, e.g. `dataContract.schema`
    kind: str  # added | removed | changed | retyped
    summary: str  # plain text, code parts in backticks
    parts: tuple[tuple[str, bool], ...]  # (text, shown as code), for markdown
    before: Any = None
    after: Any = None
    column: str | None = None

    def as_json(self) -> dict[str, Any]:
        """This difference in the report document."""
        return {"path": self.path, "kind": self.kind, "column": self.column, "before": self.before,
                "after": self.after, "summary": self.summary, "parts": [list(part) for part in self.parts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        """The inverse of as_json."""
        return cls(path=str(data.get("path", "")), kind=str(data.get("kind", "")), summary=str(data.get("summary", "")),
                   parts=tuple((str(text), bool(code)) for text, code in data.get("parts") or []),
                   before=data.get("before"), after=data.get("after"), column=data.get("column"))


@dataclass(frozen=True, slots=True)
class ComponentDrift:
    """One component's drift check."""

    id: str
    name: str
    kind: str
    state: ComponentState
    differences: tuple[Difference, ...] = ()
    reason: str = ""  # why not checkable or not checked
    refused: tuple[str, ...] = ()  # paths of updates the adapter proposed that meshbot never compares

    def as_json(self) -> dict[str, Any]:
        """This component in the report document."""
        return {"id": self.id, "name": self.name, "kind": self.kind, "state": str(self.state), "reason": self.reason,
                "refused": list(self.refused), "differences": [item.as_json() for item in self.differences]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentDrift:
        """The inverse of as_json."""
        return cls(id=str(data.get("id", "")), name=str(data.get("name", "")), kind=str(data.get("kind", "")),
                   state=ComponentState(data.get("state", ComponentState.UNCHECKED)),
                   differences=tuple(Difference.from_json(item) for item in data.get("differences") or []),
                   reason=str(data.get("reason", "")), refused=tuple(str(path) for path in data.get("refused") or []))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """A drift check of one data product in one environment."""

    data_product: str
    environment: str
    deployment: str
    version: str
    checked_at: str
    components: tuple[ComponentDrift, ...] = ()

    def of(self, state: ComponentState) -> tuple[ComponentDrift, ...]:
        """The components in state, in descriptor order."""
        return tuple(component for component in self.components if component.state is state)

    @property
    def status(self) -> DriftStatus:
        """Drift when any component drifted; could not check when some could not be checked; else in sync."""
        if self.of(ComponentState.DRIFTED):
            return DriftStatus.DRIFT
        if self.of(ComponentState.UNCHECKED):
            return DriftStatus.UNCHECKED
        return DriftStatus.IN_SYNC

    def summary(self) -> str:
        """One line: how many components drifted, are in sync, not checkable, could not be checked."""
        counts = [(len(self.of(state)), str(state)) for state in ComponentState]
        text = ", ".join(f"{count} {label}" for count, label in counts if count) or "no components"
        if self.status is DriftStatus.IN_SYNC and self.components and not self.of(ComponentState.IN_SYNC):
            return f"nothing checkable: {text}"  # no drift found, and none looked for
        return f"{self.status}: {text}"

    def as_json(self) -> dict[str, Any]:
        """The `meshbot drift --format json` document (its shape is in this module's docstring)."""
        return {"version": JSON_VERSION, "dataProduct": self.data_product, "environment": self.environment,
                "deployment": self.deployment, "deployedVersion": self.version, "checkedAt": self.checked_at,
                "status": str(self.status), "summary": self.summary(),
                "components": [component.as_json() for component in self.components]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReport:
        """The inverse of as_json."""
        return cls(data_product=str(data.get("dataProduct", "")), environment=str(data.get("environment", "")),
                   deployment=str(data.get("deployment", "")), version=str(data.get("deployedVersion", "")),
                   checked_at=str(data.get("checkedAt", "")),
                   components=tuple(ComponentDrift.from_json(item) for item in data.get("components") or []))

    def to_text(self) -> str:
        """A terminal report: one line per component, its differences indented, then the summary."""
        signs = {ComponentState.DRIFTED: "~", ComponentState.IN_SYNC: "=", ComponentState.NOT_CHECKABLE: "?",
                 ComponentState.UNCHECKED: "!"}
        lines = [f"meshbot drift: {self.data_product} ({self.environment}), deployment {self.deployment or '?'}, "
                 f"version {self.version or '?'}", ""]
        for component in self.components:
            why = f": {component.reason}" if component.reason else ""
            lines.append(f"{signs[component.state]} {component.id} ({component.kind}): {component.state}{why}")
            lines += [f"    {difference.summary}" for difference in component.differences]
            if component.state is ComponentState.DRIFTED:
                lines.append(f"    keep it: /import {component.name} on a merge request, then merge and deploy; "
                             f"overwrite it: /deploy {self.environment}")
        if self.components:
            lines.append("")
        lines.append(self.summary())
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the comparison (pure)


def catalog_info(component: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog-info.yaml entity a deployed component stands for, as reverse provisioning reads it."""
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": component_name(dict(component))}, "spec": {"mesh": dict(component)}}


def differences(component: Mapping[str, Any], updates: Mapping[str, Any], prefix: str = "") -> list[Difference]:
    """How the live state (the adapter's allowed updates, `spec.mesh.X` -> value) differs from the deployed
    component's values at X; updates that are not meshbot's to compare are left out (see `refused_paths`)."""
    found: list[Difference] = []
    for path, value in screen_updates(dict(updates)).allowed.items():
        segments = tuple(str(path).split("."))[len(MESH):]
        if not segments or not all(segments):
            continue
        for change in field_changes(segments, _value_at(component, segments), value, prefix):
            found.append(Difference(path=".".join(segments), kind=str(change.kind), summary=change.summary,
                                    parts=change.parts, before=change.before, after=change.after,
                                    column=change.column))
    return found


def refused_paths(updates: Mapping[str, Any]) -> list[str]:
    """The paths of updates meshbot never compares (outside spec.mesh, or identity keys)."""
    return [update.path for update in screen_updates(dict(updates)).refused]


def _value_at(component: Mapping[str, Any], segments: tuple[str, ...]) -> Any:
    value: Any = component
    for key in segments:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def component_prefix(data_product_id: str) -> str:
    """`urn:dmb:cmp:finance:cashflow:1:` for `urn:dmb:dp:finance:cashflow:1` (summaries show such ids as `…:x`)."""
    head = "urn:dmb:dp:"
    return "urn:dmb:cmp:" + data_product_id[len(head):] + ":" if data_product_id.startswith(head) else ""


# ---------------------------------------------------------------- the check (I/O: the tech adapters)


def check_deployed(deployed: Deployed, config: ServerConfig, client_for: ClientFor | None = None,
                   now: datetime | None = None, metrics: Batch | None = None) -> DriftReport:
    """Ask each deployed component's tech adapter for its live state and compare it with the deployed descriptor.

    metrics: where each reverse provisioning call's latency is observed (the caller sends it to Redis).
    """
    registry = AdapterRegistry(config.adapters)
    checked_at = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    raw = deployed.descriptor.get("components")
    components = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
    prefix = component_prefix(deployed.data_product)
    results = tuple(check_component(component, deployed.environment, registry, client_for, prefix, metrics)
                    for component in components)
    return DriftReport(data_product=deployed.data_product, environment=deployed.environment,
                       deployment=deployed.deployment, version=deployed.version, checked_at=checked_at,
                       components=results)


def check_component(component: dict[str, Any], environment: str, registry: AdapterRegistry,
                    client_for: ClientFor | None = None, prefix: str = "",
                    metrics: Batch | None = None) -> ComponentDrift:
    """The drift check of one deployed component through its tech adapter."""
    identifier = str(component.get("id", ""))
    name, kind = component_name(component), str(component.get("kind") or "")

    def result(state: ComponentState, reason: str = "", **extra: Any) -> ComponentDrift:
        return ComponentDrift(id=identifier, name=name, kind=kind, state=state, reason=reason, **extra)

    use_case = component.get("useCaseTemplateId")
    if not isinstance(use_case, str) or not use_case:
        return result(ComponentState.NOT_CHECKABLE, "it has no useCaseTemplateId, which reverse provisioning needs")
    template = component.get("infrastructureTemplateId")
    adapter = registry.find(template, environment) if isinstance(template, str) else None
    if adapter is None:
        return result(ComponentState.UNCHECKED, f"no tech adapter serves infrastructureTemplateId {template!r} in "
                                                f"'{environment}'")
    client = client_for(adapter) if client_for is not None else AdapterTarget(
        adapter.url, adapter.timeout, adapter.ca_bundle).client(timeout=CHECK_TIMEOUT_SECONDS)
    started = time.monotonic()
    answer = client.reverse_provision(reverse_provisioning_request(use_case, environment, {},
                                                                   catalog_info(component)))
    if metrics is not None:
        observe_adapter_call(metrics, adapter.url, "reverse_provision", time.monotonic() - started,
                             not answer.ok and not answer.unsupported)
    if answer.unsupported:
        return result(ComponentState.NOT_CHECKABLE, "its tech adapter has no reverse provisioning")
    if not answer.ok:
        return result(ComponentState.UNCHECKED, f"the tech adapter's reverse provisioning failed: {answer.message}")
    found = differences(component, answer.updates, prefix)
    refused = tuple(refused_paths(answer.updates))
    state = ComponentState.DRIFTED if found else ComponentState.IN_SYNC
    return result(state, differences=tuple(found), refused=refused)


# ---------------------------------------------------------------- the latest report, in Redis


def report_key(data_product: str, environment: str) -> str:
    """Where the latest drift report of a data product in an environment is kept."""
    return f"{PREFIX}:drift:{data_product}:{environment}"


def save_report(connection: redis.Redis, report: DriftReport) -> None:
    """Keep report as the latest of its data product and environment."""
    connection.set(report_key(report.data_product, report.environment), json.dumps(report.as_json()),
                   ex=REPORT_TTL_SECONDS)


def load_report(connection: redis.Redis, data_product: str, environment: str) -> DriftReport | None:
    """The latest drift report of a data product in an environment, if any."""
    value = connection.get(report_key(data_product, environment))
    if value is None:
        return None
    try:
        return DriftReport.from_json(json.loads(as_text(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def checked_seconds_ago(report: DriftReport | None, now: datetime) -> float | None:
    """How long ago report was made (None: never, or its time cannot be read)."""
    if report is None:
        return None
    try:
        when = datetime.fromisoformat(report.checked_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - when).total_seconds()


# ---------------------------------------------------------------- what the sweep checks


MIN_ROUND_SECONDS = 60  # the sweep never runs more often than this
MAX_ROUND_SECONDS = 3600  # nor less often: an environment's interval is kept to within an hour


def drift_intervals(config: ServerConfig, environments: list[str]) -> dict[str, int]:
    """Each environment's drift interval in seconds (0: drift is not checked there)."""
    return {environment: max(0, config.rules(environment).drift_interval_seconds) for environment in environments}


def sweep_enabled(config: ServerConfig) -> bool:
    """Whether any environment checks drift (environments not configured: the default interval applies)."""
    names = list(config.environments) if config.environments is not None else []
    if not names:
        return config.rules("").drift_interval_seconds > 0
    return any(drift_intervals(config, names).values())


def round_seconds(intervals: list[int]) -> int:
    """How often the sweep runs: the shortest non-zero interval, kept between a minute and an hour."""
    positive = [interval for interval in intervals if interval > 0]
    return max(MIN_ROUND_SECONDS, min([MAX_ROUND_SECONDS, *positive]))


def due(last_checked_seconds_ago: float | None, interval: int) -> bool:
    """Whether a product is due for a check: drift is checked there and the last check is older than interval."""
    return interval > 0 and (last_checked_seconds_ago is None or last_checked_seconds_ago >= interval)


def deployed_products(connection: redis.Redis) -> list[tuple[str, str]]:
    """Every (data product, environment) whose product record holds a deployed descriptor, sorted."""
    from bot.engine.deployed import DEPLOYED_FIELD, SUCCESSFUL

    head = f"{PREFIX}:product:"
    named = []
    for key in connection.scan_iter(match=head + "*", count=1000):
        data_product, _, environment = as_text(key)[len(head):].rpartition(":")
        if data_product and environment:
            named.append((key, data_product, environment))
    # Whether each holds a deployed descriptor, not the descriptor itself (tens of KB a product, every round).
    pipeline = connection.pipeline(transaction=False)
    for key, _, _ in named:
        pipeline.hexists(key, DEPLOYED_FIELD)
        pipeline.hget(key, "status")
    replies = pipeline.execute() if named else []
    found = [(data_product, environment) for index, (_, data_product, environment) in enumerate(named)
             if replies[2 * index] or (replies[2 * index + 1] is not None
                                       and json.loads(replies[2 * index + 1]) in SUCCESSFUL)]
    return sorted(found)
