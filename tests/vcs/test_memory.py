"""The in-memory forge keeps the semantics the real ones have: snapshots, moving branches, refusals."""

from __future__ import annotations

import pytest

from bot.descriptor.files import FileTooLarge
from vcs.base import CommitState, DeploymentState, ForgeError, Permission
from vcs.memory import MemoryForge, MemoryRepository


@pytest.fixture
def forge() -> MemoryForge:
    return MemoryForge()


def test_files_at_a_revision_and_later_commits(forge):
    repository = forge.add("acme/cashflow", {"catalog-info.yaml": b"a: 1\n"})
    first = repository.branch_head("main")
    second = repository.push("main", {"docs/readme.md": b"hello"})
    assert repository.list_files(first) == ["catalog-info.yaml"]
    assert repository.list_files("main") == ["catalog-info.yaml", "docs/readme.md"]
    assert repository.read_file(second, "catalog-info.yaml") == b"a: 1\n"
    with pytest.raises(FileNotFoundError):
        repository.read_file(first, "docs/readme.md")
    with pytest.raises(FileTooLarge):
        repository.read_file(second, "docs/readme.md", max_bytes=3)
    with pytest.raises(ForgeError, match="no commit, branch or tag"):
        repository.list_files("nope")


def test_a_commit_on_a_branch_that_moved_is_refused(forge):
    repository = forge.add("acme/cashflow", {"a": b"1"})
    base = repository.branch_head("main")
    repository.create_branch("meshbot/import/1/ledger", base)
    ours = repository.commit_files("meshbot/import/1/ledger", base, "import", {"a": b"2"})
    repository.push("meshbot/import/1/ledger", {"b": b"a human's commit"})
    with pytest.raises(ForgeError, match="moved"):
        repository.commit_files("meshbot/import/1/ledger", ours, "import again", {"a": b"3"})
    assert repository.read_file("meshbot/import/1/ledger", "b") == b"a human's commit"


def test_merge_requests_comments_statuses_deployments(forge):
    repository = forge.add("acme/cashflow", {"a": b"1"})
    repository.create_branch("feature", repository.branch_head("main"))
    request = repository.add_merge_request("feature")
    head = repository.push("feature", {"a": b"2"})
    assert repository.merge_request(request.number).head_sha == head  # the source branch's head now
    comment = repository.create_comment(request.number, "first")
    repository.edit_comment(request.number, comment.id, "edited")
    assert [(c.body, c.author) for c in repository.comments(request.number)] == [("edited", "meshbot")]
    repository.set_commit_status(head, "meshbot/governance", CommitState.SUCCESS, "x" * 200)
    assert repository.status(head, "meshbot/governance").description == "x" * 140
    deployment = repository.create_deployment(head, "production", "v1.0.0")
    repository.set_deployment_state(deployment, DeploymentState.SUCCESS, "deployed")
    assert repository.deployments[deployment].states == [(DeploymentState.SUCCESS, "deployed", None)]
    repository.permissions["jane"] = Permission.WRITE
    assert repository.permission("jane") >= Permission.WRITE > repository.permission("stranger")
    opened = repository.open_merge_request("feature", "main", "Import", "diff")
    assert repository.find_merge_request("feature", "main") == repository.merge_requests[request.number]
    repository.update_merge_request(opened.number, "Import (2)", "new diff")
    assert repository.merge_requests[opened.number].description == "new diff"
    assert repository.api_calls > 10
    with pytest.raises(ForgeError):
        forge.repository("acme/unknown")


def test_approvals_default_to_not_approved_and_are_counted(forge):
    repository = forge.add("acme/cashflow", {"a": b"1"})
    repository.create_branch("feature", repository.branch_head("main"))
    request = repository.add_merge_request("feature")
    calls = repository.api_calls
    assert repository.approved(request.number) is False
    repository.approvals[request.number] = True
    assert repository.approved(request.number) is True
    assert repository.api_calls == calls + 2


def test_issues_create_list_update_comment_and_close(forge):
    repository = forge.add("acme/cashflow", {"a": b"1"})
    question = repository.add_issue("Question", "How do I deploy?", author="jane")
    calls = repository.api_calls
    created = repository.create_issue("meshbot: drift in production", "3 resources drifted")
    assert (created.number, created.state, created.author, created.url) == (
        2, "open", "meshbot", "memory://acme/cashflow/issues/2")
    assert [issue.number for issue in repository.open_issues()] == [2, question.number]
    assert repository.open_issues(author="meshbot") == [created]
    repository.update_issue(2, "meshbot: drift in production (2)", "4 resources drifted")
    assert (repository.issue(2).title, repository.issue(2).body) == ("meshbot: drift in production (2)",
                                                                     "4 resources drifted")
    comment = repository.create_issue_comment(2, "still drifting")
    assert repository.issue_comments(2) == [comment] and comment.author == "meshbot"
    repository.close_issue(2, comment="fixed")
    assert repository.issue(2).state == "closed"
    assert [c.body for c in repository.issue_threads[2]] == ["still drifting", "fixed"]
    assert repository.open_issues() == [question]
    assert repository.api_calls == calls + 9  # one each; close_issue two
    assert repository.comments(2) == []  # an issue's comments are not a merge request's
    with pytest.raises(ForgeError, match="no issue 7") as missing:
        repository.close_issue(7)
    assert missing.value.status == 404


def test_default_branch_and_merging(forge):
    repository = MemoryRepository("acme/other", {"a": b"1"}, branch="trunk")
    assert repository.default_branch() == "trunk"
    repository.create_branch("feature", repository.branch_head("trunk"))
    repository.push("feature", {"b": b"2"})
    request = repository.add_merge_request("feature", "trunk")
    merged = repository.merge(request.number)
    assert repository.branch_head("trunk") == merged
    assert repository.read_file("trunk", "b") == b"2" and repository.merge_request(request.number).state == "merged"
