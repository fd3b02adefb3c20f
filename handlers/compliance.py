"""RQ jobs: a round of the compliance sweep (every minute: has the policy set changed, or is a daily check due?),
and the compliance check of one data product in every environment where it is deployed (bot.forge.compliance_issue).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import redis
from rq import Queue, get_current_job

from bot.config import ServerConfig, config_path, load_config
from bot.descriptor.errors import InputErrors
from bot.engine import compliance
from bot.engine.drift import deployed_products
from bot.engine.periodic import (
    COMPLIANCE,
    COMPLIANCE_JOB,
    COMPLIANCE_ROUND_SECONDS,
    begin_round,
    end_round,
    schedule_next,
)
from bot.forge.compliance_issue import check_product
from bot.metrics import count_compliance, count_event
from policies.loader import policies_for
from vcs import factory

log = logging.getLogger("meshbot.compliance")

CHECK_JOB = "handlers.compliance.check"
CHECK_TIMEOUT_SECONDS = 600
PENDING_SECONDS = 3600  # a check queued is not queued again for this long (unless it ends first)


def sweep() -> str:
    """One round: claim the round lock, schedule the next round, queue the checks when the policies changed or the
    last full check is older than compliance.interval_seconds."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    connection: redis.Redis = job.connection
    if not begin_round(connection, COMPLIANCE, job.id):
        return "skipped: another compliance round is running"
    try:
        queue = Queue(job.origin, connection=connection, serializer=job.serializer)
        schedule_next(queue, COMPLIANCE, COMPLIANCE_JOB, COMPLIANCE_ROUND_SECONDS)
        return run_sweep(queue, load_config(config_path(None)))
    finally:
        end_round(connection, COMPLIANCE, job.id)


def run_sweep(queue: Queue, config: ServerConfig, now: datetime | None = None) -> str:
    """Queue a check of every deployed (or formerly checked) data product when a full check is due."""
    connection = queue.connection
    now = now or datetime.now(UTC)
    try:
        policies = policies_for(config, connection=connection)
    except InputErrors as error:
        log.warning("compliance round: the policies cannot be read: %s", error)
        return f"the policies cannot be read: {error}"
    current = compliance.fingerprint(policies, now.date())
    reason = compliance.full_check_due(compliance.round_state(connection), current, config.compliance.interval_seconds,
                                       now)
    deployed = deployed_products(connection)
    if reason is None:
        environments = compliance.unchecked(compliance.deployed_deployments(connection, deployed),
                                            compliance.checked_deployments(connection, deployed),
                                            compliance.checked_pairs(connection))
        queued = sum(enqueue_check(queue, product, names) for product, names in environments.items())
        return f"policies unchanged: {queued} data product(s) deployed or undeployed since their last check queued"
    environments = {product: [] for product in compliance.checked_products(connection)}
    for data_product, environment in deployed:
        environments.setdefault(data_product, []).append(environment)
    queued = sum(enqueue_check(queue, product, names) for product, names in sorted(environments.items()))
    compliance.save_round(connection, compliance.RoundState(current, compliance.iso(now)))
    log.info("compliance round (%s): %d data product(s), %d check(s) queued", reason, len(environments), queued)
    return f"{reason}: {len(environments)} data product(s), {queued} compliance check(s) queued"


def enqueue_check(queue: Queue, data_product: str, environments: Sequence[str]) -> bool:
    """Queue the compliance check of a data product unless one is queued already; whether it was queued."""
    if not queue.connection.set(pending_key(data_product), "1", nx=True, ex=PENDING_SECONDS):
        return False
    queue.enqueue(CHECK_JOB, data_product, list(environments), job_timeout=CHECK_TIMEOUT_SECONDS,
                  result_ttl=3600, failure_ttl=86400, description=f"compliance check of {data_product}")
    return True


def check(data_product: str, environments: list[str]) -> str:
    """Evaluate today's policies on what is deployed of one data product, store the results, sync its issue."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    connection: redis.Redis = job.connection
    try:
        config = load_config(config_path(None))
        policies = policies_for(config, connection=connection)
        now = datetime.now(UTC)
        result = check_product(connection, config, data_product, environments, policies,
                               compliance.fingerprint(policies, now.date()), now, factory.forge)
    except InputErrors as error:
        log.warning("compliance check of %s: the configuration or the policies cannot be read: %s", data_product,
                    error)
        return f"the configuration or the policies cannot be read: {error}"
    finally:
        connection.delete(pending_key(data_product))
    count_compliance(connection, [(checked.environment, checked.outcome) for checked in result.results])
    if result.forge is not None:
        count_event(connection, result.forge, "compliance_check", result.api_calls)
    return result.message


def pending_key(data_product: str) -> str:
    """Set while a compliance check of the data product is queued or running."""
    return f"{compliance.PREFIX}:compliance-pending:{data_product}"
