"""The catch-up sweep: what webhooks meshbot missed (Redis or meshbot down), found on the forges and queued again.

Forges do not redeliver a failed delivery by themselves. A sweep looks at every repository meshbot serves and
asks for the normal jobs of what is missing: a review of each open merge request whose head has no
`meshbot/governance` status, the release of the newest release tag whose commit lacks a `meshbot/deploy/<env>`
status, and, on GitHub, a redelivery of the failed deliveries of meshbot's webhooks. The decisions are pure
functions; `sweep` does the forge calls (bounded: see docs/webhooks.md) and returns job requests for RQ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import ServerConfig
from bot.forge.release import SEMVER, deploy_context, tag_version
from bot.forge.review import STATUS_CONTEXT
from bot.forge.router import RELEASE, REVIEW, JobRequest
from vcs.base import (
    AppForge,
    CommitState,
    Forge,
    ForgeError,
    HookDeliveries,
    HookDelivery,
    MergeRequest,
    Repository,
    Tag,
)

log = logging.getLogger("meshbot.catch_up")

MAX_ATTEMPTS = 3  # a delivery that failed this often (redeliveries included) is left alone
REFUSED = (403, 404)  # the forge will not show meshbot a repository's webhooks


# ---------------------------------------------------------------- decisions


def needs_review(request: MergeRequest, statuses: Mapping[str, CommitState]) -> bool:
    """Whether a merge request's head was never reviewed: it has no `meshbot/governance` status."""
    return request.state == "open" and bool(request.head_sha) and STATUS_CONTEXT not in statuses


def newest_release(tags: Iterable[Tag], pattern: str) -> Tag | None:
    """The release tag (under the `releases.tag` pattern) with the highest semantic version, if any."""
    releases = [(version, tag) for tag in tags if (version := tag_version(pattern, tag.name)) is not None]
    if not releases:
        return None
    return max(releases, key=lambda item: (version_key(item[0]), item[1].name))[1]


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """Semantic Versioning 2.0.0 precedence as a sort key (a pre-release sorts before its release)."""
    match = SEMVER.fullmatch(version)
    assert match is not None, version
    major, minor, patch, pre = int(match[1]), int(match[2]), int(match[3]), match[4]
    identifiers = tuple((0, int(part)) if part.isdigit() else (1, part) for part in (pre or "").split(".") if part)
    return major, minor, patch, 0 if pre else 1, identifiers


def unreleased_environments(statuses: Mapping[str, CommitState], environments: Sequence[str]) -> list[str]:
    """The release environments with no `meshbot/deploy/<env>` status on the tagged commit."""
    return [environment for environment in environments if deploy_context(environment) not in statuses]


