"""MESHBOT_LOG_FORMAT=json end to end: a review, a deploy and a failure, each run by a real `meshbot worker` process.

Every line the worker writes on stderr must be one JSON object (docs/operations.md, "Logs"): a line when each job
starts and one when it ends (function, duration, outcome), with the delivery, job, deployment, data product,
environment, forge and project where they are known; a failure is one ERROR line, its traceback only at DEBUG.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from rq import Retry

from app import create_app
from bot.engine import runner
from bot.engine.deployment import DeploymentState
from bot.engine.runner import queue
from bot.forge.review import STATUS_CONTEXT
from bot.logs import ContextFilter, MeshbotJsonFormatter
from tests.cli.test_serve import PULL_REQUEST, free_port, signed
from tests.cli.test_serve import home as home  # MESHBOT_HOME, every process of it gone afterwards
from tests.deploy_harness import (
    ROOT,
    Engine,
    Start,
    adapters_for,
    example_descriptor,
    scripted_adapter,
    wait_for,
)
from tests.e2e.test_github import PROJECT, SECRET, example_files, pull_request_payload, signature
from tests.servers.github import GitHubServer, github_server

BASE_FIELDS = {"timestamp", "level", "logger", "message", "process"}
REVIEW = "handlers.merge_request.review"


def json_worker(engine: Engine, name: str, debug: bool = False) -> Path:
    """Start `meshbot worker --name name` on the engine's Redis with JSON logs; the file its stderr goes to."""
    path = engine.directory / f"{name}.stderr"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": engine.url, "MESHBOT_LOG_FORMAT": "json",
                   "MESHBOT_LOG_LEVEL": "DEBUG" if debug else "INFO"}
    with path.open("ab") as stderr:
        engine.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", "--name", name], cwd=ROOT, env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    wait_for(lambda: name in engine.registered_workers(), 15, f"worker {name} to register")
    return path


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the file, each parsed as one JSON object with the base fields (a line that is not fails)."""
    lines = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line on stderr: {line!r}\n--- all of it:\n{path.read_text()}") from None
        assert isinstance(record, dict) and BASE_FIELDS <= record.keys(), line
        lines.append(record)
    return lines


def job_lines(path: Path, job_id: str) -> list[dict[str, Any]]:
    """The job start and end lines of one job."""
    return [line for line in json_lines(path) if line.get("job_id") == job_id and line.get("event")]


def until_ended(path: Path, job_id: str, outcomes: int = 1) -> list[dict[str, Any]]:
    """The job's lines once it has ended outcomes times."""
    def ended() -> list[dict[str, Any]] | None:
        lines = job_lines(path, job_id)
        return lines if sum(line["event"] == "job_ended" for line in lines) >= outcomes else None

    return wait_for(ended, 30, f"job {job_id} to end {outcomes} time(s) in {path}")


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    """A running GitHub test server."""
    with github_server() as server:
        yield server


