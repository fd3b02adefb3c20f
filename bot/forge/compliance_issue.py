"""The compliance issue: one issue per data product that no longer complies, on the repository it came from.

Its body starts with a hidden marker naming the data product; meshbot only touches open issues it wrote itself
that carry it. The issue covers every environment where the product is deployed and lists, per environment, the
failures that block (an enabled policy of severity error) and those in grace ("blocks from DATE"): a grace-only
failure opens the issue too, so that the team hears of it before the date. Warnings, infos and breaking-change
policies that cannot be evaluated on a deployed descriptor alone are in the console, not in the issue.

`issue_action` decides (pure), `sync_issue` does the forge calls; `check_product` evaluates, stores and syncs.
The forge is only asked when something needs attention or meshbot remembers an open issue, so a compliant
mesh costs no forge call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import redis

from bot.config import ServerConfig
from bot.engine import compliance
from bot.engine.compliance import ComplianceResult, Finding
from bot.engine.deployed import RedisDeployedStates
from bot.engine.store import PREFIX, Store, as_text
from bot.forge.drift_issue import repository_of
from bot.forge.forge_issue import IssueAction, IssueOutcome, issue_number, write_issue
from policies.model import Policy
from policies.report import markdown_environment
from vcs.base import Forge, Issue, Repository

log = logging.getLogger("meshbot.compliance")

TITLE = "meshbot: {product} no longer complies with governance policies"
GRACE_TITLE = "meshbot: {product} will fail governance policies once their grace ends"
MARKER = "<!-- meshbot:compliance product={product} -->"
FINDING_LIMIT = 100  # findings listed per environment
BODY_LIMIT = 60_000  # GitHub holds 65,536 characters


def issue_title(results: Sequence[ComplianceResult], data_product: str) -> str:
    """The title: no longer complies (something blocks) or will fail once grace ends (only grace failures)."""
    blocking = any(not result.compliant for result in results)
    return (TITLE if blocking else GRACE_TITLE).format(product=data_product)


def marker(data_product: str) -> str:
    """The hidden marker naming the data product of a compliance issue (percent-encoded)."""
    return MARKER.format(product=quote(data_product, safe=":._-"))


def find_issue(issues: Sequence[Issue], data_product: str, bot_user: str) -> Issue | None:
    """The open compliance issue of this data product meshbot opened (the oldest, if several)."""
    wanted = marker(data_product) + "\n"
    mine = [issue for issue in issues if issue.author == bot_user and issue.state == "open"
            and (issue.body + "\n").startswith(wanted)]
    return min(mine, key=lambda issue: issue.number) if mine else None


def issue_action(results: Sequence[ComplianceResult], existing: Issue | None, title: str, body: str) -> IssueAction:
    """What to do with the issue, given the latest result of every environment where the product is deployed."""
    if any(result.needs_attention for result in results):
        if existing is None:
            return IssueAction.OPENED
        same = existing.body.strip() == body.strip() and existing.title == title
        return IssueAction.UNCHANGED if same else IssueAction.UPDATED
    if existing is None or any(result.of(compliance.UNANSWERED) for result in results):
        return IssueAction.NONE  # a remote engine gave no answer: not known to comply, the issue stays as it is
    return IssueAction.CLOSED


def sync_issue(repository: Repository, bot_user: str, data_product: str,
               results: Sequence[ComplianceResult]) -> IssueOutcome:
    """Open, edit or close the compliance issue of a data product (results: every environment deployed now)."""
    existing = find_issue(repository.open_issues(author=bot_user), data_product, bot_user)
    title, body = issue_title(results, data_product), issue_body(data_product, results)
    action = issue_action(results, existing, title, body)
    if action is IssueAction.OPENED:
        return IssueOutcome(action, repository.create_issue(title, body))
    if existing is not None and action is IssueAction.UPDATED:
        repository.update_issue(existing.number, title, body)
    elif existing is not None and action is IssueAction.CLOSED:
        repository.close_issue(existing.number, closing_comment(data_product, results))
    return IssueOutcome(action, existing)


# ---------------------------------------------------------------- one data product (I/O)


@dataclass(frozen=True, slots=True)
class ProductCheck:
    """What checking one data product did."""

    results: list[ComplianceResult]
    message: str
    forge: str | None = None
    issue: IssueOutcome | None = None
    api_calls: int = 0


def issue_key(data_product: str) -> str:
    """Where meshbot remembers that it keeps an open compliance issue for a data product (forge and project)."""
    return f"{PREFIX}:compliance:issue:{data_product}"


def evaluate_product(connection: redis.Redis, data_product: str, environments: Sequence[str],
                     policies: Sequence[Policy], fingerprint: str, now: datetime) -> list[ComplianceResult]:
    """Check every environment (given, or with an earlier result) where the product is deployed; store each."""
    deployed_states = RedisDeployedStates(connection)
    results = []
    for environment in sorted(set(environments) | compliance.checked_environments(connection, data_product)):
        deployed = deployed_states.deployed(data_product, environment)
        if deployed is None:
            compliance.forget(connection, data_product, environment)
            continue
        result = compliance.check(deployed, policies, fingerprint, now)
        compliance.save(connection, result)
        results.append(result)
    return results


def check_product(connection: redis.Redis, config: ServerConfig, data_product: str, environments: Sequence[str],
                  policies: Sequence[Policy], fingerprint: str, now: datetime,
                  forge_for: Callable[[str], Forge]) -> ProductCheck:
    """Evaluate today's policies on what is deployed of a data product, store the results, sync its issue."""
    results = evaluate_product(connection, data_product, environments, policies, fingerprint, now)
    summary = "; ".join(f"{result.environment}: {result.summary()}" for result in results) or "deployed nowhere"
    remembered = connection.get(issue_key(data_product))
    attention = any(result.needs_attention for result in results)
    if not results and remembered is None:
        compliance.drop_product(connection, data_product)
    if not config.compliance.issues or (not attention and remembered is None):
        return ProductCheck(results, f"{data_product}: {summary}")
    target = _repository(connection, data_product, [result.environment for result in results], remembered)
    if target is None:
        return ProductCheck(results, f"{data_product}: {summary} (deployed from the command line: no repository "
                                     "to open an issue in)")
    name, project = target
    written = write_issue(forge_for, name, project,
                          lambda repository, bot_username: sync_issue(repository, bot_username, data_product, results),
                          "compliance issue", f"of {data_product}", log)
    if written.outcome is None:
        message = f"{data_product}: {summary}; the compliance issue could not be written on {name} {project}: "
        return ProductCheck(results, message + str(written.error), name, api_calls=written.api_calls)
    outcome = written.outcome
    if outcome.action is not IssueAction.CLOSED and outcome.issue is not None:
        connection.set(issue_key(data_product), f"{name} {project}")
    else:
        connection.delete(issue_key(data_product))
        if not results:
            compliance.drop_product(connection, data_product)
    return ProductCheck(results, f"{data_product}: {summary}; issue{issue_number(outcome)} {outcome.action}", name,
                        outcome, written.api_calls)


