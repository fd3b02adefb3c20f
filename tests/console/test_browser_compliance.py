"""The data product page in headless Chromium shows the stored compliance of each environment (outcome, time, the
failing policies with "blocks from DATE" for grace, a short history), and its JSON twin the same document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from selenium.webdriver.common.by import By

from bot.engine import compliance
from bot.engine.deployed import Deployed
from bot.engine.store import Store
from policies.loader import load_policies
from tests.console.browser import OPERATOR_TOKEN, Browser, Console
from tests.console.test_browser import sign_in_as_operator
from tests.deploy_harness import ENVIRONMENT, example_descriptor
from tests.engine.test_compliance import policy_folder

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_the_product_page_shows_the_compliance_and_its_history(browser: Browser, console: Console,
                                                               tmp_path: Path) -> None:
    descriptor = example_descriptor().data
    product = str(descriptor["id"])
    store = Store(console.redis)
    store.set_product(product, ENVIRONMENT, status="DEPLOYED", deployment="d1",
                      deployed={"descriptor": descriptor, "version": "1.0.0", "deployment": "d1",
                                "deployedAt": "2026-05-01T11:00:00Z", "status": "DEPLOYED"})
    deployed = Deployed(product, ENVIRONMENT, descriptor, "1.0.0", "d1")
    compliance.save(console.redis, compliance.check(deployed, load_policies(), "a" * 64, NOW))
    grace = policy_folder(tmp_path / "grace", "grace", "grace_until: 2027-03-01\n")
    compliance.save(console.redis, compliance.check(deployed, load_policies([grace]), "b" * 64,
                                                    NOW + timedelta(hours=1)))

    sign_in_as_operator(browser, console.url)
    browser.open(f"{console.url}/products/{product}?env={ENVIRONMENT}")
    section = browser.driver.find_element(By.CSS_SELECTOR, "p.compliance")
    assert section.text.startswith("compliant, in grace: 1 grace")
    assert "checked 2026-05-01T13:00:00Z" in section.text and "deployment d1" in section.text
    row = browser.driver.find_element(By.CSS_SELECTOR, "table.compliance-findings tr.c-grace")
    assert "owner-team" in row.text and "grace: blocks from 2027-03-01" in row.text
    assert "missing required field 'ownerTeam'" in row.text
    assert browser.driver.find_elements(By.CSS_SELECTOR, "table.compliance-findings tr.c-not_evaluated")
    browser.driver.find_element(By.CSS_SELECTOR, "details summary").click()
    history = [item.text for item in browser.driver.find_elements(By.CSS_SELECTOR, "ul.compliance-history li")]
    browser.screenshot("compliance")
    assert [line.split(" (")[0] for line in history] == [
        "2026-05-01T13:00:00Z: compliant, in grace: 1 grace, 1 not evaluated",
        "2026-05-01T12:00:00Z: compliant: 1 not evaluated"]

    answer = requests.get(f"{console.url}/api/v1/products/{product}",
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10)
    [entry] = answer.json()["environments"]
    assert entry["compliance"]["latest"]["outcome"] == "grace"
    assert [item["outcome"] for item in entry["compliance"]["history"]] == ["grace", "compliant"]
