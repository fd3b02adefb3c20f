"""Parsing GitHub and GitLab webhook payloads into meshbot's own events, leniently."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from bot.forge.events import (
    CommentEvent,
    Ignored,
    MergeRequestEvent,
    MergeRequestMerged,
    Push,
    TagPush,
    github_event,
    gitlab_event,
    parse_json,
)

WEBHOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
S1 = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
S2 = "9c1e4f0b0d7a3e5c2b8f6a4d1e0c9b8a7f6e5d4c"
S3 = "0d1a26e67d8f5eab1f46c2a1c8a0b3a4f9e2d7c1"
ZERO = "0" * 40
GH_REPO = "acme-data/finance-cashflow"
GL_PROJECT = "data-platform/finance/cashflow"

# Each fixture, the header naming its event, and what it parses to.
GITHUB_FIXTURES: dict[str, str] = {
    "push_branch": "push", "push_tag": "push", "push_branch_deleted": "push", "push_tag_deleted": "push",
    "pull_request_opened": "pull_request", "pull_request_synchronize": "pull_request",
    "pull_request_reopened": "pull_request", "pull_request_opened_fork": "pull_request",
    "pull_request_closed": "pull_request", "pull_request_labeled": "pull_request",
    "pull_request_merged": "pull_request",
    "issue_comment_pr_created": "issue_comment", "issue_comment_pr_edited": "issue_comment",
    "issue_comment_pr_by_bot": "issue_comment", "issue_comment_issue": "issue_comment",
    "ping": "ping", "check_run": "check_run",
}
GITLAB_FIXTURES: dict[str, str] = {
    "push": "Push Hook", "push_branch_deleted": "Push Hook", "tag_push": "Tag Push Hook",
    "tag_push_deleted": "Tag Push Hook", "merge_request_open": "Merge Request Hook",
    "merge_request_open_fork": "Merge Request Hook", "merge_request_update_commits": "Merge Request Hook",
    "merge_request_update_title": "Merge Request Hook", "merge_request_reopen": "Merge Request Hook",
    "merge_request_close": "Merge Request Hook", "merge_request_merge": "Merge Request Hook",
    "note_merge_request": "Note Hook",
    "note_merge_request_edited": "Note Hook", "note_commit": "Note Hook", "note_issue": "Note Hook",
    "pipeline": "Pipeline Hook",
}


def fixture(forge: str, name: str) -> Any:
    """A fixture payload of tests/fixtures/webhooks/<forge>/<name>.json."""
    return json.loads((WEBHOOKS / forge / f"{name}.json").read_text())


def fixture_bytes(forge: str, name: str) -> bytes:
    """A fixture payload's raw bytes, as a forge would send them."""
    return (WEBHOOKS / forge / f"{name}.json").read_bytes()


def test_every_fixture_file_is_listed():
    assert {path.stem for path in (WEBHOOKS / "github").glob("*.json")} == set(GITHUB_FIXTURES)
    assert {path.stem for path in (WEBHOOKS / "gitlab").glob("*.json")} == set(GITLAB_FIXTURES)


def github(name: str) -> Any:
    return github_event(GITHUB_FIXTURES[name], fixture("github", name))


def gitlab(name: str) -> Any:
    return gitlab_event(GITLAB_FIXTURES[name], fixture("gitlab", name))


# ---------------------------------------------------------------------- GitHub


def test_github_push_to_a_branch():
    assert github("push_branch") == Push(forge="github", project=GH_REPO, branch="main", before=S1, after=S2,
                                         deleted=False, pusher="alice-dev")


def test_github_push_of_a_tag():
    assert github("push_tag") == TagPush(forge="github", project=GH_REPO, tag="v1.1.0", sha=S2, deleted=False,
                                         pusher="alice-dev")


def test_github_branch_deletion_has_a_null_head_commit():
    payload = fixture("github", "push_branch_deleted")
    assert payload["head_commit"] is None
    assert github_event("push", payload) == Push(forge="github", project=GH_REPO, branch="feature/old-port",
                                                 before=S3, after=ZERO, deleted=True, pusher="alice-dev")


def test_github_tag_deletion_names_the_commit_the_tag_named():
    assert github("push_tag_deleted") == TagPush(forge="github", project=GH_REPO, tag="v1.0.0-rc1", sha=S1,
                                                 deleted=True, pusher="alice-dev")


