"""The consumers of each output port as the console shows them: the refs applied, when, by which merge request."""

from __future__ import annotations

from typing import Any

import redis

from bot.engine.access import AccessStore


def consumers(connection: redis.Redis, data_product: str, environment: str) -> list[dict[str, Any]]:
    """Each output port with recorded access: the refs applied (and by which merge), and its last attempt's status."""
    store = AccessStore(connection)
    applied = store.applied(data_product, environment)
    shown = []
    for port in store.ports(data_product, environment):
        entry = applied.get(port)
        attempts = store.attempts(data_product, environment, port)
        last = attempts[0] if attempts else {}
        shown.append({
            "port": port, "refs": entry.refs if entry else [], "appliedAt": entry.applied_at if entry else None,
            "mergeRequest": entry.merge_request if entry else None, "mergedBy": entry.merged_by if entry else None,
            "project": entry.project if entry else None, "origin": entry.origin if entry else None,
            "status": last.get("status"), "message": last.get("message", ""), "attemptedAt": last.get("at"),
            "attemptedRefs": last.get("refs", []), "attemptOrigin": last.get("origin", ""),
        })
    return shown
