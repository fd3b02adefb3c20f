"""A local GitLab REST v4 server for tests: in-memory projects, commits, merge requests, notes and more.

Usage::

    with gitlab_server() as server:
        project = server.create_project("data/sales/orders", {"README.md": b"hi"})
        server.push(project, "feature", {"a.yaml": b"x: 1"}, from_branch="main")
        request = server.open_merge_request(project, "feature", author="jane")
        server.add_note(project, request.iid, "/deploy", author="jane")
        server.approve(project, request.iid, "bob")  # approved once approvals_required (1) users approved
        server.script("GET", "/repository/tree", [Scripted(429, headers={"Retry-After": "0"})])
        forge = GitLabForge(server.token, server.url)
        ...
        server.requests          # every request received, in order (RecordedRequest)
        project.statuses, project.deployments, project.branches, project.merge_requests, note.award_emoji

Issues: `server.open_issue(project, title, description="", author="jane")` (an `IssueRecord`, numbered apart from
merge requests as on GitLab) and `server.add_issue_note(project, iid, body, author="jane", system=False)`; served by
`GET/POST /projects/:id/issues` (`state`, `author_username`, `sort` filter and order), `GET/PUT
/projects/:id/issues/:iid` (`state_event=close|reopen`, which adds GitLab's system note) and `GET/POST
/projects/:id/issues/:iid/notes`; `project.issues` holds what was written.

Merging: `server.merge(project, iid, sha=None, squash=False, merged_by=None)` merges an open merge request as GitLab
does (also `PUT /projects/:id/merge_requests/:iid/merge`): the target branch gets a new commit whose files are the
target's overlaid with the source's (a merge commit, or one parent with `squash`), and the merge request is
`merged` with its `merge_commit_sha`; returns that sha. HttpError 405 when it is not open, 409 when `sha` is not the
source branch's head (what the endpoint answers).

`server.create_tag(project, tag, ref)` adds a lightweight tag, listed by `GET /projects/:id/repository/tags`;
`GET /projects/:id/repository/commits/:sha/statuses` lists the latest status of each name (`?all=true`: all).

`GET /projects/:id/repository/archive.tar.gz?sha=REF` serves a tar.gz of the commit under `project-sha-sha/`, as
GitLab does, or `project.archive` when a test sets it (a crafted archive).

Requests need `PRIVATE-TOKEN: <server.token>` or `Authorization: Bearer <server.token>` (401 otherwise) and act
as `server.bot`, or an OAuth token and act as its user.

OAuth applications (sign-in with GitLab): `server.add_oauth_application(client_id, secret)`, then
`server.sign_in(username)` is who the browser is signed in as at GitLab. `GET /oauth/authorize` (client_id,
redirect_uri, response_type=code, state, scope) approves at once and redirects to redirect_uri with a one-time
`code` and the `state` (`server.oauth_denied = True`: `error=access_denied`); `POST /oauth/token`
(grant_type=authorization_code, client_id, client_secret, code, redirect_uri) answers `{access_token, token_type,
expires_in, refresh_token, scope, created_at}` or 400 `{error: invalid_grant}`. With that token `GET /user` is its
user and `GET /projects?membership=true&min_access_level=N` lists the projects where `set_member` gave them at least
N (paginated: `per_page`, `page`, Link rel="next").
Project ids in URLs are numeric or URL-encoded paths (`group%2Fsub%2Fproject`), as on GitLab.
Responses carry the field names of GitLab's documented responses.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from flask import Flask, Response, request
from werkzeug.serving import make_server

from tests.servers.archives import tar_gz

TRUE_VALUES = ("1", "t", "true", "y", "yes", "on")  # Grape's boolean parameters, compared lower-case
TIMESTAMP = "2024-05-01T12:00:00.000Z"


def blob_sha(content: bytes) -> str:
    """The git blob id of content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class User:
    """A GitLab user."""

    id: int
    username: str
    name: str

    def json(self, base_url: str) -> dict[str, Any]:
        """The user as GitLab's basic user object."""
        return {"id": self.id, "username": self.username, "name": self.name, "state": "active", "locked": False,
                "avatar_url": None, "web_url": f"{base_url}/{self.username}"}


@dataclass
class Commit:
    """An immutable snapshot: path -> blob id, with its parents."""

    id: str
    message: str
    parent_ids: list[str]
    files: dict[str, str]
    author: str

    def json(self, project_id: int) -> dict[str, Any]:
        """The commit as GitLab's commit object."""
        return {"id": self.id, "short_id": self.id[:8], "title": self.message.splitlines()[0] if self.message else "",
                "message": self.message, "parent_ids": self.parent_ids, "author_name": self.author,
                "author_email": f"{self.author}@example.com", "committer_name": self.author,
                "committer_email": f"{self.author}@example.com", "authored_date": TIMESTAMP,
                "committed_date": TIMESTAMP, "created_at": TIMESTAMP, "project_id": project_id}


@dataclass
class Note:
    """A note on a merge request or an issue; `award_emoji` holds the names awarded on it."""

    id: int
    body: str
    author: User
    system: bool = False
    award_emoji: list[str] = field(default_factory=list)


@dataclass
class MergeRequestRecord:
    """A merge request of a project (source_project_id differs for a fork)."""

    id: int
    iid: int
    project_id: int
    source_project_id: int
    source_branch: str
    target_branch: str
    title: str
    description: str
    author: User
    state: str = "opened"
    notes: list[Note] = field(default_factory=list)
    approvals_required: int = 1  # the approval rules, reduced to a number of approvals
    approved_by: list[User] = field(default_factory=list)
    merge_commit_sha: str | None = None
    merged_by: User | None = None

    @property
    def approved(self) -> bool:
        """Whether the approval rules are satisfied."""
        return len(self.approved_by) >= self.approvals_required


