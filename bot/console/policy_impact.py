"""The console's /policies/impact data: the configured draft and grace policies on the deployed products one may see."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import redis

from bot.forge.policy_impact import DescriptorAt, Positions, assemble_at, assess, deployed_descriptors, impact_json
from policies.model import Policy, Status

MAX_REPOSITORIES = 10  # repositories read again per page view (positions); the rest are named as not read
ABOUT_TO_SWITCH = frozenset({Status.DRAFT, Status.GRACE})


def about_to_switch(policies: Sequence[Policy]) -> list[Policy]:
    """The policies a platform team is about to switch on: draft and grace ones, in their order."""
    return [policy for policy in policies if policy.status in ABOUT_TO_SWITCH]


def impact_document(connection: redis.Redis, policies: Sequence[Policy], visible: set[str], today: date | None = None,
                    read: DescriptorAt = assemble_at, max_repositories: int = MAX_REPOSITORIES) -> dict[str, Any]:
    """The page's data (and /api/v1/policies/impact): policy_impact.impact_json of the draft and grace policies."""
    day = today or date.today()
    tested = about_to_switch(policies)
    found = deployed_descriptors(connection, visible=visible) if tested else []
    positions = Positions(read, max_repositories, per="per page view")
    document = impact_json(assess(tested, found, positions, day), day, None, len(found))
    if positions.skipped:
        document["notes"].append(f"positions come from at most {max_repositories} repositories per page view: "
                                 f"{len(positions.skipped)} more were not read (meshbot policies test reads them all)")
    document["maxRepositories"] = max_repositories
    return document
