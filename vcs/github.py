"""meshbot's forge interface on GitHub (and GitHub Enterprise), through PyGithub.

Every repository object has its own PyGithub client, so that `api_calls` counts exactly the HTTP requests
made for that repository: a urllib3 `Retry` (PyGithub's `GithubRetry`, which also backs off on rate limits)
sees every response the server sends, including the ones that are retried. Calls go through PyGithub's
requester with GitHub's REST paths, so that each method maps to known REST calls and no call is hidden.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin

import requests
from github import Auth, Consts, Github, GithubException, GithubIntegration, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from github.InstallationAuthorization import InstallationAuthorization
from github.Requester import Requester
from urllib3 import BaseHTTPResponse, Retry
from urllib3.connectionpool import ConnectionPool

from bot.descriptor.files import MAX_FILE_BYTES, FileTooLarge
from vcs.archive import ArchiveTooLarge, extract_all, extract_files
from vcs.base import (
    Comment,
    CommitState,
    DeploymentState,
    ForgeError,
    HookDelivery,
    Issue,
    MergeRequest,
    Permission,
    Tag,
)
from vcs.tally import rate_limit_waits

DEFAULT_API_URL = "https://api.github.com"


def web_url_of(api_url: str) -> str:
    """The web address of a GitHub whose REST API is at api_url (github.com, or GitHub Enterprise's /api/v3)."""
    if api_url.rstrip("/") == DEFAULT_API_URL:
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")
STATUS_DESCRIPTION_LIMIT = 140  # GitHub refuses longer commit and deployment status descriptions
PAGE_SIZE = 100  # GitHub's largest page: fewer calls when listing comments
SYMLINK_MODE = "120000"
_REVIEW_VERDICTS = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})  # COMMENTED keeps the verdict

# `permission` is GitHub's legacy base role (maintain shown as write, triage as read); `role_name` is exact.
_ROLE_PERMISSIONS = {
    "admin": Permission.ADMIN,
    "maintain": Permission.MAINTAIN,
    "write": Permission.WRITE,
    "triage": Permission.READ,
    "read": Permission.READ,
    "none": Permission.NONE,
}


# GitHub's commit status states; its combined status also says "pending" while a context has no final state.
_STATUS_STATES = {"pending": CommitState.PENDING, "success": CommitState.SUCCESS, "failure": CommitState.FAILURE,
                  "error": CommitState.ERROR}
WEBHOOK_PATH = "/webhooks/github"  # meshbot's intake: only hooks pointing there are meshbot's to redeliver


def _timestamp(value: str) -> datetime:
    """A GitHub ISO 8601 time (`2024-05-01T12:00:00Z`) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _hook_delivery(data: dict[str, Any], hook_id: str) -> HookDelivery:
    return HookDelivery(id=str(data["id"]), guid=str(data.get("guid") or data["id"]),
                        delivered_at=_timestamp(str(data["delivered_at"])),
                        status_code=int(data.get("status_code") or 0), event=str(data.get("event") or ""),
                        hook_id=hook_id)


class _CallCounter:
    """A thread-safe count of HTTP responses received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        """Count one response."""
        with self._lock:
            self.value += 1


SAFE_TO_REPEAT = frozenset({"GET", "HEAD", "OPTIONS"})  # reads; a 429 or 403 rate limit refused any method


