"""Governance on merge requests and pushes: review a commit, then publish one comment and one commit status.

The domain only: a `vcs.base.Repository` in, what to publish out. The RQ job functions in `handlers/` load
the server configuration and the forge client and call into here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from bot.config import ServerConfig, config_path, load_config
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import Discovery, RemoteLocations, discover
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import FileTooLarge
from bot.engine.deployed import Deployed, DeployedStates, NothingDeployed
from bot.engine.plan_diff import PlanDiff, plan_diff
from bot.forge.adapter_validation import AdapterVerdict, validate_with_adapters
from bot.forge.review_comment import markdown_error, review_comment
from policies.engine import evaluate
from policies.loader import policies_for
from policies.model import Policy, Status
from policies.report import CATEGORIES, CheckReport, markdown_environment
from vcs.base import CommitState, Forge, ForgeError, Repository
from vcs.locations import ForgeLocations
from vcs.reader import RevisionReader

log = logging.getLogger(__name__)

MARKER = "<!-- meshbot:governance -->"
STATUS_CONTEXT = "meshbot/governance"
COMMENT_LIMIT = 60_000  # GitHub holds 65,536 characters; the rest is margin
DESCRIPTION_LIMIT = 140  # GitHub's limit for a commit status description
SHORT_SHA = 8
_BODY_LIMIT = COMMENT_LIMIT - 600  # marker, footer and margin
_CUT_NOTE = "\n\n…(comment cut at the {limit:,} character limit; run `meshbot check` on this commit for the rest)\n"


@dataclass(frozen=True, slots=True)
class EnvironmentReview:
    """One environment of a review: governance against what is deployed there, and the plan to get there."""

    environment: str
    gating: bool
    state: CommitState
    description: str
    report: CheckReport | None = None
    diff: PlanDiff | None = None
    deployed: Deployed | None = None
    errors: list[InputError] = field(default_factory=list)
    reason: str = ""  # why errors stopped this environment's review
    validation: list[AdapterVerdict] | None = None  # each adapter's validate, when the configuration asks for it
    prune: str = "auto"  # what a deploy here does with components to remove (the environment's prune mode)

    @property
    def context(self) -> str:
        """Its commit status context."""
        return f"{STATUS_CONTEXT}/{self.environment}"


@dataclass(frozen=True, slots=True)
class Review:
    """What one governance run on one commit publishes: commit statuses and a merge request comment."""

    sha: str
    state: CommitState
    description: str
    comment: str
    environments: list[EnvironmentReview] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    environment_statuses: bool = False  # also a status per gating environment (merge_requests.environment_statuses)

    @property
    def report(self) -> CheckReport | None:
        """The first environment's governance report (the merge request environment's by default)."""
        return self.environments[0].report if self.environments else None


# ---------------------------------------------------------------- review


def review(
    repository: Repository,
    sha: str,
    config: ServerConfig,
    policies: Sequence[Policy],
    remote: RemoteLocations | None = None,
    deployed: DeployedStates | None = None,
) -> Review:
    """Review sha for every environment merge requests are reviewed for, each against what is deployed there."""
    reader = RevisionReader(repository, sha)  # one snapshot of the repository, shared by every environment
    states = deployed or NothingDeployed()
    try:
        discovered: Discovery | None = discover(reader, remote)  # the entities, parsed once for every environment
    except (FileTooLarge, ForgeError):
        discovered = None  # each environment's assembly meets the same problem and reports it
    environments = [_review_environment(reader, environment, config, policies, remote, states, discovered)
                    for environment in config.review_environments]
    errored = [item for item in environments if item.errors]
    if errored and len(errored) == len(environments) and all(item.errors == errored[0].errors for item in errored):
        # The same mistake everywhere (a malformed file, say): one list of problems, not one per environment.
        single = _error_review(sha, config.review_environments, errored[0].reason, errored[0].errors)
        return Review(sha=sha, state=single.state, description=single.description, comment=single.comment,
                      environments=environments, errors=single.errors,
                      environment_statuses=config.environment_statuses)
    state, description = aggregate(environments)
    body = review_comment(sha, environments, _BODY_LIMIT, SHORT_SHA, config.environment_statuses)
    return Review(sha=sha, state=state, description=description, comment=_fit(_header() + body + _footer(sha, ())),
                  environments=environments, environment_statuses=config.environment_statuses)


def _review_environment(reader: RevisionReader, environment: str, config: ServerConfig, policies: Sequence[Policy],
                        remote: RemoteLocations | None, states: DeployedStates,
                        discovered: Discovery | None) -> EnvironmentReview:
    gating = config.gates(environment)
    try:
        descriptor = assemble(reader, environment, remote, discovered)
    except InputErrors as invalid:
        return _environment_error(environment, gating, "the data product could not be assembled", invalid.errors)
    except FileTooLarge as too_large:
        error = InputError(f"file is {too_large.size} bytes, over the {too_large.limit} byte limit",
                           SourcePosition(too_large.path))
        return _environment_error(environment, gating, "a file could not be read", [error])
    except ForgeError as failure:
        return _environment_error(environment, gating, "the repository could not be read",
                                  [InputError(failure.message)])
    deployed = states.deployed(descriptor.id, environment)
    previous = deployed.descriptor if deployed else None
    results = evaluate(descriptor, policies, previous, previous_missing=f"nothing deployed in {environment}")
    active = sum(1 for policy in policies if policy.status is not Status.DRAFT)
    report = CheckReport(descriptor=descriptor, results=results, policy_count=active)
    diff = plan_diff(descriptor, previous)
    validation = validate_with_adapters(descriptor, config.adapters) if config.validate_with_adapters else None
    refused = sum(1 for verdict in validation or [] if verdict.refused)
    state = CommitState.SUCCESS if report.passed and not refused else CommitState.FAILURE
    failed = sum(1 for verdict in validation or [] if verdict.failed)  # judged nothing: no failure of the review
    governance = _report_description(report) + (f"; adapters refused {refused}" if refused else "") + \
        (f"; {failed} adapter{'s' if failed != 1 else ''} could not validate" if failed else "")
    return EnvironmentReview(environment=environment, gating=gating, state=state,
                             description=_clip(f"{governance}; plan: {diff.summary()}", DESCRIPTION_LIMIT),
                             report=report, diff=diff, deployed=deployed, validation=validation,
                             prune=config.rules(environment).prune)


def _environment_error(environment: str, gating: bool, reason: str, errors: list[InputError]) -> EnvironmentReview:
    errors = list(dict.fromkeys(errors)) or [InputError(reason)]
    description = _one_line(str(errors[0]))
    if len(errors) > 1:
        description = _clip(description, DESCRIPTION_LIMIT - 12) + f" (+{len(errors) - 1} more)"
    return EnvironmentReview(environment=environment, gating=gating, state=CommitState.ERROR,
                             description=_clip(description, DESCRIPTION_LIMIT), errors=errors, reason=reason)


def aggregate(environments: Sequence[EnvironmentReview]) -> tuple[CommitState, str]:
    """The `meshbot/governance` state and description: the worst of the gating environments, grouped by outcome."""
    gating = [item for item in environments if item.gating]
    if not gating:
        return CommitState.SUCCESS, "no environment gates merge requests (merge_requests.gating_environments)"
    state = next((state for state in (CommitState.ERROR, CommitState.FAILURE)
                  if any(item.state is state for item in gating)), CommitState.SUCCESS)
    outcomes: dict[str, list[str]] = {}
    for item in gating:
        if item.state is state:
            outcomes.setdefault(item.description.split("; plan:")[0], []).append(item.environment)
    return state, _one_line("; ".join(f"{', '.join(names)}: {outcome}" for outcome, names in outcomes.items()))


def unavailable(sha: str, reason: str) -> Review:
    """An error review for a commit meshbot could not check for a reason of its own (e.g. its configuration)."""
    body = markdown_environment().get_template("review_unavailable.md.j2").render(reason=reason)
    return Review(sha=sha, state=CommitState.ERROR, description=_one_line(f"not checked: {reason}"),
                  comment=_fit(_header() + body.rstrip("\n") + _footer(sha, ())))


def _error_review(sha: str, environments: Sequence[str], reason: str, errors: list[InputError]) -> Review:
    errors = list(dict.fromkeys(errors)) or [InputError(reason)]
    header, footer = _header(), _footer(sha, environments)
    budget = COMMENT_LIMIT - len(header) - len(footer) - 1_000  # room for the text around the list
    lines = _error_lines(errors, budget)
    body = markdown_environment().get_template("review_error.md.j2").render(
        reason=reason, total=len(errors), lines=lines, left_out=len(errors) - len(lines))
    description = _one_line(str(errors[0]))
    if len(errors) > 1:
        description = _clip(description, DESCRIPTION_LIMIT - 12) + f" (+{len(errors) - 1} more)"
    return Review(sha=sha, state=CommitState.ERROR, description=_clip(description, DESCRIPTION_LIMIT),
                  comment=_fit(header + body.rstrip("\n") + footer), errors=errors)


def _error_lines(errors: list[InputError], budget: int) -> list[str]:
    """One markdown line per error while they fit in budget characters."""
    lines = []
    for error in errors:
        line = markdown_error(error)
        if len(line) + 1 > budget:
            break
        budget -= len(line) + 1
        lines.append(line)
    return lines


def _header() -> str:
    return MARKER + "\n"


def _footer(sha: str, environments: Sequence[str]) -> str:
    return markdown_environment().get_template("review_footer.md.j2").render(sha=sha[:SHORT_SHA],
                                                                             environments=list(environments))


def _fit(comment: str) -> str:
    """The comment cut to COMMENT_LIMIT, saying so (the renderers already fit; this is the last guard)."""
    if len(comment) <= COMMENT_LIMIT:
        return comment
    note = _CUT_NOTE.format(limit=COMMENT_LIMIT)
    return comment[: COMMENT_LIMIT - len(note)] + note


def _report_description(report: CheckReport) -> str:
    counts = {category: len(report.failed(category)) for category in CATEGORIES}
    parts = []
    if counts["blocking"]:
        parts.append(_plural(counts["blocking"], "blocking failure"))
    if counts["grace"]:
        parts.append(f"{counts['grace']} in grace")
    if counts["warning"]:
        parts.append(_plural(counts["warning"], "warning"))
    if counts["info"]:
        parts.append(f"{counts['info']} info")
    if not parts and report.not_evaluated:
        evaluated = report.policy_count - len({result.policy for result in report.not_evaluated})
        return _clip(f"{evaluated} of {_plural(report.policy_count, 'policy', 'policies')} pass, "
                     f"{len(report.not_evaluated)} not evaluated", DESCRIPTION_LIMIT)
    if not parts:
        return _clip(f"all {_plural(report.policy_count, 'policy', 'policies')} pass", DESCRIPTION_LIMIT)
    text = ", ".join(parts)
    return _clip(text if counts["blocking"] else f"passed with {text}", DESCRIPTION_LIMIT)


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _one_line(text: str) -> str:
    return _clip(" ".join(text.split()), DESCRIPTION_LIMIT)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- publish


def publish_commit_status(repository: Repository, review: Review, target_url: str | None = None) -> None:
    """Set `meshbot/governance/<env>` for each gating environment when configured, then `meshbot/governance`."""
    for item in review.environments if review.environment_statuses else []:
        if item.gating:
            repository.set_commit_status(review.sha, item.context, item.state, item.description, target_url)
    repository.set_commit_status(review.sha, STATUS_CONTEXT, review.state, review.description, target_url)


def publish_merge_request_review(repository: Repository, number: int, review: Review, bot_username: str,
                                 target_url: str | None = None) -> str:
    """Create or edit in place meshbot's one governance comment, then set the commit status; the comment id."""
    ours = [comment for comment in repository.comments(number)
            if comment.author.casefold() == bot_username.casefold() and comment.body.lstrip().startswith(MARKER)]
    if not ours:
        comment_id = repository.create_comment(number, review.comment).id
    else:
        comment_id = ours[0].id
        if ours[0].body != review.comment:
            repository.edit_comment(number, comment_id, review.comment)
        # Two workers racing on a new merge request can both have created one: retire the extras (without the
        # marker they are never found again), so that exactly one comment stays current.
        for extra in ours[1:]:
            repository.edit_comment(number, extra.id, "meshbot's governance results are kept up to date in its "
                                                      "first comment on this merge request.")
    publish_commit_status(repository, review, target_url)
    return comment_id


