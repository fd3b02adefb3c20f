"""The console in a real headless Chromium: pages render, links lead mesh -> product -> deployment, the graph and
the timeline are drawn, and a forge user sees only the data products of the repositories they can read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from bot.engine.deployment import DeploymentState
from bot.engine.store import Deployment
from tests.console.browser import OPERATOR_TOKEN, Browser, served
from tests.console.test_signin import github as github
from tests.deploy_harness import Engine, adapters_for, generated_descriptor, scripted_adapter
from tests.deploy_harness import start as start
from tests.servers.github import GitHubServer


@dataclass
class Mesh:
    """The console served over an engine that deployed two data products from two GitHub repositories."""

    url: str
    engine: Engine
    shop: Deployment  # from acme/shop
    payroll: Deployment  # from acme/payroll


@pytest.fixture
def mesh(start: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Mesh]:
    """Deploy diamond (acme/shop) and chain (acme/payroll) through the engine, then serve the console over it."""
    monkeypatch.setenv("MESHBOT_API_TOKEN", OPERATOR_TOKEN)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    (tmp_path / "meshbot.yaml").write_text("{}\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    running: Engine = start(1)  # type: ignore[operator]
    deployed = []
    with scripted_adapter() as adapter:
        for shape, project in (("diamond", "acme/shop"), ("chain", "acme/payroll")):
            descriptor = generated_descriptor(shape)
            deployment_id, _ = running.request(descriptor, adapters_for(descriptor, adapter.url), report_to={
                "forge": "github", "project": project, "sha": "a" * 40, "context": "meshbot/deploy/development"})
            deployed.append(running.wait(deployment_id))
    assert [item.state for item in deployed] == [DeploymentState.DEPLOYED] * 2
    with served(running.redis) as url:
        yield Mesh(url, running, *deployed)


def sign_in_as_operator(browser: Browser, url: str) -> None:
    """Through the login form, as a person does."""
    browser.open(f"{url}/")
    assert "/login" in browser.driver.current_url  # not signed in: the pages send to the form
    browser.driver.find_element(By.NAME, "token").send_keys(OPERATOR_TOKEN)
    browser.screenshot("login-form-filled")
    browser.driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    browser.wait_until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "table.matrix"))


def test_healthz_and_the_login_form(browser: Browser, mesh: Mesh) -> None:
    browser.open(f"{mesh.url}/healthz")
    assert '"status":"ok"' in browser.driver.find_element(By.TAG_NAME, "body").text.replace(" ", "")
    browser.open(f"{mesh.url}/login")
    browser.driver.find_element(By.NAME, "token").send_keys("a guess")
    browser.driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    browser.wait_until(lambda driver: "not the operator token" in driver.page_source)
    browser.screenshot("wrong-token")
    sign_in_as_operator(browser, mesh.url)
    page = browser.driver.page_source
    assert mesh.shop.data_product in page and mesh.payroll.data_product in page


def test_links_lead_from_the_mesh_to_the_product_its_graph_and_the_deployment_timeline(browser: Browser,
                                                                                        mesh: Mesh) -> None:
    driver = browser.driver
    sign_in_as_operator(browser, mesh.url)
    driver.find_element(By.LINK_TEXT, mesh.shop.data_product).click()
    graph = browser.wait_until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "svg.graph"))
    browser.screenshot("product")
    assert driver.current_url.split("?")[0].endswith(f"/products/{mesh.shop.data_product}")
    assert graph[0].is_displayed() and graph[0].size["width"] > 0  # type: ignore[index]
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.graph rect, svg.graph g")) >= 4  # diamond: 4 components
    driver.find_element(By.LINK_TEXT, mesh.shop.id).click()
    timeline = browser.wait_until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "svg.timeline"))
    browser.screenshot("deployment")
    assert driver.current_url.endswith(f"/deployments/{mesh.shop.id}")
    assert timeline[0].is_displayed()  # type: ignore[index]
    assert "privateInfo" not in driver.page_source
    driver.find_element(By.LINK_TEXT, mesh.shop.data_product).click()  # back to the product
    browser.wait_until(lambda driver: f"/products/{mesh.shop.data_product}" in driver.current_url)
    driver.find_element(By.LINK_TEXT, "Policies").click()
    browser.wait_until(lambda driver: driver.current_url.endswith("/policies"))
    browser.screenshot("policies")


def test_a_github_user_sees_none_of_the_products_of_a_repository_they_cannot_read(
        browser: Browser, mesh: Mesh, github: GitHubServer) -> None:
    driver = browser.driver
    browser.open(f"{mesh.url}/login/github")  # alice reads acme/shop only (tests/console/test_signin.py)
    browser.wait_until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "table.matrix"))
    browser.screenshot("signed-in-with-github")
    page = driver.page_source
    assert "github:alice" in page
    assert mesh.shop.data_product in page
    assert mesh.payroll.data_product not in page
    browser.open(f"{mesh.url}/products/{mesh.payroll.data_product}")
    assert mesh.payroll.data_product in driver.page_source  # named in the "not found" message only
    assert not driver.find_elements(By.CSS_SELECTOR, "svg.graph")
    browser.open(f"{mesh.url}/deployments/{mesh.payroll.id}")
    assert not driver.find_elements(By.CSS_SELECTOR, "svg.timeline")
    browser.open(f"{mesh.url}/policies")
    assert mesh.payroll.data_product not in driver.page_source
