"""The compliance issue's texts as written (golden files tests/fixtures/comments/compliance-*.md); after an intended
change of wording regenerate them with `MESHBOT_REGENERATE_GOLDEN=1` and read the diff before committing it."""

from __future__ import annotations

from bot.forge.compliance_issue import closing_comment, issue_body
from tests.forge.test_compliance_issue import OWNER, PII, PRODUCT, WARNING, result
from tests.forge.test_review_comments import assert_golden


def test_the_issue_of_a_blocking_and_a_grace_failure_as_written():
    body = issue_body(PRODUCT, [result("development"), result("production", OWNER, PII, WARNING)])
    assert_golden("compliance-issue.md", body)


def test_the_issue_of_grace_failures_only_as_written():
    assert_golden("compliance-issue-grace.md", issue_body(PRODUCT, [result("production", PII)]))


def test_the_closing_comments_as_written():
    assert_golden("compliance-closed.md", closing_comment(PRODUCT, [result("development"), result("production")]))
    assert_golden("compliance-closed-undeployed.md", closing_comment(PRODUCT, []))
