"""RQ job: a promotion merge request was merged; deploy its stage (bot.forge.promotion)."""

from __future__ import annotations

from rq import get_current_job

from bot.config import config_path, load_config
from bot.forge.promotion import promote as promote_release
from bot.metrics import count_event
from policies.loader import policies_for
from vcs import factory
from vcs.locations import ForgeLocations
from vcs.tally import CallTally


def promote(forge: str, project: str, number: int, source_branch: str, target_branch: str, merge_sha: str) -> str:
    """Check the merged release file and deploy its stage; what was done, in one line."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    config = load_config(config_path(None))
    client = CallTally(factory.forge(forge))
    try:
        outcome = promote_release(client.repository(project), job.connection, forge=forge, project=project,
                                  number=number, source_branch=source_branch, target_branch=target_branch,
                                  merge_sha=merge_sha, config=config,
                                  policies=policies_for(config, connection=job.connection),
                                  status_url=config.public_url, remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "promotion", client.api_calls, client.take_rate_limit_waits())
    if isinstance(outcome, str):
        return f"{project}!{number}: {outcome}"
    return f"{project}!{number}: {outcome.environment}: {outcome.state} {outcome.description}"
