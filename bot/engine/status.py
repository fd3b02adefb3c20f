"""A data product's deployment status in each environment, read from the Store (for `meshbot status`).

Which data products and environments have records comes from the Store's index (PAIRS_KEY), never from a scan of
every key: Redis holds two keys per deployment kept, 300,000 for a mesh of 1,000 data products (issue 18).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from bot.engine.deployment import DeploymentState, ProductStatus
from bot.engine.locks import Locks
from bot.engine.store import (
    PAIRS_COMPLETE_KEY,
    PAIRS_KEY,
    Deployment,
    Store,
    as_text,
    history_key,
    now_iso,
    pair_member,
    product_key,
)

DEPLOYMENT_FIELDS = ("id", "state", "operation", "version", "startedBy", "createdAt", "startedAt", "finishedAt",
                     "message", "descriptor")


def environments(connection: redis.Redis, data_product: str) -> list[str]:
    """Every environment where the data product has a status record or a deployment history (from the index)."""
    prefix = pair_member(data_product, "")
    found = {member[len(prefix):] for member in (as_text(item) for item in _index_members(connection, prefix))}
    return sorted(environment for environment in found if environment and ":" not in environment)


def product_environments(connection: redis.Redis) -> list[tuple[str, str]]:
    """Every (data product, environment) with a status record or a deployment history, sorted (from the index)."""
    pairs = (as_text(item).rpartition(":") for item in _index_members(connection, ""))
    return sorted({(data_product, environment) for data_product, _, environment in pairs
                   if data_product and environment})


def _index_members(connection: redis.Redis, prefix: str) -> list[Any]:
    """The members of the pairs index that start with prefix (all of them for ""), once the index is complete."""
    if not connection.exists(PAIRS_COMPLETE_KEY):
        complete_index(connection)
    if not prefix:
        return list(connection.smembers(PAIRS_KEY))
    return list(connection.sscan_iter(PAIRS_KEY, match=_glob_escape(prefix) + "*", count=10_000))


def complete_index(connection: redis.Redis) -> int:
    """Add the pairs of records written before the index existed (one scan of the keys, once); how many were found."""
    found: set[str] = set()
    for key_of in (product_key, history_key):
        head = key_of("", "")[:-1]  # "meshbot:product:" (the key of an empty name is the head and one colon)
        for key in connection.scan_iter(match=_glob_escape(head) + "*", count=10_000):
            data_product, _, environment = as_text(key)[len(head):].rpartition(":")
            if data_product and environment:
                found.add(pair_member(data_product, environment))
    with connection.pipeline(transaction=False) as pipeline:
        if found:
            pipeline.sadd(PAIRS_KEY, *found)
        pipeline.set(PAIRS_COMPLETE_KEY, now_iso())
        pipeline.execute()
    return len(found)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{character}" if character in "*?[]\\" else character for character in text)


def product_status(connection: redis.Redis, data_product: str, environment: str) -> tuple[dict[str, Any], list[str]]:
    """The status document of the data product in environment, and the deployments waiting for its lock.

    `status`, `version` and `components` are what is provisioned (each component with the adapter's info and
    logs from the deployment that last acted on it); `deployment` is the newest deployment that has
    started, whatever its outcome, so a refused or running one shows even though it changed nothing yet.
    """
    store = Store(connection)
    record = store.product(data_product, environment)
    acted = record.get("deployment")
    newest = next((deployment for deployment in _started(store, data_product, environment)), None)
    deployment: dict[str, Any] | None = None
    if newest is not None:
        deployment = _deployment_document(newest)
    elif acted:  # dropped from the history: only its id is left
        deployment = {key: None for key in DEPLOYMENT_FIELDS} | {"id": acted}
    details = store.task_states(str(acted)) if acted else {}
    components = [{"id": component_id, "status": entry.get("status"), "message": entry.get("message", ""),
                   "info": (details.get(component_id) or {}).get("info"),
                   "logs": (details.get(component_id) or {}).get("logs") or []}
                  for component_id, entry in (record.get("components") or {}).items()]
    document = {
        "dataProduct": data_product, "environment": environment,
        "status": record.get("status") or str(ProductStatus.NOT_DEPLOYED), "version": record.get("version"),
        "deployment": deployment, "components": components,
    }
    return document, Locks(connection).waiting(data_product, environment)


def _started(store: Store, data_product: str, environment: str) -> Iterator[Deployment]:
    """Deployments of the data product in environment that have left the queue, newest first."""
    for deployment_id in store.history(data_product, environment):
        loaded = store.load(deployment_id)
        if loaded is not None and loaded.state is not DeploymentState.QUEUED:
            yield loaded


def _deployment_document(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id, "state": str(deployment.state), "operation": str(deployment.operation),
        "version": deployment.version, "startedBy": deployment.started_by, "createdAt": deployment.created_at,
        "startedAt": deployment.started_at, "finishedAt": deployment.finished_at, "message": deployment.message,
        "descriptor": deployment.descriptor,
    }


def status_text(document: dict[str, Any], waiting: list[str]) -> str:
    """The status for a terminal."""
    version = f" {document['version']}" if document.get("version") else ""
    lines = [f"{document['dataProduct']}{version} in {document['environment']}: {document['status']}"]
    deployment = document.get("deployment")
    if deployment:
        when = deployment.get("finishedAt") or deployment.get("startedAt") or deployment.get("createdAt") or "?"
        version = f" {deployment['version']}" if deployment.get("version") else ""
        lines.append(f"  last deployment {deployment['id']}: {deployment.get('operation') or '?'}{version} "
                     f"{deployment.get('state') or '(no longer recorded)'}, by {deployment.get('startedBy') or '?'}"
                     f", {when}")
        if deployment.get("message"):
            lines.extend(f"    {line}" for line in str(deployment["message"]).splitlines())
    width = max((len(component["id"]) for component in document["components"]), default=0)
    for component in document["components"]:
        lines.append(f"  {component['id'].ljust(width)}  {component['status']:<12}  {component['message']}".rstrip())
    if waiting:
        lines.append(f"  waiting: {len(waiting)} deployment{'s' if len(waiting) != 1 else ''}: {', '.join(waiting)}")
    return "\n".join(lines)
