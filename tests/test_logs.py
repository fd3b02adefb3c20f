"""meshbot's log set-up: the level from MESHBOT_LOG_LEVEL, time, level and origin on each line, a set-up kept."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back afterwards (pytest adds its own as each test runs)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def configure(stream: io.StringIO) -> None:
    """configure_logging on a root logger without handlers, as in a fresh meshbot process."""
    logging.getLogger().handlers.clear()
    configure_logging(stream)


def test_info_lines_by_default(bare_root, monkeypatch):
    monkeypatch.delenv("MESHBOT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    configure(stream)
    logging.getLogger("app").info("github delivery %r queued jobs %s", "d-1", "abc")
    logging.getLogger("app").debug("not shown")
    (line,) = stream.getvalue().splitlines()
    assert " INFO app [" in line and line.endswith("]: github delivery 'd-1' queued jobs abc")
    assert line[:4].isdigit()  # starts with the time


def test_the_level_comes_from_the_environment(bare_root, monkeypatch):
    monkeypatch.setenv("MESHBOT_LOG_LEVEL", "warning")
    stream = io.StringIO()
    configure(stream)
    logging.getLogger("app").info("quiet")
    logging.getLogger("app").warning("loud")
    assert [line.rsplit(": ", 1)[1] for line in stream.getvalue().splitlines()] == ["loud"]


def test_an_unknown_level_falls_back_to_info_and_says_so(bare_root, monkeypatch):
    monkeypatch.setenv("MESHBOT_LOG_LEVEL", "chatty")
    stream = io.StringIO()
    configure(stream)
    assert "MESHBOT_LOG_LEVEL='CHATTY' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL: logging at INFO" in (
        stream.getvalue())
    assert bare_root.level == logging.INFO


def test_an_existing_setup_is_kept(bare_root):
    mine = logging.StreamHandler(io.StringIO())
    bare_root.handlers[:] = [mine]
    configure_logging(io.StringIO())
    assert bare_root.handlers == [mine]