def test_github_push_without_deleted_flag_but_zero_after_is_a_deletion():
    payload = fixture("github", "push_branch_deleted")
    del payload["deleted"]
    event = github_event("push", payload)
    assert isinstance(event, Push) and event.deleted


def test_github_push_to_another_ref_is_ignored():
    payload = fixture("github", "push_branch")
    payload["ref"] = "refs/notes/commits"
    assert github_event("push", payload) == Ignored("push to 'refs/notes/commits', neither a branch nor a tag")


@pytest.mark.parametrize(("name", "action", "head"), [
    ("pull_request_opened", "opened", S2), ("pull_request_synchronize", "updated", S3),
    ("pull_request_reopened", "reopened", S2),
])
def test_github_pull_requests_that_need_a_review(name, action, head):
    assert fixture("github", name)["pull_request"]["body"] is None  # real PRs without a description
    assert github(name) == MergeRequestEvent(
        forge="github", project=GH_REPO, number=42, action=action, head_sha=head, source_branch="feature/forecast-port",
        target_branch="main", from_fork=False, author="alice-dev", title="Add the cashflow forecast output port",
    )


def test_github_pull_request_from_a_fork():
    event = github("pull_request_opened_fork")
    assert isinstance(event, MergeRequestEvent) and event.from_fork and event.author == "bob-fork"


def test_github_pull_request_whose_fork_was_deleted_counts_as_a_fork():
    payload = fixture("github", "pull_request_synchronize")
    payload["pull_request"]["head"]["repo"] = None
    event = github_event("pull_request", payload)
    assert isinstance(event, MergeRequestEvent) and event.from_fork


@pytest.mark.parametrize("name", ["pull_request_closed", "pull_request_labeled"])
def test_github_other_pull_request_actions_are_ignored_with_the_action(name):
    event = github(name)
    action = fixture("github", name)["action"]
    assert event == Ignored(f"pull_request action {action!r} is not handled")


MERGED_SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
PROMOTION_BRANCH = "meshbot/promote/production/1.1.0"


def test_github_merged_pull_request():
    assert github("pull_request_merged") == MergeRequestMerged(
        forge="github", project=GH_REPO, number=42, source_branch=PROMOTION_BRANCH, target_branch="main",
        merge_sha=MERGED_SHA, from_fork=False, merged_by="alice-dev")


def test_github_merged_pull_request_without_merge_commit_sha_is_ignored_with_the_reason():
    payload = fixture("github", "pull_request_merged")
    payload["pull_request"]["merge_commit_sha"] = None
    assert github_event("pull_request", payload) == Ignored(
        "GitHub pull_request event without what meshbot needs: pull_request.merge_commit_sha is null or missing, "
        "not a string")


def test_github_merged_pull_request_without_merged_by_falls_back_to_the_sender():
    payload = fixture("github", "pull_request_merged")
    payload["pull_request"]["merged_by"] = None
    event = github_event("pull_request", payload)
    assert isinstance(event, MergeRequestMerged) and event.merged_by == "alice-dev"


def test_github_comment_on_a_pull_request():
    assert github("issue_comment_pr_created") == CommentEvent(
        forge="github", project=GH_REPO, number=42, comment_id="2091234567", body="/deploy development",
        author="alice-dev", edited=False,
    )


def test_github_edited_comment_is_marked_edited():
    event = github("issue_comment_pr_edited")
    assert isinstance(event, CommentEvent) and event.edited


def test_github_comment_on_an_issue_is_a_comment_on_an_issue():
    assert github("issue_comment_issue") == CommentEvent(
        forge="github", project=GH_REPO, number=17, comment_id="2091234567", body="Same here on staging.",
        author="alice-dev", edited=False, on_issue=True,
    )
    payload = fixture("github", "issue_comment_pr_created")
    payload["issue"]["pull_request"] = None  # lenient: null is no pull request
    event = github_event("issue_comment", payload)
    assert isinstance(event, CommentEvent) and event.on_issue


def test_github_deleted_comment_is_ignored():
    payload = fixture("github", "issue_comment_pr_created")
    payload["action"] = "deleted"
    assert github_event("issue_comment", payload) == Ignored("issue_comment action 'deleted' is not handled")


def test_github_ping_and_unhandled_events():
    assert github("ping") == Ignored("ping")
    assert github("check_run") == Ignored("GitHub event 'check_run' is not handled")
    assert github_event("", {}) == Ignored("GitHub event '' is not handled")


