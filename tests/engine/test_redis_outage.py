"""Redis going away under running workers: a real redis-server is killed in the middle of a deployment and
started again on the same data some seconds later; the deployment ends DEPLOYED and no worker quits.

The workers are real `meshbot worker` processes (the command line's connection: redis-py's Retry with back-off,
bot.engine.redis_connection.outage_retry), the adapter a real HTTP server that takes a second per call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialBackoff

from bot.engine.deployment import DeploymentState, Operation
from bot.engine.redis_connection import OUTAGE_RETRIES, connect, outage_retry, outage_seconds
from bot.engine.runner import request_deployment
from bot.engine.store import Deployment, Store, as_text
from tests.deploy_harness import ROOT, adapters_for, generated_descriptor, scripted_adapter, wait_for
from tests.engine.redis_process import RedisProcess

OUTAGE_SECONDS = 6.0  # how long Redis stays away in the test


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path / "redis")
    process.start()
    try:
        yield process
    finally:
        process.close()


def start_worker(server: RedisProcess, home: Path, name: str) -> subprocess.Popen[bytes]:
    """A `meshbot worker` process on server, its output in home/NAME.log."""
    home.mkdir(mode=0o700, exist_ok=True)
    environment = {key: value for key, value in os.environ.items() if key != "MESHBOT_CONFIG"}
    environment.update({"REDIS_URL": server.url, "MESHBOT_HOME": str(home), "PYTHONPATH": str(ROOT)})
    with (home / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--name", name], cwd=ROOT,
                                env=environment, stdout=log, stderr=subprocess.STDOUT)


def registered(client: redis.Redis) -> set[str]:
    """The names of the workers RQ lists."""
    return {as_text(key).removeprefix("rq:worker:") for key in client.smembers("rq:workers")}


def test_the_engine_retries_with_redis_pys_own_backoff_for_more_than_30_seconds():
    retry = outage_retry()
    assert retry.get_retries() == OUTAGE_RETRIES and isinstance(retry._backoff, ExponentialBackoff)
    assert 30.0 <= outage_seconds() <= 60.0
    client = connect("redis://127.0.0.1:1/0", ride_out=True)
    connection_retry = client.connection_pool.connection_kwargs["retry"]
    assert connection_retry.get_retries() == OUTAGE_RETRIES
    assert {redis.ConnectionError, redis.TimeoutError} <= set(connection_retry._supported_errors)
    plain: Any = connect("redis://127.0.0.1:1/0").connection_pool.make_connection()
    assert plain.retry.get_retries() < OUTAGE_RETRIES  # the web service: a fast 503


def test_a_deployment_in_flight_finishes_after_redis_comes_back_and_no_worker_quits(server, tmp_path):
    home = tmp_path / "home"
    workers = {name: start_worker(server, home, name) for name in ("w0", "w1")}
    client = connect(server.url, ride_out=True)
    try:
        wait_for(lambda: set(workers) <= registered(client), 20, "the workers to register")
        with scripted_adapter(delay=1.0) as adapter:
            descriptor = generated_descriptor("outage")
            deployment_id, _ = request_deployment(client, descriptor, Operation.DEPLOY,
                                                  adapters_for(descriptor, adapter.url), "tests")
            wait_for(lambda: adapter.requests("/v1/provision"), 20, "a provision call in flight")
            server.kill()
            time.sleep(OUTAGE_SECONDS)  # the outage under test, not a wait for a result
            assert all(process.poll() is None for process in workers.values())
            server.start()
            store = Store(client)

            def finished() -> Deployment | None:
                deployment = store.load(deployment_id)
                return deployment if deployment is not None and deployment.state.finished else None

            deployment = wait_for(finished, 40, f"deployment {deployment_id} to finish")
        logs = {name: (home / f"{name}.log").read_text(errors="replace") for name in workers}
        assert deployment.state is DeploymentState.DEPLOYED, (deployment.message, logs)
        assert [name for name, process in workers.items() if process.poll() is not None] == [], logs
        assert "quitting" not in "".join(logs.values())
        assert " ERROR " not in "".join(logs.values()), logs  # redis-py's retries absorbed the outage: no error escaped
        wait_for(lambda: set(workers) <= registered(client), 10, "the workers still registered")
    finally:
        for process in workers.values():
            process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        client.close()


def test_a_worker_whose_redis_is_away_at_a_stop_request_stops(server, tmp_path):
    """Riding out an outage never makes a worker deaf to SIGTERM."""
    home = tmp_path / "home"
    worker = start_worker(server, home, "w0")
    client = connect(server.url)
    try:
        wait_for(lambda: "w0" in registered(client), 20, "the worker to register")
        server.kill()
        time.sleep(1.0)  # the worker is now retrying
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        worker.wait(20)
        assert time.monotonic() - started < 10
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
        client.close()
