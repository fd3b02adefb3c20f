"""A local GitHub REST server for tests: real HTTP on 127.0.0.1, in-memory repositories, scriptable failures.

Usage::

    with github_server() as server:
        repo = server.create_repository("acme/shop", {"catalog-info.yaml": b"..."})
        forge = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None)
        ...
        assert repo.statuses[-1]["context"] == "meshbot/deploy"

Test API (all methods are thread-safe against the serving thread):

- `create_repository(full_name, files, branch="main")`: a `FakeRepository` with one commit on branch.
- `FakeRepository.push(branch, files, deleted=(), start=None)`: a new commit on branch (created from start,
  another branch, when missing); returns its sha. `files_at(ref)`, `branch_head(branch)` read the git state.
- `FakeRepository.create_tag(tag, ref)`: a lightweight tag on a branch, tag or sha; returns the tagged sha.
- `create_fork(repository, owner)`: a fork holding the same commits and branches.
- `FakeRepository.open_pull_request(head, base="main", author="jane", head_repository=fork)`: a pull request.
- `FakeRepository.add_comment(number, body, user)` (on a pull request or an issue), `set_permission(user, role)`
  (admin/maintain/write/triage/read).
- `FakeRepository.open_issue(title, body="", author="jane")`: an issue; its number (issues and pull requests share
  one sequence, as on GitHub). `GET/POST .../issues` (listing pull requests too, each with a `pull_request` key, as
  GitHub does; `state`, `creator`, `direction` filter and order), `GET/PATCH .../issues/{n}` and
  `GET/POST .../issues/{n}/comments` serve them; `issues[n]` holds what was written (`title`, `body`, `user`, `state`,
  `state_reason`, `closed_by`).
- `FakeRepository.merge_pull_request(number, sha=None, merge_method="merge")`: merge an open pull request as GitHub
  does (also `PUT .../pulls/{n}/merge`): the base branch gets a new commit whose files are the base's overlaid with
  the head's (two parents; one with `squash` or `rebase`), and the pull request is closed, `merged`, with its
  `merge_commit_sha`; returns that sha. An unmergeable pull request raises `MergeRefused` (405; 409 when `sha` is not
  the head), which the endpoint answers with.
- `add_review(repository, number, user, state)`: a review (APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED,
  PENDING) by user on a pull request, of its head commit; returns the review id.
- `add_token(token, login)`: another personal token; `token` (user `meshbot`) is accepted from the start.
- OAuth (sign-in with GitHub): `add_oauth_app(client_id, client_secret)`, then `sign_in(login)` is who the browser is
  signed in as at GitHub. `GET /login/oauth/authorize` (client_id, redirect_uri, state) approves at once and
  redirects to redirect_uri with a one-time `code` and the `state`; `POST /login/oauth/access_token` (form:
  client_id, client_secret, code, redirect_uri) answers `{access_token, token_type, scope}` (JSON when asked, else
  form-encoded, as GitHub), or 200 `{error: bad_verification_code}`. `oauth_denied = True`: authorize redirects with
  `error=access_denied`. The token is a user token (`token` or `Bearer`); `GET /user/repos` lists the repositories
  the user owns or has a role on (`set_permission`), with `permissions` {admin, maintain, push, triage, pull}.
- `create_app(app_id, public_key_pem, slug)` and `install_app(app_id, repositories)` (returns the installation id):
  the app authenticates with RS256 JWTs signed by its key, then with installation tokens.
- `script(method, path_glob, *replies)`: the next answers of matching requests (`ScriptedReply`), one each.
- `hold(method, path_glob, until)`: the next matching request is handled only once `until()` is true
  (or after `timeout` seconds), to order a client's requests against another's.
- `FakeRepository.archive`: when set, the bytes served as every tarball of the repository (a crafted archive);
  otherwise `GET /repos/{owner}/{repo}/tarball/{ref}` redirects (302) to a one-time codeload-like URL serving a
  tar.gz of the commit under `owner-repo-sha/`, as GitHub does. That URL carries its own token (private
  repositories included): a download that sends an `Authorization` header (the client's API token) is refused, 400.
- `requests` (every request received, `Received`), `requests_to(method, path_glob)`.
- Webhook deliveries: `FakeRepository.add_hook(url)` (returns the hook id) and
  `add_delivery(hook_id, status_code, event="pull_request", guid=None, delivered_at=None)` (returns the delivery
  id); `FakeApp.add_delivery(...)` the same for the App's own hook. `GET .../hooks`, `GET .../hooks/{id}/deliveries`
  and `GET /app/hook/deliveries` list them newest first; `POST .../deliveries/{id}/attempts` records the request in
  `redeliveries` (repository or App) and adds the new attempt (status 202, as GitHub answers).
- Recorded state on `FakeRepository`: `comments`, `reviews`, `statuses`, `deployments` (each with its `statuses`),
  `reactions`, `refs`, `pulls`, `issues`, `blobs`, `commits`.

Responses follow GitHub's documented shapes (field names and nesting), reduced to what clients read.
Requests without a known `Authorization` are answered 401.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
from flask import Flask, Response, request
from werkzeug.serving import make_server

from tests.servers.archives import tar_gz

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ROLE_TO_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read",
                  "none": "none"}


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: status, JSON body and headers."""

    status: int
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def secondary_rate_limit(retry_after: int = 1) -> ScriptedReply:
    """GitHub's answer to a request over the secondary rate limit."""
    return ScriptedReply(403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                                          "before you try again.",
                               "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                         {"Retry-After": str(retry_after)})


def primary_rate_limit(reset_at: int) -> ScriptedReply:
    """GitHub's answer once the primary rate limit is used up until reset_at (epoch seconds)."""
    return ScriptedReply(403, {"message": "API rate limit exceeded for installation.",
                               "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                         {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_at),
                          "X-RateLimit-Limit": "5000"})


class MergeRefused(Exception):
    """A merge GitHub would refuse: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int


def _git_sha(kind: str, payload: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload).hexdigest()


@dataclass
class FakeCommit:
    """A git commit object."""

    sha: str
    tree: str
    parents: list[str]
    message: str
    date: str


@dataclass
class FakeRepository:
    """One repository's git objects, refs and GitHub records."""

    server: GitHubServer
    id: int
    owner: str
    name: str
    default_branch: str = "main"
    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)  # sha -> (mode, type, name, sha)
    commits: dict[str, FakeCommit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit sha
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # number -> {number, title, body, user, state, ...}
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {id, issue, body, user}
    reviews: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {id, pull, user, state, commit_id, ...}
    reactions: list[dict[str, Any]] = field(default_factory=list)  # {comment_id, content, user}
    statuses: list[dict[str, Any]] = field(default_factory=list)  # {sha, state, context, description, target_url}
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> request body + statuses
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role name
    fork_of: FakeRepository | None = None
    archive: bytes | None = None  # served instead of the commit's tarball
    hooks: dict[int, str] = field(default_factory=dict)  # hook id -> payload URL
    deliveries: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # hook id -> attempts, oldest first
    redeliveries: list[tuple[int, int]] = field(default_factory=list)  # (hook id, delivery id) redelivered

    @property
    def full_name(self) -> str:
        """owner/name."""
        return f"{self.owner}/{self.name}"

    # -- git objects

    def store_blob(self, content: bytes) -> str:
        """Store a blob; its git sha."""
        sha = _git_sha("blob", content)
        self.blobs[sha] = content
        return sha

    def _store_tree(self, files: dict[str, str]) -> str:
        """Store nested trees for path -> blob sha; the root tree sha."""
        entries: list[tuple[str, str, str, str]] = []
        folders: dict[str, dict[str, str]] = {}
        for path, sha in files.items():
            head, _, rest = path.partition("/")
            if rest:
                folders.setdefault(head, {})[rest] = sha
            else:
                entries.append(("100644", "blob", head, sha))
        entries += [("40000", "tree", name, self._store_tree(content)) for name, content in folders.items()]
        entries.sort(key=lambda entry: entry[2] + ("/" if entry[1] == "tree" else ""))
        payload = b"".join(f"{mode} {name}\0".encode() + bytes.fromhex(sha) for mode, _, name, sha in entries)
        sha = _git_sha("tree", payload)
        self.trees[sha] = entries
        return sha

    def flat_tree(self, tree_sha: str, prefix: str = "") -> dict[str, str]:
        """path -> blob sha of a tree, recursively."""
        found: dict[str, str] = {}
        for _, kind, name, sha in self.trees[tree_sha]:
            if kind == "tree":
                found.update(self.flat_tree(sha, f"{prefix}{name}/"))
            else:
                found[prefix + name] = sha
        return found

    def store_commit(self, tree: str, parents: list[str], message: str) -> str:
        """Store a commit object; its sha."""
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stamp = int(datetime.now(UTC).timestamp())
        text = f"tree {tree}\n" + "".join(f"parent {parent}\n" for parent in parents)
        text += f"author Test <test@example.com> {stamp} +0000\ncommitter Test <test@example.com> {stamp} +0000\n\n"
        text += message + f"\n{len(self.commits)}"  # two identical commits in one second stay distinct
        sha = _git_sha("commit", text.encode())
        self.commits[sha] = FakeCommit(sha, tree, parents, message, date)
        return sha

    def resolve(self, ref: str) -> str | None:
        """The commit sha of a branch, tag or sha."""
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if candidate in self.refs:
                return self.refs[candidate]
        return ref if ref in self.commits else None

    # -- test set-up

    def push(self, branch: str, files: dict[str, bytes], deleted: tuple[str, ...] = (), start: str | None = None,
             message: str = "Change") -> str:
        """Commit files on branch (created from start when missing) and move it; the new sha."""
        with self.server.lock:
            parent = self.resolve(branch) if f"refs/heads/{branch}" in self.refs else \
                (self.resolve(start) if start else None)
            current = self.flat_tree(self.commits[parent].tree) if parent else {}
            current.update({path: self.store_blob(content) for path, content in files.items()})
            for path in deleted:
                current.pop(path, None)
            sha = self.store_commit(self._store_tree(current), [parent] if parent else [], message)
            self.refs[f"refs/heads/{branch}"] = sha
            return sha

    def create_tag(self, tag: str, ref: str) -> str:
        """A lightweight tag on a branch, tag or sha (as `git push origin <tag>` makes); the tagged sha."""
        with self.server.lock:
            sha = self.resolve(ref)
            assert sha is not None, ref
            self.refs[f"refs/tags/{tag}"] = sha
            return sha

    def branch_head(self, branch: str) -> str | None:
        """The sha of a branch."""
        return self.refs.get(f"refs/heads/{branch}")

    def add_hook(self, url: str) -> int:
        """A repository webhook sending to url; its id."""
        with self.server.lock:
            hook_id = next(self.server.ids)
            self.hooks[hook_id] = url
            self.deliveries[hook_id] = []
            return hook_id

    def add_delivery(self, hook_id: int, status_code: int, event: str = "pull_request", guid: str | None = None,
                     delivered_at: datetime | None = None) -> int:
        """A delivery attempt of a hook that the receiver answered with status_code (0: unreachable); its id."""
        with self.server.lock:
            return _add_delivery(self.server, self.deliveries[hook_id], status_code, event, guid, delivered_at)

    def files_at(self, ref: str) -> dict[str, bytes]:
        """path -> content at a branch, tag or sha."""
        sha = self.resolve(ref)
        assert sha is not None, ref
        return {path: self.blobs[blob] for path, blob in self.flat_tree(self.commits[sha].tree).items()}

    def open_pull_request(self, head: str, base: str = "main", *, author: str = "jane", title: str = "Change",
                          body: str = "", head_repository: FakeRepository | None = None) -> int:
        """Open a pull request from head (a branch here or in head_repository, a fork) into base; its number."""
        with self.server.lock:
            number = self.server.next_issue_number(self)
            self.pulls[number] = {"number": number, "title": title, "body": body, "head": head, "base": base,
                                  "user": author, "state": "open", "merged": False, "merged_at": None,
                                  "closed_at": None, "merge_commit_sha": None, "merged_by": None,
                                  "head_repository": head_repository or self}
            return number

    def open_issue(self, title: str, body: str = "", *, author: str = "jane") -> int:
        """Open an issue by author; its number (from the sequence pull requests use too)."""
        with self.server.lock:
            number = self.server.next_issue_number(self)
            self.issues[number] = {"number": number, "title": title, "body": body, "user": author, "state": "open",
                                   "state_reason": None, "closed_at": None, "closed_by": None}
            return number

    def merge_pull_request(self, number: int, *, sha: str | None = None, merge_method: str = "merge",
                           commit_title: str | None = None, commit_message: str | None = None,
                           merged_by: str = "meshbot") -> str:
        """Merge an open pull request into its base branch as GitHub does; the new commit's sha.

        The commit's files are the base's overlaid with the head's; it has the base and head as parents ("merge"),
        or the base alone ("squash", "rebase"). MergeRefused (405) when the pull request is not open or its head
        branch is gone, (409) when sha is given and is not the head.
        """
        with self.server.lock:
            pull = self.pulls[number]
            source: FakeRepository = pull["head_repository"]
            head = source.branch_head(pull["head"])
            if pull["state"] != "open" or head is None:
                raise MergeRefused(405, "Pull Request is not mergeable")
            if sha is not None and sha != head:
                raise MergeRefused(409, "Head branch was modified. Review and try the merge again.")
            self._copy_objects(source)
            base = self.refs[f"refs/heads/{pull['base']}"]
            files = {**self.flat_tree(self.commits[base].tree), **self.flat_tree(self.commits[head].tree)}
            message = commit_title or f"Merge pull request #{number} from {source.owner}/{pull['head']}"
            if commit_message:
                message += f"\n\n{commit_message}"
            parents = [base, head] if merge_method == "merge" else [base]
            merged = self.store_commit(self._store_tree(files), parents, message)
            self.refs[f"refs/heads/{pull['base']}"] = merged
            pull.update(state="closed", merged=True, merged_at=_now(), closed_at=_now(), merge_commit_sha=merged,
                        merged_by=merged_by)
            return merged

    def _copy_objects(self, other: FakeRepository) -> None:
        """The git objects of a fork (GitHub fetches them to merge); objects are named by their content."""
        if other is not self:
            self.blobs.update(other.blobs)
            self.trees.update(other.trees)
            self.commits.update(other.commits)

    def add_comment(self, number: int, body: str, user: str = "jane") -> int:
        """A comment by user on pull request or issue number; its id."""
        with self.server.lock:
            comment_id = next(self.server.ids)
            self.comments[comment_id] = {"id": comment_id, "issue": number, "body": body, "user": user}
            return comment_id

    def set_permission(self, user: str, role: str) -> None:
        """Give user a role: admin, maintain, write, triage, read or none."""
        self.permissions[user] = role

    def comment_bodies(self, number: int) -> list[str]:
        """The bodies of a pull request's or issue's comments, oldest first."""
        return [comment["body"] for comment in self.comments.values() if comment["issue"] == number]


@dataclass
class FakeApp:
    """A GitHub App: its key, slug and installations (id -> repository full names)."""

    id: int
    public_key_pem: str
    slug: str
    installations: dict[int, list[str]] = field(default_factory=dict)
    server: GitHubServer | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # the App hook's attempts, oldest first
    redeliveries: list[int] = field(default_factory=list)  # delivery ids redelivered

    def add_delivery(self, status_code: int, event: str = "pull_request", guid: str | None = None,
                     delivered_at: datetime | None = None) -> int:
        """A delivery attempt of the App's webhook answered with status_code (0: unreachable); its id."""
        assert self.server is not None
        with self.server.lock:
            return _add_delivery(self.server, self.deliveries, status_code, event, guid, delivered_at)


def _newest_first(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Delivery attempts as GitHub lists them: newest first."""
    return sorted(attempts, key=lambda attempt: (attempt["delivered_at"], attempt["id"]), reverse=True)


def _add_delivery(server: GitHubServer, attempts: list[dict[str, Any]], status_code: int, event: str,
                  guid: str | None, delivered_at: datetime | None) -> int:
    delivery_id = next(server.ids)
    attempts.append({"id": delivery_id, "guid": guid or f"guid-{delivery_id}", "redelivery": guid is not None,
                     "delivered_at": (delivered_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "duration": 0.1, "status": "OK" if 200 <= status_code < 300 else "failed",
                     "status_code": status_code, "event": event, "action": "opened", "installation_id": None,
                     "repository_id": None})
    return delivery_id


class GitHubServer:
    """GitHub's REST API for a few repositories, served by werkzeug on an ephemeral port."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ids = itertools.count(1000)
        self.repositories: dict[str, FakeRepository] = {}
        self.apps: dict[int, FakeApp] = {}
        self.token = "ghp_meshbot_test_token"
        self.tokens: dict[str, str] = {self.token: "meshbot"}  # personal token -> login
        self.installation_tokens: dict[str, tuple[int, int]] = {}  # token -> (app id, installation id)
        self.oauth_apps: dict[str, str] = {}  # client id -> client secret
        self.oauth_codes: dict[str, tuple[str, str, str]] = {}  # one-time code -> (client id, redirect uri, login)
        self.signed_in: str | None = None  # who the browser is signed in as at GitHub (the authorize page's user)
        self.oauth_denied = False
        self.requests: list[Received] = []
        self._scripts: list[tuple[str, str, list[ScriptedReply]]] = []
        self._holds: list[tuple[str, str, Callable[[], bool], float]] = []
        self._issue_numbers: dict[str, int] = {}
        self._codeload: dict[str, tuple[FakeRepository, str]] = {}  # one-time token -> (repository, commit sha)
        self.app = Flask("github_server")
        self._routes()
        self._httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        """http://127.0.0.1:PORT, the API root."""
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._thread.join(5)

    # -- test API

    def create_repository(self, full_name: str, files: dict[str, bytes] | None = None,
                          branch: str = "main") -> FakeRepository:
        """A repository with one commit holding files on branch (its default branch)."""
        owner, _, name = full_name.partition("/")
        with self.lock:
            repository = FakeRepository(self, next(self.ids), owner, name, default_branch=branch)
            self.repositories[full_name.lower()] = repository
        repository.push(branch, files or {}, message="Initial commit")
        return repository

    def create_fork(self, repository: FakeRepository, owner: str) -> FakeRepository:
        """A fork of repository owned by owner, with the same objects and branches."""
        with self.lock:
            fork = FakeRepository(self, next(self.ids), owner, repository.name, repository.default_branch,
                                  blobs=dict(repository.blobs), trees=dict(repository.trees),
                                  commits=dict(repository.commits),
                                  refs={ref: sha for ref, sha in repository.refs.items()
                                        if ref.startswith("refs/heads/")}, fork_of=repository)
            self.repositories[fork.full_name.lower()] = fork
            return fork

    def add_token(self, token: str, login: str) -> None:
        """Accept a personal access token for login."""
        self.tokens[token] = login

    def add_oauth_app(self, client_id: str, client_secret: str) -> None:
        """Register an OAuth app (sign-in with GitHub)."""
        self.oauth_apps[client_id] = client_secret

    def sign_in(self, login: str | None) -> None:
        """Who approves the next OAuth authorizations (None: nobody signed in, authorize answers 401)."""
        self.signed_in = login

    def create_app(self, app_id: int, public_key_pem: str, slug: str = "meshbot") -> FakeApp:
        """Register a GitHub App verified with this public key."""
        with self.lock:
            self.apps[app_id] = FakeApp(app_id, public_key_pem, slug, server=self)
            return self.apps[app_id]

    def install_app(self, app_id: int, repositories: list[str]) -> int:
        """Install the app on these repositories; the installation id."""
        with self.lock:
            installation_id = next(self.ids)
            self.apps[app_id].installations[installation_id] = [name.lower() for name in repositories]
            return installation_id

    def add_review(self, repository: FakeRepository, number: int, user: str, state: str, body: str = "") -> int:
        """A review by user on pull request number, of its head commit, in state (e.g. APPROVED); its id."""
        with self.lock:
            pull = repository.pulls[number]
            review_id = next(self.ids)
            repository.reviews[review_id] = {
                "id": review_id, "pull": number, "user": user, "state": state, "body": body,
                "commit_id": pull["head_repository"].branch_head(pull["head"]) or "",
                "submitted_at": None if state == "PENDING" else _now()}
            return review_id

    def script(self, method: str, path_glob: str, *replies: ScriptedReply) -> None:
        """Answer the next len(replies) requests matching method and path (glob) with these replies, in order."""
        with self.lock:
            self._scripts.append((method.upper(), path_glob, list(replies)))

    def hold(self, method: str, path_glob: str, until: Callable[[], bool], timeout: float = 20.0) -> None:
        """Handle the next request matching method and path (glob) only once until() is true, or after timeout s."""
        with self.lock:
            self._holds.append((method.upper(), path_glob, until, timeout))

    def _wait_if_held(self, method: str, path: str) -> None:
        with self.lock:
            held = next((hold for hold in self._holds if hold[0] == method and fnmatch.fnmatchcase(path, hold[1])),
                        None)
            if held is None:
                return
            self._holds.remove(held)
        _, _, until, timeout = held
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:  # without the lock: until() may read the state
            time.sleep(0.01)

    def requests_to(self, method: str, path_glob: str) -> list[Received]:
        """Requests received for method and path glob."""
        return [item for item in self.requests if item.method == method.upper()
                and fnmatch.fnmatchcase(item.path, path_glob)]

    def next_issue_number(self, repository: FakeRepository) -> int:
        """Issues and pull requests share one sequence per repository."""
        number = self._issue_numbers.get(repository.full_name, 0) + 1
        self._issue_numbers[repository.full_name] = number
        return number

    # -- HTTP plumbing

    def _scripted(self, method: str, path: str) -> ScriptedReply | None:
        with self.lock:
            for index, (script_method, glob, replies) in enumerate(self._scripts):
                if script_method == method and fnmatch.fnmatchcase(path, glob):
                    reply = replies.pop(0)
                    if not replies:
                        del self._scripts[index]
                    return reply
        return None

    def _identity(self) -> tuple[str, Any] | None:
        """("user", login), ("installation", (app id, installation id)), ("app", app id) or None."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "token" and credential in self.tokens:
            return "user", self.tokens[credential]
        if scheme.lower() == "token" and credential in self.installation_tokens:
            return "installation", self.installation_tokens[credential]
        if scheme.lower() == "bearer" and credential in self.tokens:  # an OAuth token sent as Bearer
            return "user", self.tokens[credential]
        if scheme.lower() == "bearer":
            try:
                issuer = int(jwt.decode(credential, options={"verify_signature": False})["iss"])
                jwt.decode(credential, self.apps[issuer].public_key_pem, algorithms=["RS256"])
                return "app", issuer
            except (jwt.PyJWTError, KeyError, ValueError):
                return None
        return None

    def _caller(self) -> tuple[str, Any]:
        """The identity, or ("", None) without valid credentials."""
        return self._identity() or ("", None)

    def _login(self) -> str:
        kind, value = self._caller()
        if kind == "installation":
            return f"{self.apps[value[0]].slug}[bot]"
        return str(value or "anonymous")

    def _repository(self, owner: str, name: str) -> FakeRepository | None:
        """The repository if the caller can see it."""
        repository = self.repositories.get(f"{owner}/{name}".lower())
        kind, value = self._caller()
        if repository is not None and kind == "installation":
            app_id, installation_id = value
            if repository.full_name.lower() not in self.apps[app_id].installations.get(installation_id, []):
                return None
        return repository

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")

    def _error(self, status: int, message: str) -> Response:
        return self._json({"message": message, "documentation_url": "https://docs.github.com/rest",
                           "status": str(status)}, status)

    def _routes(self) -> None:
        app = self.app

        @app.before_request
        def before() -> Response | None:
            self._wait_if_held(request.method, request.path)
            scripted = self._scripted(request.method, request.path)
            if scripted is not None:
                return self._json(scripted.data, scripted.status, scripted.headers)
            # codeload URLs carry their own one-time token (and GitHub drops Authorization on the redirect)
            if self._identity() is None and not request.path.startswith(("/_codeload/", "/login/oauth/")):
                return self._error(401, "Bad credentials")
            return None

        @app.after_request
        def record(response: Response) -> Response:
            body = request.get_json(silent=True) if request.data else None
            with self.lock:
                self.requests.append(Received(request.method, request.path, dict(request.args),
                                              dict(request.headers), body, response.status_code))
            return response

        @app.errorhandler(404)
        def not_found(_: Exception) -> Response:
            return self._error(404, "Not Found")

        def repo_or_404(owner: str, name: str) -> FakeRepository:
            repository = self._repository(owner, name)
            if repository is None:
                raise _NotFound()
            return repository

        @app.errorhandler(_NotFound)
        def missing(_: Exception) -> Response:
            return self._error(404, "Not Found")

        # -- users and apps

        @app.get("/user")
        def user() -> Response:
            kind, value = self._caller()
            if kind != "user":
                return self._error(403, "Resource not accessible by integration")
            return self._json(self._user(value))

        # -- OAuth apps (sign-in with GitHub) and the user's repositories

        @app.get("/login/oauth/authorize")
        def oauth_authorize() -> Response:
            client_id, redirect_uri = request.args.get("client_id", ""), request.args.get("redirect_uri", "")
            if client_id not in self.oauth_apps or not redirect_uri:
                return self._error(404, "Not Found")
            state = request.args.get("state", "")
            if self.oauth_denied:
                return _redirect(redirect_uri, {"error": "access_denied", "state": state,
                                                "error_description": "The user has denied your application access."})
            if self.signed_in is None:
                return self._error(401, "Sign in to GitHub first")
            code = f"code-{next(self.ids)}"
            with self.lock:
                self.oauth_codes[code] = (client_id, redirect_uri, self.signed_in)
            return _redirect(redirect_uri, {"code": code, "state": state})

        @app.post("/login/oauth/access_token")
        def oauth_access_token() -> Response:
            form = request.form
            client_id = form.get("client_id", "")
            with self.lock:
                granted = self.oauth_codes.pop(form.get("code", ""), None)
            if self.oauth_apps.get(client_id) != form.get("client_secret") or granted is None \
                    or granted[0] != client_id or granted[1] != form.get("redirect_uri", granted[1]):
                answer = {"error": "bad_verification_code", "error_description": "The code passed is incorrect or "
                          "expired."}
            else:
                token = f"gho_{next(self.ids)}"
                self.add_token(token, granted[2])
                answer = {"access_token": token, "token_type": "bearer", "scope": "repo"}
            if "application/json" in request.headers.get("Accept", ""):
                return self._json(answer)
            return Response(urlencode(answer), content_type="application/x-www-form-urlencoded")

        @app.get("/user/repos")
        def user_repositories() -> Response:
            kind, login = self._caller()
            if kind != "user":
                return self._error(403, "Resource not accessible by integration")
            with self.lock:
                readable = [repository for repository in self.repositories.values()
                            if repository.owner == login or repository.permissions.get(login, "none") != "none"]
            return self._paged([{**self._repository_json(repository),
                                 "permissions": _permissions(repository, login)} for repository in readable])

        @app.get("/app")
        def get_app() -> Response:
            kind, value = self._caller()
            if kind != "app":
                return self._error(401, "A JSON web token could not be decoded")
            return self._json({"id": value, "slug": self.apps[value].slug, "name": self.apps[value].slug,
                               "owner": self._user("acme"), "node_id": f"A_{value}"})

        @app.get("/repos/<owner>/<name>/installation")
        def repository_installation(owner: str, name: str) -> Response:
            kind, value = self._caller()
            if kind != "app":
                return self._error(401, "A JSON web token could not be decoded")
            for installation_id, repositories in self.apps[value].installations.items():
                if f"{owner}/{name}".lower() in repositories:
                    return self._json({"id": installation_id, "app_id": value, "target_type": "Organization",
                                       "account": self._user(owner), "repository_selection": "selected",
                                       "access_tokens_url": f"{self.api_url}/app/installations/{installation_id}"
                                                            "/access_tokens",
                                       "permissions": {"contents": "write", "pull_requests": "write"}})
            return self._error(404, "Not Found")

        @app.post("/app/installations/<int:installation_id>/access_tokens")
        def access_token(installation_id: int) -> Response:
            kind, value = self._caller()
            if kind != "app" or installation_id not in self.apps[value].installations:
                return self._error(404, "Not Found")
            token = f"ghs_{next(self.ids)}_{installation_id}"
            with self.lock:
                self.installation_tokens[token] = (value, installation_id)
            expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self._json({"token": token, "expires_at": expires,
                               "permissions": {"contents": "write", "pull_requests": "write"},
                               "repository_selection": "selected"}, 201)

        @app.get("/app/installations")
        def list_installations() -> Response:
            kind, value = self._caller()
            if kind != "app":
                return self._error(401, "A JSON web token could not be decoded")
            return self._paged([{"id": installation_id, "app_id": value, "target_type": "Organization",
                                 "repository_selection": "selected"}
                                for installation_id in self.apps[value].installations])

        @app.get("/installation/repositories")
        def installation_repositories() -> Response:
            kind, value = self._caller()
            if kind != "installation":
                return self._error(403, "This endpoint requires an installation access token")
            app_id, installation_id = value
            names = self.apps[app_id].installations.get(installation_id, [])
            found = [self._repository_json(self.repositories[name]) for name in names if name in self.repositories]
            response = self._paged(found)
            response.set_data(json.dumps({"total_count": len(found), "repositories": json.loads(response.get_data())}))
            return response

        @app.get("/app/hook/deliveries")
        def app_deliveries() -> Response:
            kind, value = self._caller()
            if kind != "app":
                return self._error(401, "A JSON web token could not be decoded")
            return self._paged(_newest_first(self.apps[value].deliveries))

        @app.post("/app/hook/deliveries/<int:delivery_id>/attempts")
        def app_redeliver(delivery_id: int) -> Response:
            kind, value = self._caller()
            if kind != "app":
                return self._error(401, "A JSON web token could not be decoded")
            fake = self.apps[value]
            return self._redeliver(fake.deliveries, delivery_id, fake.redeliveries, delivery_id)

        # -- repositories and git data

        @app.get("/repos/<owner>/<name>")
        def get_repository(owner: str, name: str) -> Response:
            return self._json(self._repository_json(repo_or_404(owner, name)))

        @app.get("/repos/<owner>/<name>/git/trees/<path:ref>")
        def get_tree(owner: str, name: str, ref: str) -> Response:
            repository = repo_or_404(owner, name)
            commit = repository.resolve(ref)
            tree_sha = repository.commits[commit].tree if commit else (ref if ref in repository.trees else None)
            if tree_sha is None:
                return self._error(404, "Not Found")
            base = f"{self.api_url}/repos/{repository.full_name}/git"
            entries = []

            def walk(sha: str, prefix: str) -> None:
                for mode, kind, entry_name, entry_sha in repository.trees[sha]:
                    item: dict[str, Any] = {"path": prefix + entry_name, "mode": "040000" if kind == "tree" else mode,
                                            "type": kind, "sha": entry_sha, "url": f"{base}/{kind}s/{entry_sha}"}
                    if kind == "blob":
                        item["size"] = len(repository.blobs[entry_sha])
                    entries.append(item)
                    if kind == "tree" and request.args.get("recursive"):
                        walk(entry_sha, f"{prefix}{entry_name}/")

            walk(tree_sha, "")
            return self._json({"sha": tree_sha, "url": f"{base}/trees/{tree_sha}", "tree": entries,
                               "truncated": False})

        @app.get("/repos/<owner>/<name>/tarball/<path:ref>")
        def get_tarball(owner: str, name: str, ref: str) -> Response:
            repository = repo_or_404(owner, name)
            commit = repository.resolve(ref)
            if commit is None:
                return self._error(404, "Not Found")
            token = hashlib.sha1(f"{commit}{next(self.ids)}".encode()).hexdigest()
            with self.lock:
                self._codeload[token] = (repository, commit)
            location = f"{self.api_url}/_codeload/{repository.full_name}/legacy.tar.gz/{commit}?token={token}"
            return Response(b"", 302, {"Location": location})

        @app.get("/_codeload/<owner>/<name>/legacy.tar.gz/<sha>")
        def codeload(owner: str, name: str, sha: str) -> Response:
            with self.lock:
                found = self._codeload.pop(request.args.get("token", ""), None)
            if found is None or found[1] != sha:
                return self._error(404, "Not Found")
            if "Authorization" in request.headers:  # the client's API token must never reach the download host
                return self._error(400, "codeload takes no credentials: the one-time token is in the URL")
            repository = found[0]
            data = repository.archive if repository.archive is not None else \
                tar_gz(f"{repository.owner}-{repository.name}-{sha[:7]}", repository.files_at(sha))
            return Response(data, 200, content_type="application/x-gzip")

        @app.get("/repos/<owner>/<name>/git/blobs/<sha>")
        def get_blob(owner: str, name: str, sha: str) -> Response:
            repository = repo_or_404(owner, name)
            if sha not in repository.blobs:
                return self._error(404, "Not Found")
            content = repository.blobs[sha]
            return self._json({"sha": sha, "node_id": f"B_{sha[:8]}", "size": len(content),
                               "url": f"{self.api_url}/repos/{repository.full_name}/git/blobs/{sha}",
                               "content": base64.encodebytes(content).decode(), "encoding": "base64"})

        @app.post("/repos/<owner>/<name>/git/blobs")
        def create_blob(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            content = base64.b64decode(body["content"]) if body.get("encoding") == "base64" else \
                str(body["content"]).encode()
            with self.lock:
                sha = repository.store_blob(content)
            return self._json({"sha": sha, "url": f"{self.api_url}/repos/{repository.full_name}/git/blobs/{sha}"},
                              201)

        @app.post("/repos/<owner>/<name>/git/trees")
        def create_tree(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            with self.lock:
                files = repository.flat_tree(body["base_tree"]) if body.get("base_tree") else {}
                for entry in body["tree"]:
                    if entry.get("sha") is None and "content" not in entry:
                        files.pop(entry["path"], None)
                    else:
                        files[entry["path"]] = entry.get("sha") or repository.store_blob(entry["content"].encode())
                sha = repository._store_tree(files)
            return self._json({"sha": sha, "url": f"{self.api_url}/repos/{repository.full_name}/git/trees/{sha}",
                               "tree": [], "truncated": False}, 201)

        @app.get("/repos/<owner>/<name>/git/commits/<sha>")
        def get_commit(owner: str, name: str, sha: str) -> Response:
            repository = repo_or_404(owner, name)
            if sha not in repository.commits:
                return self._error(404, "Not Found")
            return self._json(self._commit_json(repository, repository.commits[sha]))

        @app.post("/repos/<owner>/<name>/git/commits")
        def create_commit(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            with self.lock:
                sha = repository.store_commit(body["tree"], list(body.get("parents", [])), body["message"])
            return self._json(self._commit_json(repository, repository.commits[sha]), 201)

        @app.get("/repos/<owner>/<name>/git/ref/<path:ref>")
        def get_ref(owner: str, name: str, ref: str) -> Response:
            repository = repo_or_404(owner, name)
            if f"refs/{ref}" not in repository.refs:
                return self._error(404, "Not Found")
            return self._json(self._ref_json(repository, f"refs/{ref}"))

        @app.post("/repos/<owner>/<name>/git/refs")
        def create_ref(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            with self.lock:
                if body["ref"] in repository.refs:
                    return self._error(422, "Reference already exists")
                if body["sha"] not in repository.commits:
                    return self._error(422, "Object does not exist")
                repository.refs[body["ref"]] = body["sha"]
            return self._json(self._ref_json(repository, body["ref"]), 201)

        @app.patch("/repos/<owner>/<name>/git/refs/<path:ref>")
        def update_ref(owner: str, name: str, ref: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            with self.lock:
                current = repository.refs.get(f"refs/{ref}")
                if current is None:
                    return self._error(422, "Reference does not exist")
                if not body.get("force") and current not in self._ancestors(repository, body["sha"]):
                    return self._error(422, "Update is not a fast forward")
                repository.refs[f"refs/{ref}"] = body["sha"]
            return self._json(self._ref_json(repository, f"refs/{ref}"))

        # -- pull requests, comments, reactions, permissions

        @app.get("/repos/<owner>/<name>/pulls")
        def list_pulls(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            state, head, base = request.args.get("state", "open"), request.args.get("head"), request.args.get("base")
            found = [self._pull_json(repository, pull) for pull in repository.pulls.values()
                     if (state == "all" or pull["state"] == state) and (base is None or pull["base"] == base)
                     and (head is None or head == f"{pull['head_repository'].owner}:{pull['head']}")]
            return self._json(found)

        @app.get("/repos/<owner>/<name>/pulls/<int:number>")
        def get_pull(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.pulls:
                return self._error(404, "Not Found")
            return self._json(self._pull_json(repository, repository.pulls[number]))

        @app.post("/repos/<owner>/<name>/pulls")
        def create_pull(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            head_owner, _, head_branch = body["head"].rpartition(":")
            head_repository = self.repositories.get(f"{head_owner}/{repository.name}".lower()) if head_owner \
                else repository
            if head_repository is None or head_repository.branch_head(head_branch) is None:
                return self._json({"message": "Validation Failed",
                                   "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}, 422)
            number = repository.open_pull_request(head_branch, body["base"], author=self._login(),
                                                  title=body["title"], body=body.get("body") or "",
                                                  head_repository=head_repository)
            return self._json(self._pull_json(repository, repository.pulls[number]), 201)

        @app.patch("/repos/<owner>/<name>/pulls/<int:number>")
        def update_pull(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.pulls:
                return self._error(404, "Not Found")
            body = request.get_json()
            with self.lock:
                repository.pulls[number].update({key: body[key] for key in ("title", "body", "state") if key in body})
            return self._json(self._pull_json(repository, repository.pulls[number]))

        @app.put("/repos/<owner>/<name>/pulls/<int:number>/merge")
        def merge_pull(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.pulls:
                return self._error(404, "Not Found")
            body = request.get_json(silent=True) or {}
            method = body.get("merge_method", "merge")
            if method not in ("merge", "squash", "rebase"):
                return self._json({"message": "Validation Failed", "errors": [
                    {"resource": "PullRequest", "field": "merge_method", "code": "invalid"}]}, 422)
            try:
                sha = repository.merge_pull_request(number, sha=body.get("sha"), merge_method=method,
                                                    commit_title=body.get("commit_title"),
                                                    commit_message=body.get("commit_message"),
                                                    merged_by=self._login())
            except MergeRefused as refused:
                return self._json({"message": refused.message,
                                   "documentation_url": "https://docs.github.com/rest/pulls/pulls"
                                                        "#merge-a-pull-request"}, refused.status)
            return self._json({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

        @app.get("/repos/<owner>/<name>/pulls/<int:number>/reviews")
        def list_reviews(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.pulls:
                return self._error(404, "Not Found")
            per_page, page = int(request.args.get("per_page", 30)), int(request.args.get("page", 1))
            # oldest first; a pending review is shown only to its author
            found = [review for review in repository.reviews.values() if review["pull"] == number
                     and (review["state"] != "PENDING" or review["user"] == self._login())]
            headers: dict[str, str] = {}
            if page * per_page < len(found):
                url = f"{self.api_url}{request.path}?per_page={per_page}&page={page + 1}"
                headers["Link"] = f'<{url}>; rel="next"'
            chunk = found[(page - 1) * per_page:page * per_page]
            return self._json([self._review_json(repository, review) for review in chunk], headers=headers)

        # -- issues (pull requests are issues too: one sequence of numbers, listed by the issues API)

        @app.get("/repos/<owner>/<name>/issues")
        def list_issues(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            state, creator = request.args.get("state", "open"), request.args.get("creator")
            numbers = sorted({*repository.issues, *repository.pulls}, reverse=request.args.get("direction") != "asc")
            found = [self._issue_json(repository, number) for number in numbers]
            return self._paged([item for item in found if state in ("all", item["state"])
                                and creator in (None, item["user"]["login"])])

        @app.post("/repos/<owner>/<name>/issues")
        def create_issue(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            if not body.get("title"):
                return self._json({"message": "Validation Failed", "errors": [
                    {"resource": "Issue", "field": "title", "code": "missing_field"}]}, 422)
            number = repository.open_issue(str(body["title"]), body.get("body") or "", author=self._login())
            return self._json(self._issue_json(repository, number), 201)

        @app.get("/repos/<owner>/<name>/issues/<int:number>")
        def get_issue(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.issues and number not in repository.pulls:
                return self._error(404, "Not Found")
            return self._json(self._issue_json(repository, number))

        @app.patch("/repos/<owner>/<name>/issues/<int:number>")
        def update_issue(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            record = repository.issues.get(number) or repository.pulls.get(number)
            if record is None:
                return self._error(404, "Not Found")
            body = request.get_json()
            if body.get("state") not in (None, "open", "closed"):
                return self._json({"message": "Validation Failed", "errors": [
                    {"resource": "Issue", "field": "state", "code": "invalid"}]}, 422)
            with self.lock:
                record.update({key: body[key] for key in ("title", "body") if key in body})
                if body.get("state") == "closed" and record["state"] != "closed":
                    record.update(state="closed", state_reason=body.get("state_reason") or "completed",
                                  closed_at=_now(), closed_by=self._login())
                elif body.get("state") == "open" and record["state"] != "open":
                    record.update(state="open", state_reason="reopened", closed_at=None, closed_by=None)
            return self._json(self._issue_json(repository, number))

        @app.get("/repos/<owner>/<name>/issues/<int:number>/comments")
        def list_comments(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            per_page, page = int(request.args.get("per_page", 30)), int(request.args.get("page", 1))
            thread = [comment for comment in repository.comments.values() if comment["issue"] == number]
            headers: dict[str, str] = {}
            if page * per_page < len(thread):
                url = f"{self.api_url}{request.path}?per_page={per_page}&page={page + 1}"
                headers["Link"] = f'<{url}>; rel="next"'
            chunk = thread[(page - 1) * per_page:page * per_page]
            return self._json([self._comment_json(repository, comment) for comment in chunk], headers=headers)

        @app.post("/repos/<owner>/<name>/issues/<int:number>/comments")
        def create_comment(owner: str, name: str, number: int) -> Response:
            repository = repo_or_404(owner, name)
            if number not in repository.pulls and number not in repository.issues:
                return self._error(404, "Not Found")
            comment_id = repository.add_comment(number, request.get_json()["body"], self._login())
            return self._json(self._comment_json(repository, repository.comments[comment_id]), 201)

        @app.patch("/repos/<owner>/<name>/issues/comments/<int:comment_id>")
        def update_comment(owner: str, name: str, comment_id: int) -> Response:
            repository = repo_or_404(owner, name)
            if comment_id not in repository.comments:
                return self._error(404, "Not Found")
            with self.lock:
                repository.comments[comment_id]["body"] = request.get_json()["body"]
            return self._json(self._comment_json(repository, repository.comments[comment_id]))

        @app.post("/repos/<owner>/<name>/issues/comments/<int:comment_id>/reactions")
        def create_reaction(owner: str, name: str, comment_id: int) -> Response:
            repository = repo_or_404(owner, name)
            if comment_id not in repository.comments:
                return self._error(404, "Not Found")
            reaction = {"comment_id": comment_id, "content": request.get_json()["content"], "user": self._login()}
            with self.lock:
                exists = reaction in repository.reactions
                if not exists:
                    repository.reactions.append(reaction)
            return self._json({"id": next(self.ids), "node_id": "REA_1", "user": self._user(reaction["user"]),
                               "content": reaction["content"], "created_at": _now()}, 200 if exists else 201)

        @app.get("/repos/<owner>/<name>/collaborators/<username>/permission")
        def permission(owner: str, name: str, username: str) -> Response:
            repository = repo_or_404(owner, name)
            role = repository.permissions.get(username, "none")
            return self._json({"permission": ROLE_TO_LEGACY.get(role, "read"), "role_name": role,
                               "user": self._user(username)})

        # -- tags, combined statuses and webhooks (the catch-up sweep)

        @app.get("/repos/<owner>/<name>/tags")
        def list_tags(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            base = f"{self.api_url}/repos/{repository.full_name}"
            tags = sorted(((ref.removeprefix("refs/tags/"), sha) for ref, sha in repository.refs.items()
                           if ref.startswith("refs/tags/")), reverse=True)
            return self._paged([{"name": tag, "commit": {"sha": sha, "url": f"{base}/commits/{sha}"},
                                 "zipball_url": f"{base}/zipball/refs/tags/{tag}",
                                 "tarball_url": f"{base}/tarball/refs/tags/{tag}", "node_id": f"TAG_{tag}"}
                                for tag, sha in tags])

        @app.get("/repos/<owner>/<name>/commits/<path:ref>/status")
        def combined_status(owner: str, name: str, ref: str) -> Response:
            repository = repo_or_404(owner, name)
            sha = repository.resolve(ref)
            if sha is None:
                return self._json({"message": f"No commit found for SHA: {ref}"}, 422)
            latest: dict[str, dict[str, Any]] = {}
            for status in repository.statuses:
                if status["sha"] == sha:
                    latest.pop(status["context"], None)
                    latest[status["context"]] = status
            statuses = [{"state": status["state"], "context": status["context"], "description": status["description"],
                         "target_url": status["target_url"], "created_at": _now(), "updated_at": _now()}
                        for status in reversed(latest.values())]
            states = {status["state"] for status in statuses}
            state = ("failure" if states & {"failure", "error"} else "pending" if "pending" in states or not states
                     else "success")
            return self._json({"state": state, "statuses": statuses, "sha": sha, "total_count": len(statuses),
                               "repository": self._repository_json(repository),
                               "commit_url": f"{self.api_url}/repos/{repository.full_name}/commits/{sha}",
                               "url": f"{self.api_url}/repos/{repository.full_name}/commits/{sha}/status"})

        @app.get("/repos/<owner>/<name>/hooks")
        def list_hooks(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            base = f"{self.api_url}/repos/{repository.full_name}/hooks"
            return self._paged([{"type": "Repository", "id": hook_id, "name": "web", "active": True,
                                 "events": ["push", "pull_request", "issue_comment"],
                                 "config": {"url": url, "content_type": "json", "insecure_ssl": "0"},
                                 "url": f"{base}/{hook_id}", "deliveries_url": f"{base}/{hook_id}/deliveries",
                                 "created_at": _now(), "updated_at": _now()}
                                for hook_id, url in repository.hooks.items()])

        @app.get("/repos/<owner>/<name>/hooks/<int:hook_id>/deliveries")
        def list_deliveries(owner: str, name: str, hook_id: int) -> Response:
            repository = repo_or_404(owner, name)
            if hook_id not in repository.hooks:
                return self._error(404, "Not Found")
            return self._paged(_newest_first(repository.deliveries[hook_id]))

        @app.post("/repos/<owner>/<name>/hooks/<int:hook_id>/deliveries/<int:delivery_id>/attempts")
        def redeliver(owner: str, name: str, hook_id: int, delivery_id: int) -> Response:
            repository = repo_or_404(owner, name)
            if hook_id not in repository.hooks:
                return self._error(404, "Not Found")
            return self._redeliver(repository.deliveries[hook_id], delivery_id, repository.redeliveries,
                                   (hook_id, delivery_id))

        # -- statuses and deployments

        @app.post("/repos/<owner>/<name>/statuses/<sha>")
        def create_status(owner: str, name: str, sha: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            if sha not in repository.commits:
                return self._json({"message": "No commit found for SHA: " + sha}, 422)
            if len(body.get("description") or "") > 140:
                return self._json({"message": "Validation Failed", "errors": [
                    {"resource": "Status", "code": "custom", "field": "description",
                     "message": "description is too long (maximum is 140 characters)"}]}, 422)
            status = {"sha": sha, "state": body["state"], "context": body.get("context", "default"),
                      "description": body.get("description"), "target_url": body.get("target_url")}
            with self.lock:
                repository.statuses.append(status)
                status_id = next(self.ids)
            return self._json({"id": status_id, "url": f"{self.api_url}/repos/{repository.full_name}/statuses/{sha}",
                               "state": status["state"], "description": status["description"],
                               "target_url": status["target_url"], "context": status["context"],
                               "created_at": _now(), "updated_at": _now(), "creator": self._user(self._login())},
                              201)

        @app.post("/repos/<owner>/<name>/deployments")
        def create_deployment(owner: str, name: str) -> Response:
            repository = repo_or_404(owner, name)
            body = request.get_json()
            sha = repository.resolve(body["ref"])
            if sha is None:
                return self._json({"message": f"No ref found for: {body['ref']}"}, 422)
            deployment_id = next(self.ids)
            deployment = {**body, "id": deployment_id, "sha": sha, "statuses": []}
            with self.lock:
                repository.deployments[deployment_id] = deployment
            return self._json(self._deployment_json(repository, deployment), 201)

        @app.post("/repos/<owner>/<name>/deployments/<int:deployment_id>/statuses")
        def create_deployment_status(owner: str, name: str, deployment_id: int) -> Response:
            repository = repo_or_404(owner, name)
            if deployment_id not in repository.deployments:
                return self._error(404, "Not Found")
            body = request.get_json()
            status = {"id": next(self.ids), "state": body["state"], "description": body.get("description", ""),
                      "log_url": body.get("log_url", ""), "target_url": body.get("target_url", ""),
                      "environment": body.get("environment")
                      or repository.deployments[deployment_id].get("environment", "production")}
            with self.lock:
                repository.deployments[deployment_id]["statuses"].append(status)
            base = f"{self.api_url}/repos/{repository.full_name}/deployments/{deployment_id}"
            return self._json({**status, "url": f"{base}/statuses/{status['id']}", "deployment_url": base,
                               "repository_url": f"{self.api_url}/repos/{repository.full_name}",
                               "creator": self._user(self._login()), "created_at": _now(), "updated_at": _now()},
                              201)

    def _paged(self, items: list[Any]) -> Response:
        """One page of items (`per_page`, at most 100, and `page`), with GitHub's Link rel="next"."""
        per_page = min(int(request.args.get("per_page", "30")), 100)
        page = int(request.args.get("page", "1"))
        headers = {}
        if page * per_page < len(items):
            query = {**request.args.to_dict(), "page": str(page + 1), "per_page": str(per_page)}
            headers["Link"] = f'<{self.api_url}{request.path}?{"&".join(f"{k}={v}" for k, v in query.items())}>; ' \
                              'rel="next"'
        return self._json(items[(page - 1) * per_page: page * per_page], headers=headers)

    def _redeliver(self, attempts: list[dict[str, Any]], delivery_id: int, record: list[Any], entry: Any) -> Response:
        """Redeliver an attempt: recorded, and a new attempt with its guid (answered 2xx: meshbot took it)."""
        with self.lock:
            original = next((attempt for attempt in attempts if attempt["id"] == delivery_id), None)
            if original is None:
                return self._error(404, "Not Found")
            record.append(entry)
            _add_delivery(self, attempts, 202, original["event"], original["guid"], None)
        return self._json({}, 202)

    # -- response shapes

    def _user(self, login: str) -> dict[str, Any]:
        return {"login": login, "id": abs(hash(login)) % 100000, "node_id": f"U_{login}", "type":
                "Bot" if login.endswith("[bot]") else "User", "site_admin": False,
                "url": f"{self.api_url}/users/{login}", "html_url": f"https://github.com/{login}"}

    def _repository_json(self, repository: FakeRepository) -> dict[str, Any]:
        return {"id": repository.id, "node_id": f"R_{repository.id}", "name": repository.name,
                "full_name": repository.full_name, "owner": self._user(repository.owner), "private": False,
                "fork": repository.fork_of is not None,
                "default_branch": repository.default_branch, "url": f"{self.api_url}/repos/{repository.full_name}",
                "html_url": f"https://github.com/{repository.full_name}",
                "permissions": {"admin": False, "push": True, "pull": True}}

    def _commit_json(self, repository: FakeRepository, commit: FakeCommit) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repository.full_name}/git"
        person = {"name": "Test", "email": "test@example.com", "date": commit.date}
        return {"sha": commit.sha, "node_id": f"C_{commit.sha[:8]}", "url": f"{base}/commits/{commit.sha}",
                "author": person, "committer": person, "message": commit.message,
                "tree": {"sha": commit.tree, "url": f"{base}/trees/{commit.tree}"},
                "parents": [{"sha": parent, "url": f"{base}/commits/{parent}"} for parent in commit.parents],
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None}}

    def _ref_json(self, repository: FakeRepository, ref: str) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repository.full_name}/git"
        sha = repository.refs[ref]
        return {"ref": ref, "node_id": f"REF_{sha[:8]}", "url": f"{base}/{ref}",
                "object": {"type": "commit", "sha": sha, "url": f"{base}/commits/{sha}"}}

    def _pull_json(self, repository: FakeRepository, pull: dict[str, Any]) -> dict[str, Any]:
        head_repository: FakeRepository = pull["head_repository"]
        number = pull["number"]

        def side(owner_repository: FakeRepository, branch: str) -> dict[str, Any]:
            return {"label": f"{owner_repository.owner}:{branch}", "ref": branch,
                    "sha": owner_repository.branch_head(branch) or "", "user": self._user(owner_repository.owner),
                    "repo": self._repository_json(owner_repository)}

        return {"url": f"{self.api_url}/repos/{repository.full_name}/pulls/{number}", "id": number + 500000,
                "node_id": f"PR_{number}", "html_url": f"https://github.com/{repository.full_name}/pull/{number}",
                "number": number, "state": pull["state"], "locked": False, "title": pull["title"],
                "user": self._user(pull["user"]), "body": pull["body"], "created_at": _now(),
                "updated_at": _now(), "closed_at": pull.get("closed_at"), "merged_at": pull.get("merged_at"),
                "merged": pull["merged"], "merge_commit_sha": pull.get("merge_commit_sha"),
                "merged_by": self._user(pull["merged_by"]) if pull.get("merged_by") else None, "draft": False,
                "head": side(head_repository, pull["head"]), "base": side(repository, pull["base"]),
                "author_association": "CONTRIBUTOR"}

    def _issue_json(self, repository: FakeRepository, number: int) -> dict[str, Any]:
        """An issue as GitHub's issues API shows it; a pull request's carries a `pull_request` key."""
        pull = repository.pulls.get(number)
        record = pull if pull is not None else repository.issues[number]
        base = f"{self.api_url}/repos/{repository.full_name}"
        html_url = f"https://github.com/{repository.full_name}/{'pull' if pull is not None else 'issues'}/{number}"
        data = {"id": number + 700000, "node_id": f"I_{number}", "url": f"{base}/issues/{number}",
                "repository_url": base, "labels_url": f"{base}/issues/{number}/labels{{/name}}",
                "comments_url": f"{base}/issues/{number}/comments", "events_url": f"{base}/issues/{number}/events",
                "html_url": html_url, "number": number, "state": record["state"],
                "state_reason": record.get("state_reason"), "title": record["title"], "body": record["body"],
                "user": self._user(record["user"]), "labels": [], "assignee": None, "assignees": [],
                "milestone": None, "locked": False, "active_lock_reason": None,
                "comments": sum(comment["issue"] == number for comment in repository.comments.values()),
                "closed_at": record.get("closed_at"), "created_at": _now(), "updated_at": _now(),
                "closed_by": self._user(record["closed_by"]) if record.get("closed_by") else None,
                "author_association": "CONTRIBUTOR"}
        if pull is not None:
            data["pull_request"] = {"url": f"{base}/pulls/{number}", "html_url": html_url,
                                    "diff_url": f"{html_url}.diff", "patch_url": f"{html_url}.patch",
                                    "merged_at": pull.get("merged_at")}
        return data

    def _comment_json(self, repository: FakeRepository, comment: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repository.full_name}/issues"
        kind = "pull" if comment["issue"] in repository.pulls else "issues"
        return {"id": comment["id"], "node_id": f"IC_{comment['id']}", "url": f"{base}/comments/{comment['id']}",
                "html_url": f"https://github.com/{repository.full_name}/{kind}/{comment['issue']}"
                            f"#issuecomment-{comment['id']}",
                "body": comment["body"], "user": self._user(comment["user"]), "created_at": _now(),
                "updated_at": _now(), "issue_url": f"{base}/{comment['issue']}", "author_association": "CONTRIBUTOR"}

    def _review_json(self, repository: FakeRepository, review: dict[str, Any]) -> dict[str, Any]:
        html_url = f"https://github.com/{repository.full_name}/pull/{review['pull']}#pullrequestreview-{review['id']}"
        pull_url = f"{self.api_url}/repos/{repository.full_name}/pulls/{review['pull']}"
        data = {"id": review["id"], "node_id": f"PRR_{review['id']}", "user": self._user(review["user"]),
                "body": review["body"], "state": review["state"], "html_url": html_url, "pull_request_url": pull_url,
                "author_association": "COLLABORATOR", "commit_id": review["commit_id"],
                "_links": {"html": {"href": html_url}, "pull_request": {"href": pull_url}}}
        if review["submitted_at"] is not None:  # GitHub leaves submitted_at out of a pending review
            data["submitted_at"] = review["submitted_at"]
        return data

    def _deployment_json(self, repository: FakeRepository, deployment: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repository.full_name}"
        return {"url": f"{base}/deployments/{deployment['id']}", "id": deployment["id"],
                "node_id": f"DE_{deployment['id']}", "sha": deployment["sha"], "ref": deployment["ref"],
                "task": deployment.get("task", "deploy"), "payload": deployment.get("payload", {}),
                "original_environment": deployment.get("environment", "production"),
                "environment": deployment.get("environment", "production"),
                "description": deployment.get("description"), "creator": self._user(self._login()),
                "created_at": _now(), "updated_at": _now(),
                "statuses_url": f"{base}/deployments/{deployment['id']}/statuses", "repository_url": base,
                "transient_environment": False, "production_environment": False}

    @staticmethod
    def _ancestors(repository: FakeRepository, sha: str) -> set[str]:
        seen: set[str] = set()
        pending = [sha]
        while pending:
            current = pending.pop()
            if current in seen or current not in repository.commits:
                continue
            seen.add(current)
            pending.extend(repository.commits[current].parents)
        return seen


class _NotFound(Exception):
    """A repository the caller cannot see."""


def _redirect(url: str, query: dict[str, str]) -> Response:
    """A 302 to url with query appended."""
    return Response("", 302, {"Location": f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"})


def _permissions(repository: FakeRepository, login: str) -> dict[str, bool]:
    """GitHub's `permissions` of a repository for login (its owner is admin)."""
    role = "admin" if repository.owner == login else repository.permissions.get(login, "none")
    order = ["none", "read", "triage", "write", "maintain", "admin"]
    rank = order.index(role) if role in order else 1
    return {"admin": rank >= 5, "maintain": rank >= 4, "push": rank >= 3, "triage": rank >= 2, "pull": rank >= 1}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def github_server() -> Iterator[GitHubServer]:
    """A running GitHubServer, stopped afterwards."""
    server = GitHubServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
