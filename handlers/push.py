"""RQ job: governance on a pushed branch head: a commit status only (merge requests get the comment)."""

from __future__ import annotations

from rq import get_current_job

from bot.engine.deployed import RedisDeployedStates
from bot.forge.review import review_push
from bot.metrics import count_event


def check(forge: str, project: str, branch: str, sha: str) -> str:
    """Review the pushed commit and set its `meshbot/governance` status; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client
    from vcs.tally import CallTally

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    client = CallTally(forge_client(forge))
    try:
        return review_push(client, project, branch, sha, deployed=RedisDeployedStates(job.connection))
    finally:
        count_event(job.connection, forge, "push", client.api_calls, client.take_rate_limit_waits())