def test_github_missing_fields_are_explained():
    payload = fixture("github", "pull_request_opened")
    payload["pull_request"]["head"]["sha"] = None
    event = github_event("pull_request", payload)
    assert event == Ignored("GitHub pull_request event without what meshbot needs: "
                            "pull_request.head.sha is null or missing, not a string")
    payload = fixture("github", "issue_comment_pr_created")
    payload["issue"]["number"] = True
    assert github_event("issue_comment", payload) == Ignored(
        "GitHub issue_comment event without what meshbot needs: issue.number is a boolean, not a positive integer")


# ---------------------------------------------------------------------- GitLab


def test_gitlab_push():
    assert gitlab("push") == Push(forge="gitlab", project=GL_PROJECT, branch="main", before=S1, after=S2,
                                  deleted=False, pusher="carla")


def test_gitlab_branch_deletion_has_a_null_checkout_sha():
    assert fixture("gitlab", "push_branch_deleted")["checkout_sha"] is None
    event = gitlab("push_branch_deleted")
    assert isinstance(event, Push) and event.deleted and event.branch == "feature/old-port"


def test_gitlab_tag_push_and_its_deletion():
    assert gitlab("tag_push") == TagPush(forge="gitlab", project=GL_PROJECT, tag="v1.1.0", sha=S2, deleted=False,
                                         pusher="carla")
    assert gitlab("tag_push_deleted") == TagPush(forge="gitlab", project=GL_PROJECT, tag="v1.0.0-rc1", sha=S1,
                                                 deleted=True, pusher="carla")


def test_gitlab_push_with_null_after_is_a_deletion():
    payload = fixture("gitlab", "push")
    payload["after"] = None
    event = gitlab_event("Push Hook", payload)
    assert isinstance(event, Push) and event.deleted and event.after == ZERO


@pytest.mark.parametrize(("name", "action", "head"), [
    ("merge_request_open", "opened", S2), ("merge_request_update_commits", "updated", S3),
    ("merge_request_reopen", "reopened", S2),
])
def test_gitlab_merge_requests_that_need_a_review(name, action, head):
    assert gitlab(name) == MergeRequestEvent(
        forge="gitlab", project=GL_PROJECT, number=7, action=action, head_sha=head,
        source_branch="feature/forecast-port", target_branch="main", from_fork=False, author="carla",
        title="Add the cashflow forecast output port",
    )


def test_gitlab_merge_request_from_a_fork():
    event = gitlab("merge_request_open_fork")
    assert isinstance(event, MergeRequestEvent) and event.from_fork


def test_gitlab_update_without_new_commits_is_ignored():
    assert gitlab("merge_request_update_title") == Ignored("a merge request update without new commits (no oldrev)")


def test_gitlab_closed_merge_request_is_ignored():
    assert gitlab("merge_request_close") == Ignored("merge request action 'close' is not handled")


def test_gitlab_merged_merge_request():
    assert gitlab("merge_request_merge") == MergeRequestMerged(
        forge="gitlab", project=GL_PROJECT, number=7, source_branch=PROMOTION_BRANCH, target_branch="main",
        merge_sha=MERGED_SHA, from_fork=False, merged_by="carla")


def test_gitlab_fast_forward_merge_has_no_merge_commit_the_last_commit_is_used():
    payload = fixture("gitlab", "merge_request_merge")
    payload["object_attributes"]["merge_commit_sha"] = None
    event = gitlab_event("Merge Request Hook", payload)
    assert isinstance(event, MergeRequestMerged) and event.merge_sha == S2


def test_gitlab_note_on_a_merge_request():
    assert gitlab("note_merge_request") == CommentEvent(
        forge="gitlab", project=GL_PROJECT, number=7, comment_id="40211", body="/deploy development",
        author="carla", edited=False,
    )
    event = gitlab("note_merge_request_edited")
    assert isinstance(event, CommentEvent) and event.edited


def test_gitlab_note_on_an_issue_names_the_issue_iid():
    assert gitlab("note_issue") == CommentEvent(
        forge="gitlab", project=GL_PROJECT, number=3, comment_id="40211", body="Same here on staging.",
        author="carla", edited=False, on_issue=True,
    )
    payload = fixture("gitlab", "note_issue")
    del payload["issue"]
    assert gitlab_event("Note Hook", payload) == Ignored(
        "GitLab Note Hook without what meshbot needs: issue is not an object")


