"""meshbot's forge interface on GitLab (gitlab.com or self-managed), through python-gitlab.

Every repository object has its own HTTP session, which counts each request actually sent (retries
included), so that `api_calls` is exact. Retrying is python-gitlab's own (`obey_rate_limit`,
`retry_transient_errors`, `max_retries`), the way the GitHub side relies on urllib3's `Retry`:

- a 429 is retried for every method after the wait GitLab asks for (Retry-After, else RateLimit-Reset, else
  python-gitlab's exponential backoff): GitLab refused the request, so sending it again cannot do it twice. A
  wait longer than `max_retry_wait` fails at once instead of sleeping;
- a transient failure (500, 502, 503, 504, a timeout, a dropped connection) is retried for GET and HEAD only.
  A POST or PUT answered that way may have been carried out (a gateway timed out after GitLab created the
  note), so it is not sent again: the caller gets the error, never a duplicate comment.
"""

from __future__ import annotations

import base64
import email.utils
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import gitlab
import requests
from gitlab.exceptions import GitlabError

from bot.descriptor.files import MAX_FILE_BYTES, FileTooLarge
from vcs.archive import ArchiveTooLarge, extract_all, extract_files
from vcs.base import Comment, CommitState, DeploymentState, ForgeError, Issue, MergeRequest, Permission, Tag
from vcs.tally import rate_limit_waits

DEFAULT_URL = "https://gitlab.com"
STATUS_DESCRIPTION_LIMIT = 255  # GitLab's commit status description column
# Methods that change nothing on GitLab: the only ones retried after a transient failure.
SAFE_METHODS = frozenset({"get", "head"})

COMMIT_STATES = {
    CommitState.PENDING: "pending",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    CommitState.ERROR: "failed",
}
# GitLab's deployments API accepts only running/success/failed/canceled when creating or updating
# (`created` is the state of a deployment made by a pipeline job), so pending is reported as running.
DEPLOYMENT_STATES = {
    DeploymentState.PENDING: "running",
    DeploymentState.IN_PROGRESS: "running",
    DeploymentState.SUCCESS: "success",
    DeploymentState.FAILURE: "failed",
    DeploymentState.ERROR: "failed",
}
MERGE_REQUEST_STATES = {"opened": "open", "locked": "open", "closed": "closed", "merged": "merged"}
ISSUE_STATES = {"opened": "open", "closed": "closed"}
# GitLab's commit status states as meshbot's (a running or created status has no outcome yet)
STATUS_STATES = {"pending": CommitState.PENDING, "created": CommitState.PENDING, "running": CommitState.PENDING,
                 "success": CommitState.SUCCESS, "failed": CommitState.FAILURE}


def permission_for_access_level(access_level: int) -> Permission:
    """meshbot's permission for a GitLab access level (10 Guest ... 50 Owner)."""
    if access_level >= 50:
        return Permission.ADMIN
    if access_level >= 40:
        return Permission.MAINTAIN
    if access_level >= 30:
        return Permission.WRITE
    if access_level >= 10:
        return Permission.READ
    return Permission.NONE  # 0 no access, 5 minimal access


class RateLimited(Exception):
    """GitLab asked for a wait longer than meshbot makes before retrying."""

    def __init__(self, status: int, wait: float | None) -> None:
        super().__init__(f"rate limited by GitLab (HTTP {status})" + (f", retry in {wait:.0f}s" if wait else ""))
        self.status, self.wait = status, wait


def retry_wait(response: requests.Response, now: float) -> float | None:
    """Seconds GitLab asks to wait (Retry-After in seconds or as a date, else RateLimit-Reset), if it says."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        try:
            parsed = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            return max(0.0, parsed.timestamp() - now)
    reset = response.headers.get("RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - now)
    return None


class CountingSession(requests.Session):
    """A requests session that counts every request sent and bounds the waits python-gitlab makes before a retry."""

    def __init__(self, max_wait: float = 60.0) -> None:
        super().__init__()
        self.requests_sent = 0
        self.max_wait = max_wait

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send, counting the request; a 429 asking for too long a wait raises RateLimited instead of sleeping."""
        response = super().send(request, **kwargs)
        self.requests_sent += 1
        status = response.status_code
        if status == 429 or status >= 500:
            wait = retry_wait(response, time.time())
            if status == 429:
                rate_limit_waits.record("gitlab", wait or 0.0)
            if status == 429 and wait is not None and wait > self.max_wait:
                response.close()
                raise RateLimited(status, wait)
            # python-gitlab sleeps for whatever these headers say and reads them as whole numbers (a date or an
            # empty value would raise): it is given the wait in seconds, or nothing (it then backs off
            # exponentially), never more than max_wait.
            for header in ("Retry-After", "RateLimit-Reset"):
                response.headers.pop(header, None)
            if wait is not None and wait <= self.max_wait:
                response.headers["Retry-After"] = str(math.ceil(wait))
        return response


