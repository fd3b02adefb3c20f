"""Periodic jobs on RQ's own scheduling: a round when workers start, each round scheduling the next, one at a time.

Several replicas share one Redis: a start enqueues a round only when no other worker did within the guard time,
a round runs only when it holds the round lock (others answer "skipped"), and only one next round is ever
scheduled (a marker holds its job id). Scheduled jobs are enqueued by the reaper's scheduler step
(bot.engine.worker.enqueue_due_retries), so no RQ scheduler process is needed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq.queue import Queue

from bot.config import ServerConfig, config_path, load_config
from bot.descriptor.errors import InputErrors
from bot.engine.store import PREFIX

log = logging.getLogger("meshbot.periodic")

CATCH_UP = "catch-up"
CATCH_UP_JOB = "handlers.catch_up.sweep"  # bot.forge.router.CATCH_UP (the engine names jobs by string)
DRIFT = "drift"
DRIFT_JOB = "handlers.drift.sweep"
COMPLIANCE = "compliance"
COMPLIANCE_JOB = "handlers.compliance.sweep"
COMPLIANCE_ROUND_SECONDS = 60  # a compliance round only compares the policy set's fingerprint unless a check is due
SWEEPS_DUE_LOOK_SECONDS = 60  # how often a running worker looks whether the drift and compliance sweeps should start
START_GUARD_SECONDS = 60  # workers starting together (serve --workers N, replicas) start one round
ROUND_TIMEOUT_SECONDS = 1800  # the longest a round may run; its lock lapses after this
RESULT_TTL_SECONDS = 86400


def _key(name: str, what: str) -> str:
    return f"{PREFIX}:periodic:{name}:{what}"


def enqueue_round(queue: Queue, name: str, function: str, delay_seconds: int = 0) -> str:
    """Enqueue a round of a periodic job now, or schedule it after delay_seconds; its job id."""
    options = {"job_timeout": ROUND_TIMEOUT_SECONDS, "result_ttl": RESULT_TTL_SECONDS,
               "failure_ttl": RESULT_TTL_SECONDS, "description": f"{name} round"}
    if delay_seconds > 0:
        return str(queue.enqueue_in(timedelta(seconds=delay_seconds), function, **options).id)
    return str(queue.enqueue(function, **options).id)


def start_round(queue: Queue, name: str, function: str) -> str | None:
    """A round when workers start, unless another worker started one within START_GUARD_SECONDS; its job id."""
    if not queue.connection.set(_key(name, "started"), "1", nx=True, ex=START_GUARD_SECONDS):
        return None
    return enqueue_round(queue, name, function)


def begin_round(connection: redis.Redis, name: str, job_id: str, timeout: int = ROUND_TIMEOUT_SECONDS) -> bool:
    """Claim the round lock for job_id (False: another round runs); a scheduled round clears its marker."""
    next_key = _key(name, "next")
    if connection.get(next_key) == job_id.encode():
        connection.delete(next_key)  # this is the scheduled round: the next one may be scheduled again
    running = _key(name, "running")
    if connection.set(running, job_id, nx=True, ex=timeout):
        return True
    return connection.get(running) == job_id.encode()  # a SET retried after its reply was lost: it is ours


def end_round(connection: redis.Redis, name: str, job_id: str) -> None:
    """Release the round lock if job_id holds it."""
    key = _key(name, "running")
    if connection.get(key) == job_id.encode():
        connection.delete(key)


def schedule_next(queue: Queue, name: str, function: str, interval_seconds: int) -> str | None:
    """Schedule the next round in interval_seconds unless one is scheduled already; its job id."""
    # The marker lapses a little after the round is due, so a round lost with Redis's data is scheduled again.
    marker = _key(name, "next")
    if not queue.connection.set(marker, "pending", nx=True, ex=interval_seconds + ROUND_TIMEOUT_SECONDS):
        return None
    job_id = enqueue_round(queue, name, function, interval_seconds)
    queue.connection.set(marker, job_id, xx=True, keepttl=True)
    return job_id


def start_periodic_jobs(queue: Queue) -> None:
    """When a long-running worker starts: the first round of the catch-up sweep, if the configuration asks for
    sweeps, of the drift sweep, if some environment checks drift and something is deployed there, and of the
    compliance sweep, if something is deployed."""
    try:
        config = load_config(config_path(None))
    except (InputErrors, OSError) as error:
        log.warning("not starting the periodic sweeps: the configuration cannot be read (%s)", error)
        return
    if config.catch_up.enabled:
        try:
            start_round(queue, CATCH_UP, CATCH_UP_JOB)
        except redis.RedisError as error:  # Redis down at start: the next start (or a scheduled round) sweeps
            log.warning("not starting the catch-up sweep: %s", error)
    start_drift_sweep(queue, config)
    start_compliance_sweep(queue)


def start_compliance_sweep(queue: Queue) -> str | None:
    """A compliance round, unless one is scheduled or running or nothing is deployed; its job id."""
    from bot.engine.drift import deployed_products

    connection = queue.connection
    try:
        if connection.exists(_key(COMPLIANCE, "next"), _key(COMPLIANCE, "running")):
            return None
        if not deployed_products(connection):
            return None
        return start_round(queue, COMPLIANCE, COMPLIANCE_JOB)
    except redis.RedisError as error:
        log.warning("not starting the compliance sweep: %s", error)
        return None


def start_due_sweeps(queue: Queue) -> None:
    """A running worker's look, every minute: start the drift and compliance sweeps that have become due."""
    start_drift_sweep(queue)
    start_compliance_sweep(queue)


def start_drift_sweep(queue: Queue, config: ServerConfig | None = None) -> str | None:
    """A drift sweep round, unless one is scheduled or running, drift is off, or nothing is deployed where drift
    is checked (a later start, or a worker's look a minute later, starts it once something is); its job id."""
    from bot.engine.drift import deployed_products, drift_intervals, sweep_enabled

    try:
        config = config or load_config(config_path(None))
    except (InputErrors, OSError) as error:
        log.warning("not starting the drift sweep: the configuration cannot be read (%s)", error)
        return None
    if not sweep_enabled(config):
        return None
    connection = queue.connection
    try:
        if connection.exists(_key(DRIFT, "next"), _key(DRIFT, "running")):
            return None
        products = deployed_products(connection)
        intervals = drift_intervals(config, sorted({environment for _, environment in products}))
        if not any(intervals[environment] for _, environment in products):
            return None
        return start_round(queue, DRIFT, DRIFT_JOB)
    except redis.RedisError as error:
        log.warning("not starting the drift sweep: %s", error)
        return None
