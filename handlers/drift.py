"""RQ jobs: a round of the drift sweep (which deployed data products are due a check), then the next round
scheduled; and the drift check of one data product in one environment (bot.forge.drift_issue)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from rq import Queue, get_current_job

from bot.config import ServerConfig, config_path, load_config
from bot.engine.drift import (
    checked_seconds_ago,
    deployed_products,
    drift_intervals,
    due,
    load_report,
    round_seconds,
    sweep_enabled,
)
from bot.engine.periodic import DRIFT, DRIFT_JOB, begin_round, end_round, schedule_next
from bot.forge.drift_issue import check_and_report
from bot.metrics import count_event
from vcs import factory

log = logging.getLogger("meshbot.drift")

CHECK_JOB = "handlers.drift.check"
CHECK_TIMEOUT_SECONDS = 1800  # every component of one data product, each bounded by the drift check's timeout
PENDING_SECONDS = 3600  # a check queued is not queued again for this long (unless it ends first)


def sweep() -> str:
    """One round: claim the round lock, schedule the next round, queue a check of each due data product."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    connection: redis.Redis = job.connection
    config = load_config(config_path(None))
    if not sweep_enabled(config):
        return "drift sweep off (drift_interval_seconds is 0 in every environment)"
    if not begin_round(connection, DRIFT, job.id):
        return "skipped: another drift sweep is running"
    try:
        queue = Queue(job.origin, connection=connection, serializer=job.serializer)
        return run_sweep(queue, config)
    finally:
        end_round(connection, DRIFT, job.id)


def run_sweep(queue: Queue, config: ServerConfig, now: datetime | None = None) -> str:
    """Schedule the next round and queue a check of every deployed data product whose last check is too old."""
    connection = queue.connection
    now = now or datetime.now(UTC)
    products = deployed_products(connection)
    environments = sorted({environment for _, environment in products} | set(config.environments or ()))
    intervals = drift_intervals(config, environments)
    # Scheduled first: a worker dying in the middle of this round still leaves the next one due.
    schedule_next(queue, DRIFT, DRIFT_JOB, round_seconds(list(intervals.values())))
    queued = 0
    for data_product, environment in products:
        report = load_report(connection, data_product, environment)
        if not due(checked_seconds_ago(report, now), intervals[environment]):
            continue
        if not connection.set(pending_key(data_product, environment), "1", nx=True, ex=PENDING_SECONDS):
            continue  # queued by an earlier round and not done yet
        queue.enqueue(CHECK_JOB, data_product, environment, job_timeout=CHECK_TIMEOUT_SECONDS,
                      description=f"drift check of {data_product} in {environment}")
        queued += 1
    log.info("drift sweep: %d deployed data product(s), %d check(s) queued", len(products), queued)
    return f"{len(products)} deployed data product(s): {queued} drift check(s) queued"


def check(data_product: str, environment: str) -> str:
    """Check one data product in one environment for drift and open, edit or close its issue."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    connection: redis.Redis = job.connection
    try:
        result = check_and_report(connection, load_config(config_path(None)), data_product, environment,
                                  factory.forge)
    finally:
        connection.delete(pending_key(data_product, environment))
    if result.forge is not None:
        count_event(connection, result.forge, "drift_check", result.api_calls)
    return result.message


def pending_key(data_product: str, environment: str) -> str:
    """Set while a drift check of the data product in the environment is queued or running."""
    return f"meshbot:drift-pending:{data_product}:{environment}"