class _Gitlab(gitlab.Gitlab):
    """python-gitlab's client whose own retries resend after a transient failure only what changes nothing."""

    def __init__(self, url: str, token: str, session: requests.Session, timeout: float, max_retries: int) -> None:
        super().__init__(url, private_token=token, session=session, timeout=timeout, retry_transient_errors=False,
                         per_page=100)
        self.meshbot_max_retries = max_retries

    def http_request(self, verb: str, path: str, query_data: dict[str, Any] | None = None,
                     post_data: dict[str, Any] | bytes | BinaryIO | None = None, raw: bool = False,
                     streamed: bool = False, files: dict[str, Any] | None = None, timeout: float | None = None,
                     obey_rate_limit: bool = True, retry_transient_errors: bool | None = None,
                     max_retries: int | None = None, extra_headers: dict[str, Any] | None = None,
                     **kwargs: Any) -> requests.Response:
        """python-gitlab's request, retrying 429s for every method and transient failures for GET and HEAD."""
        if retry_transient_errors is None:
            retry_transient_errors = verb.lower() in SAFE_METHODS
        return super().http_request(verb, path, query_data, post_data, raw, streamed, files, timeout,
                                    obey_rate_limit=obey_rate_limit, retry_transient_errors=retry_transient_errors,
                                    max_retries=self.meshbot_max_retries if max_retries is None else max_retries,
                                    extra_headers=extra_headers, **kwargs)


def _username(user: Any) -> str:
    return str(user.get("username", "")) if isinstance(user, dict) else ""


def _issue(data: dict[str, Any]) -> Issue:
    """An issue of GitLab's issues API (its description as the body)."""
    return Issue(number=int(data["iid"]), title=data.get("title") or "", body=data.get("description") or "",
                 state=ISSUE_STATES.get(data["state"], data["state"]), url=data.get("web_url") or "",
                 author=_username(data.get("author")))


def _comment(note: Any) -> Comment:
    """A note (python-gitlab object) as a comment."""
    return Comment(id=str(note.id), body=note.body, author=_username(note.author))


