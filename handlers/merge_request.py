"""RQ job: governance on a merge request (opened, reopened or pushed to): one comment and a commit status."""

from __future__ import annotations

from bot.review import review_merge_request


def review(forge: str, project: str, number: int, head_sha: str) -> str:
    """Review the merge request's newest head and publish the result; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client

    return review_merge_request(forge_client(forge), project, number, head_sha)