class CountingRetry(GithubRetry):
    """PyGithub's rate-limit aware retry that also counts every response and bounds every wait.

    urllib3 asks `is_retry` once about each response it receives, retried or not, so counting there counts
    real requests. Waits (Retry-After, or the rate limit reset time) longer than max_rate_limit_wait fail at
    once instead of sleeping. A 403/429 with `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`.
    """

    def __init__(self, counter: _CallCounter | None = None, max_rate_limit_wait: float = 60.0,
                 forced_backoff: float | None = None, **kwargs: Any) -> None:
        self.counter = counter or _CallCounter()
        self.forced_backoff = forced_backoff
        kwargs.setdefault("status_forcelist", [429, 502, 503, 504])
        kwargs.setdefault("secondary_rate_wait", min(60.0, max_rate_limit_wait))
        super().__init__(max_rate_limit_wait=max_rate_limit_wait, **kwargs)

    def new(self, **kwargs: Any) -> CountingRetry:
        """A copy for the next attempt, sharing the counter."""
        kwargs.update(counter=self.counter, forced_backoff=None)
        return super().new(**kwargs)  # type: ignore[return-value]

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Count the response, then decide as GithubRetry does, except that a write answered 5xx is never resent."""
        self.counter.add()
        if status_code >= 500 and method.upper() not in SAFE_TO_REPEAT:
            return False  # a gateway error may follow the write: resending could post a second comment
        return super().is_retry(method, status_code, has_retry_after)

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None, _stacktrace: TracebackType | None = None) -> CountingRetry:
        """Wait for the rate limit reset when GitHub says none are left; otherwise as GithubRetry.

        A write whose answer was lost (a read error: the request reached GitHub) is not resent either.
        """
        if error is not None and self._is_read_error(error) and (method or "").upper() not in SAFE_TO_REPEAT:
            raise error.with_traceback(_stacktrace)
        if (response is not None and response.status in (403, 429) and not response.headers.get("Retry-After")
                and response.headers.get("X-RateLimit-Remaining") == "0"
                and (response.headers.get("X-RateLimit-Reset") or "").isdigit()):
            wait = max(int(response.headers["X-RateLimit-Reset"]) - time.time(), 0.0) + 1.0
            rate_limit_waits.record("github", wait)
            self._check_wait(wait, response)
            retry = Retry.increment(self, method, url, response, error, _pool, _stacktrace)
            retry.forced_backoff = wait
            return retry
        return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[return-value,arg-type]

    def get_backoff_time(self) -> float:
        """The wait before the next attempt (the rate limit reset when known)."""
        return self.forced_backoff if self.forced_backoff is not None else super().get_backoff_time()

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """Retry-After in seconds, refused when longer than meshbot waits."""
        retry_after = super().get_retry_after(response)
        if retry_after is not None:
            if response.status in (403, 429):
                rate_limit_waits.record("github", retry_after)
            self._check_wait(retry_after, response)
        return retry_after

    def _check_wait(self, wait: float, response: BaseHTTPResponse) -> None:
        if self.max_rate_limit_wait is not None and wait > self.max_rate_limit_wait:
            raise RateLimitExceededExceedsMaxWait(response.status, {"message": "rate limited"},
                                                  dict(response.headers), wait=wait)


@dataclass(frozen=True, slots=True)
class _TreeEntry:
    sha: str
    size: int


class _InstallationTokenAuth(Auth.Auth):
    """Authenticates as a GitHub App installation with tokens the forge caches and renews."""

    def __init__(self, forge: GitHubForge, installation_id: int) -> None:
        self._forge, self._installation_id = forge, installation_id

    @property
    def token_type(self) -> str:
        """GitHub's scheme for installation tokens."""
        return "token"

    @property
    def token(self) -> str:
        """A valid installation access token."""
        return self._forge._installation_token(self._installation_id)


