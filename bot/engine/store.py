"""Deployment records and data product statuses in Redis, the engine's only state store."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from bot.engine.answer_bounds import bounded_answer
from bot.engine.deployment import DeploymentState, Operation, TaskState

PREFIX = "meshbot"
DEFAULT_HISTORY = 50
MAX_LOG_ENTRIES = 200


def as_text(value: Any) -> str:
    """A Redis reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deployment_key(deployment_id: str) -> str:
    """The hash holding one deployment."""
    return f"{PREFIX}:deployment:{deployment_id}"


def tasks_key(deployment_id: str) -> str:
    """The hash of one deployment's task states, by task id."""
    return f"{PREFIX}:deployment:{deployment_id}:tasks"


def product_key(data_product: str, environment: str) -> str:
    """The hash holding a data product's status in one environment."""
    return f"{PREFIX}:product:{data_product}:{environment}"


def history_key(data_product: str, environment: str) -> str:
    """The list of a data product's deployment ids in one environment, newest first."""
    return f"{PREFIX}:history:{data_product}:{environment}"


PAIRS_KEY = f"{PREFIX}:product-environments"  # "<data product>:<environment>" of every product record or history
PAIRS_COMPLETE_KEY = f"{PREFIX}:product-environments:complete"  # set once records older than PAIRS_KEY are in it


def pair_member(data_product: str, environment: str) -> str:
    """The member of PAIRS_KEY for a data product in an environment (environment names hold no colon)."""
    return f"{data_product}:{environment}"


ACTIVE_KEY = f"{PREFIX}:active"  # ids of deployments that hold their lock (started) and have not finished