def to_redeliver(attempts: Iterable[HookDelivery], max_attempts: int = MAX_ATTEMPTS) -> list[HookDelivery]:
    """The newest attempt of each delivery that never reached meshbot and is worth sending again.

    A delivery (one guid) is left alone when one of its attempts was accepted (2xx), when it was tried
    max_attempts times, or when meshbot refused it for good (a 4xx other than 408 and 429: a bad signature or
    body, which a redelivery repeats).
    """
    by_guid: dict[str, list[HookDelivery]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    chosen = []
    for tries in by_guid.values():
        latest = max(tries, key=lambda attempt: attempt.delivered_at)
        if any(200 <= attempt.status_code < 300 for attempt in tries) or len(tries) >= max_attempts:
            continue
        if 400 <= latest.status_code < 500 and latest.status_code not in (408, 429):
            continue
        chosen.append(latest)
    return sorted(chosen, key=lambda attempt: attempt.delivered_at)


# ---------------------------------------------------------------- the sweep (I/O)


@dataclass
class Sweep:
    """What one sweep found: job requests per forge, redeliveries, problems, and the forge API calls it took."""

    requests: list[tuple[str, JobRequest]] = field(default_factory=list)  # (forge, request)
    redelivered: list[str] = field(default_factory=list)  # delivery guids
    problems: list[str] = field(default_factory=list)
    hooks_refused: list[tuple[str, str]] = field(default_factory=list)  # (forge, project)
    settled: set[str] = field(default_factory=set)  # settled_key()s of the heads and tags seen settled this sweep
    repositories: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # forge -> API calls

    @property
    def api_calls(self) -> int:
        """Forge API calls of the whole sweep."""
        return sum(self.calls.values())


def repositories_of(forge: Forge, config: ServerConfig) -> list[str]:
    """The repositories meshbot serves on a forge: the configured ones, and the GitHub App's when asked."""
    names = list(config.catch_up.repositories.get(forge.name, ()))
    if config.catch_up.github_app_installations and isinstance(forge, AppForge) and forge.is_app:
        names += forge.installation_repositories()
    return list(dict.fromkeys(names))


def settled_key(forge: str, project: str, sha: str, environments: Sequence[str] = ()) -> str:
    """A commit whose statuses showed it needs nothing (reviewed; or released to these environments)."""
    return ":".join((forge, project, sha, ",".join(environments)))


def sweep(forges: Mapping[str, Forge], config: ServerConfig, since: datetime,
          skip_hooks: frozenset[tuple[str, str]] = frozenset(), settled: frozenset[str] = frozenset()) -> Sweep:
    """Look at every repository meshbot serves on these forges; since: how far back to look for failed deliveries.

    skip_hooks: (forge, project) pairs whose webhooks the forge recently refused to show (not asked again).
    settled: commits an earlier sweep saw settled (settled_key): a status meshbot set stays, so their statuses are
    not read again; most of a sweep's calls were these reads, one per open merge request.
    """
    result = Sweep()
    for name, forge in forges.items():
        app_calls_before = forge.app_api_calls if isinstance(forge, AppForge) else 0
        # An App's deliveries come through its own webhook (redelivered below): its manifest grants no Webhooks
        # permission (bot/cli/github_app.py), so repository webhooks are a token set-up's only.
        is_app = isinstance(forge, AppForge) and forge.is_app
        try:
            projects = repositories_of(forge, config)
        except ForgeError as error:
            result.problems.append(f"{name}: cannot list the repositories to sweep: {error.message}")
            projects = list(config.catch_up.repositories.get(name, ()))
        for project in projects:
            result.repositories += 1
            try:
                repository = forge.repository(project)
            except ForgeError as error:
                result.problems.append(f"{name} {project}: {error.message}")
                continue
            before = repository.api_calls
            try:
                result.requests += [(name, request) for request in sweep_repository(
                    repository, name, project, config, settled, result.settled)]
            except ForgeError as error:
                result.problems.append(f"{name} {project}: {error.message}")
            if config.catch_up.redeliver and isinstance(repository, HookDeliveries) and not is_app \
                    and (name, project) not in skip_hooks:
                _redeliver_repository(repository, name, project, since, result)
            result.calls[name] = result.calls.get(name, 0) + repository.api_calls - before
        if config.catch_up.redeliver and isinstance(forge, AppForge) and is_app:
            try:
                for delivery in to_redeliver(forge.app_hook_deliveries(since)):
                    forge.redeliver_app_delivery(delivery)
                    result.redelivered.append(delivery.guid)
            except ForgeError as error:
                result.problems.append(f"{name}: cannot redeliver the App's webhook deliveries: {error.message}")
        if isinstance(forge, AppForge):
            result.calls[name] = result.calls.get(name, 0) + forge.app_api_calls - app_calls_before
    return result


def sweep_repository(repository: Repository, forge: str, project: str, config: ServerConfig,
                     known: frozenset[str] = frozenset(), seen: set[str] | None = None) -> list[JobRequest]:
    """The review and release jobs one repository is missing (1 + its open merge requests not known settled + tag
    pages + 1 calls); the commits found settled (or known so) are added to seen."""
    seen = set() if seen is None else seen
    requests = []
    for request in repository.open_merge_requests():
        key = settled_key(forge, project, request.head_sha)
        if key in known and request.head_sha:
            seen.add(key)
        elif needs_review(request, repository.commit_statuses(request.head_sha)):
            requests.append(JobRequest(REVIEW, (forge, project, request.number, request.head_sha),
                                       f"catch-up: review {forge} {project} merge request {request.number} "
                                       f"at {request.head_sha[:12]}"))
        elif request.head_sha:
            seen.add(key)
    environments = config.release_environments
    tag = newest_release(repository.list_tags(), config.release_tag) if environments else None
    if tag is not None:
        key = settled_key(forge, project, tag.sha, sorted(environments))
        if key in known:
            seen.add(key)
        elif unreleased_environments(repository.commit_statuses(tag.sha), environments):
            requests.append(JobRequest(RELEASE, (forge, project, tag.name, tag.sha),
                                       f"catch-up: release {forge} {project} tag {tag.name} at {tag.sha[:12]}"))
        else:
            seen.add(key)
    return requests


def _redeliver_repository(repository: HookDeliveries, forge: str, project: str, since: datetime,
                          result: Sweep) -> None:
    """Redeliver the failed deliveries of the repository's meshbot webhooks; a refusal is noted, not raised."""
    try:
        for delivery in to_redeliver(repository.hook_deliveries(since)):
            repository.redeliver(delivery)
            result.redelivered.append(delivery.guid)
    except ForgeError as error:
        if error.status in REFUSED:
            result.hooks_refused.append((forge, project))
        else:
            result.problems.append(f"{forge} {project}: cannot redeliver webhook deliveries: {error.message}")