class GitHubForge:
    """A GitHub account meshbot acts as: a token, or a GitHub App with per-installation tokens."""

    name = "github"

    def __init__(self, *, token: str | None = None, app_id: int | str | None = None,
                 app_private_key: str | None = None, api_url: str = DEFAULT_API_URL,
                 max_rate_limit_wait: float = 60.0, retries: int = 5, timeout: int = Consts.DEFAULT_TIMEOUT,
                 seconds_between_writes: float | None = 1.0) -> None:
        if (token is None) == (app_id is None):
            raise ValueError("GitHubForge needs either a token or a GitHub App id and private key")
        if app_id is not None and not app_private_key:
            raise ValueError("a GitHub App needs its private key (PEM text)")
        self.api_url = api_url.rstrip("/")
        self.web_url = web_url_of(self.api_url)
        self.max_rate_limit_wait, self.retries, self.timeout = max_rate_limit_wait, retries, timeout
        # GitHub asks integrators to pause between writes to stay under its secondary rate limits.
        self.seconds_between_writes = seconds_between_writes
        self._token = token
        self._app_auth = Auth.AppAuth(app_id, app_private_key) if app_id is not None else None
        self._lock = threading.Lock()
        self._installations: dict[str, int] = {}
        self._installation_tokens: dict[int, InstallationAuthorization] = {}
        self._integration: GithubIntegration | None = None
        self._bot_username: str | None = None
        self._app_calls = _CallCounter()

    @classmethod
    def from_environment(cls) -> GitHubForge:
        """A forge from MESHBOT_GITHUB_TOKEN, or MESHBOT_GITHUB_APP_ID and MESHBOT_GITHUB_APP_PRIVATE_KEY (a file)."""
        api_url = os.environ.get("MESHBOT_GITHUB_API_URL", DEFAULT_API_URL)
        # GitHub asks integrations to pause about a second between content-creating requests
        pause = float(os.environ.get("MESHBOT_GITHUB_SECONDS_BETWEEN_WRITES", "1.0")) or None
        token = os.environ.get("MESHBOT_GITHUB_TOKEN")
        if token:
            return cls(token=token, api_url=api_url, seconds_between_writes=pause)
        app_id, key_path = os.environ.get("MESHBOT_GITHUB_APP_ID"), os.environ.get("MESHBOT_GITHUB_APP_PRIVATE_KEY")
        if app_id and key_path:
            with open(key_path, encoding="utf-8") as key_file:
                return cls(app_id=app_id, app_private_key=key_file.read(), api_url=api_url,
                           seconds_between_writes=pause)
        raise ValueError("set MESHBOT_GITHUB_TOKEN, or MESHBOT_GITHUB_APP_ID and MESHBOT_GITHUB_APP_PRIVATE_KEY "
                         "(the path of the app's private key file)")

    def _retry(self, counter: _CallCounter | None = None) -> CountingRetry:
        return CountingRetry(counter, max_rate_limit_wait=self.max_rate_limit_wait, total=self.retries)

    def _client(self, auth: Auth.Auth, counter: _CallCounter | None = None) -> Github:
        return Github(auth=auth, base_url=self.api_url, retry=self._retry(counter), timeout=self.timeout,
                      per_page=PAGE_SIZE, seconds_between_requests=None,
                      seconds_between_writes=self.seconds_between_writes, lazy=True)

    def _app_integration(self) -> GithubIntegration:
        assert self._app_auth is not None
        with self._lock:
            if self._integration is None:
                self._integration = GithubIntegration(auth=self._app_auth, base_url=self.api_url,
                                                      retry=self._retry(), timeout=self.timeout)
            return self._integration

    def _installation_id(self, project: str) -> int:
        if project not in self._installations:
            owner, _, name = project.partition("/")
            try:
                installation = self._app_integration().get_repo_installation(owner, name)
            except GithubException as error:
                raise _forge_error(error, f"finding the GitHub App installation for {project}") from error
            except requests.RequestException as error:
                raise _transport_error(error, f"finding the GitHub App installation for {project}") from error
            self._installations[project] = installation.id
        return self._installations[project]

    def _installation_token(self, installation_id: int) -> str:
        """A cached installation token, renewed five minutes before it expires (they last one hour)."""
        with self._lock:
            cached = self._installation_tokens.get(installation_id)
            if cached is not None and cached.expires_at - timedelta(minutes=5) > datetime.now(UTC):
                return cached.token
        try:
            authorization = self._app_integration().get_access_token(installation_id)
        except GithubException as error:
            raise _forge_error(error, f"creating an access token for GitHub App installation {installation_id}") \
                from error
        except requests.RequestException as error:
            raise _transport_error(error, f"creating an access token for GitHub App installation {installation_id}") \
                from error
        with self._lock:
            self._installation_tokens[installation_id] = authorization
        return authorization.token

    def repository(self, project: str) -> GitHubRepository:
        """A repository by `owner/name` (no call with a token; the app's installation lookup once per repository)."""
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", project):
            raise ForgeError(f"{project!r} is not a GitHub repository name (owner/name)")
        auth: Auth.Auth
        if self._app_auth is not None:
            auth = _InstallationTokenAuth(self, self._installation_id(project))
        else:
            assert self._token is not None
            auth = Auth.Token(self._token)
        return GitHubRepository(self, project, auth)

    def bot_username(self) -> str:
        """The token's user, or `<app-slug>[bot]` for a GitHub App."""
        if self._bot_username is None:
            try:
                if self._app_auth is not None:
                    self._bot_username = f"{self._app_integration().get_app().slug}[bot]"
                else:
                    assert self._token is not None
                    _, data = self._client(Auth.Token(self._token)).requester.requestJsonAndCheck("GET", "/user")
                    self._bot_username = str(data["login"])
            except GithubException as error:
                raise _forge_error(error, "finding meshbot's own GitHub user") from error
            except requests.RequestException as error:
                raise _transport_error(error, "finding meshbot's own GitHub user") from error
        return self._bot_username

    # -- catching up: the App's installations and its own webhook (bot.forge.catch_up)

    @property
    def is_app(self) -> bool:
        """Whether meshbot acts as a GitHub App."""
        return self._app_auth is not None

    @property
    def app_api_calls(self) -> int:
        """HTTP requests made as the App itself (JWT) and for listing installations' repositories."""
        return self._app_calls.value

    def _app_call(self, doing: str, verb: str, url: str, auth: Auth.Auth | None = None,
                  parameters: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
        assert self._app_auth is not None
        requester = self._client(auth or self._app_auth, self._app_calls).requester
        try:
            return requester.requestJsonAndCheck(verb, url, parameters=parameters)
        except GithubException as error:
            raise _forge_error(error, doing) from error
        except requests.RequestException as error:
            raise _transport_error(error, doing) from error

    def _app_pages(self, doing: str, url: str, auth: Auth.Auth | None = None, key: str | None = None,
                   ) -> Iterator[dict[str, Any]]:
        next_url: str | None = url
        parameters: dict[str, Any] | None = {"per_page": PAGE_SIZE}
        while next_url is not None:
            headers, data = self._app_call(doing, "GET", next_url, auth, parameters)
            yield from (data[key] if key else data)
            match = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("link", ""))
            next_url, parameters = (match.group(1), None) if match else (None, None)

    def installation_repositories(self) -> list[str]:
        """Every repository of every installation of the App ([] for a token): one call per 100 of each."""
        if self._app_auth is None:
            return []
        found: list[str] = []
        for installation in list(self._app_pages("listing the App's installations", "/app/installations")):
            auth = _InstallationTokenAuth(self, int(installation["id"]))
            found += [str(repository["full_name"]) for repository in self._app_pages(
                f"listing the repositories of installation {installation['id']}", "/installation/repositories",
                auth, key="repositories")]
        return sorted(set(found))

    def app_hook_deliveries(self, since: datetime) -> list[HookDelivery]:
        """The App webhook's delivery attempts since then, newest first ([] for a token)."""
        if self._app_auth is None:
            return []
        found = []
        for data in self._app_pages("listing the App's webhook deliveries", "/app/hook/deliveries"):
            delivery = _hook_delivery(data, "")
            if delivery.delivered_at < since:
                break  # GitHub lists the newest first
            found.append(delivery)
        return found

    def redeliver_app_delivery(self, delivery: HookDelivery) -> None:
        """Ask GitHub to send an App webhook delivery again."""
        self._app_call(f"redelivering App webhook delivery {delivery.id}", "POST",
                       f"/app/hook/deliveries/{delivery.id}/attempts")


