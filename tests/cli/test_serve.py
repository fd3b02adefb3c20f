"""`meshbot serve` for real: gunicorn and RQ workers on the embedded Redis, a first-run secret, a clean stop."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from bot.cli.serve import (
    BODY_DEADLINE_SECONDS,
    HEADER_DEADLINE_SECONDS,
    load_application,
    missing_forge_credentials,
)
from tests.cli.test_deploy import _processes_of
from tests.deploy_harness import ROOT, wait_for
from tests.engine.test_redis_connection import servers_of


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


STARTED: list[Service] = []  # every service a test started, so that the home fixture stops one a failure left running


class Service:
    """A `python -m bot.cli serve` process with its own MESHBOT_HOME."""

    def __init__(self, home: Path, extra: dict[str, str] | None = None) -> None:
        self.home, self.port = home, free_port()
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("REDIS_URL", "MESHBOT_CONFIG") and not key.endswith("_WEBHOOK_SECRET")}
        environment.update({"MESHBOT_HOME": str(home), **(extra or {})})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port),
             "--workers", "1", "--web-workers", "1"],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        STARTED.append(self)
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.rest = ""
        wait_for(self._healthy, 30, f"meshbot serve to answer on {self.url}")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"meshbot serve exited {self.process.returncode}: {self.process.stdout.read()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a slow first answer under load
            return False

    def banner(self) -> str:
        """The lines printed before gunicorn's own log."""
        while not any("Listening at" in line for line in self.lines):
            self.lines.append(self.process.stdout.readline())
        return "".join(line for line in self.lines if not line.startswith("["))

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        self.rest, _ = self.process.communicate(timeout=30)  # everything printed after the banner
        return self.process.returncode


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "home"
    yield folder
    for service in [service for service in STARTED if service.home == folder]:
        STARTED.remove(service)
        if service.process.poll() is None:  # the test failed before stopping it: stop it as a supervisor would
            service.process.send_signal(signal.SIGTERM)
            try:
                service.process.wait(30)
            except subprocess.TimeoutExpired:
                service.process.kill()
    deadline = time.monotonic() + 10
    while _processes_of(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = []
    for process in _processes_of(folder):
        with contextlib.suppress(psutil.Error):  # it may end (or turn zombie) while we look
            left.append(" ".join(process.cmdline()))
            process.send_signal(signal.SIGKILL)
    assert left == [], "processes left behind"


def signed(secret: str, event: str, payload: dict, delivery: str) -> dict:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"data": body, "headers": {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                                      "X-Hub-Signature-256": signature, "Content-Type": "application/json"}}