@pytest.fixture
def configured(github: GitHubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> GitHubServer:
    """meshbot's environment for the GitHub server (the workers started afterwards inherit it)."""
    config = tmp_path / "meshbot.yaml"
    config.write_text("")
    monkeypatch.setenv("MESHBOT_CONFIG", str(config))
    monkeypatch.setenv("MESHBOT_GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MESHBOT_GITHUB_TOKEN", github.token)
    monkeypatch.setenv("MESHBOT_GITHUB_API_URL", github.api_url)
    monkeypatch.setenv("MESHBOT_GITHUB_SECONDS_BETWEEN_WRITES", "0")
    for variable in ("MESHBOT_GITHUB_APP_ID", "MESHBOT_GITHUB_APP_PRIVATE_KEY", "MESHBOT_BOT_USERNAME"):
        monkeypatch.delenv(variable, raising=False)
    return github


def assert_started_then_ok(lines: list[dict[str, Any]], function: str) -> dict[str, Any]:
    """One INFO start line, then one INFO end line with outcome ok and a duration; the end line."""
    assert [(line["event"], line["level"]) for line in lines] == [("job_started", "INFO"), ("job_ended", "INFO")]
    started, ended = lines
    assert started["job"] == ended["job"] == function
    assert started["message"] == f"job {function} started"
    assert ended["outcome"] == "ok" and isinstance(ended["duration_s"], float) and ended["duration_s"] >= 0
    assert ended["message"] == f"job {function} ok in {ended['duration_s']:.3f} s"
    return ended


def test_a_review_logs_its_delivery_job_forge_and_project(configured, start: Start, bare_root):
    github = configured
    repository = github.create_repository(PROJECT, example_files())
    engine = start(0)
    stderr = json_worker(engine, "json-review")
    intake = io.StringIO()  # the web application's lines, as `meshbot serve` would write them
    handler = logging.StreamHandler(intake)
    handler.setFormatter(MeshbotJsonFormatter())
    handler.addFilter(ContextFilter())
    bare_root.addHandler(handler)
    bare_root.setLevel(logging.INFO)
    client = create_app(redis_connection=engine.redis, bot_usernames=["meshbot"]).test_client()
    base = repository.branch_head("main")
    head = repository.push("feature/logs", {"README.md": b"# logs\n"}, start="main", message="logs")
    number = repository.open_pull_request("feature/logs", title="Logs")
    body = json.dumps(pull_request_payload("opened", number, "feature/logs", head, base)).encode()
    delivery = str(uuid.uuid4())
    response = client.post("/webhooks/github", data=body, headers={
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature(body),
        "Content-Type": "application/json"})
    assert response.status_code == 202, response.get_json()
    [job_id] = response.get_json()["jobs"]

    ended = assert_started_then_ok(until_ended(stderr, job_id), REVIEW)
    assert {key: ended[key] for key in ("delivery_id", "forge", "project", "logger")} == {
        "delivery_id": delivery, "forge": "github", "project": PROJECT, "logger": "meshbot.worker"}
    assert [status["state"] for status in repository.statuses if status["context"] == STATUS_CONTEXT] == ["success"]
    [queued] = [json.loads(line) for line in intake.getvalue().splitlines() if "queued jobs" in line]
    assert {key: queued[key] for key in ("delivery_id", "forge", "project", "level", "logger")} == {
        "delivery_id": delivery, "forge": "github", "project": PROJECT, "level": "INFO", "logger": "app"}
    assert not any(line["level"] in ("ERROR", "CRITICAL") for line in json_lines(stderr))


def test_a_deploy_logs_each_job_with_its_deployment_data_product_and_environment(start: Start):
    engine = start(0)
    stderr = json_worker(engine, "json-deploy")
    descriptor = example_descriptor()
    with scripted_adapter(delay=0.01) as adapter:
        deployment_id, _ = engine.request(descriptor, adapters_for(descriptor, adapter.url))
        deployment = engine.wait(deployment_id, 30)
    assert deployment.state is DeploymentState.DEPLOYED
    finish = f"{runner.__name__}.finish"

    def finish_ended() -> list[dict[str, Any]] | None:
        lines = [line for line in json_lines(stderr) if line.get("deployment_id") == deployment_id]
        return lines if any(line.get("job") == finish and line.get("event") == "job_ended" for line in lines) else None

    lines = wait_for(finish_ended, 15, "the finish job's end line")
    ends = [line for line in lines if line.get("event") == "job_ended"]
    functions = {line["job"] for line in ends}
    assert {f"{runner.__name__}.{name}" for name in ("prepare", "run_task", "finish")} <= functions
    for end in ends:
        assert end["outcome"] == "ok" and end["level"] == "INFO", end
        assert (end["data_product"], end["environment"]) == (deployment.data_product, deployment.environment)
        assert end["job_id"] and end["duration_s"] >= 0
    tasks = [end for end in ends if end["job"] == f"{runner.__name__}.run_task"]
    assert len(tasks) == len(deployment.tasks)
    assert {end["task"] for end in tasks} == {task.id for task in deployment.tasks}
    for job_id in {end["job_id"] for end in ends}:
        started, ended = job_lines(stderr, job_id)
        assert (started["event"], ended["event"]) == ("job_started", "job_ended")
        assert started["deployment_id"] == deployment_id  # known from the job's arguments as it starts


def test_a_failure_is_one_error_line_and_its_traceback_only_at_debug(configured, start: Start):
    engine = start(0)
    stderr = json_worker(engine, "json-failure")
    missing = "acme-data/no-such-repository"
    job = queue(engine.redis).enqueue(REVIEW, "github", missing, 7, "0" * 40, retry=Retry(max=1),
                                      meta={"forge": "github", "delivery": "delivery-7"})

    lines = until_ended(stderr, job.id, outcomes=2)
    assert [(line["event"], line["level"]) for line in lines] == [
        ("job_started", "INFO"), ("job_ended", "WARNING"), ("job_started", "INFO"), ("job_ended", "ERROR")]
    retrying, failed = lines[1], lines[3]
    assert retrying["outcome"] == "retrying" and failed["outcome"] == "failed"
    for end in (retrying, failed):
        assert end["error_type"] and end["error"] is not None
        assert end["message"].endswith(f": {end['error_type']}: {end['error']}")
        assert {key: end[key] for key in ("delivery_id", "forge", "project", "job")} == {
            "delivery_id": "delivery-7", "forge": "github", "project": missing, "job": REVIEW}
        assert "exc_info" not in end and "Traceback" not in end["message"]
    everything = json_lines(stderr)
    assert not [line for line in everything if "Traceback" in json.dumps(line)]  # INFO: no traceback anywhere
    assert [line["level"] for line in everything if line["level"] in ("ERROR", "CRITICAL")] == ["ERROR"]

    debug = json_worker(engine, "json-failure-debug", debug=True)
    engine.workers["json-failure"].kill()
    engine.workers["json-failure"].wait(10)
    again = queue(engine.redis).enqueue(REVIEW, "github", missing, 8, "0" * 40)
    until_ended(debug, again.id)
    tracebacks = [line for line in json_lines(debug) if line.get("job_id") == again.id and "Traceback" in
                  line["message"]]
    assert [line["level"] for line in tracebacks] == ["DEBUG"]


def test_serve_writes_gunicorn_and_meshbot_lines_as_json_on_stderr_and_the_banner_on_stdout(home):
    port, secret = free_port(), "json-logs-secret"
    environment = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "MESHBOT_CONFIG")}
    environment.update(MESHBOT_HOME=str(home), MESHBOT_LOG_FORMAT="json", MESHBOT_GITHUB_WEBHOOK_SECRET=secret)
    environment.pop("MESHBOT_LOG_LEVEL", None)
    stderr_path = home.parent / "serve.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "0", "--web-workers", "1",
             "--access-log"], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert process.poll() is None, stderr_path.read_text()
            try:
                return requests.get(url + "/healthz", timeout=1).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(healthy, 30, f"meshbot serve to answer on {url}")
        accepted = requests.post(url + "/webhooks/github", timeout=5,
                                 **signed(secret, "pull_request", PULL_REQUEST, "d-json"))
        assert accepted.status_code == 202, accepted.text
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout.startswith(f"meshbot is serving on {url}") and "{" not in stdout  # the banner alone
    lines = json_lines(stderr_path)
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "gunicorn.access", "app"} <= loggers, loggers
    assert any(line["logger"] == "gunicorn.error" and line["message"].startswith("Listening at") for line in lines)
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    [post] = [line for line in access if '"POST /webhooks/github HTTP/1.1" 202' in line["message"]]
    assert {key: post[key] for key in ("method", "path", "status")} == {
        "method": "POST", "path": "/webhooks/github", "status": 202}
    assert isinstance(post["duration_s"], float) and post["duration_s"] >= 0
    [queued] = [line for line in lines if line["logger"] == "app" and "queued jobs" in line["message"]]
    assert {key: queued[key] for key in ("delivery_id", "forge", "project", "level")} == {
        "delivery_id": "d-json", "forge": "github", "project": "acme/cashflow", "level": "INFO"}
