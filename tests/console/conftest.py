"""The browser fixtures, and each test's outcome on its item (for the screenshot of a failure)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.console.browser import browser as browser
from tests.console.browser import console as console


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item: item.rep_call is read by the browser fixture."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
