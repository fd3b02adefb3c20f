"""meshbot's own event kinds, parsed leniently from GitHub and GitLab webhook payloads (no web framework here).

A payload a forge may send with null fields, other types or missing keys never raises: what meshbot cannot
act on becomes `Ignored` with the reason, so the web service answers it and the forge does not retry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

GITHUB = "github"
GITLAB = "gitlab"
OPENED, UPDATED, REOPENED = "opened", "updated", "reopened"  # our merge request actions, for both forges
ZERO_SHA = "0" * 40
BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"
COMMIT_SHA = re.compile(r"[0-9a-fA-F]{7,}")
# 19 digits in a row may be an integer beyond 64 bits, which orjson reads as a float and json as an int; found by
# turning every digit into "0" and anything else into " " (bytes.translate: 2 us for 4 KB, where a regex takes 35)
_DIGITS_AS_ZEROS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def parse_json(body: bytes) -> Any:
    """The body's JSON as json.loads reads it (ValueError or RecursionError if it is none), through orjson's faster
    parser where both read the same: a body orjson refuses (NaN, a lone surrogate, deep nesting, a BOM...) or that
    may hold an integer beyond 64 bits goes to json.loads, whose answer (or error) it is then."""
    if _LONG_DIGITS not in body.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


@dataclass(frozen=True)
class Push:
    """Commits pushed to a branch (or the branch deleted)."""

    forge: str
    project: str
    branch: str
    before: str
    after: str
    deleted: bool
    pusher: str


@dataclass(frozen=True)
class TagPush:
    """A tag pushed (or deleted); sha is the commit it names (the one it named, for a deletion)."""

    forge: str
    project: str
    tag: str
    sha: str
    deleted: bool
    pusher: str


@dataclass(frozen=True)
class MergeRequestEvent:
    """A merge request opened, reopened or given new commits (a GitHub pull request; number is GitLab's iid)."""

    forge: str
    project: str
    number: int
    action: str
    head_sha: str
    source_branch: str
    target_branch: str
    from_fork: bool
    author: str
    title: str


@dataclass(frozen=True)
class MergeRequestMerged:
    """A merge request merged (GitHub: a pull request closed with merged true); merge_sha is the commit it made."""

    forge: str
    project: str
    number: int
    source_branch: str
    target_branch: str
    merge_sha: str
    from_fork: bool
    merged_by: str


@dataclass(frozen=True)
class CommentEvent:
    """A comment written (or edited) on a merge request, or on an issue when on_issue (number is then the issue's)."""

    forge: str
    project: str
    number: int
    comment_id: str
    body: str
    author: str
    edited: bool
    on_issue: bool = False


@dataclass(frozen=True)
class Ignored:
    """An event meshbot does not act on, and why."""

    reason: str


Event = Push | TagPush | MergeRequestEvent | MergeRequestMerged | CommentEvent | Ignored


class _Unusable(Exception):
    """A payload field meshbot needs is missing, null or of another type (internal: becomes Ignored)."""


def _field(value: Any, path: str) -> Any:
    """The value at a dotted path of nested objects; _Unusable when an object on the way is missing."""
    current = value
    walked: list[str] = []
    for key in path.split("."):
        if not isinstance(current, dict):
            where = ".".join(walked) or "the payload"
            raise _Unusable(f"{where} is not an object")
        walked.append(key)
        current = current.get(key)
    return current


def _optional(value: Any, path: str) -> Any:
    """The value at a dotted path, or None when anything on the way is missing or not an object."""
    try:
        return _field(value, path)
    except _Unusable:
        return None


def _text(payload: Any, path: str, *, empty: bool = False) -> str:
    """A string field (non-empty unless empty=True)."""
    value = _field(payload, path)
    if not isinstance(value, str):
        raise _Unusable(f"{path} is {_kind(value)}, not a string")
    if not value and not empty:
        raise _Unusable(f"{path} is empty")
    return value


def _number(payload: Any, path: str) -> int:
    """A positive integer field (a bool is not a number here)."""
    value = _field(payload, path)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Unusable(f"{path} is {_kind(value)}, not a positive integer")
    return value


def _identifier(payload: Any, path: str) -> str:
    """An id field that forges send as a number (or sometimes a string), as text."""
    value = _field(payload, path)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise _Unusable(f"{path} is {_kind(value)}, not an id")


def _flag(payload: Any, path: str, default: bool | None = None) -> bool:
    """A boolean field; default (when given) for a missing or null one."""
    value = _field(payload, path)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise _Unusable(f"{path} is {_kind(value)}, not true or false")
    return value


def _sha(payload: Any, path: str, *, nullable: bool = False) -> str | None:
    """A commit sha field: null or empty allowed only when nullable."""
    value = _field(payload, path)
    if nullable and (value is None or value == ""):
        return None
    text = _text(payload, path)
    if not COMMIT_SHA.fullmatch(text):
        raise _Unusable(f"{path} is not a commit sha")
    return text.lower()


def _kind(value: Any) -> str:
    """How a JSON value is described in a reason."""
    if value is None:
        return "null or missing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_deletion(sha: str | None) -> bool:
    """Whether a pushed sha means "the ref was deleted" (all zeros, or null as GitLab's checkout_sha)."""
    return sha is None or set(sha) == {"0"}


# ---------------------------------------------------------------------- GitHub


def github_event(event_name: str, payload: Any) -> Event:
    """Our event for a GitHub webhook (X-GitHub-Event and the JSON body); Ignored with a reason otherwise."""
    try:
        if event_name == "ping":
            return Ignored("ping")
        if event_name == "push":
            return _github_push(payload)
        if event_name == "pull_request":
            return _github_pull_request(payload)
        if event_name == "issue_comment":
            return _github_comment(payload)
        return Ignored(f"GitHub event {event_name!r} is not handled")
    except _Unusable as error:
        return Ignored(f"GitHub {event_name} event without what meshbot needs: {error}")


def _github_push(payload: Any) -> Event:
    project = _text(payload, "repository.full_name")
    ref = _text(payload, "ref")
    deleted = _flag(payload, "deleted", default=False)
    before = _sha(payload, "before") or ZERO_SHA
    after = _sha(payload, "after") or ZERO_SHA
    deleted = deleted or _is_deletion(after)
    pusher = _pusher(payload, "pusher.name", "sender.login")
    return _ref_event(GITHUB, project, ref, before, after, deleted, pusher)


def _pusher(payload: Any, *paths: str) -> str:
    """The first of these user name fields that is set."""
    for path in paths:
        value = _optional(payload, path)
        if isinstance(value, str) and value:
            return value
    raise _Unusable(f"no pusher ({' or '.join(paths)})")


def _ref_event(forge: str, project: str, ref: str, before: str, after: str, deleted: bool, pusher: str) -> Event:
    """A Push for a branch ref, a TagPush for a tag ref."""
    if ref.startswith(BRANCH_PREFIX) and ref != BRANCH_PREFIX:
        return Push(forge=forge, project=project, branch=ref.removeprefix(BRANCH_PREFIX), before=before, after=after,
                    deleted=deleted, pusher=pusher)
    if ref.startswith(TAG_PREFIX) and ref != TAG_PREFIX:
        return TagPush(forge=forge, project=project, tag=ref.removeprefix(TAG_PREFIX),
                       sha=before if deleted else after, deleted=deleted, pusher=pusher)
    return Ignored(f"push to {ref!r}, neither a branch nor a tag")


def _github_pull_request(payload: Any) -> Event:
    action = _field(payload, "action")
    if action == "closed" and _flag(payload, "pull_request.merged", default=False):
        return _github_merged(payload)
    actions = {"opened": OPENED, "synchronize": UPDATED, "reopened": REOPENED}
    if not isinstance(action, str) or action not in actions:
        return Ignored(f"pull_request action {action!r} is not handled")
    pull = "pull_request"
    base_repository = _text(payload, f"{pull}.base.repo.full_name")
    head_repository = _optional(payload, f"{pull}.head.repo.full_name")  # null once a fork is deleted
    return MergeRequestEvent(
        forge=GITHUB, project=_text(payload, "repository.full_name"),
        number=_number(payload, f"{pull}.number"), action=actions[action],
        head_sha=_sha(payload, f"{pull}.head.sha") or "", source_branch=_text(payload, f"{pull}.head.ref"),
        target_branch=_text(payload, f"{pull}.base.ref"), from_fork=head_repository != base_repository,
        author=_text(payload, f"{pull}.user.login"), title=_text(payload, f"{pull}.title", empty=True),
    )


def _github_merged(payload: Any) -> Event:
    pull = "pull_request"
    base_repository = _text(payload, f"{pull}.base.repo.full_name")
    head_repository = _optional(payload, f"{pull}.head.repo.full_name")
    merged_by = _optional(payload, f"{pull}.merged_by.login") or _optional(payload, "sender.login")
    return MergeRequestMerged(
        forge=GITHUB, project=_text(payload, "repository.full_name"), number=_number(payload, f"{pull}.number"),
        source_branch=_text(payload, f"{pull}.head.ref"), target_branch=_text(payload, f"{pull}.base.ref"),
        merge_sha=_sha(payload, f"{pull}.merge_commit_sha") or "", from_fork=head_repository != base_repository,
        merged_by=merged_by if isinstance(merged_by, str) else "",
    )


def _github_comment(payload: Any) -> Event:
    action = _field(payload, "action")
    if action not in ("created", "edited"):
        return Ignored(f"issue_comment action {action!r} is not handled")
    on_issue = not isinstance(_field(payload, "issue.pull_request"), dict)  # a pull request's issue carries it
    return CommentEvent(
        forge=GITHUB, project=_text(payload, "repository.full_name"), number=_number(payload, "issue.number"),
        comment_id=_identifier(payload, "comment.id"), body=_text(payload, "comment.body", empty=True),
        author=_text(payload, "comment.user.login"), edited=action == "edited", on_issue=on_issue,
    )


# ---------------------------------------------------------------------- GitLab


def gitlab_event(event_name: str, payload: Any) -> Event:
    """Our event for a GitLab webhook (X-Gitlab-Event and the JSON body); Ignored with a reason otherwise."""
    try:
        if event_name in ("Push Hook", "Tag Push Hook"):
            return _gitlab_push(payload)
        if event_name == "Merge Request Hook":
            return _gitlab_merge_request(payload)
        if event_name == "Note Hook":
            return _gitlab_note(payload)
        return Ignored(f"GitLab event {event_name!r} is not handled")
    except _Unusable as error:
        return Ignored(f"GitLab {event_name} without what meshbot needs: {error}")


def _gitlab_push(payload: Any) -> Event:
    project = _text(payload, "project.path_with_namespace")
    ref = _text(payload, "ref")
    before = _sha(payload, "before", nullable=True) or ZERO_SHA
    after = _sha(payload, "after", nullable=True)
    checkout = _sha(payload, "checkout_sha", nullable=True)  # null when the ref was deleted
    deleted = _is_deletion(after) or _is_deletion(checkout)
    pusher = _pusher(payload, "user_username", "user_name")
    return _ref_event(GITLAB, project, ref, before, after or ZERO_SHA, deleted, pusher)


def _gitlab_merge_request(payload: Any) -> Event:
    attributes = "object_attributes"
    action = _field(payload, f"{attributes}.action")
    if action == "merge":
        return _gitlab_merged(payload)
    actions = {"open": OPENED, "update": UPDATED, "reopen": REOPENED}
    if not isinstance(action, str) or action not in actions:
        return Ignored(f"merge request action {action!r} is not handled")
    oldrev = _field(payload, f"{attributes}.oldrev")
    if action == "update" and not (isinstance(oldrev, str) and oldrev):
        return Ignored("a merge request update without new commits (no oldrev)")
    source_project = _field(payload, f"{attributes}.source_project_id")
    target_project = _field(payload, f"{attributes}.target_project_id")
    return MergeRequestEvent(
        forge=GITLAB, project=_text(payload, "project.path_with_namespace"),
        number=_number(payload, f"{attributes}.iid"), action=actions[action],
        head_sha=_sha(payload, f"{attributes}.last_commit.id") or "",
        source_branch=_text(payload, f"{attributes}.source_branch"),
        target_branch=_text(payload, f"{attributes}.target_branch"),
        from_fork=source_project is None or source_project != target_project,
        author=_text(payload, "user.username"), title=_text(payload, f"{attributes}.title", empty=True),
    )


def _gitlab_merged(payload: Any) -> Event:
    attributes = "object_attributes"
    # merge_commit_sha is null for a fast-forward merge: the source's last commit is then the target's head.
    merge_sha = _sha(payload, f"{attributes}.merge_commit_sha", nullable=True) or \
        _sha(payload, f"{attributes}.last_commit.id")
    source_project = _field(payload, f"{attributes}.source_project_id")
    target_project = _field(payload, f"{attributes}.target_project_id")
    merged_by = _optional(payload, "user.username")
    return MergeRequestMerged(
        forge=GITLAB, project=_text(payload, "project.path_with_namespace"),
        number=_number(payload, f"{attributes}.iid"), source_branch=_text(payload, f"{attributes}.source_branch"),
        target_branch=_text(payload, f"{attributes}.target_branch"), merge_sha=merge_sha or "",
        from_fork=source_project is None or source_project != target_project,
        merged_by=merged_by if isinstance(merged_by, str) else "",
    )


def _gitlab_note(payload: Any) -> Event:
    attributes = "object_attributes"
    noteable = _field(payload, f"{attributes}.noteable_type")
    if noteable not in ("MergeRequest", "Issue"):
        return Ignored(f"a note on {noteable!r}, not on a merge request or an issue")
    if _flag(payload, f"{attributes}.system", default=False):
        return Ignored("a system note")
    action = _field(payload, f"{attributes}.action")  # "create" or "update"; older GitLab versions omit it
    on_issue = noteable == "Issue"
    return CommentEvent(
        forge=GITLAB, project=_text(payload, "project.path_with_namespace"),
        number=_number(payload, "issue.iid" if on_issue else "merge_request.iid"),
        comment_id=_identifier(payload, f"{attributes}.id"), body=_text(payload, f"{attributes}.note", empty=True),
        author=_text(payload, "user.username"), edited=action == "update", on_issue=on_issue,
    )
