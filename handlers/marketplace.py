"""Job: deliver a deployment's CloudEvent to one marketplace URL, signed; RQ retries it with back-off on failure.

The event is built from the stored deployment (bot.engine.marketplace.build_event), so every attempt sends the
same bytes. Without MESHBOT_MARKETPLACE_SECRET nothing is sent (fail-closed, like the forge webhooks): the job logs
an error and ends.
"""

from __future__ import annotations

import logging
import os

import requests
from rq import get_current_job

from bot.engine import marketplace
from bot.engine.deployed import RedisDeployedStates
from bot.engine.store import Store

LOG = logging.getLogger(__name__)


def deliver(deployment_id: str, url: str) -> str:
    """POST the event of a deployment's end to url; raise (so RQ retries) when the marketplace does not take it."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    store = Store(job.connection)
    deployment = store.load(deployment_id)
    if deployment is None:
        return "unknown deployment"
    kind = marketplace.event_type(deployment.operation, deployment.state)
    if kind is None:
        return f"no event for a deployment that ended {deployment.state}"
    secret = os.environ.get(marketplace.SECRET_VARIABLE, "")
    if not secret:
        LOG.error("marketplace event %s not sent to %s: %s is not set (events are never sent unsigned)",
                  kind, url, marketplace.SECRET_VARIABLE)
        return f"not sent: {marketplace.SECRET_VARIABLE} is not set"
    deployed = RedisDeployedStates(job.connection).deployed(deployment.data_product, deployment.environment)
    descriptor = deployed.descriptor if kind == marketplace.DEPLOYED and deployed is not None and \
        deployed.deployment == deployment_id else None
    recorded = store.task_states(deployment_id)
    event = marketplace.build_event(
        kind=kind, deployment_id=deployment_id, data_product=deployment.data_product,
        environment=deployment.environment, version=deployment.version, operation=deployment.operation,
        state=deployment.state, message=deployment.message, time=deployment.finished_at or deployment.created_at,
        tasks={task.id: recorded.get(task.id, {}) for task in deployment.tasks}, descriptor=descriptor)
    body = marketplace.encode(event)
    response = requests.post(url, data=body, timeout=marketplace.TIMEOUT_SECONDS, headers={
        "Content-Type": marketplace.CONTENT_TYPE, marketplace.SIGNATURE_HEADER: marketplace.signature(body, secret)})
    if response.status_code >= 300:
        raise RuntimeError(f"the marketplace at {url} answered HTTP {response.status_code} to {event['id']}")
    return f"sent {event['id']} to {url}: HTTP {response.status_code}"
