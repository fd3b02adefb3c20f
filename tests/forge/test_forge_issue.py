"""Writing meshbot's own issue on a forge: the outcome, the forge's error, the API calls, the log lines."""

from __future__ import annotations

import logging

import pytest

from bot.forge.forge_issue import IssueAction, IssueOutcome, issue_number, write_issue
from vcs.base import ForgeError, Repository
from vcs.memory import MemoryForge

LOG = logging.getLogger("meshbot.test-forge-issue")


@pytest.fixture
def forge() -> MemoryForge:
    forge = MemoryForge()
    forge.add("acme/orders")
    return forge


def test_an_opened_issue_is_returned_counted_and_logged(forge, caplog):
    def open_one(repository: Repository, bot_username: str) -> IssueOutcome:
        assert bot_username == "meshbot"
        repository.open_issues(author=bot_username)
        return IssueOutcome(IssueAction.OPENED, repository.create_issue("meshbot: drift in production", "body"))

    with caplog.at_level(logging.INFO, logger=LOG.name):
        written = write_issue({"github": forge}.__getitem__, "github", "acme/orders", open_one, "drift issue",
                              "of urn:dmb:dp:finance:orders:0 in production", LOG)
    assert written.error is None and written.outcome is not None and written.outcome.action is IssueAction.OPENED
    assert written.api_calls == 2
    assert issue_number(written.outcome) == " #1"
    assert caplog.messages == ["drift issue #1 of urn:dmb:dp:finance:orders:0 in production on github acme/orders: "
                               "opened"]


def test_nothing_done_is_not_logged(forge, caplog):
    with caplog.at_level(logging.INFO, logger=LOG.name):
        written = write_issue(lambda name: forge, "github", "acme/orders",
                              lambda repository, user: IssueOutcome(IssueAction.NONE), "compliance issue", "of x", LOG)
    assert written.outcome == IssueOutcome(IssueAction.NONE) and issue_number(written.outcome) == ""
    assert written.api_calls == 0 and caplog.messages == []


def test_a_forge_error_is_returned_with_the_calls_made_and_logged_as_a_warning(forge, caplog):
    def refused(repository: Repository, bot_username: str) -> IssueOutcome:
        repository.open_issues(author=bot_username)
        raise ForgeError("403 Resource not accessible by integration (issues: write)", status=403)

    with caplog.at_level(logging.INFO, logger=LOG.name):
        written = write_issue(lambda name: forge, "github", "acme/orders", refused, "compliance issue",
                              "of urn:dmb:dp:finance:orders:0", LOG)
    assert written.outcome is None and written.api_calls == 1
    assert written.error == "403 Resource not accessible by integration (issues: write)"
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "compliance issue of urn:dmb:dp:finance:orders:0 on github acme/orders: "
                    "403 Resource not accessible by integration (issues: write)")]