def _message(error: GithubException) -> str:
    data = error.data
    if isinstance(data, dict):
        message = str(data.get("message") or error.message or "")
        details = [str(item.get("message") or item.get("code")) for item in data.get("errors") or []
                   if isinstance(item, dict)]
        return "; ".join([message, *details]) if details else message
    return str(data or error.message or "")


def _forge_error(error: GithubException, doing: str) -> ForgeError:
    """A ForgeError saying what failed, GitHub's status and message, and what to check."""
    if isinstance(error, RateLimitExceededExceedsMaxWait):
        return ForgeError(f"GitHub rate limit while {doing}: GitHub asks to wait {error.wait:.0f}s, longer than "
                          f"meshbot waits; try again later", status=error.status)
    hint = {
        401: " (check meshbot's GitHub token or app key)",
        403: " (meshbot's GitHub account or app lacks the permission, or a rate limit was hit)",
        404: " (the repository does not exist, meshbot cannot see it, or the ref/number is wrong)",
    }.get(error.status, "")
    return ForgeError(f"GitHub failed {doing}: HTTP {error.status} {_message(error)}{hint}", status=error.status)


def _transport_error(error: requests.RequestException, doing: str) -> ForgeError:
    """A ForgeError for GitHub unreachable, or still failing after every retry."""
    return ForgeError(f"GitHub failed {doing}: {type(error).__name__} after retries ({error}); "
                      "GitHub may be unavailable, try again later")


def _comment(data: dict[str, Any]) -> Comment:
    """A comment of GitHub's issue comments API (pull requests' conversations included)."""
    return Comment(id=str(data["id"]), body=data.get("body") or "", author=str(data["user"]["login"]))


def _issue(data: dict[str, Any]) -> Issue:
    """An issue of GitHub's issues API."""
    return Issue(number=int(data["number"]), title=str(data["title"]), body=data.get("body") or "",
                 state=str(data["state"]), url=str(data["html_url"]), author=str(data["user"]["login"]))


def _cut(description: str) -> str:
    if len(description) <= STATUS_DESCRIPTION_LIMIT:
        return description
    return description[:STATUS_DESCRIPTION_LIMIT - 1] + "…"


class _DownloadSession(requests.Session):
    """A session without credentials for the archive download addresses GitHub redirects to; counts requests."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = _CallCounter()

    @property
    def requests_sent(self) -> int:
        """Requests sent so far (redirects included)."""
        return self.counter.value

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send, counting the request."""
        self.counter.add()
        return super().send(request, **kwargs)