def _repository(connection: redis.Redis, data_product: str, environments: Sequence[str],
                remembered: bytes | str | None) -> tuple[str, str] | None:
    """Where the issue lives: the repository meshbot wrote it in, else that of the newest forge deployment."""
    if remembered is not None:
        name, _, project = as_text(remembered).partition(" ")
        if name and project:
            return name, project
    store = Store(connection)
    for environment in environments:
        found = repository_of(store, data_product, environment)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- the texts (templates/comments/compliance_*.md.j2)


@dataclass(frozen=True, slots=True)
class _Environment:
    """One environment as the issue shows it."""

    result: ComplianceResult
    findings: list[Finding]
    more: int


def issue_body(data_product: str, results: Sequence[ComplianceResult]) -> str:
    """The compliance issue's body: the marker, then what fails per environment (compliance_issue.md.j2)."""
    failing, complying = [], []
    for result in results:
        findings = result.of("blocking", compliance.GRACE)
        if findings:
            failing.append(_Environment(result, findings[:FINDING_LIMIT], max(0, len(findings) - FINDING_LIMIT)))
        else:
            complying.append(result)
    text = markdown_environment().get_template("compliance_issue.md.j2").render(
        marker=marker(data_product), product=data_product, failing=failing, complying=complying,
        blocking=any(not result.compliant for result in results))
    if len(text) > BODY_LIMIT:
        text = text[:BODY_LIMIT].rsplit("\n", 1)[0] + "\n\n…(cut: the console's data product page lists everything)\n"
    return text


def closing_comment(data_product: str, results: Sequence[ComplianceResult]) -> str:
    """The comment meshbot closes the compliance issue with (compliance_closed.md.j2)."""
    return markdown_environment().get_template("compliance_closed.md.j2").render(
        product=data_product, environments=[result.environment for result in results])
