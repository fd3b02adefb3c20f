"""RQ job: governance on a merge request (opened, reopened or pushed to): one comment and a commit status."""

from __future__ import annotations

from rq import get_current_job

from bot.engine.deployed import RedisDeployedStates
from bot.engine.redis_connection import RetrySafeLock
from bot.engine.store import PREFIX
from bot.forge.review import review_merge_request
from bot.metrics import count_event

LOCK_SECONDS = 300  # longer than any review; a worker that dies holding the lock frees it after this


def review(forge: str, project: str, number: int, head_sha: str) -> str:
    """Review the merge request's newest head and publish the result; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client
    from vcs.tally import CallTally

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    client = CallTally(forge_client(forge))
    lock = job.connection.lock(f"{PREFIX}:review:{forge}:{project}:{number}", timeout=LOCK_SECONDS,
                               blocking_timeout=LOCK_SECONDS, lock_class=RetrySafeLock)
    try:
        return review_merge_request(client, project, number, head_sha, lock=lock,
                                    deployed=RedisDeployedStates(job.connection))
    finally:
        count_event(job.connection, forge, "merge_request", client.api_calls)
