"""GitHubForge and GitHubRepository against the local GitHub server, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github, GithubException

from bot.descriptor.assembly import assemble
from bot.descriptor.files import FileTooLarge, MemoryReader
from tests.builders import SYSTEM, component
from tests.servers.archives import crafted_tar_gz
from tests.servers.github import (
    FakeRepository,
    GitHubServer,
    MergeRefused,
    ScriptedReply,
    github_server,
    primary_rate_limit,
    secondary_rate_limit,
)
from vcs.base import CommitState, DeploymentState, ForgeError, Permission
from vcs.github import GitHubForge, GitHubRepository
from vcs.reader import RevisionReader

FILES = {
    "catalog-info.yaml": b"kind: System\n",
    "components/api/catalog-info.yaml": b"kind: Component\n",
    "components/api/big.bin": b"x" * 5000,
}


@pytest.fixture(scope="module")
def server() -> Iterator[GitHubServer]:
    with github_server() as running:
        yield running


@pytest.fixture
def origin(server: GitHubServer, request: pytest.FixtureRequest) -> FakeRepository:
    return server.create_repository(f"acme/{request.node.name.replace('[', '-').rstrip(']')}", FILES)


def forge_for(server: GitHubServer, **options: object) -> GitHubForge:
    return GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None,
                       max_rate_limit_wait=5, **options)  # type: ignore[arg-type]


def repository_for(server: GitHubServer, origin: FakeRepository) -> GitHubRepository:
    return forge_for(server).repository(origin.full_name)


def calls_since(server: GitHubServer, start: int) -> list[str]:
    return [f"{item.method} {item.path}" for item in server.requests[start:]]


def test_list_files_is_one_call_and_read_fetches_only_the_asked_blobs(server, origin):
    repository = repository_for(server, origin)
    start = len(server.requests)
    assert repository.list_files("main") == sorted(FILES)
    assert repository.read_file("main", "catalog-info.yaml") == b"kind: System\n"
    sha = origin.branch_head("main")
    blob = _blob(origin, "catalog-info.yaml")
    assert calls_since(server, start) == [f"GET /repos/{origin.full_name}/git/trees/main",
                                          f"GET /repos/{origin.full_name}/git/blobs/{blob}"]
    assert server.requests[start].query == {"recursive": "1"}
    assert repository.api_calls == 2
    # a commit sha is listed in one call too
    assert repository.list_files(sha or "") == sorted(FILES)
    assert repository.api_calls == 3 == len(server.requests) - start


def _blob(origin: FakeRepository, path: str) -> str:
    head = origin.branch_head("main")
    assert head is not None
    return origin.flat_tree(origin.commits[head].tree)[path]


def test_branch_names_with_slashes_and_reading_without_listing_first(server, origin):
    origin.push("feature/x", {"new.yaml": b"a: 1\n"}, start="main")
    repository = repository_for(server, origin)
    assert repository.read_file("feature/x", "new.yaml") == b"a: 1\n"
    assert repository.api_calls == 2  # the tree, then the blob


def test_file_over_the_limit_is_refused_without_downloading(server, origin):
    repository = repository_for(server, origin)
    repository.list_files("main")
    start = len(server.requests)
    with pytest.raises(FileTooLarge) as refused:
        repository.read_file("main", "components/api/big.bin", max_bytes=1000)
    assert (refused.value.size, refused.value.limit) == (5000, 1000)
    assert server.requests[start:] == []


def test_missing_file(server, origin):
    repository = repository_for(server, origin)
    with pytest.raises(FileNotFoundError):
        repository.read_file("main", "nope.yaml")
    assert repository.api_calls == 1


def test_truncated_tree_is_a_clear_error(server, origin):
    server.script("GET", f"/repos/{origin.full_name}/git/trees/*",
                  ScriptedReply(200, {"sha": "a" * 40, "url": "", "tree": [], "truncated": True}))
    with pytest.raises(ForgeError, match="too large to list in one call"):
        repository_for(server, origin).list_files("main")


def test_branch_head(server, origin):
    repository = repository_for(server, origin)
    assert repository.branch_head("main") == origin.branch_head("main")
    assert repository.branch_head("nope") is None


def test_default_branch_is_read_once(server, origin):
    repository = repository_for(server, origin)
    assert repository.default_branch() == origin.default_branch == "main"
    assert repository.default_branch() == "main"
    assert repository.rest_calls == 1


def test_comments_create_list_edit_and_react(server, origin):
    origin.push("change", {"a.yaml": b"a\n"}, start="main")
    number = origin.open_pull_request("change")
    for index in range(150):  # two pages of 100
        origin.add_comment(number, f"comment {index}", user="jane")
    repository = repository_for(server, origin)
    comments = repository.comments(number)
    assert [comment.body for comment in comments] == [f"comment {index}" for index in range(150)]
    assert comments[0].author == "jane"
    assert repository.api_calls == 2
    created = repository.create_comment(number, "meshbot here")
    assert created.author == "meshbot"
    repository.edit_comment(number, created.id, "meshbot, edited")
    assert origin.comment_bodies(number)[-1] == "meshbot, edited"
    repository.add_reaction(number, comments[0].id, "eyes")
    repository.add_reaction(number, comments[0].id, "eyes")  # GitHub answers 200 for an existing reaction
    assert origin.reactions == [{"comment_id": int(comments[0].id), "content": "eyes", "user": "meshbot"}]


def test_commit_status_description_is_cut_to_140(server, origin):
    sha = origin.branch_head("main") or ""
    repository_for(server, origin).set_commit_status(sha, "meshbot/validate", CommitState.FAILURE, "x" * 300,
                                                     "https://ci.example.com/1")
    status = origin.statuses[-1]
    assert (status["sha"], status["context"], status["state"]) == (sha, "meshbot/validate", "failure")
    assert len(status["description"]) == 140 and status["description"].endswith("…")
    assert status["target_url"] == "https://ci.example.com/1"


def test_deployment_and_its_statuses(server, origin):
    sha = origin.branch_head("main") or ""
    repository = repository_for(server, origin)
    deployment_id = repository.create_deployment(sha, "production", "deploy cashflow")
    repository.set_deployment_state(deployment_id, DeploymentState.IN_PROGRESS, "deploying")
    repository.set_deployment_state(deployment_id, DeploymentState.SUCCESS, "done", "https://logs.example.com/1")
    deployment = origin.deployments[int(deployment_id)]
    assert deployment["required_contexts"] == [] and deployment["auto_merge"] is False
    assert (deployment["sha"], deployment["environment"]) == (sha, "production")
    assert [(status["state"], status["description"], status["log_url"]) for status in deployment["statuses"]] == [
        ("in_progress", "deploying", ""), ("success", "done", "https://logs.example.com/1")]


@pytest.mark.parametrize("role, expected", [
    ("admin", Permission.ADMIN), ("maintain", Permission.MAINTAIN), ("write", Permission.WRITE),
    ("triage", Permission.READ), ("read", Permission.READ), ("none", Permission.NONE),
    ("security-auditor", Permission.READ),  # a custom role counts as its base (legacy) permission
])
def test_permission_mapping(server, origin, role, expected):
    origin.set_permission("bob", role)
    assert repository_for(server, origin).permission("bob") == expected


def test_merge_request_from_a_fork(server, origin):
    fork = server.create_fork(origin, "jane")
    head = fork.push("patch", {"a.yaml": b"from the fork\n"}, start="main")
    number = origin.open_pull_request("patch", author="jane", title="Fork change", head_repository=fork)
    request = repository_for(server, origin).merge_request(number)
    assert (request.from_fork, request.head_sha, request.source_branch, request.target_branch) == \
        (True, head, "patch", "main")
    assert (request.author, request.state, request.title) == ("jane", "open", "Fork change")


def test_open_find_and_update_merge_requests(server, origin):
    repository = repository_for(server, origin)
    head = repository.branch_head("main") or ""
    repository.create_branch("meshbot/update", head)
    with pytest.raises(ForgeError, match="Reference already exists"):
        repository.create_branch("meshbot/update", head)
    assert repository.find_merge_request("meshbot/update", "main") is None
    opened = repository.open_merge_request("meshbot/update", "main", "Update", "Body")
    assert (opened.from_fork, opened.author, opened.state) == (False, "meshbot", "open")
    found = repository.find_merge_request("meshbot/update", "main")
    assert found is not None and found.number == opened.number
    assert server.requests_to("GET", f"/repos/{origin.full_name}/pulls")[-1].query["head"] == \
        "acme:meshbot/update"
    repository.update_merge_request(opened.number, "Update 2", "Body 2")
    assert (origin.pulls[opened.number]["title"], origin.pulls[opened.number]["body"]) == ("Update 2", "Body 2")


def test_commit_files_on_an_unmoved_branch(server, origin):
    repository = repository_for(server, origin)
    parent = origin.branch_head("main") or ""
    sha = repository.commit_files("main", parent, "Update catalog", {"catalog-info.yaml": b"kind: System\nv: 2\n",
                                                                    "new/file.yaml": b"n: 1\n"})
    assert origin.branch_head("main") == sha and origin.commits[sha].parents == [parent]
    assert origin.files_at("main") == {**FILES, "catalog-info.yaml": b"kind: System\nv: 2\n",
                                       "new/file.yaml": b"n: 1\n"}
    assert server.requests_to("PATCH", f"/repos/{origin.full_name}/git/refs/heads/main")[-1].body["force"] is False


def test_commit_files_refuses_when_the_branch_moved(server, origin):
    repository = repository_for(server, origin)
    parent = origin.branch_head("main") or ""
    theirs = origin.push("main", {"theirs.yaml": b"t\n"})
    with pytest.raises(ForgeError, match="moved"):
        repository.commit_files("main", parent, "Mine", {"mine.yaml": b"m\n"})
    assert origin.branch_head("main") == theirs


def test_commit_files_refuses_when_github_refuses_the_fast_forward(server, origin):
    repository = repository_for(server, origin)
    parent = origin.branch_head("main") or ""
    # someone pushes between meshbot's check of the head and its ref update
    server.script("PATCH", f"/repos/{origin.full_name}/git/refs/heads/main",
                  ScriptedReply(422, {"message": "Update is not a fast forward"}))
    with pytest.raises(ForgeError, match="moved while meshbot committed") as refused:
        repository.commit_files("main", parent, "Mine", {"mine.yaml": b"m\n"})
    assert refused.value.status == 409
    assert origin.branch_head("main") == parent


def test_secondary_rate_limit_is_retried_after_retry_after_and_counted(server, origin):
    repository = repository_for(server, origin)
    server.script("GET", f"/repos/{origin.full_name}/git/trees/*", secondary_rate_limit(retry_after=1))
    start, began = len(server.requests), time.monotonic()
    assert repository.list_files("main") == sorted(FILES)
    assert time.monotonic() - began >= 1
    assert [item.status for item in server.requests[start:]] == [403, 200]
    assert repository.api_calls == 2


def test_primary_rate_limit_waits_for_the_reset(server, origin):
    repository = repository_for(server, origin)
    server.script("GET", f"/repos/{origin.full_name}/pulls", primary_rate_limit(int(time.time()) - 1))
    assert repository.find_merge_request("x", "main") is None
    assert repository.api_calls == 2


def test_a_wait_longer_than_allowed_fails_at_once(server, origin):
    repository = repository_for(server, origin)
    server.script("GET", f"/repos/{origin.full_name}/git/trees/*", secondary_rate_limit(retry_after=600))
    began = time.monotonic()
    with pytest.raises(ForgeError, match="rate limit"):
        repository.list_files("main")
    assert time.monotonic() - began < 5
    assert repository.api_calls == 1


def test_server_error_becomes_forge_error_with_status_and_message(server, origin):
    server.script("POST", f"/repos/{origin.full_name}/statuses/*",
                  ScriptedReply(500, {"message": "Something went wrong"}))
    repository = repository_for(server, origin)
    with pytest.raises(ForgeError, match="HTTP 500 Something went wrong") as failed:
        repository.set_commit_status(origin.branch_head("main") or "", "c", CommitState.PENDING, "d")
    assert failed.value.status == 500
    assert repository.api_calls == 1  # a POST is not repeated after a 500


def test_server_unavailable_after_every_retry_becomes_forge_error(server, origin):
    unavailable = ScriptedReply(503, {"message": "Service Unavailable"})
    server.script("GET", f"/repos/{origin.full_name}/git/trees/*", *[unavailable] * 3)
    repository = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None,
                             retries=2).repository(origin.full_name)
    with pytest.raises(ForgeError, match="after retries"):
        repository.list_files("main")
    assert repository.api_calls == 3  # the request and its two retries


def test_missing_repository_is_a_clear_forge_error(server):
    repository = forge_for(server).repository("acme/does-not-exist")
    with pytest.raises(ForgeError, match="HTTP 404 Not Found.*repository does not exist") as failed:
        repository.list_files("main")
    assert failed.value.status == 404


def test_requests_without_a_token_are_refused(server):
    forge = GitHubForge(token="wrong", api_url=server.api_url, seconds_between_writes=None)
    with pytest.raises(ForgeError, match="401 Bad credentials"):
        forge.bot_username()


def test_bot_username_with_a_token(server):
    assert forge_for(server).bot_username() == "meshbot"


def test_github_app_uses_installation_tokens(server, origin):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    server.create_app(4242, public_pem, slug="meshbot-app")
    installation_id = server.install_app(4242, [origin.full_name])
    forge = GitHubForge(app_id=4242, app_private_key=private_pem, api_url=server.api_url,
                        seconds_between_writes=None)
    assert forge.bot_username() == "meshbot-app[bot]"
    start = len(server.requests)
    repository = forge.repository(origin.full_name)
    assert repository.list_files("main") == sorted(FILES)
    origin.push("change", {"a.yaml": b"a\n"}, start="main")
    number = origin.open_pull_request("change")
    assert repository.create_comment(number, "hello").author == "meshbot-app[bot]"
    assert calls_since(server, start)[:2] == [f"GET /repos/{origin.full_name}/installation",
                                              f"POST /app/installations/{installation_id}/access_tokens"]
    used = server.requests_to("GET", f"/repos/{origin.full_name}/git/trees/main")[-1]
    assert used.headers["Authorization"].startswith("token ghs_") and used.status == 200
    # the token is cached: a second repository object asks for no new one
    forge.repository(origin.full_name).branch_head("main")
    assert len(server.requests_to("POST", f"/app/installations/{installation_id}/access_tokens")) == 1
    assert repository.api_calls == 2  # its tree and its comment; the forge's token calls are not the repository's
    with pytest.raises(ForgeError, match="installation"):
        forge.repository("acme/not-installed")


# -- reading many files at once

PRODUCT = {"catalog-info.yaml": SYSTEM,
           **{f"components/c{index:02}/catalog-info.yaml": component(f"c{index:02}") for index in range(50)}}
LARGE = {"docs/manual.bin": b"m" * 3_000_000, "data/sample.bin": bytes(range(256)) * 4000}


def product_repository(server: GitHubServer, name: str) -> FakeRepository:
    return server.create_repository(f"acme/{name}", {**{path: text.encode() for path, text in PRODUCT.items()},
                                                     **LARGE})


def test_fifty_components_are_read_from_one_tarball(server):
    origin = product_repository(server, "fifty")
    repository = repository_for(server, origin)
    start = len(server.requests)
    descriptor = assemble(RevisionReader(repository, "main"), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    assert len(descriptor.components) == 50
    # the snapshot: the tarball (a redirect, one REST call) and the download it points to; no tree, no blob
    assert calls_since(server, start)[0] == f"GET /repos/{origin.full_name}/tarball/main"
    assert calls_since(server, start)[1].startswith(f"GET /_codeload/{origin.full_name}/legacy.tar.gz/")
    assert repository.api_calls == 2 == len(server.requests) - start
    assert (repository.rest_calls, repository.download_calls) == (1, 1)


def test_fifty_components_without_snapshot_come_from_the_tree_and_one_tarball(server):
    origin = product_repository(server, "fifty-listed")
    repository = repository_for(server, origin)
    start = len(server.requests)
    descriptor = assemble(RevisionReader(repository, "main", snapshot_limit=None), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    # the tree, the tarball (a redirect) and the download it points to: both counted
    assert calls_since(server, start)[:2] == [f"GET /repos/{origin.full_name}/git/trees/main",
                                              f"GET /repos/{origin.full_name}/tarball/main"]
    assert calls_since(server, start)[2].startswith(f"GET /_codeload/{origin.full_name}/legacy.tar.gz/")
    assert repository.api_calls == 3 == len(server.requests) - start
    assert not server.requests_to("GET", f"/repos/{origin.full_name}/git/blobs/*")


def test_a_repository_over_the_archive_limit_is_read_blob_by_blob(server):
    origin = product_repository(server, "over-limit")
    repository = repository_for(server, origin)
    repository.ARCHIVE_LIMIT = 1_000_000  # the large files alone are over it
    descriptor = assemble(RevisionReader(repository, "main", snapshot_limit=1_000_000), "development")
    assert descriptor == assemble(MemoryReader(PRODUCT), "development")
    assert len(server.requests_to("GET", f"/repos/{origin.full_name}/tarball/*")) == 1  # the snapshot, cut short
    # the cut snapshot (tarball and download), the tree, then every catalog file's blob
    assert repository.api_calls == 2 + 1 + 51
    assert repository.download_calls == 1


def test_the_archive_download_never_receives_the_api_token(server):
    origin = product_repository(server, "private")
    repository = repository_for(server, origin)
    assert repository.snapshot("main", 20_000_000) == {**{path: text.encode() for path, text in PRODUCT.items()},
                                                       **LARGE}
    asked = server.requests_to("GET", f"/repos/{origin.full_name}/tarball/main")[-1]
    download = server.requests_to("GET", f"/_codeload/{origin.full_name}/legacy.tar.gz/*")[-1]
    assert asked.headers["Authorization"] == f"token {server.token}"
    assert "Authorization" not in download.headers and download.status == 200
    assert "token" in download.query  # the redirect's own one-time token


def test_snapshot_leaves_out_links_and_refuses_escaping_members(server, origin):
    repository = repository_for(server, origin)
    origin.archive = crafted_tar_gz([("top/catalog-info.yaml", b"kind: System\n"), ("top/link.yaml", "->/etc/passwd"),
                                     ("top/up.yaml", "->../../secret")])
    assert repository.snapshot("main", 1_000_000) == {"catalog-info.yaml": b"kind: System\n"}
    reader = RevisionReader(repository, "main")
    assert reader.list_files() == ["catalog-info.yaml"]
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("link.yaml")
    for member in [("top/../catalog-info.yaml", b"kind: System\n"), ("/etc/passwd", b"root")]:
        origin.archive = crafted_tar_gz([("top/README.md", b"x"), member])
        with pytest.raises(ForgeError, match="unsafe path"):
            repository.snapshot("main", 1_000_000)


def test_a_malformed_snapshot_falls_back_to_the_tree(server, origin):
    repository = repository_for(server, origin)
    for archive in [b"not a tar.gz", crafted_tar_gz([("one/a.yaml", b"a"), ("two/b.yaml", b"b")])]:
        origin.archive = archive
        assert repository.snapshot("main", 1_000_000) is None
    origin.archive = b"not a tar.gz"
    reader = RevisionReader(repository, "main")
    assert reader.list_files() == sorted(FILES)
    assert reader.read_bytes("catalog-info.yaml") == FILES["catalog-info.yaml"]


def test_read_files_leaves_out_absent_paths_and_reads_two_files_by_blob(server, origin):
    repository = repository_for(server, origin)
    found = repository.read_files("main", ["catalog-info.yaml", "nowhere.yaml", "components/api/catalog-info.yaml"])
    assert found == {path: FILES[path] for path in ("catalog-info.yaml", "components/api/catalog-info.yaml")}
    assert repository.api_calls == 3  # the tree and two blobs: no archive for two files


def test_read_files_refuses_a_file_over_the_limit(server, origin):
    repository = repository_for(server, origin)
    with pytest.raises(FileTooLarge):  # known from the tree: nothing downloaded
        repository.read_files("main", sorted(FILES), max_bytes=1000)
    assert repository.api_calls == 1
    # a member larger in the archive than the tree said is refused too
    origin.archive = crafted_tar_gz([(f"top/{path}", content) for path, content in FILES.items()]
                                    + [("top/catalog-info.yaml", b"x" * 6000)])
    with pytest.raises(FileTooLarge):
        repository.read_files("main", sorted(FILES), max_bytes=5500)


@pytest.mark.parametrize("member", [("top/../catalog-info.yaml", b"kind: System\n"), ("/etc/passwd", b"root"),
                                    ("top/catalog-info.yaml", "->/etc/passwd")])
def test_an_archive_with_an_unsafe_member_is_refused(server, origin, member):
    origin.archive = crafted_tar_gz([("top/components/api/big.bin", b"x"), member])
    repository = repository_for(server, origin)
    with pytest.raises(ForgeError, match="unsafe path|link"):
        repository.read_files("main", sorted(FILES))


def test_a_broken_archive_is_a_forge_error(server, origin):
    origin.archive = b"not a tar.gz"
    with pytest.raises(ForgeError, match="archive cannot be read"):
        repository_for(server, origin).read_files("main", sorted(FILES))


def _pull_with_reviews(server: GitHubServer, origin: FakeRepository, *reviews: tuple[str, str]) -> int:
    origin.push("change", {"a.yaml": b"a\n"}, start="main")
    number = origin.open_pull_request("change")
    for user, state in reviews:
        server.add_review(origin, number, user, state)
    return number


@pytest.mark.parametrize(("reviews", "expected"), [
    ((), False),
    ((("bob", "APPROVED"),), True),
    ((("bob", "APPROVED"), ("bob", "CHANGES_REQUESTED")), False),
    ((("bob", "CHANGES_REQUESTED"), ("bob", "APPROVED")), True),
    ((("bob", "APPROVED"), ("carol", "CHANGES_REQUESTED")), False),
    ((("bob", "APPROVED"), ("bob", "COMMENTED")), True),
    ((("bob", "COMMENTED"),), False),
    ((("bob", "APPROVED"), ("bob", "DISMISSED")), False),
    ((("bob", "CHANGES_REQUESTED"), ("bob", "DISMISSED"), ("carol", "APPROVED")), True),
])
def test_approved_follows_each_reviewers_latest_verdict(server, origin, reviews, expected):
    number = _pull_with_reviews(server, origin, *reviews)
    repository = repository_for(server, origin)
    start = len(server.requests)
    assert repository.approved(number) is expected
    assert calls_since(server, start) == [f"GET /repos/{origin.full_name}/pulls/{number}/reviews"]
    assert server.requests[start].query == {"per_page": "100"}
    assert repository.api_calls == 1


def test_approved_reads_every_page_of_reviews(server, origin):
    # the approval is on the first page, the later request for changes on the second
    number = _pull_with_reviews(server, origin, ("bob", "APPROVED"),
                                *[("carol", "COMMENTED")] * 100, ("bob", "CHANGES_REQUESTED"))
    repository = repository_for(server, origin)
    assert repository.approved(number) is False
    assert repository.api_calls == 2
    server.add_review(origin, number, "bob", "APPROVED")
    assert repository.approved(number) is True
    assert repository.api_calls == 4


def test_approved_of_a_missing_pull_request_is_a_forge_error(server, origin):
    repository = repository_for(server, origin)
    with pytest.raises(ForgeError, match=r"listing reviews of #999.*HTTP 404") as raised:
        repository.approved(999)
    assert raised.value.status == 404


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_post_answered_with_a_gateway_error_is_not_sent_again(server, origin, status):
    # A gateway error may come after GitHub applied the request: sending it again could post a second comment.
    server.script("POST", f"/repos/{origin.full_name}/statuses/*", ScriptedReply(status, {"message": "Bad Gateway"}))
    repository = repository_for(server, origin)
    with pytest.raises(ForgeError, match=f"HTTP {status}"):
        repository.set_commit_status(origin.branch_head("main") or "", "c", CommitState.PENDING, "d")
    assert repository.api_calls == 1


def test_a_get_answered_with_a_gateway_error_is_retried(server, origin):
    server.script("GET", f"/repos/{origin.full_name}/git/trees/*", ScriptedReply(502, {"message": "Bad Gateway"}))
    repository = repository_for(server, origin)
    assert repository.list_files("main")
    assert repository.api_calls == 2


def test_a_post_whose_answer_times_out_is_not_sent_again(server, origin):
    # The request reached GitHub (it may have been applied); only the answer was lost.
    server.hold("POST", f"/repos/{origin.full_name}/statuses/*", until=lambda: False, timeout=3.0)
    repository = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None,
                             timeout=1).repository(origin.full_name)
    with pytest.raises(ForgeError):
        repository.set_commit_status(origin.branch_head("main") or "", "c", CommitState.PENDING, "d")
    posts = [item for item in server.requests
             if item.method == "POST" and item.path.startswith(f"/repos/{origin.full_name}/statuses/")]
    assert len(posts) <= 1  # the held one (recorded once it is answered, if at all before the assertion)
    assert repository.api_calls <= 1


# -- issues


def test_issues_create_list_update_comment_and_close(server, origin):
    origin.push("change", {"a.yaml": b"a\n"}, start="main")
    pull = origin.open_pull_request("change", author="meshbot")  # the issues API lists it too: left out
    question = origin.open_issue("Question", "How do I deploy?", author="jane")
    repository = repository_for(server, origin)

    created = repository.create_issue("meshbot: drift in production", "3 resources drifted")
    assert (created.number, created.state, created.author) == (question + 1, "open", "meshbot")  # one sequence
    assert created.url == f"https://github.com/{origin.full_name}/issues/{created.number}"
    assert (created.title, created.body) == ("meshbot: drift in production", "3 resources drifted")
    recorded = origin.issues[created.number]
    assert (recorded["title"], recorded["body"], recorded["user"]) == (created.title, created.body, "meshbot")

    assert [issue.number for issue in repository.open_issues()] == [created.number, question]
    assert [issue.number for issue in repository.open_issues(author="meshbot")] == [created.number]
    assert pull not in [issue.number for issue in repository.open_issues(author="meshbot")]
    assert server.requests_to("GET", f"/repos/{origin.full_name}/issues")[-1].query == {
        "state": "open", "sort": "created", "direction": "desc", "creator": "meshbot", "per_page": "100"}

    repository.update_issue(created.number, "meshbot: drift in production (2)", "4 resources drifted")
    assert (recorded["title"], recorded["body"]) == ("meshbot: drift in production (2)", "4 resources drifted")

    origin.add_comment(created.number, "looking", user="jane")
    comment = repository.create_issue_comment(created.number, "still drifting")
    assert (comment.body, comment.author) == ("still drifting", "meshbot")
    assert [(c.body, c.author) for c in repository.issue_comments(created.number)] == [
        ("looking", "jane"), ("still drifting", "meshbot")]

    start = len(server.requests)
    repository.close_issue(created.number, comment="fixed by deployment 7")
    assert calls_since(server, start) == [f"POST /repos/{origin.full_name}/issues/{created.number}/comments",
                                          f"PATCH /repos/{origin.full_name}/issues/{created.number}"]
    assert (recorded["state"], recorded["state_reason"], recorded["closed_by"]) == ("closed", "completed", "meshbot")
    assert origin.comment_bodies(created.number)[-1] == "fixed by deployment 7"
    assert [issue.number for issue in repository.open_issues()] == [question]
    assert repository.api_calls == 10  # one call each; close_issue two


def test_open_issues_reads_every_page_and_leaves_out_pull_requests(server, origin):
    origin.push("change", {"a.yaml": b"a\n"}, start="main")
    numbers = [origin.open_issue(f"issue {index}") for index in range(120)]
    pulls = [origin.open_pull_request("change") for _ in range(3)]
    repository = repository_for(server, origin)
    found = repository.open_issues()
    assert [issue.number for issue in found] == list(reversed(numbers))
    assert not set(pulls) & {issue.number for issue in found}
    assert (found[0].title, found[0].author, found[0].state) == ("issue 119", "jane", "open")
    assert repository.api_calls == 2  # 123 items, 100 a page
    assert repository.open_issues(author="bob") == []


def test_a_missing_issue_is_a_forge_error_with_its_status(server, origin):
    repository = repository_for(server, origin)
    with pytest.raises(ForgeError, match=r"updating issue #999.*HTTP 404") as raised:
        repository.update_issue(999, "t", "b")
    assert raised.value.status == 404
    with pytest.raises(ForgeError) as raised:
        repository.create_issue_comment(999, "b")
    assert raised.value.status == 404


# -- merging pull requests in the test server


def _diverged_pull(origin: FakeRepository) -> tuple[int, str, str]:
    """A pull request whose head changed a.yaml and added new.yaml while main gained main.yaml: (number, main, head)."""
    head = origin.push("feature", {"catalog-info.yaml": b"kind: System\nv: 2\n", "new.yaml": b"n\n"}, start="main")
    main = origin.push("main", {"main.yaml": b"m\n"})
    return origin.open_pull_request("feature", title="Feature"), main, head


def test_merge_pull_request_helper_merges_like_github(server, origin):
    number, main, head = _diverged_pull(origin)
    sha = origin.merge_pull_request(number)
    assert origin.branch_head("main") == sha
    assert origin.commits[sha].parents == [main, head]
    assert origin.commits[sha].message == f"Merge pull request #{number} from acme/feature"
    assert origin.files_at("main") == {**FILES, "catalog-info.yaml": b"kind: System\nv: 2\n", "new.yaml": b"n\n",
                                       "main.yaml": b"m\n"}
    pull = origin.pulls[number]
    assert (pull["state"], pull["merged"], pull["merge_commit_sha"], pull["merged_by"]) == \
        ("closed", True, sha, "meshbot")
    request = repository_for(server, origin).merge_request(number)
    assert (request.state, request.head_sha) == ("merged", head)
    with pytest.raises(MergeRefused) as refused:
        origin.merge_pull_request(number)
    assert (refused.value.status, origin.branch_head("main")) == (405, sha)


def test_merging_through_the_api_as_pygithub_does(server, origin):
    number, main, head = _diverged_pull(origin)
    pull = Github(auth=Auth.Token(server.token), base_url=server.api_url).get_repo(origin.full_name).get_pull(number)
    with pytest.raises(GithubException) as refused:
        pull.merge(sha=main)  # not the head
    assert refused.value.status == 409 and origin.branch_head("main") == main
    status = pull.merge(merge_method="squash", commit_title="Feature (#1)", sha=head)
    assert (status.merged, status.sha, status.message) == (True, origin.branch_head("main"),
                                                          "Pull Request successfully merged")
    assert origin.commits[status.sha].parents == [main]  # squashed: one parent
    assert origin.commits[status.sha].message == "Feature (#1)"
    assert origin.files_at("main")["new.yaml"] == b"n\n"
    merged = server.requests_to("PUT", f"/repos/{origin.full_name}/pulls/{number}/merge")[-1]
    assert merged.body == {"merge_method": "squash", "commit_title": "Feature (#1)", "sha": head}
    data = repository_for(server, origin)._call("reading", "GET", f"/pulls/{number}")[1]
    assert (data["state"], data["merged"], data["merge_commit_sha"]) == ("closed", True, status.sha)
    assert data["merged_by"]["login"] == "meshbot" and data["merged_at"] is not None
    with pytest.raises(GithubException) as again:
        pull.merge()
    assert again.value.status == 405


def test_a_pull_request_from_a_fork_is_merged_with_the_forks_commits(server, origin):
    fork = server.create_fork(origin, "jane")
    head = fork.push("patch", {"fork.yaml": b"from the fork\n"}, start="main")
    number = origin.open_pull_request("patch", author="jane", head_repository=fork)
    sha = origin.merge_pull_request(number, merged_by="bob")
    assert origin.commits[sha].parents[1] == head and head in origin.commits
    assert origin.files_at("main")["fork.yaml"] == b"from the fork\n"
    assert origin.pulls[number]["merged_by"] == "bob"
    assert "patch" not in {ref.removeprefix("refs/heads/") for ref in origin.refs}  # the branch is the fork's