# ---------------------------------------------------------------- the jobs' work

Governance = tuple[ServerConfig, list[Policy]]
CONFIG_PROBLEM = "meshbot's server configuration or governance policies are invalid"


def load_governance() -> Governance:
    """The server configuration ($MESHBOT_CONFIG) and its policies; InputErrors when the platform's files are wrong."""
    config = load_config(config_path(None))
    return config, policies_for(config)


def review_merge_request(forge: Forge, project: str, number: int, head_sha: str,
                         load: Callable[[], Governance] = load_governance,
                         lock: AbstractContextManager[Any] | None = None,
                         deployed: DeployedStates | None = None) -> str:
    """Review a merge request's newest head and publish the comment and status; a one-line summary.

    `lock` (one per merge request, held across reading and publishing) keeps two reviews of the same merge
    request from both creating the comment, or an older review from overwriting a newer one.
    """
    with lock or nullcontext():
        return _review_merge_request(forge, project, number, head_sha, load, deployed)


def _review_merge_request(forge: Forge, project: str, number: int, head_sha: str,
                          load: Callable[[], Governance], deployed: DeployedStates | None) -> str:
    repository = forge.repository(project)
    request = repository.merge_request(number)
    if request.state != "open":
        return f"{project}!{number}: {request.state}, not reviewed"
    sha = request.head_sha or head_sha  # the newest push wins over the sha of the event
    try:
        config, policies = load()
    except InputErrors as invalid:
        log.error("%s; merge request %s!%s not reviewed:\n%s", CONFIG_PROBLEM, project, number, invalid)
        publish_merge_request_review(repository, number, unavailable(sha, CONFIG_PROBLEM), forge.bot_username(),
                                     request.url)
        raise
    # No second look at the head afterwards: a push during this review sends its own event, whose review runs
    # after this one (one review per merge request at a time) and reads the head anew.
    result = review(repository, sha, config, policies, ForgeLocations(forge, forge.web_url), deployed)
    comment_id = publish_merge_request_review(repository, number, result, forge.bot_username(), request.url)
    return f"{project}!{number} at {sha[:SHORT_SHA]}: {result.state} ({result.description}), comment {comment_id}"


def review_push(forge: Forge, project: str, branch: str, sha: str,
                load: Callable[[], Governance] = load_governance, deployed: DeployedStates | None = None) -> str:
    """Review a pushed branch head and set its commit status (no comment); a one-line summary."""
    repository = forge.repository(project)
    try:
        config, policies = load()
    except InputErrors as invalid:
        log.error("%s; %s@%s not reviewed:\n%s", CONFIG_PROBLEM, project, branch, invalid)
        publish_commit_status(repository, unavailable(sha, CONFIG_PROBLEM))
        raise
    result = review(repository, sha, config, policies, ForgeLocations(forge, forge.web_url), deployed)
    publish_commit_status(repository, result)
    return f"{project}@{branch} {sha[:SHORT_SHA]}: {result.state} ({result.description})"