class GitHubRepository:
    """One GitHub repository, with its own HTTP client so that its calls are counted alone."""

    # read_files downloads the whole repository archive when the tree's blobs add up to at most this
    ARCHIVE_LIMIT = 20 * 1024 * 1024

    def __init__(self, forge: GitHubForge, project: str, auth: Auth.Auth) -> None:
        self.forge, self.project = forge, project
        self._counter = _CallCounter()
        self._github = forge._client(auth, self._counter)
        self._requester: Requester = self._github.requester
        self._url = f"/repos/{project}"
        self._trees: dict[str, tuple[str, dict[str, _TreeEntry]]] = {}  # ref -> (tree sha, path -> blob)
        self._downloads = _DownloadSession()
        self._default_branch: str | None = None

    @property
    def api_calls(self) -> int:
        """HTTP requests made for this repository so far: REST calls (each retry counted) and archive downloads."""
        return self._counter.value + self._downloads.requests_sent

    @property
    def rest_calls(self) -> int:
        """The REST API calls among api_calls (what GitHub's API rate limit counts)."""
        return self._counter.value

    @property
    def download_calls(self) -> int:
        """The archive downloads among api_calls (codeload: not REST API calls)."""
        return self._downloads.requests_sent

    def _call(self, doing: str, verb: str, path: str, *, parameters: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
        url = path if path.startswith("http") else f"{self._url}{path}"
        try:
            return self._requester.requestJsonAndCheck(verb, url, parameters=parameters, input=body)
        except GithubException as error:
            raise _forge_error(error, f"{doing} in {self.project}") from error
        except requests.RequestException as error:
            raise _transport_error(error, f"{doing} in {self.project}") from error

    def _pages(self, doing: str, path: str) -> Iterator[dict[str, Any]]:
        url: str | None = path
        parameters: dict[str, Any] | None = {"per_page": PAGE_SIZE}
        while url is not None:
            headers, data = self._call(doing, "GET", url, parameters=parameters)
            yield from data
            match = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("link", ""))
            url, parameters = (match.group(1), None) if match else (None, None)

    # -- reading

    def _tree(self, ref: str) -> tuple[str, dict[str, _TreeEntry]]:
        if ref not in self._trees:
            _, data = self._call(f"listing the files at {ref!r}", "GET", f"/git/trees/{quote(ref, safe='/')}",
                                 parameters={"recursive": "1"})
            if data.get("truncated"):
                raise ForgeError(f"{self.project} is too large to list in one call at {ref!r} (GitHub truncated "
                                 f"the recursive tree of {len(data.get('tree', []))} entries); meshbot cannot "
                                 "read it whole")
            # Links are skipped: their content is a path, and meshbot never follows links out of a tree.
            blobs = {entry["path"]: _TreeEntry(entry["sha"], int(entry.get("size") or 0))
                     for entry in data["tree"] if entry["type"] == "blob" and entry.get("mode") != SYMLINK_MODE}
            self._trees[ref] = (str(data["sha"]), blobs)
        return self._trees[ref]

    def list_files(self, ref: str) -> Sequence[str]:
        """Every file path at ref, from one recursive tree call (kept for read_file)."""
        return sorted(self._tree(ref)[1])

    def read_file(self, ref: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file at ref, fetched by its blob sha; its size is checked against max_bytes before downloading."""
        entry = self._tree(ref)[1].get(path)
        if entry is None:
            raise FileNotFoundError(path)
        if entry.size > max_bytes:
            raise FileTooLarge(path, entry.size, max_bytes)
        _, data = self._call(f"reading {path} at {ref!r}", "GET", f"/git/blobs/{entry.sha}")
        content = base64.b64decode(data["content"]) if data.get("encoding") == "base64" else \
            str(data["content"]).encode()
        if len(content) > max_bytes:
            raise FileTooLarge(path, len(content), max_bytes)
        return content

    def read_files(self, ref: str, paths: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
        """Several files at ref: from the tarball when over two are wanted and ARCHIVE_LIMIT allows, else by blob."""
        blobs = self._tree(ref)[1]
        wanted = [path for path in dict.fromkeys(paths) if path in blobs]
        for path in wanted:
            if blobs[path].size > max_bytes:
                raise FileTooLarge(path, blobs[path].size, max_bytes)
        found: dict[str, bytes] = {}
        if len(wanted) > 2 and sum(entry.size for entry in blobs.values()) <= self.ARCHIVE_LIMIT:
            # tar headers and padding add up to about 1 KiB a file on top of the contents
            found = self._read_archive(ref, wanted, max_bytes, self.ARCHIVE_LIMIT + 1024 * (len(blobs) + 16))
        return {path: found[path] if path in found else self.read_file(ref, path, max_bytes) for path in wanted}

    def snapshot(self, ref: str, max_total_bytes: int) -> dict[str, bytes] | None:
        """Every regular file at ref from one tarball: one REST call, then the download it redirects to."""
        label = f"{self.project} at {ref!r}"
        return self._download_archive(ref, max_total_bytes, lambda chunks: extract_all(chunks, max_total_bytes, label))

    def _read_archive(self, ref: str, wanted: Sequence[str], max_bytes: int, limit: int) -> dict[str, bytes]:
        """The wanted files out of the tarball of ref; empty when it turns out larger than limit."""
        label = f"{self.project} at {ref!r}"
        found = self._download_archive(ref, limit, lambda chunks: extract_files(chunks, frozenset(wanted), max_bytes,
                                                                               limit, label))
        return found or {}

    def _download_archive(self, ref: str, limit: int,
                          extract: Callable[[Iterator[bytes]], dict[str, bytes] | None]) -> dict[str, bytes] | None:
        """What extract makes of the tarball of ref; None when it is past limit or cannot be downloaded.

        GitHub answers the REST call with a redirect to a download address (codeload) that carries its own
        short-lived token: it is fetched without following the redirect through PyGithub, so that meshbot's
        token is never sent there, and counted in `download_calls`, not `rest_calls`.
        """
        headers, _ = self._call(f"asking for the archive at {ref!r}", "GET", f"/tarball/{quote(ref, safe='/')}")
        location = headers.get("location")
        if not location:
            return None
        address = urljoin(f"{self.forge.api_url}/", location)
        try:
            with self._downloads.get(address, stream=True, timeout=self.forge.timeout) as response:
                if response.status_code != 200:
                    return None
                return extract(response.iter_content(64 * 1024))
        except ArchiveTooLarge:
            return None
        except requests.RequestException:
            return None  # the download address is not the API: the caller reads through the API instead

    def branch_head(self, branch: str) -> str | None:
        """The commit sha a branch points at, or None when there is no such branch."""
        try:
            _, data = self._requester.requestJsonAndCheck("GET", f"{self._url}/git/ref/heads/{quote(branch, '/')}")
        except GithubException as error:
            if error.status == 404:
                return None
            raise _forge_error(error, f"reading branch {branch} in {self.project}") from error
        except requests.RequestException as error:
            raise _transport_error(error, f"reading branch {branch} in {self.project}") from error
        return str(data["object"]["sha"])

    def default_branch(self) -> str:
        """The repository's default branch (one call, then remembered)."""
        if self._default_branch is None:
            _, data = self._call("reading the repository", "GET", "")
            self._default_branch = str(data.get("default_branch") or "main")
        return self._default_branch

    # -- merge requests and comments

    def _merge_request(self, data: dict[str, Any]) -> MergeRequest:
        head_repository = (data["head"].get("repo") or {}).get("full_name")
        base_repository = (data["base"].get("repo") or {}).get("full_name")
        state = "merged" if data.get("merged_at") or data.get("merged") else str(data["state"])
        return MergeRequest(number=int(data["number"]), title=str(data["title"]), description=data.get("body") or "",
                            source_branch=str(data["head"]["ref"]), target_branch=str(data["base"]["ref"]),
                            head_sha=str(data["head"]["sha"]), author=str(data["user"]["login"]), state=state,
                            url=str(data["html_url"]),
                            # a deleted fork leaves head.repo null: still not this repository
                            from_fork=head_repository != base_repository)

    def merge_request(self, number: int) -> MergeRequest:
        """One pull request by number."""
        _, data = self._call(f"reading pull request #{number}", "GET", f"/pulls/{number}")
        return self._merge_request(data)

    def approved(self, number: int) -> bool:
        """Whether some reviewer's latest verdict approves and none requests changes (every page of reviews)."""
        # GitHub lists reviews oldest first; COMMENTED (and PENDING) leave a reviewer's verdict, DISMISSED clears it.
        verdicts: dict[str, str] = {}  # reviewer -> state of their latest verdict
        for review in self._pages(f"listing reviews of #{number}", f"/pulls/{number}/reviews"):
            state = str(review.get("state") or "")
            if state in _REVIEW_VERDICTS:
                verdicts[str((review.get("user") or {}).get("login") or "")] = state
        return "APPROVED" in verdicts.values() and "CHANGES_REQUESTED" not in verdicts.values()

    def comments(self, number: int) -> list[Comment]:
        """Every comment on the pull request's conversation, oldest first (all pages)."""
        return [_comment(item) for item in self._pages(f"listing comments of #{number}", f"/issues/{number}/comments")]

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to the pull request's conversation."""
        _, data = self._call(f"commenting on #{number}", "POST", f"/issues/{number}/comments", body={"body": body})
        return _comment(data)

    def edit_comment(self, number: int, comment_id: str, body: str) -> None:
        """Replace a comment's body."""
        self._call(f"editing comment {comment_id} on #{number}", "PATCH", f"/issues/comments/{comment_id}",
                   body={"body": body})

    def add_reaction(self, number: int, comment_id: str, reaction: str) -> None:
        """React to a comment (GitHub answers 200 when the reaction already exists)."""
        self._call(f"reacting to comment {comment_id} on #{number}", "POST",
                   f"/issues/comments/{comment_id}/reactions", body={"content": reaction})

    def permission(self, username: str) -> Permission:
        """The user's role on the repository (custom roles count as their base permission)."""
        try:
            _, data = self._requester.requestJsonAndCheck(
                "GET", f"{self._url}/collaborators/{quote(username)}/permission")
        except GithubException as error:
            if error.status == 404:  # no such user
                return Permission.NONE
            raise _forge_error(error, f"reading {username}'s permission in {self.project}") from error
        except requests.RequestException as error:
            raise _transport_error(error, f"reading {username}'s permission in {self.project}") from error
        role = _ROLE_PERMISSIONS.get(str(data.get("role_name") or ""))
        return role if role is not None else _ROLE_PERMISSIONS.get(str(data.get("permission")), Permission.NONE)

    # -- statuses and deployments

    def set_commit_status(self, sha: str, context: str, state: CommitState, description: str,
                          target_url: str | None = None) -> None:
        """Create or replace the status named context on sha (description cut to 140 characters)."""
        body: dict[str, Any] = {"state": state.value, "context": context, "description": _cut(description)}
        if target_url:
            body["target_url"] = target_url
        self._call(f"setting status {context} on {sha}", "POST", f"/statuses/{sha}", body=body)

    def create_deployment(self, sha: str, environment: str, description: str, tag: str | None = None) -> str:
        """A deployment of sha, which neither merges the default branch in nor waits for any status."""
        # The ref is the exact commit (a tag can be moved later); the tag goes in the payload for people to see.
        body = {"ref": sha, "environment": environment, "description": _cut(description), "auto_merge": False,
                # meshbot's own pending statuses are on this commit: they must not block its own deploy
                "required_contexts": [], "payload": {"tag": tag} if tag else {}}
        _, data = self._call(f"creating a deployment of {sha} to {environment}", "POST", "/deployments", body=body)
        if "id" not in data:
            raise ForgeError(f"GitHub did not create the deployment of {sha} in {self.project}: "
                             f"{data.get('message', data)}")
        return str(data["id"])

    def set_deployment_state(self, deployment_id: str, state: DeploymentState, description: str,
                             target_url: str | None = None) -> None:
        """Add a deployment status (target_url becomes GitHub's log_url)."""
        body: dict[str, Any] = {"state": state.value, "description": _cut(description)}
        if target_url:
            body["log_url"] = target_url
        self._call(f"setting deployment {deployment_id} to {state.value}", "POST",
                   f"/deployments/{deployment_id}/statuses", body=body)

    # -- writing

    def create_branch(self, branch: str, sha: str) -> None:
        """Create branch at sha (ForgeError when it exists)."""
        self._call(f"creating branch {branch}", "POST", "/git/refs", body={"ref": f"refs/heads/{branch}", "sha": sha})
        self._trees.pop(branch, None)

    def commit_files(self, branch: str, parent_sha: str, message: str, files: dict[str, bytes]) -> str:
        """Commit files on branch through the git data API, refusing when the branch is no longer at parent_sha."""
        head = self.branch_head(branch)
        if head != parent_sha:
            raise ForgeError(f"branch {branch} of {self.project} moved (now at {head}, expected {parent_sha}): "
                             "not committing over someone else's work", status=409)
        _, parent = self._call(f"reading commit {parent_sha}", "GET", f"/git/commits/{parent_sha}")
        entries = []
        for path, content in sorted(files.items()):
            _, blob = self._call(f"uploading {path}", "POST", "/git/blobs",
                                 body={"content": base64.b64encode(content).decode(), "encoding": "base64"})
            entries.append({"path": path, "mode": "100644", "type": "blob", "sha": blob["sha"]})
        _, tree = self._call("writing the tree", "POST", "/git/trees",
                             body={"base_tree": parent["tree"]["sha"], "tree": entries})
        _, commit = self._call("writing the commit", "POST", "/git/commits",
                               body={"message": message, "tree": tree["sha"], "parents": [parent_sha]})
        self._trees.pop(branch, None)
        try:
            self._requester.requestJsonAndCheck("PATCH", f"{self._url}/git/refs/heads/{quote(branch, '/')}",
                                                input={"sha": commit["sha"], "force": False})
        except GithubException as error:
            if error.status in (409, 422):  # "Update is not a fast forward": someone pushed meanwhile
                raise ForgeError(f"branch {branch} of {self.project} moved while meshbot committed: not "
                                 f"overwriting someone else's commit (GitHub: {_message(error)})",
                                 status=409) from error
            raise _forge_error(error, f"moving branch {branch} in {self.project}") from error
        except requests.RequestException as error:
            raise _transport_error(error, f"moving branch {branch} in {self.project}") from error
        return str(commit["sha"])

    def find_merge_request(self, source_branch: str, target_branch: str) -> MergeRequest | None:
        """The open pull request from this repository's source_branch into target_branch, if any."""
        owner = self.project.split("/")[0]
        _, data = self._call(f"finding pull requests from {source_branch}", "GET", "/pulls",
                             parameters={"state": "open", "head": f"{owner}:{source_branch}",
                                         "base": target_branch})
        return self._merge_request(data[0]) if data else None

    def open_merge_request(self, source_branch: str, target_branch: str, title: str, description: str) -> MergeRequest:
        """Open a pull request from source_branch into target_branch."""
        _, data = self._call(f"opening a pull request from {source_branch}", "POST", "/pulls",
                             body={"title": title, "head": source_branch, "base": target_branch,
                                   "body": description})
        return self._merge_request(data)

    def update_merge_request(self, number: int, title: str, description: str) -> None:
        """Change a pull request's title and description."""
        self._call(f"updating pull request #{number}", "PATCH", f"/pulls/{number}",
                   body={"title": title, "body": description})

    # -- issues

    def open_issues(self, author: str | None = None) -> list[Issue]:
        """Every open issue, newest first, only those author opened when given (pull requests left out; all pages)."""
        parameters: dict[str, Any] = {"state": "open", "sort": "created", "direction": "desc"}
        if author:
            parameters["creator"] = author
        # GitHub's issues API lists pull requests too: they carry a `pull_request` key
        return [_issue(item) for item in self._listing("listing open issues", "/issues", parameters)
                if "pull_request" not in item]

    def create_issue(self, title: str, body: str) -> Issue:
        """Open an issue."""
        _, data = self._call("opening an issue", "POST", "/issues", body={"title": title, "body": body})
        return _issue(data)

    def update_issue(self, number: int, title: str, body: str) -> None:
        """Change an issue's title and body."""
        self._call(f"updating issue #{number}", "PATCH", f"/issues/{number}", body={"title": title, "body": body})

    def close_issue(self, number: int, comment: str | None = None) -> None:
        """Close an issue as completed, commenting first when given."""
        if comment is not None:
            self.create_issue_comment(number, comment)
        self._call(f"closing issue #{number}", "PATCH", f"/issues/{number}",
                   body={"state": "closed", "state_reason": "completed"})

    def issue_comments(self, number: int) -> list[Comment]:
        """Every comment of an issue, oldest first (all pages)."""
        return [_comment(item) for item in self._pages(f"listing comments of issue #{number}",
                                                       f"/issues/{number}/comments")]

    def create_issue_comment(self, number: int, body: str) -> Comment:
        """Add a comment to an issue."""
        _, data = self._call(f"commenting on issue #{number}", "POST", f"/issues/{number}/comments",
                             body={"body": body})
        return _comment(data)

    # -- catching up (bot.forge.catch_up)

    def _listing(self, doing: str, path: str, parameters: dict[str, Any]) -> Iterator[Any]:
        """Every item of a paged listing (pages of 100, following GitHub's Link rel="next")."""
        url: str | None = path
        query: dict[str, Any] | None = {**parameters, "per_page": PAGE_SIZE}
        while url is not None:
            headers, data = self._call(doing, "GET", url, parameters=query)
            yield from data
            match = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("link", ""))
            url, query = (match.group(1), None) if match else (None, None)

    def open_merge_requests(self) -> list[MergeRequest]:
        """Every open pull request, newest first (one call per 100)."""
        return [self._merge_request(data) for data in self._listing("listing open pull requests", "/pulls",
                                                                     {"state": "open"})]

    def commit_statuses(self, sha: str) -> dict[str, CommitState]:
        """The latest state of each status context on sha, from its combined status (one call)."""
        _, data = self._call(f"reading the statuses of {sha}", "GET", f"/commits/{sha}/status",
                             parameters={"per_page": PAGE_SIZE})
        return {str(item["context"]): _STATUS_STATES.get(str(item["state"]), CommitState.ERROR)
                for item in data.get("statuses") or []}

    def list_tags(self) -> list[Tag]:
        """Every tag with its commit (one call per 100)."""
        return [Tag(str(item["name"]), str(item["commit"]["sha"])) for item in self._listing("listing tags", "/tags",
                                                                                               {})]

    def hook_deliveries(self, since: datetime) -> list[HookDelivery]:
        """The delivery attempts since then of this repository's hooks that point at meshbot, newest first.

        ForgeError 403/404 when meshbot may not read the hooks (admin rights, or the App's "Webhooks" permission).
        """
        found: list[HookDelivery] = []
        for hook in list(self._listing("listing webhooks", "/hooks", {})):
            if WEBHOOK_PATH not in str((hook.get("config") or {}).get("url") or ""):
                continue  # another integration's hook: not meshbot's to redeliver
            for data in self._listing(f"listing deliveries of webhook {hook['id']}",
                                      f"/hooks/{hook['id']}/deliveries", {}):
                delivery = _hook_delivery(data, str(hook["id"]))
                if delivery.delivered_at < since:
                    break  # GitHub lists the newest first
                found.append(delivery)
        return found

    def redeliver(self, delivery: HookDelivery) -> None:
        """Ask GitHub to send a repository hook delivery again."""
        self._call(f"redelivering delivery {delivery.id} of webhook {delivery.hook_id}", "POST",
                   f"/hooks/{delivery.hook_id}/deliveries/{delivery.id}/attempts")
