"""Following a deployment in the Store: one line per finished task, and the outcome as text or JSON."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from bot.engine.deployment import DeploymentState, TaskState
from bot.engine.locks import Locks
from bot.engine.runner import task_view
from bot.engine.store import Deployment, Store

POLL_SECONDS = 0.2
RELEASE_WAIT_SECONDS = 5.0  # after the outcome is recorded, how long to wait for the lock to pass on
MARKS = {TaskState.COMPLETED: "✓", TaskState.FAILED: "✗", TaskState.SKIPPED: "–"}
TASK_FIELDS = ("id", "kind", "state", "message", "startedAt", "finishedAt", "attempts")


class WorkersGone(RuntimeError):
    """Raised when the deployment cannot go on: every local worker has stopped."""


def duration(record: dict[str, Any]) -> str:
    """How long a task ran, as '0.04 s', or '' when it never started."""
    started, finished = record.get("startedAt"), record.get("finishedAt")
    if not started or not finished:
        return ""
    seconds = (_parse(finished) - _parse(started)).total_seconds()
    return f"{max(seconds, 0.0):.2f} s"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def task_line(record: dict[str, Any], kind_width: int, id_width: int) -> str:
    """`✓ storage  urn:...:ledger  0.04 s  message`."""
    mark = MARKS.get(TaskState(record.get("state", "PENDING")), "·")
    parts = [f"{mark} {str(record.get('kind', '')).ljust(kind_width)}", str(record["id"]).ljust(id_width),
             duration(record).rjust(7) if duration(record) else "      –", str(record.get("message", ""))]
    return "  ".join(parts).rstrip()


def follow(
    store: Store,
    deployment_id: str,
    out: TextIO | None,
    workers_alive: Callable[[], bool] = lambda: True,
    poll: float = POLL_SECONDS,
) -> Deployment:
    """Poll the Store until the deployment has finished, printing progress to out (None: print nothing)."""
    printed: set[str] = set()
    announced: set[str] = set()
    phase: DeploymentState | None = None
    tasks = task_view(store, deployment_id)
    kind_width = max((len(str(task.get("kind", ""))) for task in tasks), default=0)
    id_width = max((len(str(task["id"])) for task in tasks), default=0)
    while True:
        deployment = store.load(deployment_id)
        if deployment is None:
            raise WorkersGone(f"deployment {deployment_id} is no longer in Redis")
        if out is not None and deployment.state != phase:
            phase = deployment.state
            # Polls can miss a phase on a fast deployment: print each announcement once, in order.
            if phase is not DeploymentState.QUEUED and "validating" not in announced:
                announced.add("validating")
                _write(out, "validating the descriptor with the tech adapters …")
            if phase not in (DeploymentState.QUEUED, DeploymentState.VALIDATING, DeploymentState.REFUSED,
                             DeploymentState.FAILED) \
                    and "validated" not in announced:
                announced.add("validated")
                _write(out, f"validated; running {len(tasks)} task{'s' if len(tasks) != 1 else ''}")
        if out is not None:
            finished = [record for record in task_view(store, deployment_id)
                        if record["id"] not in printed
                        and record.get("state", TaskState.PENDING) in (TaskState.COMPLETED, TaskState.FAILED,
                                                                       TaskState.SKIPPED)]
            for record in sorted(finished, key=lambda r: str(r.get("finishedAt") or "")):
                printed.add(record["id"])
                _write(out, task_line(record, kind_width, id_width))
        if deployment.state.finished:
            _wait_for_release(Locks(store.redis), deployment, poll)
            return deployment
        if not workers_alive():
            raise WorkersGone("every local worker has stopped")
        time.sleep(poll)


def _wait_for_release(locks: Locks, deployment: Deployment, poll: float) -> None:
    """finish() records the outcome, then releases the lock: wait for that, so local workers stop after it."""
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while (locks.holder(deployment.data_product, deployment.environment) == deployment.id
           and time.monotonic() < deadline):
        time.sleep(min(poll, 0.05))


def _write(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def deployment_json(store: Store, deployment: Deployment) -> dict[str, Any]:
    """The outcome of a deployment as one JSON document."""
    return {
        "id": deployment.id, "dataProduct": deployment.data_product, "environment": deployment.environment,
        "operation": str(deployment.operation), "state": str(deployment.state), "message": deployment.message,
        "tasks": [{key: record.get(key) for key in TASK_FIELDS} for record in task_view(store, deployment.id)],
    }