def test_gitlab_notes_elsewhere_and_system_notes_are_ignored():
    assert gitlab("note_commit") == Ignored("a note on 'Commit', not on a merge request or an issue")
    payload = fixture("gitlab", "note_merge_request")
    payload["object_attributes"]["system"] = True
    assert gitlab_event("Note Hook", payload) == Ignored("a system note")


def test_gitlab_unhandled_event():
    assert gitlab("pipeline") == Ignored("GitLab event 'Pipeline Hook' is not handled")


# ---------------------------------------------------------------------- never an exception



def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, nested at most 4 deep."""
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 7, 2**70])
    if kind == 3:
        return rng.choice([1.5, -0.0, 1e308])
    if kind == 4:
        return rng.choice(["", "x", "refs/heads/main", "refs/tags/", "open", "update", "MergeRequest", "0" * 40])
    keys = ["ref", "repository", "full_name", "action", "pull_request", "object_attributes", "project", "after",
            "deleted", "issue", "comment", "noteable_type", "merge_request", "user", "iid", "number", "head"]
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


@pytest.mark.parametrize("payload", [None, [], [1, 2], "push", 3, 2.5, True, {}, {"repository": None},
                                     {"repository": []}, {"pull_request": "x"}, {"object_attributes": 7}])
@pytest.mark.parametrize("event_name", [*sorted(set(GITHUB_FIXTURES.values())), *sorted(set(GITLAB_FIXTURES.values()))])
def test_odd_json_values_are_ignored(event_name, payload):
    assert isinstance(github_event(event_name, payload), Ignored)
    assert isinstance(gitlab_event(event_name, payload), Ignored)


@pytest.mark.parametrize("event_name", ["push", "pull_request", "issue_comment", "ping", "Push Hook",
                                        "Tag Push Hook", "Merge Request Hook", "Note Hook"])
def test_random_json_values_never_raise(event_name):
    rng = random.Random(event_name)
    for _ in range(2000):
        payload = random_json(rng)
        github_event(event_name, payload)
        gitlab_event(event_name, payload)


def mutations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a payload."""
    paths = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths += mutations(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += mutations(child, (*path, index))
    return paths


def replaced(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of payload with the value at path replaced."""
    copied = copy.deepcopy(payload)
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copied


ODD_VALUES = [None, 0, -1, True, "", "x", [], {}, 1.5]


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_every_field_of_every_fixture_replaced_by_odd_values_never_raises(forge):
    fixtures, parse = (GITHUB_FIXTURES, github_event) if forge == "github" else (GITLAB_FIXTURES, gitlab_event)
    for name, event_name in fixtures.items():
        payload = fixture(forge, name)
        for path in mutations(payload):
            if len(path) > 4:
                continue  # deeper fields meshbot never reads
            for value in ODD_VALUES:
                parse(event_name, replaced(payload, path, value))


@pytest.mark.parametrize("body", [
    b'{"a": [1, -2, 3.5, 1e-7, true, null], "b": "\\u00e9 \\ud83d\\ude80 \xc3\xa9"}',
    b'{"id": 123456789012345678901234567890, "n": -9223372036854775809, "small": 9223372036854775807}',
    b'{"a": 1, "a": 2}',  # the last one wins in both
    b'{"a": NaN, "b": Infinity}', b'{"a": "\\ud800"}', b'\xef\xbb\xbf{"bom": 1}', b"[1e400]",
    '{"utf16": 1}'.encode("utf-16"), b" 7 ", b"[" * 50 + b"]" * 50,
])
def test_parse_json_reads_what_json_loads_reads(body):
    ours = parse_json(body)
    assert ours == json.loads(body) or ours != ours  # NaN
    assert json.dumps(ours) == json.dumps(json.loads(body))  # the same types: an integer beyond 64 bits stays one


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'"\xff"', b"[1,]", b'{"a": 1} x'])
def test_parse_json_refuses_what_json_loads_refuses(body):
    with pytest.raises(ValueError) as ours:
        parse_json(body)
    with pytest.raises(ValueError) as theirs:
        json.loads(body)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_parse_json_of_absurd_nesting_is_a_recursion_error_as_with_json_loads():
    with pytest.raises(RecursionError):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


def test_parse_json_reads_a_webhook_fixture_as_json_loads():
    body = (WEBHOOKS / "github" / "push_branch.json").read_bytes()
    assert parse_json(body) == json.loads(body)
