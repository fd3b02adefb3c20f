"""The drift issue: one issue per data product and environment on the forge, opened, edited in place and closed.

Its title is `meshbot: drift in <env>`; a hidden marker at the top of its body names the data product and the
environment, so two data products in one repository never share an issue. meshbot only ever touches open issues
it created itself (author = the bot user) that carry the marker. What to do is a pure decision (`issue_action`);
`sync_issue` does the forge calls:

- drift found: open the issue, or edit the existing one when its text changed (the same drift: no call);
- in sync (every checkable component matches): close the existing issue with a comment saying so;
- anything else (some component could not be checked, and no drift found): leave the issue as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import redis

from bot.config import ServerConfig
from bot.engine.deployed import RedisDeployedStates
from bot.engine.drift import (
    ClientFor,
    ComponentDrift,
    ComponentState,
    Difference,
    DriftReport,
    DriftStatus,
    check_deployed,
    save_report,
)
from bot.engine.locks import Locks
from bot.engine.store import Store
from bot.forge.forge_issue import IssueAction, IssueOutcome, issue_number, write_issue
from bot.metrics import Batch
from policies.report import code_span, escape_markdown, markdown_environment
from vcs.base import Forge, Issue, Repository

log = logging.getLogger("meshbot.drift")

TITLE = "meshbot: drift in {environment}"
MARKER = "<!-- meshbot:drift product={product} environment={environment} -->"
DIFFERENCE_LIMIT = 50  # differences listed per component
COMPONENT_LIMIT = 100  # components listed per section
BODY_LIMIT = 60_000  # GitHub holds 65,536 characters


def issue_title(environment: str) -> str:
    """The drift issue's title."""
    return TITLE.format(environment=environment)


def marker(data_product: str, environment: str) -> str:
    """The hidden marker naming the data product and environment of a drift issue (values percent-encoded)."""
    return MARKER.format(product=quote(data_product, safe=":._-"), environment=quote(environment, safe=":._-"))


def find_issue(issues: Sequence[Issue], data_product: str, environment: str, bot_user: str) -> Issue | None:
    """The open drift issue of this data product and environment meshbot opened (the oldest, if several)."""
    wanted = marker(data_product, environment)
    mine = [issue for issue in issues if issue.author == bot_user and issue.state == "open"
            and issue.body.startswith(wanted)]
    return min(mine, key=lambda issue: issue.number) if mine else None


def issue_action(report: DriftReport, existing: Issue | None, body: str) -> IssueAction:
    """What to do with the issue after report (pure)."""
    if report.status is DriftStatus.DRIFT:
        if existing is None:
            return IssueAction.OPENED
        same = existing.body.strip() == body.strip() and existing.title == issue_title(report.environment)
        return IssueAction.UNCHANGED if same else IssueAction.UPDATED
    if report.status is DriftStatus.IN_SYNC and existing is not None:
        return IssueAction.CLOSED
    return IssueAction.NONE


def sync_issue(repository: Repository, bot_user: str, report: DriftReport, forge: str) -> IssueOutcome:
    """Open, edit or close the drift issue of report's data product and environment in repository."""
    existing = find_issue(repository.open_issues(author=bot_user), report.data_product, report.environment, bot_user)
    body = issue_body(report, forge)
    action = issue_action(report, existing, body)
    title = issue_title(report.environment)
    if action is IssueAction.OPENED:
        return IssueOutcome(action, repository.create_issue(title, body))
    if existing is not None and action is IssueAction.UPDATED:
        repository.update_issue(existing.number, title, body)
    elif existing is not None and action is IssueAction.CLOSED:
        repository.close_issue(existing.number, closing_comment(report))
    return IssueOutcome(action, existing)


# ---------------------------------------------------------------- one data product in one environment (I/O)


@dataclass(frozen=True, slots=True)
class DriftCheck:
    """What checking one data product in one environment did."""

    report: DriftReport | None  # None: nothing deployed, or a deployment holds the environment
    message: str
    forge: str | None = None
    project: str | None = None
    issue: IssueOutcome | None = None
    api_calls: int = 0


def repository_of(store: Store, data_product: str, environment: str) -> tuple[str, str] | None:
    """(forge, project) of the newest deployment a forge asked for (release tag, /deploy); None: only CLI deploys."""
    for deployment_id in store.history(data_product, environment):
        deployment = store.load_static(deployment_id)
        target = deployment.report_to if deployment is not None else None
        if target and target.get("forge") and target.get("project"):
            return str(target["forge"]), str(target["project"])
    return None