@dataclass(slots=True)
class PlannedTask:
    """A task as the deployment record keeps it: enough for a worker to run it with nothing else."""

    id: str
    kind: str
    depends_on: list[str]
    adapter_url: str | None = None
    adapter_timeout: float = 600.0
    adapter_ca_bundle: str | None = None  # the adapter's CA bundle (server configuration), else the environment's
    removal: bool = False  # a deploy's removal of a component no longer in the repository (an unprovision)

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        adapter = {"url": self.adapter_url, "timeout": self.adapter_timeout}
        if self.adapter_ca_bundle:
            adapter["ca_bundle"] = self.adapter_ca_bundle
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "depends_on": self.depends_on,
                                "adapter": adapter if self.adapter_url else None}
        if self.removal:
            data["removal"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedTask:
        """From plain data."""
        adapter = data.get("adapter") or {}
        return cls(id=data["id"], kind=data["kind"], depends_on=list(data["depends_on"]),
                   adapter_url=adapter.get("url"), adapter_timeout=float(adapter.get("timeout", 600.0)),
                   adapter_ca_bundle=adapter.get("ca_bundle"), removal=bool(data.get("removal")))


@dataclass(slots=True)
class Deployment:
    """One deployment or undeployment of one data product version to one environment."""

    id: str
    data_product: str
    environment: str
    version: str
    operation: Operation
    descriptor: dict[str, Any]
    tasks: list[PlannedTask]
    started_by: str
    remove_data: bool = False
    marketplace: list[str] = field(default_factory=list)
    history: int = DEFAULT_HISTORY
    report_to: dict[str, Any] | None = None  # plain data for the job that reports the outcome (e.g. to a forge)
    scope: dict[str, Any] | None = None  # bot.engine.reconcile.Scope as plain data; None: provision everything
    reconciliation: dict[str, Any] | None = None  # bot.engine.reconcile.Reconciliation.as_json(), once planned
    previous: dict[str, Any] | None = None  # what may be provisioned before it: removals are sent this descriptor
    adapters: dict[str, Any] = field(default_factory=dict)  # task id -> adapter of every task it may plan, removals too
    state: DeploymentState = DeploymentState.QUEUED
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""

    def static_json(self) -> dict[str, Any]:
        """The parts that never change after the request."""
        return {
            "id": self.id, "dataProduct": self.data_product, "environment": self.environment,
            "version": self.version, "operation": str(self.operation), "descriptor": self.descriptor,
            "tasks": [task.as_json() for task in self.tasks], "startedBy": self.started_by,
            "removeData": self.remove_data, "marketplace": self.marketplace, "history": self.history,
            "createdAt": self.created_at, "reportTo": self.report_to, "scope": self.scope,
            "reconciliation": self.reconciliation, "previous": self.previous, "adapters": self.adapters,
        }

    def task(self, task_id: str) -> PlannedTask:
        """The planned task with that id."""
        return next(task for task in self.tasks if task.id == task_id)


SUMMARY_FIELD = "summary"  # in the deployment hash: what lists show, so that they never parse the whole record


def deployment_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The few fields of a deployment's record (static_json) that lists show: no descriptor, no tasks (pure)."""
    descriptor = record.get("descriptor") or {}
    return {"operation": record.get("operation"), "version": record.get("version"),
            "startedBy": record.get("startedBy"), "createdAt": record.get("createdAt"),
            "reportTo": record.get("reportTo"), "name": descriptor.get("name"),
            "description": descriptor.get("description"), "domain": descriptor.get("domain")}


def new_deployment_id() -> str:
    """A sortable, unique deployment id: time, then randomness."""
    return f"{int(time.time() * 1000):013d}-{secrets.token_hex(4)}"


def _deployment(record: dict[str, Any], values: dict[str, str]) -> Deployment:
    return Deployment(
        id=record["id"], data_product=record["dataProduct"], environment=record["environment"],
        version=record["version"], operation=Operation(record["operation"]), descriptor=record["descriptor"],
        tasks=[PlannedTask.from_json(task) for task in record["tasks"]], started_by=record["startedBy"],
        remove_data=record["removeData"], marketplace=record["marketplace"], history=record["history"],
        report_to=record.get("reportTo"), scope=record.get("scope"), reconciliation=record.get("reconciliation"),
        previous=record.get("previous"), adapters=record.get("adapters") or {},
        state=DeploymentState(values.get("state", DeploymentState.QUEUED)),
        created_at=record["createdAt"],
        started_at=values.get("startedAt"), finished_at=values.get("finishedAt"), message=values.get("message", ""),
    )


class Store:
    """Reads and writes the engine's records; every method is a few Redis round trips at most."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    # ------------------------------------------------------------------ deployments

    def create(self, deployment: Deployment) -> None:
        """Record a new deployment and its pending tasks, and add it to its history (bounded)."""
        pending: dict[Any, Any] = {
            task.id: json.dumps({"state": TaskState.PENDING, "kind": task.kind}) for task in deployment.tasks
        }
        history = history_key(deployment.data_product, deployment.environment)
        record = deployment.static_json()
        with self.redis.pipeline() as pipeline:
            pipeline.sadd(PAIRS_KEY, pair_member(deployment.data_product, deployment.environment))
            pipeline.hset(deployment_key(deployment.id), mapping={
                "record": json.dumps(record),
                SUMMARY_FIELD: json.dumps(deployment_summary(record)),
                "state": str(deployment.state),
                "message": deployment.message,
            })
            if pending:
                pipeline.hset(tasks_key(deployment.id), mapping=pending)
            pipeline.lpush(history, deployment.id)
            pipeline.lrange(history, deployment.history, -1)
            pipeline.ltrim(history, 0, deployment.history - 1)
            dropped = pipeline.execute()[-2]
        for old in dropped:  # oldest last
            old_id = as_text(old)
            state = self.redis.hget(deployment_key(old_id), "state")
            if state is not None and not DeploymentState(as_text(state)).finished:
                self.redis.rpush(history, old_id)  # queued or running: its jobs still need it; a later create drops it
            else:
                self.redis.delete(deployment_key(old_id), tasks_key(old_id))

    def load(self, deployment_id: str) -> Deployment | None:
        """A deployment, or None when it is unknown (or dropped from history)."""
        fields = self.redis.hgetall(deployment_key(deployment_id))
        if not fields:
            return None
        values = {as_text(key): as_text(value) for key, value in fields.items()}
        return _deployment(json.loads(values["record"]), values)

    def load_static(self, deployment_id: str) -> Deployment | None:
        """Only what never changes after the request (state, times and message left at their defaults)."""
        record = self.redis.hget(deployment_key(deployment_id), "record")
        return None if record is None else _deployment(json.loads(record), {})

    def replan(self, deployment: Deployment) -> None:
        """Replace a deployment's tasks and reconciliation before it runs (its pending task records with them)."""
        pending: dict[Any, Any] = {
            task.id: json.dumps({"state": TaskState.PENDING, "kind": task.kind}) for task in deployment.tasks
        }
        with self.redis.pipeline() as pipeline:
            pipeline.hset(deployment_key(deployment.id), "record", json.dumps(deployment.static_json()))
            pipeline.delete(tasks_key(deployment.id))
            if pending:
                pipeline.hset(tasks_key(deployment.id), mapping=pending)
            pipeline.execute()

    def save_descriptor_yaml(self, deployment_id: str, text: str) -> None:
        """Keep the descriptor as written for the adapters, so that every worker sends the same bytes."""
        self.redis.hset(deployment_key(deployment_id), "descriptorYaml", text)

    def descriptor_yaml(self, deployment_id: str) -> str | None:
        """The descriptor as written for the adapters, once the deployment has been validated."""
        text = self.redis.hget(deployment_key(deployment_id), "descriptorYaml")
        return None if text is None else as_text(text)

    def set_state(self, deployment_id: str, state: DeploymentState, message: str | None = None) -> None:
        """Move a deployment to a state, stamping start and end times."""
        mapping: dict[Any, Any] = {"state": str(state)}
        if message is not None:
            mapping["message"] = message
        if state in (DeploymentState.VALIDATING,):
            mapping["startedAt"] = now_iso()
        if state.finished:
            mapping["finishedAt"] = now_iso()
        with self.redis.pipeline() as pipeline:
            pipeline.hset(deployment_key(deployment_id), mapping=mapping)
            if state.finished:
                pipeline.srem(ACTIVE_KEY, deployment_id)
            elif state is DeploymentState.VALIDATING:
                pipeline.sadd(ACTIVE_KEY, deployment_id)
            pipeline.execute()

    def active(self) -> list[str]:
        """Deployments that hold their lock and have not finished."""
        return sorted(as_text(member) for member in self.redis.smembers(ACTIVE_KEY))

    # ------------------------------------------------------------------ tasks

    def task_states(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        """Every task's record, by task id."""
        fields = self.redis.hgetall(tasks_key(deployment_id))
        return {as_text(key): json.loads(value) for key, value in fields.items()}

    def task_records(self, deployment_id: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The records of some tasks only (one HMGET: a task reads itself and its dependencies, not all)."""
        if not task_ids:
            return {}
        values = self.redis.hmget(tasks_key(deployment_id), task_ids)
        return {task_id: json.loads(value) for task_id, value in zip(task_ids, values, strict=True) if value}

    def update_task(
        self, deployment_id: str, task_id: str, known: dict[str, Any] | None = None, **changes: Any
    ) -> dict[str, Any]:
        """Merge changes into one task's record (a worker owns its task, so read-modify-write is safe).

        The adapter's answer in changes is bounded first: the last MAX_LOG_ENTRIES log entries, and each of
        message, info, logs and details within answer_bounds.MAX_PART_BYTES (what was cut is noted in the part).

        `known` is the record as the caller last read or wrote it, which saves reading it again.
        """
        if known is None:
            raw = self.redis.hget(tasks_key(deployment_id), task_id)
            known = json.loads(raw) if raw else {}
        record = dict(known)
        if "logs" in changes and isinstance(changes["logs"], list):
            changes["logs"] = changes["logs"][-MAX_LOG_ENTRIES:]
        changes = bounded_answer(changes)  # an adapter's answer: message, info, logs, details at 256 KiB each
        record.update({key: str(value) if isinstance(value, TaskState) else value for key, value in changes.items()})
        self.redis.hset(tasks_key(deployment_id), task_id, json.dumps(record))
        return record

    # ------------------------------------------------------------------ data products

    def product(self, data_product: str, environment: str) -> dict[str, Any]:
        """The status record of a data product in an environment (empty when never deployed)."""
        fields = self.redis.hgetall(product_key(data_product, environment))
        return {as_text(key): json.loads(value) for key, value in fields.items()}

    def set_product(self, data_product: str, environment: str, **values: Any) -> None:
        """Update fields of a data product's status record."""
        with self.redis.pipeline(transaction=False) as pipeline:
            pipeline.hset(product_key(data_product, environment),
                          mapping={key: json.dumps(value) for key, value in values.items()})
            pipeline.sadd(PAIRS_KEY, pair_member(data_product, environment))
            pipeline.execute()

    def drop_product_fields(self, data_product: str, environment: str, *names: str) -> None:
        """Remove fields of a data product's status record."""
        self.redis.hdel(product_key(data_product, environment), *names)

    def history(self, data_product: str, environment: str) -> list[str]:
        """Deployment ids of a data product in an environment, newest first."""
        return [as_text(item) for item in self.redis.lrange(history_key(data_product, environment), 0, -1)]
