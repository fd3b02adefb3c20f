"""Links meshbot puts in comments, commit statuses and forge deployment records (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def deployment_url(report_to: Mapping[str, Any], deployment_id: str) -> str | None:
    """The console page of a deployment when `public_url` is configured, else the link its request carried."""
    base = report_to.get("publicUrl")
    if base:
        return f"{str(base).rstrip('/')}/deployments/{quote(deployment_id, safe='')}"
    url = report_to.get("statusUrl")
    return str(url) if url else None
