"""The compliance issue on a forge (the in-memory one): opened, edited in place only on change, closed when the data
product complies again or is deployed nowhere; never duplicated, never anyone else's issue; texts escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.config import ComplianceSettings, ServerConfig
from bot.engine import compliance
from bot.engine.compliance import ComplianceResult, Finding
from bot.engine.deployment import Operation
from bot.engine.store import Deployment
from bot.forge.compliance_issue import (
    IssueAction,
    check_product,
    issue_action,
    issue_body,
    issue_key,
    issue_title,
    marker,
    sync_issue,
)
from policies.loader import load_policies
from tests.deploy_harness import ENVIRONMENT, example_descriptor
from tests.engine.test_compliance import policy_folder, set_deployed
from vcs.memory import MemoryForge, MemoryRepository

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
OTHER = "urn:dmb:dp:finance:ledger:1"
PROJECT = "acme-data/finance-cashflow"
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
OWNER = Finding("owner-team", PRODUCT, "error", "enabled", "failed", "blocking", True, None,
                ("missing <b>owner</b> @platform-team, see [here](http://evil)",))
PII = Finding("pii-tags", f"{PRODUCT}:daily-cashflow", "error", "grace", "failed", "grace", False, "2027-03-01",
              ("column `email` has no *pii* tag",))
WARNING = Finding("descriptions", PRODUCT, "warning", "enabled", "failed", "warning", False)
NOT_EVALUATED = Finding("no-breaking-changes", f"{PRODUCT}:daily-cashflow", "error", "enabled", "not_evaluated",
                        "not_evaluated", False, None, ("a compliance check compares with no earlier descriptor",))


def result(environment: str, *findings: Finding, product: str = PRODUCT) -> ComplianceResult:
    return ComplianceResult(product, environment, "2026-05-01T12:00:00Z", "fp", "1.4.0", f"d-{environment}",
                            (*findings, NOT_EVALUATED))


def repository() -> MemoryRepository:
    return MemoryForge("github").add(PROJECT)


def test_one_issue_for_all_environments_opened_left_alone_edited_in_place_and_closed():
    repo = repository()
    failing = [result("development", OWNER), result("production", PII, WARNING)]
    opened = sync_issue(repo, "meshbot", PRODUCT, failing)
    assert opened.action is IssueAction.OPENED and opened.issue is not None
    [issue] = repo.issues.values()
    assert (issue.title, issue.author, issue.state) == (
        f"meshbot: {PRODUCT} no longer complies with governance policies", "meshbot", "open")
    assert issue.body.startswith(marker(PRODUCT) + "\n")
    assert "#### `development`: non compliant: 1 blocking, 1 not evaluated" in issue.body
    assert "- **grace**, blocks from 2027-03-01 · policy `pii-tags`" in issue.body
    assert "descriptions" not in issue.body and "no-breaking-changes" not in issue.body  # console only

    calls = repo.api_calls
    assert sync_issue(repo, "meshbot", PRODUCT, failing).action is IssueAction.UNCHANGED
    assert repo.api_calls - calls == 1  # the listing only: no edit when nothing changed

    grace_only = [result("development"), result("production", PII)]
    edited = sync_issue(repo, "meshbot", PRODUCT, grace_only)
    assert edited.action is IssueAction.UPDATED and edited.issue is not None and edited.issue.number == issue.number
    again = repo.issue(issue.number)
    assert again.title == f"meshbot: {PRODUCT} will fail governance policies once their grace ends"
    assert "Nothing blocks yet" in again.body and "Complies in: `development`" in again.body
    assert len(repo.issues) == 1

    closed = sync_issue(repo, "meshbot", PRODUCT, [result("development"), result("production", WARNING)])
    assert closed.action is IssueAction.CLOSED and repo.issue(issue.number).state == "closed"
    [comment] = repo.issue_threads[issue.number]
    assert comment.body.startswith(f"✅ `{PRODUCT}` complies with today's governance policies again in every "
                                   "environment where it is deployed (`development`, `production`)")
    assert sync_issue(repo, "meshbot", PRODUCT, [result("development")]).action is IssueAction.NONE

    reopened = sync_issue(repo, "meshbot", PRODUCT, failing)  # fails again: a new issue, the old one stays closed
    assert reopened.action is IssueAction.OPENED and reopened.issue is not None
    gone = sync_issue(repo, "meshbot", PRODUCT, [])  # deployed nowhere any more
    assert gone.action is IssueAction.CLOSED and repo.issue(reopened.issue.number).state == "closed"
    assert repo.issue_threads[reopened.issue.number][0].body.startswith(
        f"✅ `{PRODUCT}` is no longer deployed anywhere")


def test_the_text_of_policies_and_descriptors_is_escaped():
    body = issue_body(PRODUCT, [result("production", OWNER)])
    assert "missing &lt;b&gt;owner&lt;/b&gt; @\u200bplatform-team, see \\[here\\]\\(http://evil\\)" in body
    assert "<b>" not in body and "](http" not in body
    hostile = Finding("x`y", "urn:`evil`", "error", "enabled", "failed", "blocking", True, None, ("#1 @all",))
    body = issue_body(PRODUCT, [result("production", hostile)])
    assert "policy ``x`y`` on `` urn:`evil` ``" in body and "\\#1 @\u200ball" in body


def test_issues_of_people_and_of_other_data_products_are_never_touched():
    repo = repository()
    people = repo.add_issue(issue_title([result("production", OWNER)], PRODUCT), marker(PRODUCT) + "\nby hand",
                            author="jane")
    other = sync_issue(repo, "meshbot", OTHER, [result("production", OWNER, product=OTHER)]).issue
    mine = sync_issue(repo, "meshbot", PRODUCT, [result("production", OWNER)]).issue
    assert other is not None and mine is not None and len({people.number, other.number, mine.number}) == 3
    sync_issue(repo, "meshbot", PRODUCT, [result("production")])
    assert repo.issue(mine.number).state == "closed"
    assert repo.issue(people.number) == people and repo.issue(other.number).state == "open"
    assert repo.issue_threads[people.number] == [] and repo.issue_threads[other.number] == []


def test_what_to_do_is_decided_from_the_results_and_the_existing_issue():
    failing = [result("production", OWNER)]
    title, body = issue_title(failing, PRODUCT), issue_body(PRODUCT, failing)
    assert issue_action(failing, None, title, body) is IssueAction.OPENED
    assert issue_action([result("production", WARNING)], None, title, body) is IssueAction.NONE  # warnings only
    assert issue_action([], None, title, body) is IssueAction.NONE


def test_a_product_deployed_from_a_forge_gets_its_issue_and_the_forge_is_left_alone_while_it_complies(
        redis_engine, tmp_path: Path):
    connection = redis_engine.redis
    forge = MemoryForge("github")
    repo = forge.add(PROJECT)
    descriptor = example_descriptor()
    set_deployed(redis_engine, PRODUCT, ENVIRONMENT, descriptor.data, "d1")
    deployment = Deployment(id="d1", data_product=PRODUCT, environment=ENVIRONMENT, version="1.0.0",
                            operation=Operation.DEPLOY, descriptor=descriptor.data, tasks=[], started_by="jane",
                            report_to={"forge": "github", "project": PROJECT})
    redis_engine.store.create(deployment)
    config = ServerConfig()
    clean = load_policies()
    first = check_product(connection, config, PRODUCT, [ENVIRONMENT], clean, "fp", NOW, lambda name: forge)
    assert (first.forge, repo.api_calls, len(repo.issues)) == (None, 0, 0)  # compliant: the forge is not asked

    failing = load_policies([policy_folder(tmp_path / "policies")])
    opened = check_product(connection, config, PRODUCT, [ENVIRONMENT], failing, "fp2", NOW, lambda name: forge)
    assert opened.issue is not None and opened.issue.action is IssueAction.OPENED and len(repo.issues) == 1
    assert connection.get(issue_key(PRODUCT)) == f"github {PROJECT}".encode()

    off = ServerConfig(compliance=ComplianceSettings(issues=False))
    calls = repo.api_calls
    check_product(connection, off, PRODUCT, [ENVIRONMENT], failing, "fp2", NOW, lambda name: forge)
    assert repo.api_calls == calls  # issues off: results only

    redis_engine.store.set_product(PRODUCT, ENVIRONMENT, status="NOT_DEPLOYED")
    redis_engine.store.drop_product_fields(PRODUCT, ENVIRONMENT, "deployed")
    closed = check_product(connection, config, PRODUCT, [], failing, "fp2", NOW, lambda name: forge)
    assert closed.issue is not None and closed.issue.action is IssueAction.CLOSED
    assert [issue.state for issue in repo.issues.values()] == ["closed"]
    assert connection.get(issue_key(PRODUCT)) is None and compliance.checked_products(connection) == set()


def test_an_open_issue_stays_open_while_a_remote_engine_gives_no_answer():
    repo = repository()
    opened = sync_issue(repo, "meshbot", PRODUCT, [result("production", OWNER)]).issue
    assert opened is not None
    silent = Finding("owner-team", PRODUCT, "error", "enabled", "error", "unanswered", False, None, ("no answer",))
    left = sync_issue(repo, "meshbot", PRODUCT, [result("production", silent)])
    assert left.action is IssueAction.NONE and repo.issue(opened.number).state == "open"