@dataclass
class IssueRecord:
    """An issue of a project (its iid counts apart from merge requests)."""

    id: int
    iid: int
    project_id: int
    title: str
    description: str
    author: User
    state: str = "opened"  # or "closed"
    notes: list[Note] = field(default_factory=list)
    closed_by: User | None = None


@dataclass
class Project:
    """A project with its commits, branches and everything meshbot writes."""

    id: int
    path_with_namespace: str
    default_branch: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    merge_requests: dict[int, MergeRequestRecord] = field(default_factory=dict)
    issues: dict[int, IssueRecord] = field(default_factory=dict)  # iid -> issue
    members: dict[int, int] = field(default_factory=dict)  # user id -> access level
    statuses: list[dict[str, Any]] = field(default_factory=list)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    forked_from: int | None = None
    archive: bytes | None = None  # served instead of the commit's archive
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit sha


@dataclass
class Scripted:
    """An answer given instead of the real one (e.g. Scripted(429, headers={"Retry-After": "1"})).

    With `applied=True` the request is carried out first and only its answer replaced: a gateway that timed out
    after GitLab did the work (the note exists, the caller sees a 502).
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    applied: bool = False


@dataclass
class RecordedRequest:
    """A request the server received: path decoded segment by segment, query values as single strings."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class HttpError(Exception):
    """An error answer, as GitLab gives it: {"message": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class GitLabServer:
    """In-memory GitLab state, its Flask app, and the test API to set it up and inspect it."""

    def __init__(self, token: str = "test-token", bot_username: str = "meshbot") -> None:
        self.token = token
        self.url = ""  # set once serving
        self.users: dict[str, User] = {}
        self.projects: dict[int, Project] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self.scripts: list[tuple[str, str, list[Scripted]]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.bot = self.add_user(bot_username)
        self.oauth_applications: dict[str, str] = {}  # client id -> secret
        self.oauth_codes: dict[str, tuple[str, str, str]] = {}  # one-time code -> (client id, redirect uri, username)
        self.oauth_tokens: dict[str, str] = {}  # access token -> username
        self.signed_in: str | None = None  # who the browser is signed in as at GitLab
        self.oauth_denied = False
        self.app = Flask(__name__)
        self.app.add_url_rule("/oauth/authorize", "oauth_authorize", self._oauth_authorize, methods=["GET"])
        self.app.add_url_rule("/oauth/token", "oauth_token", self._oauth_token, methods=["POST"])
        self.app.add_url_rule("/api/v4/<path:rest>", "api", self._handle,
                              methods=["GET", "HEAD", "POST", "PUT", "DELETE"])

    # ------------------------------------------------------------------ test API: set-up

    def add_user(self, username: str, name: str | None = None) -> User:
        """Create a user (or return the existing one)."""
        if username not in self.users:
            self.users[username] = User(next(self._ids), username, name or username.title())
        return self.users[username]

    def create_project(self, path: str, files: dict[str, bytes] | None = None, branch: str = "main",
                       forked_from: Project | None = None) -> Project:
        """Create a project at path (`group/subgroup/name`) with one commit of files on branch."""
        project = Project(next(self._ids), path, branch, forked_from=forked_from.id if forked_from else None)
        self.projects[project.id] = project
        if forked_from is not None:
            project.commits.update(forked_from.commits)
            project.branches.update(forked_from.branches)
        else:
            project.branches[branch] = self._commit(project, files or {}, None, "Initial commit", "admin")
        return project

    def push(self, project: Project, branch: str, files: dict[str, bytes], message: str = "Change",
             author: str = "jane", from_branch: str | None = None, deleted: tuple[str, ...] = ()) -> str:
        """Commit files on branch (created from from_branch, or the default branch, when new); the new sha."""
        parent = project.branches.get(branch) or project.branches[from_branch or project.default_branch]
        sha = self._commit(project, files, parent, message, author, deleted)
        project.branches[branch] = sha
        return sha

    def create_tag(self, project: Project, tag: str, ref: str) -> str:
        """A lightweight tag on a branch or commit; the tagged sha."""
        sha = project.branches.get(ref, ref)
        assert sha in project.commits, ref
        project.tags[tag] = sha
        return sha

    def open_merge_request(self, project: Project, source_branch: str, target_branch: str = "main", *,
                           author: str = "jane", title: str = "Change", description: str = "",
                           source_project: Project | None = None) -> MergeRequestRecord:
        """Open a merge request in project (from source_project's branch when it is a fork)."""
        source = source_project or project
        if source is not project:
            project.commits.update(source.commits)
        record = MergeRequestRecord(next(self._ids), len(project.merge_requests) + 1, project.id, source.id,
                                    source_branch, target_branch, title, description, self.add_user(author))
        project.merge_requests[record.iid] = record
        return record

    def add_note(self, project: Project, iid: int, body: str, author: str = "jane", system: bool = False) -> Note:
        """Add a note to a merge request as author (system notes are GitLab's own, e.g. "added 1 commit")."""
        note = Note(next(self._ids), body, self.add_user(author), system)
        project.merge_requests[iid].notes.append(note)
        return note

    def open_issue(self, project: Project, title: str, description: str = "", *, author: str = "jane") -> IssueRecord:
        """Open an issue in project as author."""
        record = IssueRecord(next(self._ids), len(project.issues) + 1, project.id, title, description,
                             self.add_user(author))
        project.issues[record.iid] = record
        return record

    def add_issue_note(self, project: Project, iid: int, body: str, author: str = "jane",
                       system: bool = False) -> Note:
        """Add a note to an issue as author (system notes are GitLab's own, e.g. "closed")."""
        note = Note(next(self._ids), body, self.add_user(author), system)
        project.issues[iid].notes.append(note)
        return note

    def merge(self, project: Project, iid: int, *, sha: str | None = None, squash: bool = False,
              message: str | None = None, merged_by: str | None = None) -> str:
        """Merge an open merge request as GitLab does; the new commit on the target branch.

        Its files are the target's overlaid with the source's; its parents the target and source heads (the
        target's alone with squash). HttpError 405 when the merge request is not open or its source branch is
        gone, 409 when sha is given and is not the source branch's head.
        """
        record = project.merge_requests[iid]
        source = self.projects[record.source_project_id]
        head = source.branches.get(record.source_branch)
        if record.state != "opened" or head is None:
            raise HttpError(405, "405 Method Not Allowed")
        if sha is not None and sha != head:
            raise HttpError(409, f"SHA does not match HEAD of source branch: {head}")
        project.commits.update(source.commits)
        target = project.branches[record.target_branch]
        files = {**project.commits[target].files, **project.commits[head].files}
        user = self.add_user(merged_by) if merged_by else self.bot
        text = message or (f"Merge branch '{record.source_branch}' into '{record.target_branch}'\n\n{record.title}"
                           f"\n\nSee merge request {project.path_with_namespace}!{iid}")
        merged = self._store_commit(project, files, [target] if squash else [target, head], text, user.username)
        project.branches[record.target_branch] = merged
        record.state, record.merge_commit_sha, record.merged_by = "merged", merged, user
        return merged

    def approve(self, project: Project, iid: int, username: str) -> None:
        """Approve a merge request as username (once per user, as on GitLab)."""
        record = project.merge_requests[iid]
        user = self.add_user(username)
        if user not in record.approved_by:
            record.approved_by.append(user)

    def add_oauth_application(self, client_id: str, secret: str) -> None:
        """Register an OAuth application (sign-in with GitLab)."""
        self.oauth_applications[client_id] = secret

    def sign_in(self, username: str | None) -> None:
        """Who approves the next OAuth authorizations (None: nobody signed in, authorize answers 401)."""
        if username is not None:
            self.add_user(username)
        self.signed_in = username

    def set_member(self, project: Project, username: str, access_level: int) -> None:
        """Give a user an access level on the project (10 Guest, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner)."""
        project.members[self.add_user(username).id] = access_level

    def script(self, method: str, path_contains: str, answers: list[Scripted]) -> None:
        """Answer the next len(answers) requests whose method matches and decoded path contains path_contains."""
        self.scripts.append((method.upper(), path_contains, list(answers)))

    # ------------------------------------------------------------------ test API: inspection

    def project(self, path: str) -> Project:
        """A project by its path."""
        return next(project for project in self.projects.values() if project.path_with_namespace == path)

    def files_at(self, project: Project, ref: str) -> dict[str, bytes]:
        """The files of a branch or commit."""
        commit = project.commits[project.branches.get(ref, ref)]
        return {path: self.blobs[blob] for path, blob in commit.files.items()}

    def requests_matching(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        """Recorded requests of a method whose decoded path contains path_contains."""
        return [r for r in self.requests if r.method == method.upper() and path_contains in r.path]

    # ------------------------------------------------------------------ state helpers

    def _commit(self, project: Project, files: dict[str, bytes], parent: str | None, message: str, author: str,
                deleted: tuple[str, ...] = ()) -> str:
        snapshot = dict(project.commits[parent].files) if parent else {}
        for path in deleted:
            snapshot.pop(path, None)
        for path, content in files.items():
            self.blobs[blob_sha(content)] = content
            snapshot[path] = blob_sha(content)
        return self._store_commit(project, snapshot, [parent] if parent else [], message, author)

    def _store_commit(self, project: Project, snapshot: dict[str, str], parents: list[str], message: str,
                      author: str) -> str:
        """Store a commit of snapshot (path -> blob id) with these parents; its sha."""
        seed = f"{' '.join(parents) or None}\n{sorted(snapshot.items())}\n{message}\n{next(self._ids)}".encode()
        sha = hashlib.sha1(b"commit " + seed).hexdigest()
        project.commits[sha] = Commit(sha, message, parents, snapshot, author)
        return sha

    def _last_commit_for_path(self, project: Project, sha: str, path: str) -> str | None:
        """Like `git log -1 sha -- path`: the newest commit that changed path, following first parents."""
        commit: Commit | None = project.commits[sha]
        found = None
        while commit is not None:
            parent = project.commits[commit.parent_ids[0]] if commit.parent_ids else None
            if commit.files.get(path) != (parent.files.get(path) if parent else None):
                return commit.id
            found = commit
            commit = parent
        return found.id if found and path in found.files else None

    def _project_json(self, project: Project) -> dict[str, Any]:
        name = project.path_with_namespace.rsplit("/", 1)[-1]
        return {"id": project.id, "name": name, "path": name, "path_with_namespace": project.path_with_namespace,
                "name_with_namespace": project.path_with_namespace.replace("/", " / "),
                "default_branch": project.default_branch, "visibility": "private",
                "web_url": f"{self.url}/{project.path_with_namespace}",
                "namespace": {"full_path": project.path_with_namespace.rsplit("/", 1)[0]}}

    def _merge_request_json(self, project: Project, record: MergeRequestRecord) -> dict[str, Any]:
        source = self.projects[record.source_project_id]
        sha = source.branches.get(record.source_branch)
        merged_by = record.merged_by.json(self.url) if record.merged_by else None
        return {"id": record.id, "iid": record.iid, "project_id": project.id, "title": record.title,
                "description": record.description, "state": record.state, "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP, "target_branch": record.target_branch,
                "source_branch": record.source_branch, "author": record.author.json(self.url),
                "source_project_id": record.source_project_id, "target_project_id": project.id,
                "draft": False, "work_in_progress": False, "merge_status": "can_be_merged",
                "detailed_merge_status": "mergeable", "sha": sha, "merge_commit_sha": record.merge_commit_sha,
                "squash_commit_sha": None, "merged_at": TIMESTAMP if record.state == "merged" else None,
                "merged_by": merged_by, "merge_user": merged_by, "closed_at": None, "closed_by": None,
                "reference": f"!{record.iid}", "user_notes_count": len(record.notes),
                "web_url": f"{self.url}/{project.path_with_namespace}/-/merge_requests/{record.iid}",
                "diff_refs": {"base_sha": project.branches.get(record.target_branch), "head_sha": sha,
                              "start_sha": project.branches.get(record.target_branch)}}

    def _note_json(self, record: MergeRequestRecord | IssueRecord, note: Note) -> dict[str, Any]:
        return {"id": note.id, "type": None, "body": note.body, "author": note.author.json(self.url),
                "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "system": note.system, "noteable_id": record.id,
                "noteable_type": "Issue" if isinstance(record, IssueRecord) else "MergeRequest",
                "noteable_iid": record.iid, "resolvable": False, "confidential": False, "internal": False}

    def _issue_json(self, project: Project, record: IssueRecord) -> dict[str, Any]:
        api = f"{self.url}/api/v4/projects/{project.id}"
        return {"id": record.id, "iid": record.iid, "project_id": project.id, "title": record.title,
                "description": record.description, "state": record.state, "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP, "closed_at": TIMESTAMP if record.state == "closed" else None,
                "closed_by": record.closed_by.json(self.url) if record.closed_by else None, "labels": [],
                "milestone": None, "assignees": [], "assignee": None, "author": record.author.json(self.url),
                "type": "ISSUE", "issue_type": "issue",
                "user_notes_count": sum(not note.system for note in record.notes), "merge_requests_count": 0,
                "upvotes": 0, "downvotes": 0, "due_date": None, "confidential": False, "discussion_locked": None,
                "web_url": f"{self.url}/{project.path_with_namespace}/-/issues/{record.iid}",
                "references": {"short": f"#{record.iid}", "relative": f"#{record.iid}",
                               "full": f"{project.path_with_namespace}#{record.iid}"},
                "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                               "human_total_time_spent": None},
                "task_completion_status": {"count": 0, "completed_count": 0}, "has_tasks": False,
                "_links": {"self": f"{api}/issues/{record.iid}", "notes": f"{api}/issues/{record.iid}/notes",
                           "award_emoji": f"{api}/issues/{record.iid}/award_emoji", "project": api}}

    # ------------------------------------------------------------------ HTTP

    def _handle(self, rest: str) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
        raw_path = urlsplit(raw_uri).path.removeprefix("/api/v4/")
        segments = [unquote(segment) for segment in raw_path.split("/")]
        query = {key: values[-1] for key, values in parse_qs(urlsplit(raw_uri).query).items()}
        body: Any = request.get_json(silent=True) if request.data else None
        if body is None and request.form:
            body = request.form.to_dict()
        with self._lock:
            self.requests.append(RecordedRequest(request.method, "/" + "/".join(segments), "/" + raw_path, query,
                                                 dict(request.headers), body))
            scripted = self._scripted(request.method, "/" + "/".join(segments))
            if scripted is not None and scripted.applied and self._authorized():
                try:
                    self._route(request.method, segments, query, body or {})
                except HttpError:
                    pass  # the scripted answer is given whatever GitLab would have said
            if scripted is not None:
                payload = b"" if scripted.body is None else json.dumps(scripted.body).encode()
                return Response(payload, scripted.status, scripted.headers, content_type="application/json")
            if not self._authorized():
                return self._json({"message": "401 Unauthorized"}, 401)
            try:
                return self._route(request.method, segments, query, body or {})
            except HttpError as error:
                return self._json({"message": error.message}, error.status)

    def _scripted(self, method: str, path: str) -> Scripted | None:
        for script_method, contains, answers in self.scripts:
            if answers and script_method == method and contains in path:
                return answers.pop(0)
        return None

    def _authorized(self) -> bool:
        bearer = request.headers.get("Authorization", "")
        return request.headers.get("PRIVATE-TOKEN") == self.token or bearer == f"Bearer {self.token}" \
            or bearer.removeprefix("Bearer ") in self.oauth_tokens

    def _caller(self) -> User:
        """The user of the request's OAuth token, else the bot."""
        username = self.oauth_tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        return self.users[username] if username else self.bot

    def _oauth_authorize(self) -> Response:
        client_id, redirect_uri = request.args.get("client_id", ""), request.args.get("redirect_uri", "")
        if client_id not in self.oauth_applications or not redirect_uri or request.args.get("response_type") != "code":
            return self._json({"error": "invalid_request"}, 400)
        query = {"state": request.args.get("state", "")}
        if self.oauth_denied:
            query.update(error="access_denied", error_description="The resource owner or authorization server "
                                                                   "denied the request.")
        elif self.signed_in is None:
            return self._json({"message": "401 Unauthorized: sign in to GitLab first"}, 401)
        else:
            code = f"code-{next(self._ids)}"
            with self._lock:
                self.oauth_codes[code] = (client_id, redirect_uri, self.signed_in)
            query["code"] = code
        separator = "&" if "?" in redirect_uri else "?"
        return Response("", 302, {"Location": f"{redirect_uri}{separator}{urlencode(query)}"})

    def _oauth_token(self) -> Response:
        form = request.form
        with self._lock:
            granted = self.oauth_codes.pop(form.get("code", ""), None)
        client_id = form.get("client_id", "")
        if form.get("grant_type") != "authorization_code" or granted is None or granted[0] != client_id \
                or self.oauth_applications.get(client_id) != form.get("client_secret") \
                or granted[1] != form.get("redirect_uri"):
            return self._json({"error": "invalid_grant", "error_description": "The provided authorization grant is "
                               "invalid, expired, revoked, does not match the redirection URI used in the "
                               "authorization request, or was issued to another client."}, 400)
        token = f"glo-{next(self._ids)}"
        self.oauth_tokens[token] = granted[2]
        return self._json({"access_token": token, "token_type": "Bearer", "expires_in": 7200,
                           "refresh_token": f"glr-{next(self._ids)}", "scope": "read_api",
                           "created_at": 1700000000})

    def _project_list(self, query: dict[str, str]) -> Response:
        """The caller's projects (membership=true; min_access_level), paginated as GitLab does."""
        caller = self._caller()
        minimum = int(query.get("min_access_level", "10"))
        projects = [project for project in self.projects.values()
                    if project.members.get(caller.id, 0) >= minimum]
        per_page, page = min(int(query.get("per_page", "20")), 100), int(query.get("page", "1"))
        headers = {"X-Total": str(len(projects)), "X-Page": str(page), "X-Per-Page": str(per_page)}
        if page * per_page < len(projects):
            following = urlencode({**query, "page": str(page + 1), "per_page": str(per_page)})
            headers["Link"] = f'<{self.url}/api/v4/projects?{following}>; rel="next"'
            headers["X-Next-Page"] = str(page + 1)
        return self._json([self._project_json(project)
                           for project in projects[(page - 1) * per_page: page * per_page]], headers=headers)

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(data), status, headers or {}, content_type="application/json")

    def _find_project(self, encoded: str) -> Project:
        for project in self.projects.values():
            if encoded in (str(project.id), project.path_with_namespace):
                return project
        raise HttpError(404, "404 Project Not Found")

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: dict[str, Any]) -> Response:
        if segments == ["user"] and method == "GET":
            return self._json(self._caller().json(self.url))
        if segments == ["projects"] and method == "GET":
            return self._project_list(query)
        if segments == ["users"] and method == "GET":
            wanted = query.get("username")
            return self._json([user.json(self.url) for user in self.users.values() if user.username == wanted])
        if len(segments) < 2 or segments[0] != "projects":
            raise HttpError(404, "404 Not Found")
        # A project path must arrive URL-encoded, as one segment; unencoded slashes fall through to 404.
        project = self._find_project(segments[1])
        route = "/".join(segments[2:])
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, f"{method} {route}")
            if match:
                return handler(project, query, body, *match.groups())
        raise HttpError(404, "404 Not Found")

    def _routes(self) -> list[tuple[str, Callable[..., Response]]]:
        return [
            (r"GET ", lambda project, query, body: self._json(self._project_json(project))),
            (r"GET repository/tree", self._tree),
            (r"HEAD repository/files/(.+)", self._file_head),
            (r"GET repository/files/(.+)", self._file_get),
            (r"GET repository/blobs/([0-9a-f]+)/raw", self._blob_raw),
            (r"GET repository/archive\.tar\.gz", self._archive),
            (r"GET repository/branches/(.+)", self._branch_get),
            (r"POST repository/branches", self._branch_create),
            (r"POST repository/commits", self._commit_create),
            (r"POST statuses/([0-9a-f]+)", self._status_create),
            (r"GET repository/commits/([0-9a-f]+)/statuses", self._status_list),
            (r"GET repository/tags", self._tag_list),
            (r"POST deployments", self._deployment_create),
            (r"PUT deployments/(\d+)", self._deployment_update),
            (r"GET members/all/(\d+)", self._member_get),
            (r"GET merge_requests", self._merge_request_list),
            (r"POST merge_requests", self._merge_request_create),
            (r"GET merge_requests/(\d+)", self._merge_request_get),
            (r"PUT merge_requests/(\d+)", self._merge_request_update),
            (r"PUT merge_requests/(\d+)/merge", self._merge_request_merge),
            (r"GET merge_requests/(\d+)/approvals", self._approvals),
            (r"GET merge_requests/(\d+)/notes", self._note_list),
            (r"POST merge_requests/(\d+)/notes", self._note_create),
            (r"PUT merge_requests/(\d+)/notes/(\d+)", self._note_update),
            (r"POST merge_requests/(\d+)/notes/(\d+)/award_emoji", self._award_emoji),
            (r"GET issues", self._issue_list),
            (r"POST issues", self._issue_create),
            (r"GET issues/(\d+)", self._issue_get),
            (r"PUT issues/(\d+)", self._issue_update),
            (r"GET issues/(\d+)/notes", self._issue_note_list),
            (r"POST issues/(\d+)/notes", self._issue_note_create),
        ]

    def _resolve(self, project: Project, ref: str) -> Commit:
        sha = project.branches.get(ref, ref)
        if sha not in project.commits:
            raise HttpError(404, "404 Tree Not Found")
        return project.commits[sha]

    def _page(self, items: list[Any], query: dict[str, str], path: str) -> Response:
        """Offset pagination (page/per_page) with GitLab's X-* headers and a Link rel="next"."""
        per_page = min(int(query.get("per_page", "20")), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(max(1, -(-len(items) // per_page)))}
        if page * per_page < len(items):
            headers["X-Next-Page"] = str(page + 1)
            next_query = "&".join(f"{k}={quote(v)}" for k, v in {**query, "page": str(page + 1)}.items())
            headers["Link"] = f'<{self.url}/api/v4{path}?{next_query}>; rel="next"'
        return self._json(chunk, headers=headers)

    def _tree(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        commit = self._resolve(project, query.get("ref", project.default_branch))
        entries: dict[str, dict[str, Any]] = {}
        recursive = query.get("recursive", "").lower() in TRUE_VALUES
        for path, blob in sorted(commit.files.items()):
            parts = path.split("/")
            if not recursive and len(parts) > 1:
                parts = parts[:1]
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                entries.setdefault(folder, {"id": hashlib.sha1(folder.encode()).hexdigest(), "name": parts[depth - 1],
                                            "type": "tree", "path": folder, "mode": "040000"})
            if len(parts) == len(path.split("/")):
                entries[path] = {"id": blob, "name": parts[-1], "type": "blob", "path": path, "mode": "100644"}
        items = [entries[key] for key in sorted(entries)]
        path = f"/projects/{project.id}/repository/tree"
        if query.get("pagination") != "keyset":
            return self._page(items, query, path)
        per_page = min(int(query.get("per_page", "20")), 100)
        start = 0
        if "page_token" in query:
            start = next((i + 1 for i, item in enumerate(items) if item["path"] == query["page_token"]), len(items))
        chunk = items[start:start + per_page]
        headers = {}
        if start + per_page < len(items):
            next_query = "&".join(f"{k}={quote(v)}" for k, v in {**query, "page_token": chunk[-1]["path"]}.items())
            headers["Link"] = f'<{self.url}/api/v4{path}?{next_query}>; rel="next"'
        return self._json(chunk, headers=headers)

    def _file_headers(self, project: Project, path: str, ref: str) -> dict[str, str]:
        commit = self._resolve(project, ref)
        if path not in commit.files:
            raise HttpError(404, "404 File Not Found")
        blob = commit.files[path]
        return {"X-Gitlab-File-Name": path.rsplit("/", 1)[-1], "X-Gitlab-File-Path": path,
                "X-Gitlab-Size": str(len(self.blobs[blob])), "X-Gitlab-Encoding": "base64",
                "X-Gitlab-Blob-Id": blob, "X-Gitlab-Commit-Id": commit.id, "X-Gitlab-Ref": ref,
                "X-Gitlab-Last-Commit-Id": self._last_commit_for_path(project, commit.id, path) or commit.id}

    def _file_head(self, project: Project, query: dict[str, str], body: dict[str, Any], path: str) -> Response:
        headers = self._file_headers(project, path, query.get("ref", project.default_branch))
        return Response(b"", 200, headers)

    def _file_get(self, project: Project, query: dict[str, str], body: dict[str, Any], path: str) -> Response:
        headers = self._file_headers(project, path, query.get("ref", project.default_branch))
        content = self.blobs[headers["X-Gitlab-Blob-Id"]]
        return self._json({"file_name": headers["X-Gitlab-File-Name"], "file_path": path,
                           "size": len(content), "encoding": "base64",
                           "content": base64.b64encode(content).decode(), "ref": headers["X-Gitlab-Ref"],
                           "blob_id": headers["X-Gitlab-Blob-Id"], "commit_id": headers["X-Gitlab-Commit-Id"],
                           "last_commit_id": headers["X-Gitlab-Last-Commit-Id"]}, headers=headers)

    def _blob_raw(self, project: Project, query: dict[str, str], body: dict[str, Any], sha: str) -> Response:
        if sha not in self.blobs:
            raise HttpError(404, "404 Blob Not Found")
        return Response(self.blobs[sha], 200, content_type="text/plain; charset=utf-8")

    def _archive(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        commit = self._resolve(project, query.get("sha", project.default_branch))
        name = project.path_with_namespace.rsplit("/", 1)[-1]
        data = project.archive if project.archive is not None else \
            tar_gz(f"{name}-{commit.id}-{commit.id}", {path: self.blobs[blob] for path, blob in commit.files.items()})
        return Response(data, 200, content_type="application/octet-stream")

    def _branch_json(self, project: Project, name: str) -> dict[str, Any]:
        return {"name": name, "merged": False, "protected": name == project.default_branch,
                "default": name == project.default_branch, "developers_can_push": False,
                "developers_can_merge": False, "can_push": True,
                "web_url": f"{self.url}/{project.path_with_namespace}/-/tree/{name}",
                "commit": project.commits[project.branches[name]].json(project.id)}

    def _branch_get(self, project: Project, query: dict[str, str], body: dict[str, Any], name: str) -> Response:
        if name not in project.branches:
            raise HttpError(404, "404 Branch Not Found")
        return self._json(self._branch_json(project, name))

    def _branch_create(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        name, ref = body.get("branch") or query.get("branch", ""), body.get("ref") or query.get("ref", "")
        if name in project.branches:
            raise HttpError(400, "Branch already exists")
        project.branches[name] = self._resolve(project, ref).id
        return self._json(self._branch_json(project, name), 201)

    def _commit_create(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        branch = body["branch"]
        if branch not in project.branches:
            raise HttpError(400, "You can only create or edit files when you are on a branch")
        head = project.branches[branch]
        files: dict[str, bytes] = {}
        for action in body.get("actions", []):
            path = action["file_path"]
            content = action.get("content", "")
            data = base64.b64decode(content) if action.get("encoding") == "base64" else content.encode()
            exists = path in project.commits[head].files
            if action["action"] == "create" and exists:
                raise HttpError(400, "A file with this name already exists")
            if action["action"] == "update":
                if not exists:
                    raise HttpError(400, "A file with this name doesn't exist")
                # GitLab's Files::BaseService#file_has_changed?: the file's last commit on the branch must be
                # its last commit as of last_commit_id.
                known = action.get("last_commit_id")
                if known and known in project.commits and (self._last_commit_for_path(project, head, path)
                                                           != self._last_commit_for_path(project, known, path)):
                    raise HttpError(400, "You are attempting to update a file that has changed since you started "
                                         "editing it.")
            files[path] = data
        sha = self.push(project, branch, files, body.get("commit_message", ""), self.bot.username)
        return self._json(project.commits[sha].json(project.id), 201)

    def _status_create(self, project: Project, query: dict[str, str], body: dict[str, Any], sha: str) -> Response:
        state = body.get("state")
        if state not in ("pending", "running", "success", "failed", "canceled", "skipped"):
            raise HttpError(400, "state does not have a valid value")
        if sha not in project.commits:
            raise HttpError(404, "404 Commit Not Found")
        name = body.get("name") or body.get("context") or "default"
        previous = [s for s in project.statuses if s["sha"] == sha and s["name"] == name]
        if previous and previous[-1]["status"] == state:
            raise HttpError(400, f"Cannot transition status via :{state} from :{state}")
        status = {"id": next(self._ids), "sha": sha, "ref": body.get("ref"), "status": state, "name": name,
                  "description": body.get("description"), "target_url": body.get("target_url"),
                  "created_at": TIMESTAMP, "author": self.bot.json(self.url), "allow_failure": False}
        if len(status["description"] or "") > 255:
            raise HttpError(400, "description is too long (maximum is 255 characters)")
        project.statuses.append(status)
        return self._json(status, 201)

    def _status_list(self, project: Project, query: dict[str, str], body: dict[str, Any], sha: str) -> Response:
        if sha not in project.commits:
            raise HttpError(404, "404 Commit Not Found")
        found = [status for status in project.statuses if status["sha"] == sha]
        if query.get("all", "").lower() not in TRUE_VALUES:
            latest: dict[str, dict[str, Any]] = {}
            for status in found:
                latest[status["name"]] = status
            found = list(latest.values())
        found = [status for status in reversed(found) if query.get("name") in (None, status["name"])]
        return self._page(found, query, f"/projects/{project.id}/repository/commits/{sha}/statuses")

    def _tag_list(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        tags = [{"name": tag, "message": "", "target": sha, "commit": project.commits[sha].json(project.id),
                 "release": None, "protected": False, "created_at": None}
                for tag, sha in sorted(project.tags.items(), reverse=True)]
        return self._page(tags, query, f"/projects/{project.id}/repository/tags")

    def _deployment_create(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        for required in ("environment", "sha", "ref", "tag", "status"):
            if required not in body:
                raise HttpError(400, f"{required} is missing")
        if body["status"] not in ("running", "success", "failed", "canceled"):
            raise HttpError(400, "status does not have a valid value")
        deployment_id = next(self._ids)
        deployment = {"id": deployment_id, "iid": len(project.deployments) + 1, "ref": body["ref"], "sha": body["sha"],
                      "tag": body["tag"], "status": body["status"], "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
                      "user": self.bot.json(self.url), "environment": {"name": body["environment"]},
                      "deployable": None, "status_history": [body["status"]]}
        project.deployments[deployment_id] = deployment
        return self._json(deployment, 201)

    def _deployment_update(self, project: Project, query: dict[str, str], body: dict[str, Any],
                           deployment_id: str) -> Response:
        deployment = project.deployments.get(int(deployment_id))
        if deployment is None:
            raise HttpError(404, "404 Deployment Not Found")
        if body.get("status") not in ("running", "success", "failed", "canceled"):
            raise HttpError(400, "status does not have a valid value")
        deployment["status"] = body["status"]
        deployment["status_history"].append(body["status"])
        return self._json(deployment)

    def _member_get(self, project: Project, query: dict[str, str], body: dict[str, Any], user_id: str) -> Response:
        level = project.members.get(int(user_id))
        user = next((u for u in self.users.values() if u.id == int(user_id)), None)
        if level is None or user is None:
            raise HttpError(404, "404 Member Not Found")
        return self._json({**user.json(self.url), "access_level": level, "expires_at": None,
                           "membership_state": "active"})

    def _merge_request_record(self, project: Project, iid: str) -> MergeRequestRecord:
        record = project.merge_requests.get(int(iid))
        if record is None:
            raise HttpError(404, "404 Not found")
        return record

    def _merge_request_list(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        records = [r for r in project.merge_requests.values()
                   if all(query.get(key) in (None, "all", getattr(r, key))
                          for key in ("source_branch", "target_branch", "state"))]
        records.sort(key=lambda r: -r.iid)  # GitLab's default: created_at desc
        return self._page([self._merge_request_json(project, r) for r in records], query,
                          f"/projects/{project.id}/merge_requests")

    def _merge_request_create(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        for branch in (body["source_branch"], body["target_branch"]):
            if branch not in project.branches:
                raise HttpError(400, f"Branch {branch} does not exist")
        if any(r.source_branch == body["source_branch"] and r.target_branch == body["target_branch"]
               and r.state == "opened" for r in project.merge_requests.values()):
            raise HttpError(409, "Another open merge request already exists for this source branch")
        record = self.open_merge_request(project, body["source_branch"], body["target_branch"],
                                         author=self.bot.username, title=body.get("title", ""),
                                         description=body.get("description", ""))
        return self._json(self._merge_request_json(project, record), 201)

    def _merge_request_get(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        return self._json(self._merge_request_json(project, self._merge_request_record(project, iid)))

    def _merge_request_update(self, project: Project, query: dict[str, str], body: dict[str, Any],
                              iid: str) -> Response:
        record = self._merge_request_record(project, iid)
        record.title = body.get("title", record.title)
        record.description = body.get("description", record.description)
        return self._json(self._merge_request_json(project, record))

    def _merge_request_merge(self, project: Project, query: dict[str, str], body: dict[str, Any],
                             iid: str) -> Response:
        record = self._merge_request_record(project, iid)
        options = {**query, **body}
        squash = str(options.get("squash", "")).lower() in TRUE_VALUES
        message = options.get("squash_commit_message" if squash else "merge_commit_message")
        self.merge(project, record.iid, sha=options.get("sha"), squash=squash, message=message)
        source = self.projects[record.source_project_id]
        if str(options.get("should_remove_source_branch", "")).lower() in TRUE_VALUES and source is project:
            project.branches.pop(record.source_branch, None)
        return self._json(self._merge_request_json(project, record))

    def _issue_record(self, project: Project, iid: str) -> IssueRecord:
        record = project.issues.get(int(iid))
        if record is None:
            raise HttpError(404, "404 Not found")
        return record

    def _issue_list(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        state, author = query.get("state", "all"), query.get("author_username")
        records = [r for r in project.issues.values()
                   if state in ("all", r.state) and author in (None, r.author.username)]
        records.sort(key=lambda r: r.iid, reverse=query.get("sort", "desc") != "asc")  # created_at
        return self._page([self._issue_json(project, r) for r in records], query, f"/projects/{project.id}/issues")

    def _issue_create(self, project: Project, query: dict[str, str], body: dict[str, Any]) -> Response:
        if not body.get("title"):
            raise HttpError(400, "title is missing")
        record = self.open_issue(project, str(body["title"]), body.get("description") or "",
                                 author=self.bot.username)
        return self._json(self._issue_json(project, record), 201)

    def _issue_get(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        return self._json(self._issue_json(project, self._issue_record(project, iid)))

    def _issue_update(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._issue_record(project, iid)
        event = body.get("state_event")
        if event not in (None, "close", "reopen"):
            raise HttpError(400, "state_event does not have a valid value")
        record.title = body.get("title", record.title)
        record.description = body.get("description", record.description)
        if event == "close" and record.state == "opened":
            record.state, record.closed_by = "closed", self.bot
            record.notes.append(Note(next(self._ids), "closed", self.bot, system=True))
        elif event == "reopen" and record.state == "closed":
            record.state, record.closed_by = "opened", None
            record.notes.append(Note(next(self._ids), "reopened", self.bot, system=True))
        return self._json(self._issue_json(project, record))

    def _issue_note_list(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._issue_record(project, iid)
        notes = list(record.notes) if query.get("sort") == "asc" else list(reversed(record.notes))
        return self._page([self._note_json(record, note) for note in notes], query,
                          f"/projects/{project.id}/issues/{iid}/notes")

    def _issue_note_create(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._issue_record(project, iid)
        note = Note(next(self._ids), body["body"], self.bot)
        record.notes.append(note)
        return self._json(self._note_json(record, note), 201)

    def _approvals(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._merge_request_record(project, iid)
        return self._json({"id": record.id, "iid": record.iid, "project_id": project.id, "title": record.title,
                           "description": record.description, "state": record.state, "created_at": TIMESTAMP,
                           "updated_at": TIMESTAMP, "merge_status": "can_be_merged", "approved": record.approved,
                           "approvals_required": record.approvals_required,
                           "approvals_left": max(0, record.approvals_required - len(record.approved_by)),
                           "require_password_to_approve": False,
                           "approved_by": [{"user": user.json(self.url)} for user in record.approved_by],
                           "suggested_approvers": [], "approvers": [], "approver_groups": [],
                           "user_has_approved": self.bot in record.approved_by, "user_can_approve": True,
                           "approval_rules_left": [], "has_approval_rules": record.approvals_required > 0,
                           "merge_request_approvers_available": True, "multiple_approval_rules_available": True,
                           "invalid_approvers_rules": []})

    def _note_list(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._merge_request_record(project, iid)
        notes = list(record.notes) if query.get("sort") == "asc" else list(reversed(record.notes))
        return self._page([self._note_json(record, note) for note in notes], query,
                          f"/projects/{project.id}/merge_requests/{iid}/notes")

    def _note_create(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str) -> Response:
        record = self._merge_request_record(project, iid)
        note = Note(next(self._ids), body["body"], self.bot)
        record.notes.append(note)
        return self._json(self._note_json(record, note), 201)

    def _note(self, record: MergeRequestRecord, note_id: str) -> Note:
        note = next((n for n in record.notes if n.id == int(note_id)), None)
        if note is None:
            raise HttpError(404, "404 Note Not Found")
        return note

    def _note_update(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str,
                     note_id: str) -> Response:
        record = self._merge_request_record(project, iid)
        note = self._note(record, note_id)
        note.body = body["body"]
        return self._json(self._note_json(record, note))

    def _award_emoji(self, project: Project, query: dict[str, str], body: dict[str, Any], iid: str,
                     note_id: str) -> Response:
        note = self._note(self._merge_request_record(project, iid), note_id)
        name = body.get("name") or query.get("name", "")
        if name in note.award_emoji:
            raise HttpError(404, "404 Award Emoji Name has already been taken Not Found")
        note.award_emoji.append(name)
        return self._json({"id": next(self._ids), "name": name, "user": self.bot.json(self.url),
                           "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "awardable_id": note.id,
                           "awardable_type": "Note"}, 201)


@contextmanager
def gitlab_server(token: str = "test-token", bot_username: str = "meshbot") -> Iterator[GitLabServer]:
    """A GitLabServer listening on 127.0.0.1 (a free port) for the duration of the block."""
    server = GitLabServer(token, bot_username)
    http_server = make_server("127.0.0.1", 0, server.app, threaded=True)
    server.url = f"http://127.0.0.1:{http_server.server_port}"
    thread = threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http_server.shutdown()
        thread.join(timeout=5)
