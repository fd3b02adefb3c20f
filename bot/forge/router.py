"""Which jobs an event starts: function paths and plain-data arguments for RQ, decided without RQ."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from bot.forge.commands import read_commands
from bot.forge.events import CommentEvent, Event, Ignored, MergeRequestEvent, MergeRequestMerged, Push, TagPush

REVIEW = "handlers.merge_request.review"
CHECK = "handlers.push.check"
RELEASE = "handlers.tag.release"
COMMANDS = "handlers.comment.commands"
ISSUE_COMMANDS = "handlers.request_access.issue_commands"  # an issue comment: only /request-access acts there
PROMOTE = "handlers.promote.promote"
ACCESS = "handlers.access.grant"  # every merge: the access files at the merge commit (bot.forge.access_grant)
PROMOTION_BRANCH_PREFIX = "meshbot/promote/"  # the branches of promotion merge requests (bot.forge.promotion)
CATCH_UP = "handlers.catch_up.sweep"  # the periodic catch-up sweep (bot.forge.catch_up), not started by events


@dataclass(frozen=True)
class JobRequest:
    """A job to enqueue: the function's import path, its JSON-serialisable arguments and a description."""

    function: str
    args: tuple[str | int, ...]
    description: str


def route(event: Event, bot_usernames: Iterable[str] = ()) -> list[JobRequest] | Ignored:
    """The jobs event starts, or Ignored saying why it starts none (bot_usernames: the bot's own accounts)."""
    if isinstance(event, Ignored):
        return event
    if isinstance(event, MergeRequestEvent):
        return [JobRequest(REVIEW, (event.forge, event.project, event.number, event.head_sha),
                           f"review {event.forge} {event.project} merge request {event.number} "
                           f"({event.action}) at {event.head_sha[:12]}")]
    if isinstance(event, MergeRequestMerged):
        return _merged(event)
    if isinstance(event, Push):
        if event.deleted:
            return Ignored(f"branch {event.branch!r} was deleted: nothing to check")
        return [JobRequest(CHECK, (event.forge, event.project, event.branch, event.after),
                           f"check {event.forge} {event.project} branch {event.branch} at {event.after[:12]}")]
    if isinstance(event, TagPush):
        if event.deleted:
            return Ignored(f"tag {event.tag!r} was deleted: deleting a tag never undeploys")
        return [JobRequest(RELEASE, (event.forge, event.project, event.tag, event.sha),
                           f"release {event.forge} {event.project} tag {event.tag} at {event.sha[:12]}")]
    if not isinstance(event, CommentEvent):
        assert_never(event)
    if event.edited:
        return Ignored(f"comment {event.comment_id} was edited: commands run only from new comments")
    if _username(event.author) in {_username(name) for name in bot_usernames}:
        return Ignored(f"comment {event.comment_id} was written by meshbot itself ({event.author})")
    if not read_commands(event.body):
        return Ignored(f"comment {event.comment_id} holds no meshbot command")
    if event.on_issue:
        return [JobRequest(ISSUE_COMMANDS, (event.forge, event.project, event.number, event.comment_id, event.body,
                                            event.author),
                           f"commands of {event.forge} {event.project} issue {event.number} "
                           f"comment {event.comment_id} by {event.author}")]
    return [JobRequest(COMMANDS, (event.forge, event.project, event.number, event.comment_id, event.body, event.author),
                       f"commands of {event.forge} {event.project} merge request {event.number} "
                       f"comment {event.comment_id} by {event.author}")]


def _merged(event: MergeRequestMerged) -> list[JobRequest] | Ignored:
    """Every merge may change access files (the job checks the default branch); a promotion branch's merge deploys."""
    if not event.merge_sha:
        return Ignored(f"merge request {event.number} was merged without a merge commit sha in the payload")
    jobs = []
    if event.source_branch.startswith(PROMOTION_BRANCH_PREFIX) and not event.from_fork:  # a fork's is not meshbot's
        jobs.append(JobRequest(PROMOTE, (event.forge, event.project, event.number, event.source_branch,
                                         event.target_branch, event.merge_sha),
                               f"promote {event.forge} {event.project} merge request {event.number} "
                               f"({event.source_branch}) merged at {event.merge_sha[:12]}"))
    jobs.append(JobRequest(ACCESS, (event.forge, event.project, event.number, event.target_branch, event.merge_sha,
                                    event.merged_by),
                           f"access grants of {event.forge} {event.project} merge request {event.number} merged at "
                           f"{event.merge_sha[:12]}"))
    return jobs


def _username(name: str) -> str:
    """A user name as compared: case-insensitive, and GitHub App accounts `name[bot]` as `name`."""
    return name.strip().lower().removesuffix("[bot]")