def chunked_github(port: int, secret: str, body: bytes, signed: bytes) -> int:
    """POST body to /webhooks/github with Transfer-Encoding: chunked, signed over `signed`; the status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-chunked", "Content-Type": "application/json",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}
        connection.request("POST", "/webhooks/github", headers=headers, encode_chunked=True,
                           body=(body[start:start + 65536] for start in range(0, len(body), 65536)))
        return connection.getresponse().status
    finally:
        connection.close()


PULL_REQUEST = {
    "action": "opened", "number": 7,
    "pull_request": {"number": 7, "title": "Change", "user": {"login": "jane"},
                     "head": {"sha": "a" * 40, "ref": "change", "repo": {"full_name": "acme/cashflow"}},
                     "base": {"sha": "b" * 40, "ref": "main", "repo": {"full_name": "acme/cashflow"}}},
    "repository": {"full_name": "acme/cashflow"}, "sender": {"login": "jane"},
}


def test_a_first_run_generates_a_private_secret_serves_and_stops_cleanly(home):
    service = Service(home)
    banner = service.banner()
    secret_file = home / "webhook-secret"
    secret = secret_file.read_text().strip()
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600" and len(secret) >= 40
    assert f"GitHub webhook: {service.url}/webhooks/github" in banner
    assert f"GitLab webhook: {service.url}/webhooks/gitlab" in banner
    assert "generated now" in banner and secret in banner
    assert f"worker log:     {home / 'logs' / 'workers.log'}" in banner
    assert "no GitHub credentials (MESHBOT_GITHUB_TOKEN" in banner and "no GitLab credentials" in banner

    ping = requests.post(service.url + "/webhooks/github", timeout=5,
                         **signed(secret, "ping", {"zen": "hi", "hook_id": 1}, "d-1"))
    assert ping.status_code == 200
    accepted = requests.post(service.url + "/webhooks/github", timeout=5,
                             **signed(secret, "pull_request", PULL_REQUEST, "d-2"))
    assert accepted.status_code == 202 and accepted.json()["jobs"]
    forged = requests.post(service.url + "/webhooks/github", timeout=5,
                           **signed("not-the-secret", "pull_request", PULL_REQUEST, "d-3"))
    assert forged.status_code == 401
    gitlab = requests.post(service.url + "/webhooks/gitlab", timeout=5, json={"object_kind": "push"},
                           headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret})
    assert gitlab.status_code != 401  # the same generated secret closes both endpoints
    assert service.stop() == 0
    log = "".join(service.lines) + service.rest
    assert " INFO app [" in log and f"github delivery 'd-2' queued jobs {accepted.json()['jobs'][0]}" in log
    assert "could not" not in log
    assert "Warning" not in log  # e.g. gevent's MonkeyPatchWarning, which a first `./dev run` used to print twice

    again = Service(home)
    assert "generated on an earlier run" in again.banner() and (home / "webhook-secret").read_text().strip() == secret
    assert again.stop() == 0


def test_secrets_from_the_environment_are_used_and_never_printed(home):
    service = Service(home, {"MESHBOT_GITHUB_WEBHOOK_SECRET": "s3cret-from-env", "MESHBOT_GITHUB_TOKEN": "t0ken"})
    banner = service.banner()
    assert "s3cret-from-env" not in banner and "webhook secret" not in banner and "t0ken" not in banner
    assert "no GitHub credentials" not in banner and "no GitLab credentials" in banner
    assert not (home / "webhook-secret").exists()
    ok = requests.post(service.url + "/webhooks/github", timeout=5,
                       **signed("s3cret-from-env", "ping", {"zen": "hi"}, "d-1"))
    assert ok.status_code == 200
    closed = requests.post(service.url + "/webhooks/gitlab", timeout=5, json={"object_kind": "push"},
                           headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret-from-env"})
    assert closed.status_code == 401  # GitLab has no secret configured: it stays closed
    ping = json.dumps({"zen": "hi"}).encode()
    assert chunked_github(service.port, "s3cret-from-env", ping, ping) == 200  # gunicorn's chunked input
    prefix = ping + b" " * (25 * 1024 * 1024 - len(ping))  # at the limit, and signed
    assert chunked_github(service.port, "s3cret-from-env", prefix + b"garbage" * 100, prefix) == 413
    assert service.stop() == 0


def test_a_broken_configuration_stops_at_start_with_the_place(home, tmp_path):
    config = tmp_path / "meshbot.yaml"
    config.write_text("releases:\n  tag: release\n")
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--config", str(config)], cwd=ROOT,
                            env={**environment, "MESHBOT_HOME": str(home)}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}:2:8: releases.tag: 'release' must contain {{version}} once" in result.stderr


@pytest.mark.parametrize("listening", [True, False], ids=["listening", "bound"])
def test_a_busy_port_is_refused_before_the_banner_redis_and_workers(home, listening):
    environment = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "MESHBOT_CONFIG")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if listening:
            taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "1"],
                                cwd=ROOT, env={**environment, "MESHBOT_HOME": str(home)}, capture_output=True,
                                text=True, timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"meshbot: port {port} on 127.0.0.1 is in use (another meshbot serve, or another "
                             "service): stop it, or choose another port with --port\n")
    assert not (home / "redis").exists() and not (home / "logs").exists()  # no Redis, no workers started


def test_the_web_application_is_loaded_with_its_startup_objects_frozen():
    """Frozen objects are never walked by the garbage collector: no long pause in the middle of a request."""
    gc.unfreeze()
    try:
        application = load_application()
        assert application.name == "meshbot" and gc.get_freeze_count() > 10_000
        assert gc.isenabled()
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(("environment", "missing"), [
    ({}, ["GitHub", "GitLab"]),
    ({"MESHBOT_GITHUB_TOKEN": "t", "MESHBOT_GITLAB_TOKEN": "t"}, []),
    ({"MESHBOT_GITHUB_APP_ID": "1", "MESHBOT_GITHUB_APP_PRIVATE_KEY": "/k.pem"}, ["GitLab"]),
    ({"MESHBOT_GITHUB_APP_ID": "1", "MESHBOT_GITLAB_TOKEN": "t"}, ["GitHub"]),  # an App needs its key too
    ({"MESHBOT_GITHUB_TOKEN": "", "MESHBOT_GITLAB_TOKEN": "t"}, ["GitHub"]),
])
def test_serve_says_which_forges_it_has_no_credentials_for(environment, missing):
    lines = missing_forge_credentials(environment)
    assert [line.split()[1] for line in lines] == missing
    assert all("deliveries are accepted, but their jobs fail" in line for line in lines)


# ---------------------------------------------------------------------- supervision


def worker_pids(service: Service) -> set[int]:
    """The pids of the RQ workers the service runs now."""
    try:
        children = psutil.Process(service.process.pid).children()
    except psutil.NoSuchProcess:
        return set()
    pids = set()
    for child in children:
        try:
            if "bot.cli worker" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                pids.add(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return pids


def readyz(service: Service) -> int:
    try:
        return requests.get(service.url + "/readyz", timeout=5).status_code
    except requests.RequestException:
        return 0


def test_a_killed_worker_is_replaced_within_2_s_and_readyz_stays_ready(home):
    service = Service(home)
    try:
        wait_for(lambda: readyz(service) == 200, 20, "/readyz to answer 200")
        (pid,) = wait_for(lambda: worker_pids(service), 10, "the worker to run")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        (new,) = wait_for(lambda: worker_pids(service) - {pid}, 5, "a new worker")
        replaced = time.monotonic() - killed
        assert new != pid and replaced < 2.0, f"replaced after {replaced:.2f} s"
        wait_for(lambda: readyz(service) == 200, 10, "/readyz to answer 200 with the new worker")
    finally:
        assert service.stop() == 0
    log = "".join(service.lines) + service.rest
    assert f"local worker 0 (pid {pid}) exited" in log and "; replacing it" in log
    assert "local worker 0 replaced" in log


def test_a_killed_embedded_redis_is_restarted_on_the_same_data(home):
    service = Service(home, {"MESHBOT_GITHUB_WEBHOOK_SECRET": "s3cret"})
    try:
        wait_for(lambda: readyz(service) == 200, 20, "/readyz to answer 200")
        first = requests.post(service.url + "/webhooks/github", timeout=5,
                              **signed("s3cret", "pull_request", PULL_REQUEST, "before"))
        assert first.status_code == 202
        (server,) = servers_of(home)
        server.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: [process for process in servers_of(home) if process.pid != server.pid], 10,
                 "a new embedded redis-server")
        wait_for(lambda: readyz(service) == 200, 10, "/readyz to answer 200 again")
        ready = time.monotonic() - killed
        assert ready < 10, f"ready again after {ready:.2f} s"
        again = requests.post(service.url + "/webhooks/github", timeout=5,
                              **signed("s3cret", "pull_request", PULL_REQUEST, "before"))
        assert again.status_code == 200 and "received before" in again.json()["ignored"]  # the same data
        after = requests.post(service.url + "/webhooks/github", timeout=5,
                              **signed("s3cret", "pull_request", PULL_REQUEST, "after"))
        assert after.status_code == 202
    finally:
        assert service.stop() == 0
    assert "the embedded Redis server (pid" in service.rest + "".join(service.lines)


SLOW_CLIENTS = 64
SlowClients = list[tuple[str, float, socket.socket]]  # kind, when opened, the connection


def open_slow_clients(port: int, count: int) -> SlowClients:
    """count slow-loris connections: even ones never finish their headers, odd ones never finish their body."""
    clients = []
    for index in range(count):
        kind = "headers" if index % 2 == 0 else "body"
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        start = "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if kind == "body":
            start += "X-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"
        connection.sendall(start.encode())
        clients.append((kind, time.monotonic(), connection))
    return clients


def trickle(clients: SlowClients, stop: threading.Event) -> None:
    """One byte a second on every slow connection until stop (ones the server closed are skipped)."""
    while not stop.wait(1.0):
        for _, _, connection in clients:
            try:
                connection.send(b"X")
            except OSError:
                pass


def endings(clients: SlowClients, deadline: float) -> dict[socket.socket, tuple[float, bytes]]:
    """When the server answered or closed each connection (time.monotonic()), and what it sent, up to deadline."""
    ends: dict[socket.socket, tuple[float, bytes]] = {}
    while len(ends) < len(clients) and time.monotonic() < deadline:
        waiting = [connection for _, _, connection in clients if connection not in ends]
        readable, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for connection in readable:
            ends[connection] = (time.monotonic(), connection.recv(4096))
    return ends


def test_slow_clients_do_not_delay_a_signed_delivery_and_are_closed_by_their_read_deadlines(home):
    service = Service(home, {"MESHBOT_GITHUB_WEBHOOK_SECRET": "s3cret"})  # one web worker
    stop = threading.Event()
    clients = open_slow_clients(service.port, SLOW_CLIENTS)
    trickler = threading.Thread(target=trickle, args=(clients, stop), daemon=True)
    trickler.start()
    try:
        time.sleep(0.5)  # not for correctness: lets the server accept the slow connections before the deliveries
        for number in range(3):
            began = time.monotonic()
            answer = requests.post(service.url + "/webhooks/github", timeout=30,
                                   **signed("s3cret", "pull_request", PULL_REQUEST, f"slow-{number}"))
            took = time.monotonic() - began
            assert answer.status_code == 202 and took < 1.0, f"{answer.status_code} after {took:.2f} s"
        ends = endings(clients, clients[-1][1] + BODY_DEADLINE_SECONDS + 5)
    finally:
        stop.set()
        trickler.join()
        for _, _, connection in clients:
            connection.close()
        assert service.stop() == 0
    assert len(ends) == len(clients), f"{len(clients) - len(ends)} slow connections still open"
    for kind, opened, connection in clients:
        at, reply = ends[connection]
        deadline = HEADER_DEADLINE_SECONDS if kind == "headers" else BODY_DEADLINE_SECONDS
        assert deadline - 0.5 <= at - opened <= deadline + 5, f"{kind}: closed after {at - opened:.1f} s"
        # a trickled body gets 408 (the application's deadline); trickled headers are just closed
        assert reply.startswith(b"HTTP/1.1 408 ") if kind == "body" else reply == b"", (kind, reply[:40])
