"""A data product's deployment status in each environment, read from the Store (for `meshbot status`)."""

from __future__ import annotations

from typing import Any

import redis

from bot.deployment import ProductStatus
from bot.locks import Locks
from bot.store import Store, as_text, history_key, product_key

DEPLOYMENT_FIELDS = ("id", "state", "operation", "startedBy", "createdAt", "startedAt", "finishedAt", "message")


def environments(connection: redis.Redis, data_product: str) -> list[str]:
    """Every environment where the data product has a status record or a deployment history."""
    found: set[str] = set()
    for key_of in (product_key, history_key):
        prefix = key_of(data_product, "")
        pattern = _glob_escape(prefix) + "*"
        for key in connection.scan_iter(match=pattern, count=1000):
            environment = as_text(key)[len(prefix):]
            if environment and ":" not in environment:  # environment names never hold a colon
                found.add(environment)
    return sorted(found)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{character}" if character in "*?[]\\" else character for character in text)


def product_status(connection: redis.Redis, data_product: str, environment: str) -> tuple[dict[str, Any], list[str]]:
    """The status document of the data product in environment, and the deployments waiting for its lock."""
    store = Store(connection)
    record = store.product(data_product, environment)
    deployment: dict[str, Any] | None = None
    deployment_id = record.get("deployment")
    if deployment_id:
        loaded = store.load(str(deployment_id))
        if loaded is None:  # dropped from the history: only its id is left
            deployment = {key: None for key in DEPLOYMENT_FIELDS} | {"id": deployment_id}
        else:
            deployment = {
                "id": loaded.id, "state": str(loaded.state), "operation": str(loaded.operation),
                "startedBy": loaded.started_by, "createdAt": loaded.created_at, "startedAt": loaded.started_at,
                "finishedAt": loaded.finished_at, "message": loaded.message,
            }
    components = [{"id": component_id, "status": entry.get("status"), "message": entry.get("message", "")}
                  for component_id, entry in (record.get("components") or {}).items()]
    document = {
        "dataProduct": data_product, "environment": environment,
        "status": record.get("status") or str(ProductStatus.NOT_DEPLOYED), "version": record.get("version"),
        "deployment": deployment, "components": components,
    }
    return document, Locks(connection).waiting(data_product, environment)


def status_text(document: dict[str, Any], waiting: list[str]) -> str:
    """The status for a terminal."""
    version = f" {document['version']}" if document.get("version") else ""
    lines = [f"{document['dataProduct']}{version} in {document['environment']}: {document['status']}"]
    deployment = document.get("deployment")
    if deployment:
        when = deployment.get("finishedAt") or deployment.get("startedAt") or deployment.get("createdAt") or "?"
        lines.append(f"  last deployment {deployment['id']}: {deployment.get('operation') or '?'} "
                     f"{deployment.get('state') or '(no longer recorded)'}, by {deployment.get('startedBy') or '?'}"
                     f", {when}")
        if deployment.get("message"):
            lines.append(f"    {deployment['message']}")
    width = max((len(component["id"]) for component in document["components"]), default=0)
    for component in document["components"]:
        lines.append(f"  {component['id'].ljust(width)}  {component['status']:<12}  {component['message']}".rstrip())
    if waiting:
        lines.append(f"  waiting: {len(waiting)} deployment(s): {', '.join(waiting)}")
    return "\n".join(lines)