def check_and_report(connection: redis.Redis, config: ServerConfig, data_product: str, environment: str,
                     forge_for: Callable[[str], Forge], client_for: ClientFor | None = None) -> DriftCheck:
    """Check one deployed data product for drift, keep the report in Redis, and open, edit or close its issue."""
    deployed = RedisDeployedStates(connection).deployed(data_product, environment)
    if deployed is None:
        return DriftCheck(None, f"nothing deployed of {data_product} in {environment}")
    if Locks(connection).holder(data_product, environment) is not None:
        return DriftCheck(None, f"skipped {data_product} in {environment}: a deployment holds it")
    metrics = Batch()
    report = check_deployed(deployed, config, client_for, metrics=metrics)
    metrics.send(connection)  # each reverse provisioning call's latency, by adapter
    save_report(connection, report)
    log.info("drift check of %s in %s: %s", data_product, environment, report.summary())
    target = repository_of(Store(connection), data_product, environment)
    if target is None:
        return DriftCheck(report, f"{data_product} in {environment}: {report.summary()} (deployed from the command "
                                  "line: no repository to open an issue in)")
    name, project = target
    written = write_issue(forge_for, name, project,
                          lambda repository, bot_username: sync_issue(repository, bot_username, report, name),
                          "drift issue", f"of {data_product} in {environment}", log)
    if written.outcome is None:
        return DriftCheck(report, f"{data_product} in {environment}: {report.summary()}; the drift issue could not "
                                  f"be written on {name} {project}: {written.error}", name, project,
                          api_calls=written.api_calls)
    return DriftCheck(report, f"{data_product} in {environment}: {report.summary()}; "
                              f"issue{issue_number(written.outcome)} {written.outcome.action}",
                      name, project, written.outcome, written.api_calls)


# ---------------------------------------------------------------- the texts (templates/comments/drift_*.md.j2)


def difference_markdown(difference: Difference) -> str:
    """A difference's summary in markdown: code parts as code spans, the rest escaped."""
    if not difference.parts:
        return escape_markdown(difference.summary)
    return "".join(code_span(text) if code else _escaped(text) for text, code in difference.parts)


def _escaped(text: str) -> str:
    """Plain text escaped for markdown, keeping a space at either end (escaping trims them)."""
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() and text.strip() else ""
    return lead + escape_markdown(text) + trail


def issue_body(report: DriftReport, forge: str) -> str:
    """The drift issue's body: the marker, then the report (templates/comments/drift_issue.md.j2)."""
    drifted = [_drifted(component) for component in report.of(ComponentState.DRIFTED)]
    text = markdown_environment().get_template("drift_issue.md.j2").render(
        marker=marker(report.data_product, report.environment), report=report, forge_term=_term(forge),
        drifted=drifted[:COMPONENT_LIMIT], more_drifted=max(0, len(drifted) - COMPONENT_LIMIT),
        in_sync=list(report.of(ComponentState.IN_SYNC))[:COMPONENT_LIMIT],
        not_checkable=list(report.of(ComponentState.NOT_CHECKABLE))[:COMPONENT_LIMIT],
        unchecked=list(report.of(ComponentState.UNCHECKED))[:COMPONENT_LIMIT])
    if len(text) > BODY_LIMIT:
        text = text[:BODY_LIMIT].rsplit("\n", 1)[0] + "\n\n…(cut: run `meshbot drift` for the whole report)\n"
    return text


def closing_comment(report: DriftReport) -> str:
    """The comment meshbot closes the drift issue with (templates/comments/drift_closed.md.j2)."""
    return markdown_environment().get_template("drift_closed.md.j2").render(
        report=report, not_checkable=list(report.of(ComponentState.NOT_CHECKABLE)))


@dataclass(frozen=True, slots=True)
class _Drifted:
    """A drifted component as the template shows it."""

    component: ComponentDrift
    lines: list[str]  # markdown
    more: int


def _drifted(component: ComponentDrift) -> _Drifted:
    lines = [difference_markdown(difference) for difference in component.differences[:DIFFERENCE_LIMIT]]
    return _Drifted(component, lines, max(0, len(component.differences) - DIFFERENCE_LIMIT))


def _term(forge: str) -> str:
    return "pull request" if forge == "github" else "merge request"
