"""meshbot's log set-up: the level from MESHBOT_LOG_LEVEL, text or JSON lines (MESHBOT_LOG_FORMAT), a set-up kept."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.engine.runner import queue
from bot.logs import CONTEXT_FIELDS, bind_log_context, configure_logging, log_context
from tests.deploy_harness import ROOT


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


def json_configure(stream: io.StringIO, monkeypatch, level: str = "INFO") -> None:
    """configure_logging with MESHBOT_LOG_FORMAT=json, as a fresh meshbot process does."""
    monkeypatch.setenv("MESHBOT_LOG_FORMAT", "json")
    monkeypatch.setenv("MESHBOT_LOG_LEVEL", level)
    configure(stream)


def test_json_lines_carry_the_base_fields_and_the_context(bare_root, monkeypatch):
    stream = io.StringIO()
    json_configure(stream, monkeypatch)
    with log_context(delivery_id="d-1", forge="github", project="acme/cashflow", job_id=None):
        bind_log_context(deployment_id="1796-ab", data_product="urn:dmb:dp:finance:cashflow:1",
                         environment="production")
        logging.getLogger("app").info("github delivery %r queued jobs %s", "d-1", "abc")
    logging.getLogger("app").warning("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside.keys() >= {"timestamp", "level", "logger", "message", "process"}
    assert list(inside)[:5] == ["timestamp", "level", "logger", "message", "process"]
    assert inside["timestamp"].endswith("+00:00") and inside["timestamp"][:4].isdigit()
    assert (inside["level"], inside["logger"], inside["message"]) == ("INFO", "app", "github delivery 'd-1' queued "
                                                                                    "jobs abc")
    assert inside["process"] == os.getpid()
    assert {key: inside[key] for key in ("delivery_id", "forge", "project", "deployment_id", "data_product",
                                         "environment")} == {
        "delivery_id": "d-1", "forge": "github", "project": "acme/cashflow", "deployment_id": "1796-ab",
        "data_product": "urn:dmb:dp:finance:cashflow:1", "environment": "production"}
    assert "job_id" not in inside  # None is left out
    assert outside["level"] == "WARNING" and not set(CONTEXT_FIELDS) & outside.keys()  # the context ended


def test_an_exception_stays_on_one_json_line(bare_root, monkeypatch):
    stream = io.StringIO()
    json_configure(stream, monkeypatch)
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        logging.getLogger("meshbot").exception("it failed")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed" and "ValueError: broken\nacross lines" in record["exc_info"]


def test_an_unknown_format_falls_back_to_text_and_says_so(bare_root, monkeypatch):
    monkeypatch.setenv("MESHBOT_LOG_FORMAT", "xml")
    monkeypatch.delenv("MESHBOT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    configure(stream)
    assert stream.getvalue().rstrip().endswith("MESHBOT_LOG_FORMAT='xml' is not one of text, json: logging as text")
    assert not stream.getvalue().startswith("{")


def test_text_stays_the_default_and_carries_no_context(bare_root, monkeypatch):
    monkeypatch.delenv("MESHBOT_LOG_FORMAT", raising=False)
    monkeypatch.delenv("MESHBOT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    configure(stream)
    with log_context(delivery_id="d-1"):
        logging.getLogger("app").info("hello")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("]: hello") and " INFO app [" in line and "d-1" not in line


def test_a_worker_in_text_format_logs_job_lines_and_no_traceback(redis_engine, monkeypatch):
    """The default format: `meshbot worker` writes the job lines as text, a failure as one line (no traceback)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_engine.url}
    environment.pop("MESHBOT_LOG_FORMAT", None)
    environment.pop("MESHBOT_LOG_LEVEL", None)
    job = queue(redis_engine.redis).enqueue("json.loads", "{not json")
    ok = queue(redis_engine.redis).enqueue("json.loads", "[1]")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "worker", "--burst"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("meshbot worker: working on Redis unix://")
    assert not any(line.startswith("{") for line in lines)
    assert "Traceback" not in result.stderr
    assert [line.split(" ", 3)[2] for line in lines[1:]] == ["INFO", "ERROR", "INFO", "INFO"], result.stderr
    assert "]: job json.loads failed after " in lines[2] and ": JSONDecodeError: Expecting property name" in lines[2]
    assert lines[4].split("]: ", 1)[1].startswith("job json.loads ok in ")
    assert job.id != ok.id
