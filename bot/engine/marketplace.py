"""Marketplace events: how a deployment's end becomes one signed CloudEvent 1.0 (structured JSON mode), pure.

The job that delivers an event to one URL is handlers.marketplace.deliver (enqueued by bot.engine.runner when a
deployment ends); everything it decides (which event, its body, its signature, its job id) is here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from bot.engine.deployment import DeploymentState, Operation

SECRET_VARIABLE = "MESHBOT_MARKETPLACE_SECRET"
SIGNATURE_HEADER = "X-Meshbot-Signature-256"
CONTENT_TYPE = "application/cloudevents+json"
RETRY_INTERVALS_VARIABLE = "MESHBOT_MARKETPLACE_RETRY_INTERVALS"  # seconds between attempts, e.g. "10,60,300"
RETRY_INTERVALS = (10, 60, 300, 900, 3600)  # five retries over about 1 h 20 min
TIMEOUT_SECONDS = 10.0
EVENT_PREFIX = "dev.meshbot.dataproduct."
DEPLOYED, UNDEPLOYED, FAILED = (EVENT_PREFIX + name for name in ("deployed", "undeployed", "failed"))


def event_type(operation: Operation, state: DeploymentState) -> str | None:
    """The event a deployment that ended in state sends: None for REFUSED (nothing was provisioned or changed)."""
    if not state.finished or state is DeploymentState.REFUSED:
        return None
    if operation is Operation.DEPLOY and state is DeploymentState.DEPLOYED:
        return DEPLOYED
    if operation is Operation.UNDEPLOY and state is DeploymentState.NOT_DEPLOYED:
        return UNDEPLOYED
    return FAILED  # FAILED, CORRUPT, PARTIALLY_DEPLOYED, or an operation that did not reach its goal


def component_data(record: Mapping[str, Any]) -> dict[str, Any]:
    """One task's state, message and PUBLIC info (privateInfo never leaves meshbot)."""
    info = record.get("info")
    public = info.get("publicInfo") if isinstance(info, Mapping) else None
    return {"state": str(record.get("state", "PENDING")), "message": str(record.get("message", "")),
            "publicInfo": dict(public) if isinstance(public, Mapping) else {}}


def build_event(*, kind: str, deployment_id: str, data_product: str, environment: str, version: str,
                operation: Operation, state: DeploymentState, message: str, time: str,
                tasks: Mapping[str, Mapping[str, Any]], descriptor: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The CloudEvent of a deployment's end: the same id, body and time on every attempt of every URL."""
    data: dict[str, Any] = {
        "dataProduct": data_product, "environment": environment, "version": version, "deployment": deployment_id,
        "operation": str(operation), "outcome": str(state), "message": message,
        "components": {task_id: component_data(record) for task_id, record in tasks.items()},
    }
    if descriptor is not None:
        data["descriptor"] = dict(descriptor)
    return {"specversion": "1.0", "id": f"{deployment_id}-{kind.removeprefix(EVENT_PREFIX)}",
            "source": f"/meshbot/{environment}/{data_product}", "type": kind, "subject": data_product,
            "time": time, "datacontenttype": "application/json", "data": data}


def encode(event: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(body: bytes, secret: str) -> str:
    """The X-Meshbot-Signature-256 header's value: sha256=<hex HMAC-SHA256 of body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether header is the signature of body with secret (what a receiver checks)."""
    return bool(header) and hmac.compare_digest(signature(body, secret), str(header))


def delivery_job_id(deployment_id: str, url: str) -> str:
    """The RQ job id of the delivery of a deployment's event to one URL."""
    return f"meshbot-{deployment_id}-marketplace-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def retry_intervals(value: str | None) -> list[int]:
    """The seconds between delivery attempts: from the variable's value (comma separated), else the default."""
    if not value or not value.strip():
        return list(RETRY_INTERVALS)
    try:
        intervals = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        return list(RETRY_INTERVALS)
    return intervals if intervals and all(interval >= 0 for interval in intervals) else list(RETRY_INTERVALS)
