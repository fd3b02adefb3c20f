"""The reaper's repairs: a deployment that holds its lock but whose driving job is gone or failed for good.

RQ retries jobs whose worker died and runs failure callbacks, so these cases are rare: a process that
died between taking a lock and queueing the validation job, a validation job that died between two of
its steps after its retries, a failure callback that itself failed. Without a repair such a deployment
would keep its lock for ever (the reaper renews the leases of active deployments). A deployment must
look stuck on two reaper rounds at least `grace` seconds apart before anything is done, so that a
caller in the middle of those steps is never overtaken.
"""

from __future__ import annotations

import time
from enum import StrEnum

import redis
from rq.job import Job, JobStatus

from bot.engine.deployment import DeploymentState
from bot.engine.runner import (
    end_corrupt,
    end_refused,
    enqueue_prepare,
    enqueue_tasks,
    finish_job_id,
    prepare_job_id,
)
from bot.engine.store import ACTIVE_KEY, PREFIX, Deployment, Store, as_text

GRACE_SECONDS = 10.0
PENDING_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
                              JobStatus.READY_TO_ENQUEUE})


class Repair(StrEnum):
    """What a deployment needs, decided from its state and its jobs' statuses."""

    NONE = "none"
    START_VALIDATION = "start validation"
    ENQUEUE_TASKS = "enqueue tasks"
    REFUSE = "refuse"
    CORRUPT = "corrupt"


def needed_repair(state: DeploymentState, prepare: JobStatus | None, finish: JobStatus | None) -> Repair:
    """The repair for a deployment holding its lock, from the statuses of its validation and final jobs."""
    if state in (DeploymentState.QUEUED, DeploymentState.VALIDATING):
        if prepare is None:
            return Repair.START_VALIDATION
        if prepare in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return Repair.REFUSE
        return Repair.NONE
    if state is DeploymentState.IN_PROGRESS:
        if finish is None:
            # validation ended (or died after its retries) without the task jobs being queued
            return Repair.ENQUEUE_TASKS if prepare is None or prepare not in PENDING_STATUSES else Repair.NONE
        if finish in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return Repair.CORRUPT
    return Repair.NONE


def stuck_key(deployment_id: str) -> str:
    """Where the reaper notes the repair a deployment looked in need of, and since when."""
    return f"{PREFIX}:stuck:{deployment_id}"


def current_need(connection: redis.Redis, deployment_id: str, state: DeploymentState) -> Repair:
    """The repair a deployment in state looks in need of now, from its jobs' statuses (two HGETs)."""
    return needed_repair(state, _status(connection, prepare_job_id(deployment_id)),
                         _status(connection, finish_job_id(deployment_id)))


def repair(connection: redis.Redis, deployment: Deployment, grace: float = GRACE_SECONDS) -> Repair:
    """Repair one active deployment once it has needed the same repair for `grace` seconds; returns what was done."""
    store = Store(connection)
    if deployment.state.finished:
        connection.srem(ACTIVE_KEY, deployment.id)
        return Repair.NONE
    needed = current_need(connection, deployment.id, deployment.state)
    key = stuck_key(deployment.id)
    if needed is Repair.NONE:
        connection.delete(key)
        return Repair.NONE
    now = time.time()
    seen = connection.get(key)
    seen_need, _, seen_at = (as_text(seen) if seen else "").partition("|")
    if seen_need != needed:  # first sighting of this need: look again on a later round
        connection.set(key, f"{needed}|{now}", ex=int(grace * 10) + 60)
        return Repair.NONE
    if now - float(seen_at) < grace:
        return Repair.NONE
    connection.delete(key)
    if needed is Repair.START_VALIDATION:
        if deployment.state is DeploymentState.QUEUED:
            store.set_state(deployment.id, DeploymentState.VALIDATING)
        enqueue_prepare(connection, deployment.id)
    elif needed is Repair.ENQUEUE_TASKS:
        enqueue_tasks(connection, deployment)
    elif needed is Repair.REFUSE:
        end_refused(connection, deployment.id,
                    "could not validate: the validation job failed and its failure was not recorded; "
                    "nothing was provisioned", DeploymentState.FAILED)
    elif needed is Repair.CORRUPT:
        end_corrupt(connection, deployment.id,
                    "the final step failed and its failure was not recorded; what the tasks left behind is unknown")
    return needed


def _status(connection: redis.Redis, job_id: str) -> JobStatus | None:
    status = connection.hget(Job.key_for(job_id), "status")
    return JobStatus(as_text(status)) if status else None