class GitLabRepository:
    """One GitLab project, by its full path, as a `vcs.base.Repository`."""

    # read_files stops downloading the repository archive past this many bytes and reads file by file instead
    ARCHIVE_LIMIT = 20 * 1024 * 1024

    def __init__(self, url: str, token: str, project: str, *, max_retries: int = 5, max_retry_wait: float = 60.0,
                 timeout: float = 30.0) -> None:
        self.project_path = project.strip("/")
        self.session = CountingSession(max_retry_wait)
        self.client = _Gitlab(url, token, self.session, timeout, max_retries)
        # Lazy: no request; python-gitlab URL-encodes the path (group%2Fsubgroup%2Fproject) in every call.
        self.project = self.client.projects.get(self.project_path, lazy=True)
        self._trees: dict[str, dict[str, str]] = {}  # ref -> path -> blob id
        self._default_branch: str | None = None
        self._archive_over: dict[str, int] = {}  # ref -> the largest limit its archive was found past
        self._deployment_states: dict[str, str] = {}  # deployment id -> the GitLab status last set through us

    @property
    def api_calls(self) -> int:
        """HTTP requests sent through this object so far (retries included)."""
        return self.session.requests_sent

    @property
    def rest_calls(self) -> int:
        """The REST API calls among api_calls: all of them (the archive is a REST endpoint on GitLab)."""
        return self.session.requests_sent

    @contextmanager
    def _forge_errors(self, action: str) -> Iterator[None]:
        """Turn python-gitlab and transport failures into ForgeError naming the project, the action and status."""
        try:
            yield
        except RateLimited as error:
            raise ForgeError(f"GitLab {self.project_path}: {action}: {error}", status=error.status) from error
        except GitlabError as error:
            message = error.error_message if isinstance(error.error_message, str) else repr(error.error_message)
            status = error.response_code
            raise ForgeError(f"GitLab {self.project_path}: {action} failed (HTTP {status}): {message}",
                             status=status) from error
        except requests.RequestException as error:
            raise ForgeError(f"GitLab {self.project_path}: {action}: cannot reach GitLab: {error}") from error

    # ------------------------------------------------------------------ reading

    def list_files(self, ref: str) -> Sequence[str]:
        """Every file path at ref, from the recursive tree listing (100 entries a page, keyset pagination)."""
        blobs: dict[str, str] = {}
        with self._forge_errors(f"list files at {ref}"):
            for entry in self.project.repository_tree(ref=ref, recursive=True, iterator=True, per_page=100,
                                                      pagination="keyset"):
                # Symbolic links (mode 120000) are blobs too, but their content is a link target, not a file.
                if entry["type"] == "blob" and entry.get("mode") != "120000":
                    blobs[entry["path"]] = entry["id"]
        self._trees[ref] = blobs
        return sorted(blobs)

    def read_file(self, ref: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file at ref: its size from a HEAD of the files API, then its content from the blobs API."""
        listed = self._trees.get(ref)
        if listed is not None and path not in listed:
            raise FileNotFoundError(path)
        with self._forge_errors(f"read {path} at {ref}"):
            try:
                headers = self.project.files.head(path, ref=ref)
            except GitlabError as error:
                if error.response_code == 404:
                    raise FileNotFoundError(path) from error
                raise
            size = int(headers.get("X-Gitlab-Size", "0"))
            if size > max_bytes:
                raise FileTooLarge(path, size, max_bytes)
            blob_id = listed[path] if listed is not None else headers["X-Gitlab-Blob-Id"]
            content = self.project.repository_raw_blob(blob_id)
        if len(content) > max_bytes:
            raise FileTooLarge(path, len(content), max_bytes)
        return bytes(content)

    def read_files(self, ref: str, paths: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
        """Several files at ref: from one archive download when over two are wanted, else file by file."""
        if ref not in self._trees:
            self.list_files(ref)
        listed = self._trees[ref]
        wanted = [path for path in dict.fromkeys(paths) if path in listed]
        found: dict[str, bytes] = {}
        if len(wanted) > 2:
            found = self._read_archive(ref, wanted, max_bytes)
        return {path: found[path] if path in found else self.read_file(ref, path, max_bytes) for path in wanted}

    def snapshot(self, ref: str, max_total_bytes: int) -> dict[str, bytes] | None:
        """Every regular file at ref from one archive download, stopped past max_total_bytes (then None)."""
        label = f"GitLab {self.project_path} at {ref}"
        return self._download_archive(ref, max_total_bytes, lambda chunks: extract_all(chunks, max_total_bytes, label))

    def _read_archive(self, ref: str, wanted: Sequence[str], max_bytes: int) -> dict[str, bytes]:
        """The wanted files out of the project's tar.gz at ref; empty when it is larger than ARCHIVE_LIMIT."""
        label = f"GitLab {self.project_path} at {ref}"
        found = self._download_archive(ref, self.ARCHIVE_LIMIT, lambda chunks: extract_files(
            chunks, frozenset(wanted), max_bytes, self.ARCHIVE_LIMIT, label))
        return found or {}

    def _download_archive(self, ref: str, limit: int,
                          extract: Callable[[Iterator[bytes]], dict[str, bytes] | None]) -> dict[str, bytes] | None:
        """What extract makes of the project's tar.gz at ref, streamed; None when it is past limit."""
        if limit <= self._archive_over.get(ref, -1):
            return None  # already cut short at a limit at least as large: not downloaded again
        with self._forge_errors(f"download the archive at {ref}"):
            # GitLab's tree listing has no sizes: the download itself is cut short past the limit.
            response = self.client.http_get(f"/projects/{self.project.encoded_id}/repository/archive.tar.gz",
                                            query_data={"sha": ref}, streamed=True, raw=True)
            assert isinstance(response, requests.Response)
            try:
                return extract(response.iter_content(64 * 1024))
            except ArchiveTooLarge:
                self._archive_over[ref] = max(limit, self._archive_over.get(ref, -1))
                return None
            finally:
                response.close()

    def branch_head(self, branch: str) -> str | None:
        """The commit sha a branch points at, or None when GitLab has no such branch."""
        with self._forge_errors(f"read branch {branch}"):
            try:
                return str(self.project.branches.get(branch).commit["id"])
            except GitlabError as error:
                if error.response_code == 404 and "Branch" in str(error.error_message):
                    return None
                raise

    def default_branch(self) -> str:
        """The project's default branch (one call, then remembered)."""
        return self._default_branch_name()

    def _default_branch_name(self) -> str:
        if self._default_branch is None:
            with self._forge_errors("read project"):
                data = self.client.http_get(f"/projects/{self.project.encoded_id}")
            self._default_branch = str(data["default_branch"]) if isinstance(data, dict) else "main"
        return self._default_branch

    # ------------------------------------------------------------------ merge requests and comments

    def _merge_request(self, data: dict[str, Any]) -> MergeRequest:
        return MergeRequest(
            number=int(data["iid"]), title=data.get("title") or "", description=data.get("description") or "",
            source_branch=data["source_branch"], target_branch=data["target_branch"],
            head_sha=data.get("sha") or "", author=_username(data.get("author")),
            state=MERGE_REQUEST_STATES.get(data["state"], data["state"]), url=data.get("web_url") or "",
            from_fork=data.get("source_project_id") != data.get("target_project_id"))

    def merge_request(self, number: int) -> MergeRequest:
        """One merge request by iid."""
        with self._forge_errors(f"read merge request !{number}"):
            return self._merge_request(self.project.mergerequests.get(number).attributes)

    def approved(self, number: int) -> bool:
        """Whether the merge request's approval rules are satisfied (GitLab's `approved`, one call)."""
        approvals = self.project.mergerequests.get(number, lazy=True).approvals
        with self._forge_errors(f"read approvals of merge request !{number}"):
            return bool(approvals.get().attributes.get("approved"))

    def comments(self, number: int) -> list[Comment]:
        """Every note of a merge request written by a person, oldest first (system notes skipped)."""
        notes = self.project.mergerequests.get(number, lazy=True).notes
        with self._forge_errors(f"list comments of merge request !{number}"):
            return [_comment(note) for note in notes.list(iterator=True, sort="asc", order_by="created_at",
                                                           per_page=100)
                    if not note.attributes.get("system")]

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a note to a merge request."""
        notes = self.project.mergerequests.get(number, lazy=True).notes
        with self._forge_errors(f"comment on merge request !{number}"):
            note = notes.create({"body": body})
        return _comment(note)

    def edit_comment(self, number: int, comment_id: str, body: str) -> None:
        """Replace a note's body."""
        notes = self.project.mergerequests.get(number, lazy=True).notes
        with self._forge_errors(f"edit comment {comment_id} of merge request !{number}"):
            notes.update(int(comment_id), {"body": body})

    def add_reaction(self, number: int, comment_id: str, reaction: str) -> None:
        """Award an emoji (e.g. `eyes`) on a note; awarding it twice is not an error."""
        note = self.project.mergerequests.get(number, lazy=True).notes.get(int(comment_id), lazy=True)
        with self._forge_errors(f"react to comment {comment_id} of merge request !{number}"):
            try:
                note.awardemojis.create({"name": reaction})
            except GitlabError as error:
                if "already been taken" not in str(error.error_message):
                    raise

    def permission(self, username: str) -> Permission:
        """The user's access level on the project, inherited ones included (NONE when not a member)."""
        with self._forge_errors(f"read permission of {username}"):
            users = self.client.users.list(username=username, get_all=False)
            if not users:
                return Permission.NONE
            try:
                member = self.project.members_all.get(users[0].id)
            except GitlabError as error:
                if error.response_code == 404:
                    return Permission.NONE
                raise
        return permission_for_access_level(int(member.access_level))

    # ------------------------------------------------------------------ statuses and deployments

    def set_commit_status(self, sha: str, context: str, state: CommitState, description: str,
                          target_url: str | None = None) -> None:
        """Create or replace the commit status named context on sha."""
        data: dict[str, Any] = {"state": COMMIT_STATES[state], "name": context,
                                "description": description[:STATUS_DESCRIPTION_LIMIT]}
        if target_url:
            data["target_url"] = target_url
        statuses = self.project.commits.get(sha, lazy=True).statuses
        with self._forge_errors(f"set status {context} on {sha[:12]}"):
            try:
                statuses.create(data)
            except GitlabError as error:
                # GitLab refuses a status in the state it already has; the status is then already right.
                if "Cannot transition status" not in str(error.error_message):
                    raise

    def create_deployment(self, sha: str, environment: str, description: str, tag: str | None = None) -> str:
        """Record a running deployment of sha (from tag, else the default branch) to environment; its id."""
        ref = tag or self._default_branch_name()
        with self._forge_errors(f"create deployment of {sha[:12]} to {environment}"):
            deployment = self.project.deployments.create(
                {"environment": environment, "sha": sha, "ref": ref, "tag": tag is not None, "status": "running"})
        self._deployment_states[str(deployment.id)] = "running"
        return str(deployment.id)

    def set_deployment_state(self, deployment_id: str, state: DeploymentState, description: str,
                             target_url: str | None = None) -> None:
        """Move a deployment to the GitLab status for state (GitLab refuses a move to the status it has)."""
        status = DEPLOYMENT_STATES[state]
        if self._deployment_states.get(deployment_id) == status:
            return
        with self._forge_errors(f"update deployment {deployment_id}"):
            self.project.deployments.update(int(deployment_id), {"status": status})
        self._deployment_states[deployment_id] = status

    # ------------------------------------------------------------------ writing

    def create_branch(self, branch: str, sha: str) -> None:
        """Create branch at sha."""
        with self._forge_errors(f"create branch {branch}"):
            self.project.branches.create({"branch": branch, "ref": sha})

    def commit_files(self, branch: str, parent_sha: str, message: str, files: dict[str, bytes]) -> str:
        """Commit files on branch if its head is still parent_sha; GitLab itself refuses changed files."""
        head = self.branch_head(branch)
        if head != parent_sha:
            raise ForgeError(f"GitLab {self.project_path}: branch {branch} moved (now {head}, expected {parent_sha});"
                             " not committing over it", status=409)
        existing = self._trees.get(parent_sha)
        if existing is None:
            existing = dict.fromkeys(self.list_files(parent_sha), "")
        # last_commit_id makes GitLab refuse to update a file that changed on the branch since parent_sha.
        actions = [{"action": "update" if path in existing else "create", "file_path": path,
                    "encoding": "base64", "content": base64.b64encode(content).decode("ascii"),
                    "last_commit_id": parent_sha}
                   for path, content in sorted(files.items())]
        try:
            with self._forge_errors(f"commit on {branch}"):
                commit = self.project.commits.create({"branch": branch, "commit_message": message, "actions": actions})
        except ForgeError as error:
            if error.status == 400 and ("changed since" in error.message or "already exists" in error.message):
                raise ForgeError(f"GitLab {self.project_path}: branch {branch} moved since {parent_sha}: "
                                 f"{error.message}", status=409) from error
            raise
        return str(commit.id)

    def find_merge_request(self, source_branch: str, target_branch: str) -> MergeRequest | None:
        """The open merge request from source_branch into target_branch, if any."""
        with self._forge_errors(f"find merge request {source_branch} -> {target_branch}"):
            found = self.project.mergerequests.list(source_branch=source_branch, target_branch=target_branch,
                                                    state="opened", get_all=False, per_page=1)
        return self._merge_request(found[0].attributes) if found else None

    def open_merge_request(self, source_branch: str, target_branch: str, title: str, description: str) -> MergeRequest:
        """Open a merge request."""
        with self._forge_errors(f"open merge request {source_branch} -> {target_branch}"):
            created = self.project.mergerequests.create({"source_branch": source_branch,
                                                         "target_branch": target_branch,
                                                         "title": title, "description": description})
        return self._merge_request(created.attributes)

    def update_merge_request(self, number: int, title: str, description: str) -> None:
        """Change a merge request's title and description."""
        with self._forge_errors(f"update merge request !{number}"):
            self.project.mergerequests.update(number, {"title": title, "description": description})

    # ------------------------------------------------------------------ issues

    def open_issues(self, author: str | None = None) -> list[Issue]:
        """Every open issue, newest first, only those author opened when given (one call per 100)."""
        filters: dict[str, Any] = {"author_username": author} if author else {}
        with self._forge_errors("list open issues"):
            return [_issue(item.attributes) for item in self.project.issues.list(
                state="opened", order_by="created_at", sort="desc", iterator=True, per_page=100, **filters)]

    def create_issue(self, title: str, body: str) -> Issue:
        """Open an issue."""
        with self._forge_errors("open an issue"):
            created = self.project.issues.create({"title": title, "description": body})
        return _issue(created.attributes)

    def update_issue(self, number: int, title: str, body: str) -> None:
        """Change an issue's title and description."""
        with self._forge_errors(f"update issue #{number}"):
            self.project.issues.update(number, {"title": title, "description": body})

    def close_issue(self, number: int, comment: str | None = None) -> None:
        """Close an issue (state_event=close), adding the note first when given."""
        if comment is not None:
            self.create_issue_comment(number, comment)
        with self._forge_errors(f"close issue #{number}"):
            self.project.issues.update(number, {"state_event": "close"})

    def issue_comments(self, number: int) -> list[Comment]:
        """Every note of an issue written by a person, oldest first (system notes skipped)."""
        notes = self.project.issues.get(number, lazy=True).notes
        with self._forge_errors(f"list comments of issue #{number}"):
            return [_comment(note) for note in notes.list(iterator=True, sort="asc", order_by="created_at",
                                                           per_page=100)
                    if not note.attributes.get("system")]

    def create_issue_comment(self, number: int, body: str) -> Comment:
        """Add a note to an issue."""
        notes = self.project.issues.get(number, lazy=True).notes
        with self._forge_errors(f"comment on issue #{number}"):
            return _comment(notes.create({"body": body}))

    # ------------------------------------------------------------------ catching up (bot.forge.catch_up)

    def open_merge_requests(self) -> list[MergeRequest]:
        """Every open merge request, newest first (one call per 100; each carries its head sha)."""
        with self._forge_errors("list open merge requests"):
            return [self._merge_request(item.attributes)
                    for item in self.project.mergerequests.list(state="opened", iterator=True, per_page=100)]

    def commit_statuses(self, sha: str) -> dict[str, CommitState]:
        """The latest state of each status name on sha (GitLab lists only the latest of each by default)."""
        statuses = self.project.commits.get(sha, lazy=True).statuses
        with self._forge_errors(f"read the statuses of {sha[:12]}"):
            return {str(item.attributes["name"]): STATUS_STATES.get(str(item.attributes["status"]), CommitState.ERROR)
                    for item in statuses.list(iterator=True, per_page=100)}

    def list_tags(self) -> list[Tag]:
        """Every tag with its commit (one call per 100)."""
        with self._forge_errors("list tags"):
            return [Tag(str(item.attributes["name"]), str(item.attributes["commit"]["id"]))
                    for item in self.project.tags.list(iterator=True, per_page=100)]


class GitLabForge:
    """A GitLab account (a personal, project or group access token) on gitlab.com or a self-managed instance."""

    name = "gitlab"

    def __init__(self, token: str, url: str = DEFAULT_URL, *, max_retries: int = 5, max_retry_wait: float = 60.0,
                 timeout: float = 30.0) -> None:
        self.url, self.token = url.rstrip("/"), token
        self.web_url = self.url
        self.options: dict[str, Any] = {"max_retries": max_retries, "max_retry_wait": max_retry_wait,
                                        "timeout": timeout}
        self._username: str | None = None

    @classmethod
    def from_environment(cls) -> GitLabForge:
        """The forge configured by MESHBOT_GITLAB_URL (default gitlab.com) and MESHBOT_GITLAB_TOKEN."""
        token = os.environ.get("MESHBOT_GITLAB_TOKEN")
        if not token:
            raise ForgeError("MESHBOT_GITLAB_TOKEN is not set: give meshbot a GitLab access token")
        return cls(token, os.environ.get("MESHBOT_GITLAB_URL") or DEFAULT_URL)

    def repository(self, project: str) -> GitLabRepository:
        """A project by its path (`group/subgroup/project`); no request until it is used."""
        return GitLabRepository(self.url, self.token, project, **self.options)

    def bot_username(self) -> str:
        """The username of the token's user (asked once)."""
        if self._username is None:
            client = _Gitlab(self.url, self.token, CountingSession(self.options["max_retry_wait"]),
                             self.options["timeout"], self.options["max_retries"])
            try:
                data = client.http_get("/user")
            except (GitlabError, RateLimited, requests.RequestException) as error:
                raise ForgeError(f"GitLab {self.url}: cannot read the token's user: {error}",
                                 status=getattr(error, "response_code", None)) from error
            self._username = str(data["username"]) if isinstance(data, dict) else ""
        return self._username
