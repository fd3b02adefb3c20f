"""The policy impact page in a real headless Chromium: from /policies to /policies/impact, a failure's file position
read from the local GitHub test server, the reason beside a product whose repository is unreachable."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.cli.test_policies_test import CASHFLOW, ORDERS, TIER_POLICY, deploy_three
from tests.console.browser import OPERATOR_TOKEN, Browser, served
from tests.console.test_browser import sign_in_as_operator
from tests.deploy_harness import Engine
from tests.servers.github import github_server
from vcs.factory import forget

SCREENSHOT = Path("/tmp/meshbot-policy-impact.png")


@pytest.fixture
def impact_console(redis_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The console served over cashflow (its repository on GitHub) and orders (on a GitLab without a token)."""
    monkeypatch.setenv("MESHBOT_API_TOKEN", OPERATOR_TOKEN)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "tier.yaml").write_text(TIER_POLICY)
    (tmp_path / "meshbot.yaml").write_text("policies: [policies]\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    with github_server() as github:
        deploy_three(redis_engine.redis, github, monkeypatch, with_ledger=False)
        forget()
        try:
            with served(redis_engine.redis) as url:
                yield url
        finally:
            forget()


def test_the_policies_page_leads_to_the_impact_of_a_draft_policy_with_positions(browser: Browser,
                                                                                impact_console: str) -> None:
    driver = browser.driver
    sign_in_as_operator(browser, impact_console)
    driver.find_element(By.LINK_TEXT, "Policies").click()
    browser.wait_until(lambda driver: driver.current_url.endswith("/policies"))
    driver.find_element(By.PARTIAL_LINK_TEXT, "Impact of the draft and grace policies").click()
    positions = browser.wait_until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "code.position"))
    shot = browser.screenshot("policy-impact")
    shutil.copyfile(shot, SCREENSHOT)
    assert driver.current_url.endswith("/policies/impact")
    assert [element.text for element in positions] == ["catalog-info.yaml:11:11"]  # type: ignore[attr-defined]
    assert positions[0].is_displayed()  # type: ignore[index]
    row = driver.find_element(By.ID, "policy-gold-or-silver")
    assert row.find_element(By.CSS_SELECTOR, "td.would").text == "would block"
    assert [link.text for link in row.find_elements(By.CSS_SELECTOR, "li.failure > a")] == [CASHFLOW, ORDERS]
    reason = row.find_element(By.CSS_SELECTOR, ".no-position").text
    assert reason.startswith("no position: repository not reachable: gitlab:acme/orders@bbbbbbbb")
    row.find_element(By.LINK_TEXT, CASHFLOW).click()
    browser.wait_until(lambda driver: f"/products/{CASHFLOW}" in driver.current_url)
