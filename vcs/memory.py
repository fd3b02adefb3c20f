"""An in-memory forge for unit tests: repositories with commits, branches, merge requests, issues, comments, statuses.

It implements `vcs.base.Repository` faithfully enough for handlers to be tested without HTTP: commits
are immutable snapshots (path -> bytes), branches point at commits, `commit_files` refuses to write
on a branch that moved, and everything meshbot writes is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot.descriptor.files import MAX_FILE_BYTES, FileTooLarge
from vcs.base import (
    Comment,
    CommitState,
    DeploymentState,
    ForgeError,
    Issue,
    MergeRequest,
    Permission,
    Tag,
)


@dataclass
class RecordedStatus:
    """A commit status as the forge keeps it."""

    sha: str
    context: str
    state: CommitState
    description: str
    target_url: str | None


@dataclass
class RecordedDeployment:
    """A deployment record and the states it went through."""

    id: str
    sha: str
    environment: str
    description: str
    tag: str | None = None
    states: list[tuple[DeploymentState, str, str | None]] = field(default_factory=list)


class MemoryRepository:
    """One repository held in memory."""

    def __init__(self, project: str, files: dict[str, bytes] | None = None, branch: str = "main") -> None:
        self.project = project
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.merge_requests: dict[int, MergeRequest] = {}
        self.comment_threads: dict[int, list[Comment]] = {}
        self.issues: dict[int, Issue] = {}  # issue number -> the issue as it is now
        self.issue_threads: dict[int, list[Comment]] = {}  # issue number -> its comments, oldest first
        self.reactions: list[tuple[int, str, str]] = []
        self.statuses: list[RecordedStatus] = []
        self.deployments: dict[str, RecordedDeployment] = {}
        self.permissions: dict[str, Permission] = {}
        self.approvals: dict[int, bool] = {}  # merge request number -> approved (tests set it)
        self.user = "meshbot"
        self.main_branch = branch  # the default branch
        self._calls = 0
        self._ids = itertools.count(1)
        self.branches[branch] = self.commit(files or {})

    # ------------------------------------------------------------------ test set-up

    def commit(self, files: dict[str, bytes], parent: str | None = None) -> str:
        """Store a snapshot (the parent's files updated with these) and return its sha (no branch moves)."""
        snapshot = {**(self.commits[parent] if parent else {}), **files}
        digest = hashlib.sha1(repr(sorted(snapshot.items())).encode() + str(len(self.commits)).encode())
        sha = digest.hexdigest()
        self.commits[sha] = snapshot
        return sha

    def push(self, branch: str, files: dict[str, bytes]) -> str:
        """Commit on top of a branch and move it; returns the new sha."""
        sha = self.commit(files, self.branches.get(branch))
        self.branches[branch] = sha
        return sha

    def add_merge_request(self, source_branch: str, target_branch: str = "main", *, author: str = "jane",
                          from_fork: bool = False, title: str = "Change") -> MergeRequest:
        """Open a merge request between two existing branches."""
        number = len(self.merge_requests) + 1
        request = MergeRequest(number=number, title=title, description="", source_branch=source_branch,
                               target_branch=target_branch, head_sha=self.branches[source_branch], author=author,
                               state="open", url=f"memory://{self.project}/merge_requests/{number}",
                               from_fork=from_fork)
        self.merge_requests[number] = request
        self.comment_threads[number] = []
        return request

    def merge(self, number: int) -> str:
        """Merge an open merge request: its source's files over its target's, the target moved; the new sha."""
        request = self.merge_requests[number]
        source = self.commits[self.branches[request.source_branch]]
        sha = self.commit(source, self.branches[request.target_branch])
        self.branches[request.target_branch] = sha
        self.merge_requests[number] = replace(request, state="merged")
        return sha

    def add_issue(self, title: str, body: str = "", *, author: str = "jane") -> Issue:
        """Open an issue as author (issues are numbered apart from merge requests, as on GitLab)."""
        number = len(self.issues) + 1
        self.issues[number] = Issue(number=number, title=title, body=body, state="open",
                                    url=f"memory://{self.project}/issues/{number}", author=author)
        self.issue_threads[number] = []
        return self.issues[number]

    def issue(self, number: int) -> Issue:
        """An issue as it is now (no call counted)."""
        return self.issues[number]

    def status(self, sha: str, context: str) -> RecordedStatus | None:
        """The latest status of context on sha."""
        found = [status for status in self.statuses if status.sha == sha and status.context == context]
        return found[-1] if found else None

    # ------------------------------------------------------------------ vcs.base.Repository

    @property
    def api_calls(self) -> int:
        """Calls made so far."""
        return self._calls

    def _call(self) -> None:
        self._calls += 1

    def _resolve(self, ref: str) -> dict[str, bytes]:
        sha = self.branches.get(ref) or self.tags.get(ref) or ref
        if sha not in self.commits:
            raise ForgeError(f"{self.project}: no commit, branch or tag {ref!r}", status=404)
        return self.commits[sha]

    def list_files(self, ref: str) -> Sequence[str]:
        """Every path at ref."""
        self._call()
        return sorted(self._resolve(ref))

    def read_file(self, ref: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file at ref."""
        self._call()
        files = self._resolve(ref)
        if path not in files:
            raise FileNotFoundError(path)
        if len(files[path]) > max_bytes:
            raise FileTooLarge(path, len(files[path]), max_bytes)
        return files[path]

    def snapshot(self, ref: str, max_total_bytes: int) -> dict[str, bytes] | None:
        """Every file at ref, as one call; None when they add up to more than max_total_bytes."""
        self._call()
        files = self._resolve(ref)
        return dict(files) if sum(len(content) for content in files.values()) <= max_total_bytes else None

    def read_files(self, ref: str, paths: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
        """Several files at ref, as one call."""
        self._call()
        files = self._resolve(ref)
        found = {path: files[path] for path in paths if path in files}
        for path, content in found.items():
            if len(content) > max_bytes:
                raise FileTooLarge(path, len(content), max_bytes)
        return found

    def branch_head(self, branch: str) -> str | None:
        """The sha of a branch."""
        self._call()
        return self.branches.get(branch)

    def default_branch(self) -> str:
        """The default branch (the one the repository was made with)."""
        self._call()
        return self.main_branch

    def merge_request(self, number: int) -> MergeRequest:
        """A merge request, with its source branch's current head."""
        self._call()
        if number not in self.merge_requests:
            raise ForgeError(f"{self.project}: no merge request {number}", status=404)
        request = self.merge_requests[number]
        return replace(request, head_sha=self.branches.get(request.source_branch, request.head_sha))

    def approved(self, number: int) -> bool:
        """Whether the tests marked the merge request approved (False unless set)."""
        self._call()
        return self.approvals.get(number, False)

    def comments(self, number: int) -> list[Comment]:
        """A merge request's comments."""
        self._call()
        return list(self.comment_threads.get(number, []))

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment as meshbot."""
        self._call()
        comment = Comment(id=str(next(self._ids)), body=body, author=self.user)
        self.comment_threads.setdefault(number, []).append(comment)
        return comment

    def edit_comment(self, number: int, comment_id: str, body: str) -> None:
        """Edit a comment in place."""
        self._call()
        thread = self.comment_threads.get(number, [])
        for index, comment in enumerate(thread):
            if comment.id == comment_id:
                thread[index] = replace(comment, body=body)
                return
        raise ForgeError(f"{self.project}: no comment {comment_id} on merge request {number}", status=404)

    def add_reaction(self, number: int, comment_id: str, reaction: str) -> None:
        """React to a comment."""
        self._call()
        self.reactions.append((number, comment_id, reaction))

    def permission(self, username: str) -> Permission:
        """The user's rights (NONE when not set)."""
        self._call()
        return self.permissions.get(username, Permission.NONE)

    def set_commit_status(self, sha: str, context: str, state: CommitState, description: str,
                          target_url: str | None = None) -> None:
        """Record a commit status."""
        self._call()
        self.statuses.append(RecordedStatus(sha, context, state, description[:140], target_url))

    def create_deployment(self, sha: str, environment: str, description: str, tag: str | None = None) -> str:
        """Record a deployment."""
        self._call()
        deployment_id = str(next(self._ids))
        self.deployments[deployment_id] = RecordedDeployment(deployment_id, sha, environment, description, tag)
        return deployment_id

    def set_deployment_state(self, deployment_id: str, state: DeploymentState, description: str,
                             target_url: str | None = None) -> None:
        """Move a deployment record."""
        self._call()
        self.deployments[deployment_id].states.append((state, description, target_url))

    def create_branch(self, branch: str, sha: str) -> None:
        """Create a branch."""
        self._call()
        if branch in self.branches:
            raise ForgeError(f"{self.project}: branch {branch} exists", status=422)
        self.branches[branch] = sha

    def commit_files(self, branch: str, parent_sha: str, message: str, files: dict[str, bytes]) -> str:
        """Commit on a branch that must still be at parent_sha."""
        self._call()
        if self.branches.get(branch) != parent_sha:
            raise ForgeError(f"{self.project}: branch {branch} moved (now {self.branches.get(branch)}, "
                             f"expected {parent_sha})", status=409)
        return self.push(branch, files)

    def find_merge_request(self, source_branch: str, target_branch: str) -> MergeRequest | None:
        """The open merge request between two branches."""
        self._call()
        return next((request for request in self.merge_requests.values()
                     if (request.source_branch, request.target_branch, request.state)
                     == (source_branch, target_branch, "open")), None)

    def open_merge_request(self, source_branch: str, target_branch: str, title: str, description: str) -> MergeRequest:
        """Open a merge request as meshbot."""
        request = self.add_merge_request(source_branch, target_branch, author=self.user, title=title)
        self._call()
        self.merge_requests[request.number] = replace(request, description=description)
        return self.merge_requests[request.number]

    def update_merge_request(self, number: int, title: str, description: str) -> None:
        """Change a merge request's title and description."""
        self._call()
        self.merge_requests[number] = replace(self.merge_requests[number], title=title, description=description)

    def _issue(self, number: int) -> Issue:
        if number not in self.issues:
            raise ForgeError(f"{self.project}: no issue {number}", status=404)
        return self.issues[number]

    def open_issues(self, author: str | None = None) -> list[Issue]:
        """Every open issue, newest first, only author's when given."""
        self._call()
        return [issue for issue in reversed(self.issues.values())
                if issue.state == "open" and author in (None, issue.author)]

    def create_issue(self, title: str, body: str) -> Issue:
        """Open an issue as meshbot."""
        self._call()
        return self.add_issue(title, body, author=self.user)

    def update_issue(self, number: int, title: str, body: str) -> None:
        """Change an issue's title and body."""
        self._call()
        self.issues[number] = replace(self._issue(number), title=title, body=body)

    def close_issue(self, number: int, comment: str | None = None) -> None:
        """Close an issue, commenting first when given (two calls then, as on the forges)."""
        if comment is not None:
            self.create_issue_comment(number, comment)
        self._call()
        self.issues[number] = replace(self._issue(number), state="closed")

    def issue_comments(self, number: int) -> list[Comment]:
        """An issue's comments, oldest first."""
        self._call()
        self._issue(number)
        return list(self.issue_threads[number])

    def create_issue_comment(self, number: int, body: str) -> Comment:
        """Comment on an issue as meshbot."""
        self._call()
        self._issue(number)
        comment = Comment(id=str(next(self._ids)), body=body, author=self.user)
        self.issue_threads[number].append(comment)
        return comment

    def open_merge_requests(self) -> list[MergeRequest]:
        """Every open merge request, newest first."""
        self._call()
        return [request for request in reversed(self.merge_requests.values()) if request.state == "open"]

    def commit_statuses(self, sha: str) -> dict[str, CommitState]:
        """The latest state of each context on sha."""
        self._call()
        return {status.context: status.state for status in self.statuses if status.sha == sha}

    def list_tags(self) -> list[Tag]:
        """Every tag with its commit."""
        self._call()
        return [Tag(name, sha) for name, sha in self.tags.items()]


class MemoryForge:
    """Repositories by project path, all as one bot user."""

    def __init__(self, name: str = "github", user: str = "meshbot") -> None:
        self.name, self.user = name, user
        self.web_url = "https://github.com" if name == "github" else "https://gitlab.example.com"
        self.repositories: dict[str, MemoryRepository] = {}

    def add(self, project: str, files: dict[str, bytes] | None = None) -> MemoryRepository:
        """Create a repository with one commit on main."""
        repository = MemoryRepository(project, files)
        repository.user = self.user
        self.repositories[project] = repository
        return repository

    def repository(self, project: str) -> MemoryRepository:
        """A repository by path."""
        if project not in self.repositories:
            raise ForgeError(f"no repository {project}", status=404)
        return self.repositories[project]

    def bot_username(self) -> str:
        """meshbot's user."""
        return self.user
