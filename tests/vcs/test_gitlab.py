"""vcs.gitlab against the local GitLab test server, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import gitlab
import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.files import FileTooLarge, MemoryReader
from tests.builders import SYSTEM, component
from tests.servers.archives import crafted_tar_gz
from tests.servers.gitlab import GitLabServer, HttpError, MergeRequestRecord, Project, Scripted, gitlab_server
from vcs.base import CommitState, DeploymentState, ForgeError, Permission
from vcs.gitlab import GitLabForge, GitLabRepository
from vcs.reader import RevisionReader

PATH = "data/sales/orders"


@pytest.fixture
def server() -> Iterator[GitLabServer]:
    with gitlab_server() as running:
        yield running


@pytest.fixture
def forge(server: GitLabServer) -> GitLabForge:
    return GitLabForge(server.token, server.url)


def make_repository(server: GitLabServer, forge: GitLabForge, files: dict[str, bytes] | None = None,
                    path: str = PATH) -> GitLabRepository:
    server.create_project(path, files or {"README.md": b"hello", "dp/descriptor.yaml": b"name: orders\n"})
    return forge.repository(path)


def test_tree_listing_paginates_and_reads_only_requested_files(server, forge):
    files = {f"dp/file{index:03}.yaml": f"n: {index}".encode() for index in range(250)}
    repository = make_repository(server, forge, files)

    listed = repository.list_files("main")

    assert listed == sorted(files)
    tree_requests = server.requests_matching("GET", "/repository/tree")
    assert len(tree_requests) == 3  # 250 files + 1 folder, 100 per page
    assert all(r.query["recursive"].lower() == "true" and r.query["per_page"] == "100" for r in tree_requests)
    assert repository.api_calls == 3 == len(server.requests)

    assert repository.read_file("main", "dp/file007.yaml") == b"n: 7"
    assert repository.api_calls == 5 == len(server.requests)
    raw = server.requests_matching("GET", "/repository/blobs/")
    assert len(raw) == 1 and raw[0].path.endswith("/raw")


def test_project_path_with_subgroups_is_url_encoded(server, forge):
    repository = make_repository(server, forge, path="a/b/c/project")
    assert repository.branch_head("main") == server.project("a/b/c/project").branches["main"]
    assert server.requests[0].raw_path.startswith("/projects/a%2Fb%2Fc%2Fproject/")


def test_file_over_limit_is_refused_without_download(server, forge):
    repository = make_repository(server, forge, {"big.bin": b"x" * 5000})
    repository.list_files("main")
    with pytest.raises(FileTooLarge) as refused:
        repository.read_file("main", "big.bin", max_bytes=1000)
    assert refused.value.size == 5000
    assert server.requests_matching("HEAD", "/repository/files/big.bin")
    assert not server.requests_matching("GET", "/repository/blobs/")


def test_missing_file(server, forge):
    repository = make_repository(server, forge)
    with pytest.raises(FileNotFoundError):
        repository.read_file("main", "nope.yaml")  # not listed: asked to GitLab
    repository.list_files("main")
    calls = repository.api_calls
    with pytest.raises(FileNotFoundError):
        repository.read_file("main", "nope.yaml")  # listed: no request
    assert repository.api_calls == calls


def test_read_file_without_listing_uses_blob_id_from_head(server, forge):
    repository = make_repository(server, forge)
    assert repository.read_file("main", "dp/descriptor.yaml") == b"name: orders\n"


def test_branch_head(server, forge):
    repository = make_repository(server, forge)
    assert repository.branch_head("main") == server.project(PATH).branches["main"]
    assert repository.branch_head("nope") is None


def test_default_branch_is_read_once(server, forge):
    repository = make_repository(server, forge)
    assert repository.default_branch() == server.project(PATH).default_branch
    repository.default_branch()
    assert repository.api_calls == 1


def test_notes_create_list_edit_and_react(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    request = server.open_merge_request(project, "feature")
    server.add_note(project, request.iid, "/deploy", author="jane")
    server.add_note(project, request.iid, "added 1 commit", author="jane", system=True)
    for index in range(120):
        server.add_note(project, request.iid, f"note {index}", author="bob")

    created = repository.create_comment(request.iid, "working on it")
    comments = repository.comments(request.iid)
    assert [c.body for c in comments][:2] == ["/deploy", "note 0"]
    assert comments[-1] == created and created.author == "meshbot"
    assert len(comments) == 122  # system note skipped

    repository.edit_comment(request.iid, created.id, "done")
    assert request.notes[-1].body == "done"
    repository.add_reaction(request.iid, comments[0].id, "eyes")
    repository.add_reaction(request.iid, comments[0].id, "eyes")  # twice is fine
    assert request.notes[0].award_emoji == ["eyes"]


@pytest.mark.parametrize(("state", "expected"), [(CommitState.PENDING, "pending"), (CommitState.SUCCESS, "success"),
                                                 (CommitState.FAILURE, "failed"), (CommitState.ERROR, "failed")])
def test_commit_status_mapping(server, forge, state, expected):
    repository = make_repository(server, forge)
    sha = server.project(PATH).branches["main"]
    repository.set_commit_status(sha, "meshbot/validate", state, "x" * 400, target_url="https://ci/1")
    status = server.project(PATH).statuses[-1]
    assert (status["status"], status["name"], status["target_url"]) == (expected, "meshbot/validate", "https://ci/1")
    assert len(status["description"]) == 255
    repository.set_commit_status(sha, "meshbot/validate", state, "again")  # same state: GitLab refuses, fine


def test_deployment_created_and_updated(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    sha = project.branches["main"]
    deployment_id = repository.create_deployment(sha, "production", "deploy orders")
    repository.set_deployment_state(deployment_id, DeploymentState.SUCCESS, "deployed")
    deployment = project.deployments[int(deployment_id)]
    assert (deployment["sha"], deployment["ref"], deployment["environment"]["name"]) == (sha, "main", "production")
    assert deployment["status_history"] == ["running", "success"]
    repository.set_deployment_state(deployment_id, DeploymentState.ERROR, "broken")
    assert deployment["status"] == "failed"


@pytest.mark.parametrize(("level", "expected"), [(10, Permission.READ), (20, Permission.READ),
                                                 (30, Permission.WRITE), (40, Permission.MAINTAIN),
                                                 (50, Permission.ADMIN)])
def test_access_levels(server, forge, level, expected):
    repository = make_repository(server, forge)
    server.set_member(server.project(PATH), "jane", level)
    assert repository.permission("jane") == expected


def test_non_member_and_unknown_user(server, forge):
    repository = make_repository(server, forge)
    server.add_user("stranger")
    assert repository.permission("stranger") == Permission.NONE
    assert repository.permission("nobody-at-all") == Permission.NONE


def test_merge_requests_from_fork_find_open_update(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    fork = server.create_project("jane/orders", forked_from=project)
    fork_sha = server.push(fork, "fix", {"a.yaml": b"fixed"})
    from_fork = server.open_merge_request(project, "fix", source_project=fork)

    found = repository.merge_request(from_fork.iid)
    assert (found.from_fork, found.head_sha, found.state, found.author) == (True, fork_sha, "open", "jane")

    server.push(project, "meshbot/update", {"b.yaml": b"b"})
    assert repository.find_merge_request("meshbot/update", "main") is None
    opened = repository.open_merge_request("meshbot/update", "main", "Update", "body")
    assert (opened.from_fork, opened.author, opened.description) == (False, "meshbot", "body")
    assert repository.find_merge_request("meshbot/update", "main") == opened
    repository.update_merge_request(opened.number, "Update 2", "body 2")
    assert repository.merge_request(opened.number).title == "Update 2"
    project.merge_requests[opened.number].state = "merged"
    assert repository.merge_request(opened.number).state == "merged"
    assert repository.find_merge_request("meshbot/update", "main") is None


def test_merge_request_missing(server, forge):
    repository = make_repository(server, forge)
    with pytest.raises(ForgeError) as missing:
        repository.merge_request(99)
    assert missing.value.status == 404


def test_create_branch_and_commit_files(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    parent = project.branches["main"]
    repository.create_branch("meshbot/x", parent)
    sha = repository.commit_files("meshbot/x", parent, "Update", {"README.md": b"new", "dp/new.yaml": b"\x00\xff"})
    assert project.branches["meshbot/x"] == sha
    assert server.files_at(project, sha)["dp/new.yaml"] == b"\x00\xff"
    actions = server.requests_matching("POST", "/repository/commits")[0].body["actions"]
    assert {(a["action"], a["file_path"], a["last_commit_id"]) for a in actions} == {
        ("update", "README.md", parent), ("create", "dp/new.yaml", parent)}
    with pytest.raises(ForgeError):
        repository.create_branch("meshbot/x", parent)


def test_commit_files_refused_when_branch_moved(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    parent = project.branches["main"]
    someone = server.push(project, "main", {"README.md": b"theirs"})
    with pytest.raises(ForgeError, match="moved"):
        repository.commit_files("main", parent, "Update", {"README.md": b"ours"})
    assert project.branches["main"] == someone
    assert server.files_at(project, "main")["README.md"] == b"theirs"


def test_gitlab_refuses_update_of_a_changed_file(server, forge):
    """If the branch moves between meshbot's check and its commit, GitLab's last_commit_id check refuses."""
    repository = make_repository(server, forge)
    project = server.project(PATH)
    parent = project.branches["main"]
    repository.list_files(parent)
    someone = server.push(project, "main", {"README.md": b"theirs"})
    head = project.commits[someone]
    # The branch check answers as if the branch had not moved yet.
    server.script("GET", "/repository/branches/main", [Scripted(200, {"name": "main", "commit": {"id": parent}})])
    with pytest.raises(ForgeError, match="moved") as refused:
        repository.commit_files("main", parent, "Update", {"README.md": b"ours"})
    assert refused.value.status == 409
    assert project.branches["main"] == head.id


def test_retry_after_429_is_honoured_and_counted(server, forge):
    repository = make_repository(server, forge)
    server.script("GET", "/repository/branches/main", [Scripted(429, {"message": "Too many"}, {"Retry-After": "1"})])
    started = time.monotonic()
    assert repository.branch_head("main") == server.project(PATH).branches["main"]
    assert time.monotonic() - started >= 1.0
    assert repository.api_calls == 2 == len(server.requests)


def test_a_429_on_a_post_is_sent_again_after_the_wait(server, forge):
    """GitLab refused the request, so sending it again cannot make a second note."""
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    request = server.open_merge_request(project, "feature")
    server.script("POST", "/notes", [Scripted(429, {"message": "Too many"}, {"Retry-After": "1"})])
    started = time.monotonic()
    repository.create_comment(request.iid, "working on it")
    assert time.monotonic() - started >= 1.0
    assert [note.body for note in request.notes] == ["working on it"]
    assert len(server.requests_matching("POST", "/notes")) == 2


def test_a_retry_after_as_a_date_is_obeyed_and_a_wait_too_long_fails_at_once(server):
    forge = GitLabForge(server.token, server.url, max_retry_wait=5)
    repository = make_repository(server, forge)
    in_the_past = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.script("GET", "/repository/branches/main", [Scripted(429, {"message": "Too many"},
                                                                {"Retry-After": in_the_past})])
    assert repository.branch_head("main") == server.project(PATH).branches["main"]
    assert repository.api_calls == 2

    server.script("GET", "/repository/branches/main", [Scripted(429, {"message": "Too many"},
                                                                {"Retry-After": "3600"})])
    started = time.monotonic()
    with pytest.raises(ForgeError, match="retry in 3600s") as limited:
        repository.branch_head("main")
    assert time.monotonic() - started < 5 and limited.value.status == 429
    assert repository.api_calls == 3


def test_rate_limit_reset_and_giving_up(server):
    forge = GitLabForge(server.token, server.url, max_retries=2)
    repository = make_repository(server, forge)
    server.script("GET", "/repository/branches/", [Scripted(429, {"message": "Too many"})] * 3)
    with pytest.raises(ForgeError) as limited:
        repository.branch_head("main")
    assert limited.value.status == 429
    assert repository.api_calls == 3 == len(server.requests)


def test_a_get_answered_502_once_is_retried(server, forge):
    repository = make_repository(server, forge)
    server.script("GET", "/repository/branches/main", [Scripted(502, {"message": "502 Bad Gateway"})])
    assert repository.branch_head("main") == server.project(PATH).branches["main"]
    assert repository.api_calls == 2 == len(server.requests_matching("GET", "/repository/branches/main"))


def test_a_note_answered_502_after_gitlab_made_it_is_not_sent_again(server, forge):
    """The gateway timed out after GitLab created the note: sending the POST again would make a duplicate."""
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    request = server.open_merge_request(project, "feature")
    server.script("POST", "/notes", [Scripted(502, {"message": "502 Bad Gateway"}, applied=True)])
    with pytest.raises(ForgeError) as failed:
        repository.create_comment(request.iid, "working on it")
    assert failed.value.status == 502
    assert [note.body for note in request.notes] == ["working on it"]
    assert len(server.requests_matching("POST", "/notes")) == 1 and repository.api_calls == 1


def test_a_put_answered_503_is_not_sent_again(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    request = server.open_merge_request(project, "feature")
    server.script("PUT", f"/merge_requests/{request.iid}", [Scripted(503, {"message": "503"}, applied=True)])
    with pytest.raises(ForgeError) as failed:
        repository.update_merge_request(request.iid, "Renamed", "body")
    assert failed.value.status == 503 and request.title == "Renamed"
    assert len(server.requests_matching("PUT", f"/merge_requests/{request.iid}")) == 1


def test_server_error_becomes_forge_error_with_message_after_the_retries(server):
    repository = make_repository(server, GitLabForge(server.token, server.url, max_retries=1))
    server.script("GET", "/merge_requests/1", [Scripted(500, {"message": "500 Internal Server Error"})] * 2)
    with pytest.raises(ForgeError, match="500 Internal Server Error") as failed:
        repository.merge_request(1)
    assert failed.value.status == 500
    assert repository.api_calls == 2


def test_missing_project_gives_clear_error(server, forge):
    repository = forge.repository("no/such/project")
    with pytest.raises(ForgeError, match="no/such/project.*404 Project Not Found") as missing:
        repository.list_files("main")
    assert missing.value.status == 404


def test_token_required_and_bot_username(server):
    assert GitLabForge(server.token, server.url).bot_username() == "meshbot"
    with pytest.raises(ForgeError) as refused:
        GitLabForge("wrong", server.url).repository(PATH).branch_head("main")
    assert refused.value.status == 401


def test_from_environment(monkeypatch, server):
    monkeypatch.setenv("MESHBOT_GITLAB_URL", server.url)
    monkeypatch.setenv("MESHBOT_GITLAB_TOKEN", server.token)
    forge = GitLabForge.from_environment()
    assert (forge.name, forge.url, forge.bot_username()) == ("gitlab", server.url, "meshbot")
    monkeypatch.delenv("MESHBOT_GITLAB_TOKEN")
    with pytest.raises(ForgeError, match="MESHBOT_GITLAB_TOKEN"):
        GitLabForge.from_environment()


def test_a_release_deployment_names_its_tag_and_never_repeats_a_status(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    sha = project.branches["main"]
    deployment_id = repository.create_deployment(sha, "production", "orders 1.0.0", tag="v1.0.0")
    repository.set_deployment_state(deployment_id, DeploymentState.IN_PROGRESS, "deploying")  # already running
    repository.set_deployment_state(deployment_id, DeploymentState.SUCCESS, "deployed")
    deployment = project.deployments[int(deployment_id)]
    assert (deployment["ref"], deployment["tag"]) == ("v1.0.0", True)
    assert deployment["status_history"] == ["running", "success"]
    updates = [r for r in server.requests if r.method == "PUT" and "/deployments/" in r.path]
    assert len(updates) == 1


# -- reading many files at once

PRODUCT = {"catalog-info.yaml": SYSTEM,
           **{f"components/c{index:02}/catalog-info.yaml": component(f"c{index:02}") for index in range(50)}}
LARGE = {"docs/manual.bin": b"m" * 3_000_000, "data/sample.bin": bytes(range(256)) * 4000}


def product(server: GitLabServer, forge: GitLabForge) -> GitLabRepository:
    return make_repository(server, forge, {**{path: text.encode() for path, text in PRODUCT.items()}, **LARGE})


def test_fifty_components_are_read_from_one_archive(server, forge):
    repository = product(server, forge)
    descriptor = assemble(RevisionReader(repository, "main"), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    assert len(descriptor.components) == 50
    assert not server.requests_matching("GET", "/repository/tree")  # the snapshot lists the files too
    assert [request.query for request in server.requests_matching("GET", "/repository/archive.tar.gz")] \
        == [{"sha": "main"}]
    assert repository.api_calls == 1 == repository.rest_calls == len(server.requests)


def test_fifty_components_without_snapshot_come_from_the_tree_and_one_archive(server, forge):
    repository = product(server, forge)
    descriptor = assemble(RevisionReader(repository, "main", snapshot_limit=None), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    tree_pages = len(server.requests_matching("GET", "/repository/tree"))
    assert tree_pages == 2  # 107 entries (files and folders), 100 a page
    assert len(server.requests_matching("GET", "/repository/archive.tar.gz")) == 1
    assert repository.api_calls == tree_pages + 1 == len(server.requests)


def test_a_project_over_the_archive_limit_is_read_file_by_file(server, forge):
    repository = product(server, forge)
    repository.ARCHIVE_LIMIT = 1_000_000  # the large files alone are over it: the download stops there
    descriptor = assemble(RevisionReader(repository, "main", snapshot_limit=1_000_000), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    # the snapshot's download was cut short: read_files does not download the archive again
    assert len(server.requests_matching("GET", "/repository/archive.tar.gz")) == 1
    assert repository.api_calls == 1 + 2 + 2 * 51  # the cut archive, tree pages, then HEAD and blob a file


def test_snapshot_leaves_out_links_refuses_escaping_members_and_skips_malformed_archives(server, forge):
    repository = make_repository(server, forge, {"catalog-info.yaml": b"kind: System\n"})
    project = server.project(PATH)
    project.archive = crafted_tar_gz([("top/catalog-info.yaml", b"kind: System\n"), ("top/link.yaml", "->/etc/passwd")])
    assert repository.snapshot("main", 1_000_000) == {"catalog-info.yaml": b"kind: System\n"}
    for member in [("top/../catalog-info.yaml", b"kind: System\n"), ("/etc/passwd", b"root")]:
        project.archive = crafted_tar_gz([("top/README.md", b"x"), member])
        with pytest.raises(ForgeError, match="unsafe path"):
            repository.snapshot("main", 1_000_000)
    project.archive = b"not a tar.gz"
    assert repository.snapshot("main", 1_000_000) is None
    reader = RevisionReader(repository, "main")
    assert reader.list_files() == ["catalog-info.yaml"]  # from the tree instead
    assert reader.read_bytes("catalog-info.yaml") == b"kind: System\n"


def test_read_files_leaves_out_absent_paths_and_refuses_a_member_over_the_limit(server, forge):
    files = {f"c{index}/catalog-info.yaml": b"kind: Component\n" for index in range(3)}
    repository = make_repository(server, forge, {**files, "big/catalog-info.yaml": b"x" * 5000})
    assert repository.read_files("main", [*files, "absent.yaml"]) == files
    assert repository.api_calls == 2  # the tree listing, the archive
    with pytest.raises(FileTooLarge):
        repository.read_files("main", [*files, "big/catalog-info.yaml"], max_bytes=1000)


@pytest.mark.parametrize("member", [("top/../c0/catalog-info.yaml", b"kind: System\n"), ("/etc/passwd", b"root"),
                                    ("top/c0/catalog-info.yaml", "->/etc/passwd")])
def test_an_archive_with_an_unsafe_member_is_refused(server, forge, member):
    files = {f"c{index}/catalog-info.yaml": b"kind: Component\n" for index in range(3)}
    repository = make_repository(server, forge, files)
    server.project(PATH).archive = crafted_tar_gz([("top/README.md", b"x"), member])
    with pytest.raises(ForgeError, match="unsafe path|link"):
        repository.read_files("main", sorted(files))


def test_approved_reads_gitlab_approvals(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    request = server.open_merge_request(project, "feature")

    assert repository.approved(request.iid) is False
    assert repository.api_calls == 1
    assert [r.path for r in server.requests] == [f"/projects/{PATH}/merge_requests/{request.iid}/approvals"]

    server.approve(project, request.iid, "bob")
    assert repository.approved(request.iid) is True
    assert repository.api_calls == 2

    request.approvals_required = 2  # a rule now asks for a second approval
    assert repository.approved(request.iid) is False
    assert repository.api_calls == 3


def test_approved_of_a_missing_merge_request_is_a_forge_error(server, forge):
    repository = make_repository(server, forge)
    with pytest.raises(ForgeError, match="approvals of merge request !99") as raised:
        repository.approved(99)
    assert raised.value.status == 404


# ------------------------------------------------------------------ issues


def test_issues_create_list_update_comment_and_close(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    server.push(project, "feature", {"a.yaml": b"a"})
    server.open_merge_request(project, "feature", author="meshbot")  # a merge request is not an issue
    question = server.open_issue(project, "Question", "How do I deploy?", author="jane")

    created = repository.create_issue("meshbot: drift in production", "3 resources drifted")
    assert (created.number, created.state, created.author) == (2, "open", "meshbot")
    assert created.url == f"{server.url}/{PATH}/-/issues/2"
    record = project.issues[2]
    assert (record.title, record.description, record.author.username) == (
        "meshbot: drift in production", "3 resources drifted", "meshbot")

    assert [issue.number for issue in repository.open_issues()] == [2, question.iid]
    assert [(issue.number, issue.body) for issue in repository.open_issues(author="meshbot")] == [
        (2, "3 resources drifted")]
    listed = server.requests_matching("GET", f"/projects/{PATH}/issues")[-1].query
    assert (listed["state"], listed["author_username"], listed["order_by"], listed["sort"]) == (
        "opened", "meshbot", "created_at", "desc")

    repository.update_issue(2, "meshbot: drift in production (2)", "4 resources drifted")
    assert (record.title, record.description) == ("meshbot: drift in production (2)", "4 resources drifted")

    server.add_issue_note(project, 2, "looking", author="jane")
    server.add_issue_note(project, 2, "changed the description", author="jane", system=True)
    comment = repository.create_issue_comment(2, "still drifting")
    assert (comment.body, comment.author) == ("still drifting", "meshbot")
    assert [(c.body, c.author) for c in repository.issue_comments(2)] == [("looking", "jane"),
                                                                         ("still drifting", "meshbot")]

    start = len(server.requests)
    repository.close_issue(2, comment="fixed by deployment 7")
    assert [(r.method, r.path, r.body) for r in server.requests[start:]] == [
        ("POST", f"/projects/{PATH}/issues/2/notes", {"body": "fixed by deployment 7"}),
        ("PUT", f"/projects/{PATH}/issues/2", {"state_event": "close"})]
    assert (record.state, record.closed_by and record.closed_by.username) == ("closed", "meshbot")
    assert [(note.body, note.system) for note in record.notes[-2:]] == [("fixed by deployment 7", False),
                                                                        ("closed", True)]
    assert [issue.number for issue in repository.open_issues()] == [question.iid]
    assert repository.api_calls == 9  # one call each; close_issue two


def test_open_issues_reads_every_page(server, forge):
    repository = make_repository(server, forge)
    project = server.project(PATH)
    for index in range(120):
        server.open_issue(project, f"issue {index}")
    project.issues[5].state = "closed"
    found = repository.open_issues()
    assert [issue.number for issue in found] == [iid for iid in range(120, 0, -1) if iid != 5]
    assert (found[0].title, found[0].author, found[0].state) == ("issue 119", "jane", "open")
    assert repository.api_calls == 2  # 100 a page
    assert repository.open_issues(author="bob") == []


def test_a_missing_issue_is_a_forge_error_with_its_status(server, forge):
    repository = make_repository(server, forge)
    with pytest.raises(ForgeError, match="update issue #9") as raised:
        repository.update_issue(9, "t", "b")
    assert raised.value.status == 404
    with pytest.raises(ForgeError) as raised:
        repository.issue_comments(9)
    assert raised.value.status == 404


# ------------------------------------------------------------------ merging merge requests in the test server


def _diverged_merge_request(server: GitLabServer) -> tuple[Project, MergeRequestRecord, str, str]:
    """A merge request whose source changed README.md and added new.yaml while main gained main.yaml."""
    project = server.project(PATH)
    head = server.push(project, "feature", {"README.md": b"changed", "new.yaml": b"n"})
    main = server.push(project, "main", {"main.yaml": b"m"})
    return project, server.open_merge_request(project, "feature", title="Feature"), main, head


def test_merge_helper_merges_like_gitlab(server, forge):
    repository = make_repository(server, forge)
    project, record, main, head = _diverged_merge_request(server)
    sha = server.merge(project, record.iid)
    assert project.branches["main"] == sha
    assert project.commits[sha].parent_ids == [main, head]
    assert project.commits[sha].message == (f"Merge branch 'feature' into 'main'\n\nFeature\n\n"
                                            f"See merge request {PATH}!{record.iid}")
    assert server.files_at(project, "main") == {"README.md": b"changed", "dp/descriptor.yaml": b"name: orders\n",
                                                "new.yaml": b"n", "main.yaml": b"m"}
    assert (record.state, record.merge_commit_sha, record.merged_by and record.merged_by.username) == (
        "merged", sha, "meshbot")
    assert repository.merge_request(record.iid).state == "merged"
    with pytest.raises(HttpError) as refused:
        server.merge(project, record.iid)
    assert refused.value.status == 405 and project.branches["main"] == sha


def test_merging_through_the_api_as_python_gitlab_does(server, forge):
    make_repository(server, forge)
    project, record, main, head = _diverged_merge_request(server)
    client = gitlab.Gitlab(server.url, private_token=server.token)
    request = client.projects.get(PATH, lazy=True).mergerequests.get(record.iid)
    with pytest.raises(gitlab.exceptions.GitlabMRClosedError) as refused:
        request.merge(sha=main)  # not the source branch's head
    assert refused.value.response_code == 409 and project.branches["main"] == main
    request.merge(sha=head, squash=True, should_remove_source_branch=True)
    sha = project.branches["main"]
    assert (request.state, request.merge_commit_sha, request.merged_by["username"]) == ("merged", sha, "meshbot")
    assert project.commits[sha].parent_ids == [main]  # squashed
    assert server.files_at(project, "main")["new.yaml"] == b"n"
    assert "feature" not in project.branches
    merged = server.requests_matching("PUT", f"/projects/{PATH}/merge_requests/{record.iid}/merge")[-1]
    # python-gitlab sends sha and squash in the query string, the other options in the body
    assert (merged.query, merged.body) == ({"sha": head, "squash": "True"}, {"should_remove_source_branch": True})
    with pytest.raises(gitlab.exceptions.GitlabMRClosedError) as again:
        request.merge()
    assert again.value.response_code == 405


def test_a_merge_request_from_a_fork_is_merged_with_the_forks_commits(server, forge):
    make_repository(server, forge)
    project = server.project(PATH)
    fork = server.create_project("jane/orders", forked_from=project)
    record = server.open_merge_request(project, "fix", source_project=fork)
    head = server.push(fork, "fix", {"fork.yaml": b"from the fork"})  # pushed after opening: GitLab fetches it
    sha = server.merge(project, record.iid, merged_by="bob")
    assert project.commits[sha].parent_ids[1] == head
    assert server.files_at(project, "main")["fork.yaml"] == b"from the fork"
    assert record.merged_by is not None and record.merged_by.username == "bob"
