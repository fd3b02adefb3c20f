"""The one small interface meshbot needs from a forge (GitHub, GitLab), in meshbot's own types.

Implementations: `vcs.github` (PyGithub), `vcs.gitlab` (python-gitlab), `vcs.memory` (tests). Every
method is one or a few REST calls; every implementation counts its calls (`api_calls`) so that the
service can report them per event. Errors reach callers as `ForgeError` with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Protocol, runtime_checkable

from bot.descriptor.files import MAX_FILE_BYTES


class ForgeError(Exception):
    """A forge call that failed for good (after any retries), with what to do about it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class Permission(IntEnum):
    """A person's rights on a repository, ordered; GitHub and GitLab roles map onto these."""

    NONE = 0
    READ = 10  # GitHub read / triage; GitLab Guest, Reporter
    WRITE = 30  # GitHub write; GitLab Developer
    MAINTAIN = 40  # GitHub maintain; GitLab Maintainer
    ADMIN = 50  # GitHub admin; GitLab Owner


class CommitState(StrEnum):
    """A commit status (GitLab's `running` and `canceled` are not used by meshbot)."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class DeploymentState(StrEnum):
    """The state of a forge deployment record (GitHub deployment status; GitLab deployment status)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment on a merge request or an issue."""

    id: str
    body: str
    author: str


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """A merge request (GitHub pull request, GitLab merge request)."""

    number: int  # GitHub number, GitLab iid
    title: str
    description: str
    source_branch: str
    target_branch: str
    head_sha: str
    author: str
    state: str  # "open", "closed" or "merged"
    url: str
    from_fork: bool


@dataclass(frozen=True, slots=True)
class Issue:
    """An issue (never a pull request): meshbot keeps one per data product and environment, edited in place."""

    number: int  # GitHub number, GitLab iid
    title: str
    body: str  # GitLab: description
    state: str  # "open" or "closed"
    url: str
    author: str


@dataclass(frozen=True, slots=True)
class Tag:
    """A git tag and the commit it names."""

    name: str
    sha: str


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """One attempt of a GitHub webhook delivery (repository hook or App hook), as its hook-deliveries API lists it."""

    id: str  # this attempt; redelivering means posting an attempt of it
    guid: str  # the X-GitHub-Delivery id, shared by a delivery and its redeliveries
    delivered_at: datetime
    status_code: int  # 0 when meshbot could not be reached at all
    event: str
    hook_id: str = ""  # the repository hook's id; "" for the App hook


class Repository(Protocol):
    """One repository on a forge, as meshbot uses it."""

    @property
    def api_calls(self) -> int:
        """HTTP requests made through this object so far (retries and archive downloads included)."""
        ...

    # -- reading
    def list_files(self, ref: str) -> Sequence[str]:
        """Every file path at ref (a commit sha, branch or tag), from one recursive tree listing."""
        ...

    def read_file(self, ref: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file at ref; FileNotFoundError when absent, bot.descriptor.files.FileTooLarge past max_bytes."""
        ...

    def read_files(self, ref: str, paths: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
        """Several files at ref in as few calls as the forge allows; paths absent from the tree are left out.

        bot.descriptor.files.FileTooLarge when one of them is past max_bytes, as read_file.
        """
        ...

    def snapshot(self, ref: str, max_total_bytes: int) -> dict[str, bytes] | None:
        """Every regular file at ref (links left out) from one archive download, or None to read otherwise.

        None when the repository is past max_total_bytes (the download stops there) or the archive cannot be
        read; ForgeError for an archive member with an unsafe path.
        """
        ...

    def branch_head(self, branch: str) -> str | None:
        """The commit sha a branch points at, or None when there is no such branch."""
        ...

    def default_branch(self) -> str:
        """The repository's default branch (where promotion merge requests go)."""
        ...

    # -- merge requests and comments
    def merge_request(self, number: int) -> MergeRequest:
        """One merge request by number (GitLab: iid)."""
        ...

    def approved(self, number: int) -> bool:
        """Whether the merge request is approved.

        GitHub: a reviewer's latest review approves and none requests changes; GitLab: its approval rules are satisfied.
        """
        ...

    def comments(self, number: int) -> list[Comment]:
        """Every comment of a merge request, oldest first."""
        ...

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to a merge request."""
        ...

    def edit_comment(self, number: int, comment_id: str, body: str) -> None:
        """Replace the body of a comment (meshbot's own)."""
        ...

    def add_reaction(self, number: int, comment_id: str, reaction: str) -> None:
        """React to a comment (`eyes` acknowledges a command)."""
        ...

    def permission(self, username: str) -> Permission:
        """The user's rights on this repository (NONE when not a member)."""
        ...

    # -- statuses and deployments
    def set_commit_status(self, sha: str, context: str, state: CommitState, description: str,
                          target_url: str | None = None) -> None:
        """Create or replace the commit status named context on sha (description cut to the forge's limit)."""
        ...

    def create_deployment(self, sha: str, environment: str, description: str, tag: str | None = None) -> str:
        """Record a deployment of sha (released as tag, when given) to environment; returns its id."""
        ...

    def set_deployment_state(self, deployment_id: str, state: DeploymentState, description: str,
                             target_url: str | None = None) -> None:
        """Move a deployment record to a state."""
        ...

    # -- writing
    def create_branch(self, branch: str, sha: str) -> None:
        """Create branch at sha."""
        ...

    def commit_files(self, branch: str, parent_sha: str, message: str, files: dict[str, bytes]) -> str:
        """Commit these files (path -> content) on branch, whose head must still be parent_sha; the new sha.

        ForgeError when the branch moved (someone else pushed): never overwrites another commit.
        """
        ...

    def find_merge_request(self, source_branch: str, target_branch: str) -> MergeRequest | None:
        """The open merge request from source_branch into target_branch, if any."""
        ...

    def open_merge_request(self, source_branch: str, target_branch: str, title: str, description: str) -> MergeRequest:
        """Open a merge request."""
        ...

    def update_merge_request(self, number: int, title: str, description: str) -> None:
        """Change a merge request's title and description."""
        ...

    # -- issues
    def open_issues(self, author: str | None = None) -> list[Issue]:
        """Every open issue (pull requests left out), newest first, only author's when given (all pages)."""
        ...

    def create_issue(self, title: str, body: str) -> Issue:
        """Open an issue."""
        ...

    def update_issue(self, number: int, title: str, body: str) -> None:
        """Change an issue's title and body."""
        ...

    def close_issue(self, number: int, comment: str | None = None) -> None:
        """Close an issue, adding the comment first when given."""
        ...

    def issue_comments(self, number: int) -> list[Comment]:
        """Every comment of an issue written by a person, oldest first (GitLab system notes left out)."""
        ...

    def create_issue_comment(self, number: int, body: str) -> Comment:
        """Add a comment to an issue."""
        ...

    # -- catching up (bot.forge.catch_up)
    def open_merge_requests(self) -> list[MergeRequest]:
        """Every open merge request, newest first (one call per 100)."""
        ...

    def commit_statuses(self, sha: str) -> dict[str, CommitState]:
        """The latest state of each commit status context on sha (one call; GitHub: its combined status)."""
        ...

    def list_tags(self) -> list[Tag]:
        """Every tag of the repository with its commit (one call per 100)."""
        ...


@runtime_checkable
class HookDeliveries(Protocol):
    """A repository whose webhook deliveries can be listed and redelivered (GitHub, with the rights for its hooks)."""

    def hook_deliveries(self, since: datetime) -> list[HookDelivery]:
        """Every delivery attempt of the repository's hooks since then, newest first.

        ForgeError with status 403 or 404 when meshbot may not read the hooks (they need admin rights, or a GitHub
        App's "Webhooks" permission).
        """
        ...

    def redeliver(self, delivery: HookDelivery) -> None:
        """Ask the forge to send a delivery again (a new attempt with the same guid)."""
        ...


class Forge(Protocol):
    """A forge account meshbot acts as."""

    name: str  # "github" or "gitlab"
    web_url: str  # where people browse the forge (file URLs in Location targets start with it)

    def repository(self, project: str) -> Repository:
        """A repository by its path (`owner/name`, GitLab `group/subgroup/project`)."""
        ...

    def bot_username(self) -> str:
        """The user meshbot acts as (its own comments and events are ignored)."""
        ...


@runtime_checkable
class AppForge(Protocol):
    """A GitHub account that may be a GitHub App: its installations' repositories and its own hook's deliveries."""

    @property
    def is_app(self) -> bool:
        """Whether meshbot acts as a GitHub App (else every method below answers nothing)."""
        ...

    @property
    def app_api_calls(self) -> int:
        """HTTP requests made so far as the App itself (JWT) and for listing installations."""
        ...

    def installation_repositories(self) -> list[str]:
        """Every repository (`owner/name`) of every installation of the App."""
        ...

    def app_hook_deliveries(self, since: datetime) -> list[HookDelivery]:
        """Every delivery attempt of the App's webhook since then, newest first."""
        ...

    def redeliver_app_delivery(self, delivery: HookDelivery) -> None:
        """Ask GitHub to send an App hook delivery again."""
        ...
