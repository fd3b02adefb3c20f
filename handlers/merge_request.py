"""RQ job: governance on a merge request (opened, reopened or pushed to): one comment and a commit status."""

from __future__ import annotations

import re

from rq import get_current_job

from bot.engine.deployed import RedisDeployedStates
from bot.engine.redis_connection import LeaseLock
from bot.engine.store import PREFIX
from bot.forge.review import review_merge_request
from bot.metrics import count_event, count_review

LOCK_LEASE_SECONDS = 30  # renewed while a review runs (LeaseLock): a worker that dies holding it frees it after this
LOCK_WAIT_SECONDS = 300  # the longest a review waits for the one before it (which may take this long)
_STATE = re.compile(r": (success|failure|error|pending) \(")  # review_merge_request's summary names the status


def review_outcome(summary: str) -> str:
    """The outcome of a review for the metrics: the commit status it set, or not_reviewed (closed or merged)."""
    if summary.endswith(", not reviewed"):
        return "not_reviewed"
    found = _STATE.search(summary)
    return found.group(1) if found else "unknown"


def review(forge: str, project: str, number: int, head_sha: str) -> str:
    """Review the merge request's newest head and publish the result; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client
    from vcs.tally import CallTally

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    client = CallTally(forge_client(forge))
    lock = job.connection.lock(f"{PREFIX}:review:{forge}:{project}:{number}", timeout=LOCK_LEASE_SECONDS,
                               blocking_timeout=LOCK_WAIT_SECONDS, lock_class=LeaseLock)
    outcome = "crashed"  # the review raised: the job fails
    try:
        summary = review_merge_request(client, project, number, head_sha, lock=lock,
                                       deployed=RedisDeployedStates(job.connection))
        outcome = review_outcome(summary)
        return summary
    finally:
        count_review(job.connection, forge, outcome)
        count_event(job.connection, forge, "merge_request", client.api_calls, client.take_rate_limit_waits())
