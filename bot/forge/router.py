"""Which jobs an event starts: function paths and plain-data arguments for RQ, decided without RQ."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from bot.forge.commands import read_commands
from bot.forge.events import CommentEvent, Event, Ignored, MergeRequestEvent, Push, TagPush

REVIEW = "handlers.merge_request.review"
CHECK = "handlers.push.check"
RELEASE = "handlers.tag.release"
COMMANDS = "handlers.comment.commands"
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
    return [JobRequest(COMMANDS, (event.forge, event.project, event.number, event.comment_id, event.body, event.author),
                       f"commands of {event.forge} {event.project} merge request {event.number} "
                       f"comment {event.comment_id} by {event.author}")]


def _username(name: str) -> str:
    """A user name as compared: case-insensitive, and GitHub App accounts `name[bot]` as `name`."""
    return name.strip().lower().removesuffix("[bot]")
