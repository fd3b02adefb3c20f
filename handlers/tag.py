"""Job: a pushed tag; a release tag deploys the tagged commit to the release environments (bot.forge.release)."""

from __future__ import annotations

from rq import get_current_job

from bot.config import config_path, load_config
from bot.forge.release import release as release_commit
from bot.metrics import count_event
from policies.loader import policies_for
from vcs import factory
from vcs.locations import ForgeLocations
from vcs.tally import CallTally


def release(forge: str, project: str, tag: str, sha: str) -> str:
    """Check and deploy a release tag; returns what was done per environment."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    config = load_config(config_path(None))
    client = CallTally(factory.forge(forge))
    try:
        steps = release_commit(client.repository(project), job.connection, forge=forge, project=project, tag=tag,
                               sha=sha, config=config, policies=policies_for(config, connection=job.connection),
                               status_url=config.public_url, remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "tag", client.api_calls, client.take_rate_limit_waits())
    if not steps:
        return f"{tag} is not a release tag (pattern {config.release_tag})"
    return "; ".join(f"{step.environment}: {step.state} {step.description}" for step in steps)
