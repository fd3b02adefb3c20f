"""The drift issue on a forge (the in-memory one): opened, edited in place, closed; never anyone else's issue.

The texts are golden files (tests/fixtures/comments/drift-*.md); after an intended change of wording regenerate
them with `MESHBOT_REGENERATE_GOLDEN=1` and read the diff before committing it.
"""

from __future__ import annotations

from dataclasses import replace

from bot.engine.drift import ComponentDrift, ComponentState, DriftReport, differences
from bot.forge.drift_issue import (
    IssueAction,
    closing_comment,
    issue_action,
    issue_body,
    issue_title,
    marker,
    sync_issue,
)
from tests.engine.test_drift import PORT, SCHEMA, schema
from tests.forge.test_review_comments import assert_golden
from vcs.memory import MemoryForge, MemoryRepository

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
OTHER = "urn:dmb:dp:finance:ledger:1"


def drifted_report(*extra: dict[str, str], product: str = PRODUCT) -> DriftReport:
    """daily-cashflow drifted (columns added by hand), ledger in sync, one port not checkable, one unchecked."""
    found = tuple(differences(PORT, {SCHEMA: schema(*extra)}))
    return DriftReport(product, "production", "1796510859276-8c157174", "1.4.0", "2026-05-01T12:00:00Z", (
        ComponentDrift("urn:dmb:cmp:finance:cashflow:1:ledger", "ledger", "storage", ComponentState.IN_SYNC),
        ComponentDrift(PORT["id"], "daily-cashflow", "outputport", ComponentState.DRIFTED, found),
        ComponentDrift("urn:dmb:cmp:finance:cashflow:1:s3", "s3", "outputport", ComponentState.NOT_CHECKABLE,
                       reason="its tech adapter has no reverse provisioning"),
        ComponentDrift("urn:dmb:cmp:finance:cashflow:1:kafka", "kafka", "outputport", ComponentState.UNCHECKED,
                       reason="the tech adapter's reverse provisioning failed: <b>timeout</b> @ops"),
    ))


def in_sync(report: DriftReport) -> DriftReport:
    """The same data product once every checkable component matches again."""
    return replace(report, components=tuple(
        replace(component, state=ComponentState.IN_SYNC, differences=())
        if component.state in (ComponentState.DRIFTED, ComponentState.UNCHECKED) else component
        for component in report.components))


def repository() -> MemoryRepository:
    return MemoryForge("github").add("acme-data/finance-cashflow")


CURRENCY = {"name": "currency", "dataType": "TEXT"}


def test_the_issue_and_the_closing_comment_as_written():
    report = drifted_report(CURRENCY, {"name": "fx_rate`s", "dataType": "DOUBLE"})
    assert_golden("drift-issue.md", issue_body(report, "github"))
    assert_golden("drift-closed.md", closing_comment(in_sync(report)))


def test_one_issue_opened_then_left_alone_then_edited_in_place_then_closed():
    repo = repository()
    first = sync_issue(repo, "meshbot", drifted_report(CURRENCY), "github")
    assert first.action is IssueAction.OPENED and first.issue is not None
    [issue] = repo.issues.values()
    assert (issue.title, issue.author, issue.state) == ("meshbot: drift in production", "meshbot", "open")
    assert issue.body.startswith(marker(PRODUCT, "production") + "\n")
    assert "column `currency` added \\(TEXT\\)" in issue.body and "`/import daily-cashflow`" in issue.body

    calls = repo.api_calls
    again = sync_issue(repo, "meshbot", drifted_report(CURRENCY), "github")
    assert (again.action, repo.api_calls - calls) == (IssueAction.UNCHANGED, 1)  # the listing only

    more = sync_issue(repo, "meshbot", drifted_report(CURRENCY, {"name": "fx_rate", "dataType": "DOUBLE"}), "github")
    assert more.action is IssueAction.UPDATED and more.issue is not None and more.issue.number == issue.number
    assert len(repo.issues) == 1 and "column `fx_rate` added \\(DOUBLE\\)" in repo.issue(issue.number).body

    unchecked = replace(drifted_report(), components=drifted_report().components[3:])  # only the failing adapter
    assert sync_issue(repo, "meshbot", unchecked, "github").action is IssueAction.NONE  # never "no drift"
    assert repo.issue(issue.number).state == "open"

    closed = sync_issue(repo, "meshbot", in_sync(drifted_report(CURRENCY)), "github")
    assert closed.action is IssueAction.CLOSED and repo.issue(issue.number).state == "closed"
    [comment] = repo.issue_threads[issue.number]
    assert comment.body.startswith("✅ The drift of `urn:dmb:dp:finance:cashflow:1` in `production` is gone")
    assert sync_issue(repo, "meshbot", in_sync(drifted_report()), "github").action is IssueAction.NONE


def test_issues_of_people_and_of_other_data_products_are_never_touched():
    repo = repository()
    body = marker(PRODUCT, "production") + "\ncopied by hand"
    people = repo.add_issue(issue_title("production"), body, author="jane")
    other = sync_issue(repo, "meshbot", drifted_report(CURRENCY, product=OTHER), "github").issue
    mine = sync_issue(repo, "meshbot", drifted_report(CURRENCY), "github").issue
    assert other is not None and mine is not None and len({people.number, other.number, mine.number}) == 3
    sync_issue(repo, "meshbot", in_sync(drifted_report()), "github")
    assert repo.issue(mine.number).state == "closed"
    assert repo.issue(people.number) == people and repo.issue(other.number).state == "open"
    assert repo.issue_threads[people.number] == [] and repo.issue_threads[other.number] == []


def test_what_to_do_is_decided_from_the_report_and_the_existing_issue():
    report = drifted_report(CURRENCY)
    body = issue_body(report, "gitlab")
    assert "on a merge request" in body
    assert issue_action(report, None, body) is IssueAction.OPENED
    assert issue_action(in_sync(report), None, body) is IssueAction.NONE
