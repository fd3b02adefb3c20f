"""Routing events to the jobs they start."""

from __future__ import annotations

from bot.forge.events import CommentEvent, Ignored, MergeRequestEvent, MergeRequestMerged, Push, TagPush
from bot.forge.router import JobRequest, route

SHA = "9c1e4f0b0d7a3e5c2b8f6a4d1e0c9b8a7f6e5d4c"


def comment(author: str = "alice-dev", edited: bool = False) -> CommentEvent:
    return CommentEvent(forge="github", project="acme/shop", number=42, comment_id="2091234567",
                        body="/deploy development", author=author, edited=edited)


def test_merge_request_is_reviewed():
    event = MergeRequestEvent(forge="gitlab", project="data/shop", number=7, action="updated", head_sha=SHA,
                              source_branch="feature", target_branch="main", from_fork=True, author="carla", title="")
    [job] = route(event)
    assert job == JobRequest("handlers.merge_request.review", ("gitlab", "data/shop", 7, SHA),
                             "review gitlab data/shop merge request 7 (updated) at 9c1e4f0b0d7a")


def test_branch_push_is_checked_and_its_deletion_ignored():
    push = Push(forge="github", project="acme/shop", branch="main", before="0" * 40, after=SHA, deleted=False,
                pusher="alice")
    [job] = route(push)
    assert (job.function, job.args) == ("handlers.push.check", ("github", "acme/shop", "main", SHA))
    deleted = Push(forge="github", project="acme/shop", branch="old", before=SHA, after="0" * 40, deleted=True,
                   pusher="alice")
    assert route(deleted) == Ignored("branch 'old' was deleted: nothing to check")


def test_tag_is_released_and_its_deletion_never_undeploys():
    tag = TagPush(forge="gitlab", project="data/shop", tag="v1.0.0", sha=SHA, deleted=False, pusher="carla")
    [job] = route(tag)
    assert (job.function, job.args) == ("handlers.tag.release", ("gitlab", "data/shop", "v1.0.0", SHA))
    deleted = TagPush(forge="gitlab", project="data/shop", tag="v1.0.0", sha=SHA, deleted=True, pusher="carla")
    assert route(deleted) == Ignored("tag 'v1.0.0' was deleted: deleting a tag never undeploys")


def test_comment_runs_commands():
    [job] = route(comment(), bot_usernames=["meshbot"])
    assert job.function == "handlers.comment.commands"
    assert job.args == ("github", "acme/shop", 42, "2091234567", "/deploy development", "alice-dev")


def test_own_and_edited_comments_are_ignored():
    assert route(comment(author="meshbot[bot]"), bot_usernames=["meshbot"]) == Ignored(
        "comment 2091234567 was written by meshbot itself (meshbot[bot])")
    assert isinstance(route(comment(author="MeshBot"), bot_usernames=["meshbot"]), Ignored)
    assert route(comment(edited=True)) == Ignored(
        "comment 2091234567 was edited: commands run only from new comments")


def test_an_issue_comment_with_a_command_starts_the_issue_job():
    event = CommentEvent(forge="gitlab", project="data/shop", number=3, comment_id="8", author="carla", edited=False,
                         body="/request-access sales-view", on_issue=True)
    [job] = route(event, bot_usernames=["meshbot"])
    assert job == JobRequest("handlers.request_access.issue_commands",
                             ("gitlab", "data/shop", 3, "8", "/request-access sales-view", "carla"),
                             "commands of gitlab data/shop issue 3 comment 8 by carla")
    assert route(CommentEvent(forge="gitlab", project="data/shop", number=3, comment_id="9", author="carla",
                              edited=False, body="Same here.", on_issue=True)) == Ignored(
        "comment 9 holds no meshbot command")


def test_ignored_stays_ignored():
    assert route(Ignored("ping")) == Ignored("ping")


def test_a_comment_without_a_command_starts_nothing():
    event = CommentEvent(forge="github", project="acme/shop", number=42, comment_id="7", body="Looks good to me!",
                         author="alice-dev", edited=False)
    assert route(event) == Ignored("comment 7 holds no meshbot command")


def merged(branch: str, from_fork: bool = False, merge_sha: str = SHA) -> MergeRequestMerged:
    return MergeRequestMerged(forge="gitlab", project="data/shop", number=9, source_branch=branch,
                              target_branch="main", merge_sha=merge_sha, from_fork=from_fork, merged_by="carla")


ACCESS_JOB = JobRequest("handlers.access.grant", ("gitlab", "data/shop", 9, "main", SHA, "carla"),
                        "access grants of gitlab data/shop merge request 9 merged at 9c1e4f0b0d7a")


def test_a_merged_promotion_merge_request_promotes():
    [job, grant] = route(merged("meshbot/promote/production/1.1.0"))
    assert job == JobRequest("handlers.promote.promote",
                             ("gitlab", "data/shop", 9, "meshbot/promote/production/1.1.0", "main", SHA),
                             "promote gitlab data/shop merge request 9 (meshbot/promote/production/1.1.0) merged at "
                             "9c1e4f0b0d7a")
    assert grant == ACCESS_JOB


def test_every_other_merge_only_looks_at_access_files():
    assert route(merged("feature/forecast")) == [ACCESS_JOB]
    assert route(merged("meshbot/access/sales/alice")) == [ACCESS_JOB]
    # a fork's promotion branch is not meshbot's: it promotes nothing, and its merged content is in the repository
    assert route(merged("meshbot/promote/production/1.1.0", from_fork=True)) == [
        ACCESS_JOB]
