"""RQ job: governance on a pushed branch head: a commit status only (merge requests get the comment)."""

from __future__ import annotations

from bot.review import review_push


def check(forge: str, project: str, branch: str, sha: str) -> str:
    """Review the pushed commit and set its `meshbot/governance` status; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client

    return review_push(forge_client(forge), project, branch, sha)
