"""Chaos run: faults injected into a real `meshbot serve` while it reviews merge requests and deploys release tags.

Starts, each for real on 127.0.0.1: an external redis-server (append-only file fsynced at every write), the local
GitHub test server (a thread) holding the example data product, the reference SQLite tech adapter (a process) for
the storage template and, for the output port template, a slow proxy in front of it that answers 500 or hangs on
demand (a thread), and `meshbot serve` (a process: REDIS_URL on the external Redis, its adapters, the GitHub test
server, a webhook secret, the catch-up sweep on the repository every 15 s).

Workload (a thread, until the faults end): signed GitHub deliveries as GitHub sends them, answered or not, never
retried: merge request events (opened, then synchronize after each push) for a few merge requests, and release
tags, each a new version committed on main, that deploy to production. Every delivery's HTTP answer is recorded
(202/200 accepted; 5xx or no answer within GitHub's 10 s refused).

Faults, at random moments (seeded): an RQ worker SIGKILLed, Redis restarted (SIGTERM, start on the same data),
Redis SIGKILLed then started, the adapter answering 500 or hanging for a while, a burst of slow-loris clients.
After each fault's end, the time until /readyz answers 200 again.

At the end, after a settle period: every deployment terminal, DEPLOYED unless an adapter fault overlapped it, no
lock or waiting queue left, exactly one governance comment per merge request, every accepted delivery's jobs
finished and its outcome on GitHub (governance status on each merge request's last head, a final deploy status
on each accepted tag's commit), one deployment per version at most, and a final release DEPLOYED (status API).

    python benchmarks/chaos.py                    # 50 faults (about 6 to 10 minutes)
    python benchmarks/chaos.py --faults 6 --seed 7 --json

Exits 1 when an invariant does not hold (each violation printed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from bot.engine.deployment import DeploymentState  # noqa: E402
from bot.engine.store import ACTIVE_KEY, PREFIX, as_text, deployment_key, history_key  # noqa: E402
from bot.forge.review import MARKER, STATUS_CONTEXT  # noqa: E402
from tests.e2e.test_github import example_files, pull_request_payload, push_payload  # noqa: E402
from tests.engine.redis_process import RedisProcess  # noqa: E402
from tests.servers.github import FakeRepository, GitHubServer, github_server  # noqa: E402

SECRET = "chaos-webhook-secret"
API_TOKEN = "chaos-api-token"
PROJECT = "acme-data/finance-cashflow"
PRODUCT = "urn:dmb:dp:finance:cashflow:1"
ENVIRONMENT = "production"
DEPLOY_CONTEXT = f"meshbot/deploy/{ENVIRONMENT}"
ZERO_SHA = "0" * 40
DELIVERY_TIMEOUT = 10.0  # GitHub gives up on a delivery after 10 s
READY_DEADLINE = 60.0
KINDS = ("worker-sigkill", "redis-restart", "redis-sigkill", "adapter-500", "adapter-hang", "slow-clients")
FINAL_STATES = {"success", "failure", "error"}


# ---------------------------------------------------------------------- records


@dataclass
class Delivery:
    """One webhook delivery sent and how meshbot answered it (0: no answer within 10 s)."""

    id: str
    kind: str  # "review" or "release"
    target: str  # the merge request number or the tag
    sha: str
    status: int
    jobs: list[str]
    sent: float

    @property
    def accepted(self) -> bool:
        """meshbot took it (202 with jobs, or 200)."""
        return self.status in (200, 202)


@dataclass
class Fault:
    """One fault: its kind, when it started and ended (seconds since the run began), and the time to ready."""

    kind: str
    started: float
    ended: float
    ready_after: float | None = None
    detail: str = ""


# ---------------------------------------------------------------------- the slow, breakable adapter


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """meshbot gave up on a hung request (its timeout): a broken pipe here is expected."""


class FaultyAdapter:
    """A proxy in front of the reference adapter: slow (50-300 ms per request), and 500 or hanging on demand."""

    def __init__(self, upstream: str, seed: int) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path
        self.rng = random.Random(seed)
        self.failing_until = 0.0
        self.hanging_until = 0.0
        self.stopping = threading.Event()
        self.requests = 0
        self.failed = 0
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                """Forward a GET."""
                adapter.handle(self)

            def do_POST(self) -> None:
                """Forward a POST."""
                adapter.handle(self)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Its Tech Adapter API base URL."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.prefix}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Delay, then fail, hang or forward one request."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        self.requests += 1
        self.stopping.wait(self.rng.uniform(0.05, 0.3))
        while time.monotonic() < self.hanging_until and not self.stopping.wait(0.05):
            pass  # a hung adapter: the request waits, then goes on
        if time.monotonic() < self.failing_until:
            self.failed += 1
            self._answer(handler, 500, b'{"error": "chaos: internal error"}', "application/json")
            return
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            connection.request(handler.command, handler.path, body=body or None,
                               headers={"Content-Type": handler.headers.get("Content-Type", "application/json")})
            answer = connection.getresponse()
            self._answer(handler, answer.status, answer.read(), answer.getheader("Content-Type", "application/json"))
        except OSError as error:
            self._answer(handler, 502, json.dumps({"error": str(error)}).encode(), "application/json")
        finally:
            connection.close()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def start(self) -> None:
        """Serve in a thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------- the system under test


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll condition until it returns something true; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def server_configuration(storage_url: str, outputport_url: str, catch_up_seconds: int) -> str:
    """The server configuration of the chaos run."""
    return "\n".join([
        "adapters:",
        f"  - infrastructureTemplateId: {STORAGE_TEMPLATE_ID}", f"    url: {storage_url}", "    timeout: 30",
        f"  - infrastructureTemplateId: {OUTPUT_PORT_TEMPLATE_ID}", f"    url: {outputport_url}", "    timeout: 30",
        "environments: [development, production]",
        "releases:", f"  environments: [{ENVIRONMENT}]",
        "deployments: {history: 1000}",
        "catch_up:", f"  interval_seconds: {catch_up_seconds}", "  redeliver: false",
        "  repositories:", f"    github: [{PROJECT}]",
        "",
    ])


class System:
    """Every process and server of the run, started by start() and stopped by stop()."""

    def __init__(self, folder: Path, seed: int, web_workers: int, workers: int, catch_up_seconds: int) -> None:
        self.folder, self.seed = folder, seed
        self.web_workers, self.workers, self.catch_up_seconds = web_workers, workers, catch_up_seconds
        self.redis = RedisProcess(folder / "redis")
        self.github: GitHubServer | None = None
        self.repository: FakeRepository | None = None
        self.adapter_process: subprocess.Popen[bytes] | None = None
        self.adapter: FaultyAdapter | None = None
        self.serve: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._stack = contextlib.ExitStack()

    @property
    def url(self) -> str:
        """meshbot serve's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A short-timeout client of the external Redis (for the checks)."""
        return redis.Redis(unix_socket_path=str(self.redis.socket), socket_connect_timeout=2, socket_timeout=5)

    def start(self) -> None:
        """Start everything and wait until /readyz answers 200."""
        self.redis.start()
        self.github = self._stack.enter_context(github_server())
        self.repository = self.github.create_repository(PROJECT, example_files())
        adapter_port = free_port()
        self.adapter_process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "adapter", "serve", "--port", str(adapter_port),
             "--db", str(self.folder / "adapter.db")], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "adapter.log", "wb"))
        wait_until(lambda: _listening(adapter_port), 30, "the reference adapter")
        reference_url = f"http://127.0.0.1:{adapter_port}/datamesh.specificprovisioner"
        self.adapter = FaultyAdapter(reference_url, self.seed)
        self.adapter.start()
        config = self.folder / "meshbot.yaml"
        config.write_text(server_configuration(reference_url, self.adapter.url, self.catch_up_seconds))
        self.port = free_port()
        environment = {key: value for key, value in os.environ.items() if not key.startswith("MESHBOT_")}
        environment.update({
            "REDIS_URL": self.redis.url, "MESHBOT_HOME": str(self.folder / "home"), "MESHBOT_CONFIG": str(config),
            "MESHBOT_GITHUB_WEBHOOK_SECRET": SECRET, "MESHBOT_GITHUB_TOKEN": self.github.token,
            "MESHBOT_GITHUB_API_URL": self.github.api_url, "MESHBOT_GITHUB_SECONDS_BETWEEN_WRITES": "0",
            "MESHBOT_API_TOKEN": API_TOKEN, "MESHBOT_BOT_USERNAME": "meshbot",
        })
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port), "--workers", str(self.workers),
             "--web-workers", str(self.web_workers)], cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "serve.log", "wb"))
        wait_until(self._ready_or_exited, 60, "meshbot serve's /readyz to answer 200")

    def _ready_or_exited(self) -> bool:
        assert self.serve is not None
        if self.serve.poll() is not None:
            raise RuntimeError(f"meshbot serve exited {self.serve.returncode}: {self.log('serve.log')[-3000:]}")
        return self.ready()

    def ready(self) -> bool:
        """Whether /readyz answers 200."""
        try:
            return requests.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        """The RQ worker processes serve runs now."""
        assert self.serve is not None
        pids = []
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.serve.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                    if "bot.cli worker" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                        pids.append(child.pid)
        return sorted(pids)

    def log(self, name: str) -> str:
        """A log file of the run."""
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop serve (SIGTERM), the adapters, the GitHub server and Redis."""
        if self.serve is not None and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(40)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.serve.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                self.serve.kill()
                self.serve.wait(10)
        if self.adapter is not None:
            self.adapter.stop()
        if self.adapter_process is not None and self.adapter_process.poll() is None:
            self.adapter_process.terminate()
            self.adapter_process.wait(10)
        self._stack.close()
        self.redis.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------- the workload


class Workload:
    """Sends merge request and release deliveries, as GitHub would, in a thread until stopped."""

    def __init__(self, system: System, seed: int, merge_requests: int, release_every: float, clock: float) -> None:
        self.system = system
        self.rng = random.Random(seed + 1)
        self.release_every = release_every
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self.pulls: dict[int, list[str]] = {}  # number -> heads pushed, oldest first
        self.numbers: dict[int, int] = {}  # merge request index -> its number
        self.versions: dict[str, str] = {}  # tag -> sha
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaos-workload", daemon=True)
        self._merge_requests = merge_requests
        self._last_release = 0.0
        self._minor = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start sending."""
        self.thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the thread."""
        self.stop_event.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.stop_event.wait(self.rng.uniform(0.3, 1.0)):
            if time.monotonic() - self._last_release > self.release_every:
                self._last_release = time.monotonic()
                self.release()
            else:
                self.merge_request_event(self.rng.randrange(self._merge_requests))

    def merge_request_event(self, index: int) -> Delivery:
        """Push to merge request index's branch (opening it the first time) and send its delivery."""
        repository = self.system.repository
        assert repository is not None
        base = repository.branch_head("main")
        assert base is not None
        branch = f"feature/chaos-{index}"
        content = f"# Cash flow\n\nchange {uuid.uuid4()}\n".encode()
        if index not in self.numbers:
            head = repository.push(branch, {"README.md": content}, start="main", message=f"Start {branch}")
            number = repository.open_pull_request(branch, title=f"Chaos {index}")
            self.numbers[index] = number
            self.pulls[number] = [head]
            payload = pull_request_payload("opened", number, branch, head, base)
        else:
            number = self.numbers[index]
            before = self.pulls[number][-1]
            head = repository.push(branch, {"README.md": content}, message=f"Push to {branch}")
            self.pulls[number].append(head)
            payload = pull_request_payload("synchronize", number, branch, head, base, before=before)
        return self.send("pull_request", payload, "review", str(number), head)

    def release(self) -> Delivery:
        """Commit a new version on main, tag it v1.N.0 and send the tag's push delivery."""
        repository = self.system.repository
        assert repository is not None
        self._minor += 1
        version = f"1.{self._minor}.0"
        catalog = example_files()["catalog-info.yaml"].replace(b"version: 1.0.0", f"version: {version}".encode())
        repository.push("main", {"catalog-info.yaml": catalog}, message=f"Release {version}")
        tag = f"v{version}"
        sha = repository.create_tag(tag, "main")
        self.versions[tag] = sha
        return self.send("push", push_payload(f"refs/tags/{tag}", ZERO_SHA, sha), "release", tag, sha)

    def send(self, event: str, payload: dict[str, Any], kind: str, target: str, sha: str) -> Delivery:
        """POST one signed delivery, once, and record the answer."""
        body = json.dumps(payload).encode()
        delivery_id = str(uuid.uuid4())
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id, "Content-Type": "application/json",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
                   "User-Agent": "GitHub-Hookshot/chaos"}
        sent = time.monotonic() - self.clock
        try:
            answer = requests.post(self.system.url + "/webhooks/github", data=body, headers=headers,
                                   timeout=DELIVERY_TIMEOUT)
            status = answer.status_code
            jobs = list(answer.json().get("jobs", [])) if status == 202 else []
        except (requests.RequestException, ValueError):
            status, jobs = 0, []
        delivery = Delivery(delivery_id, kind, target, sha, status, jobs, sent)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def snapshot(self) -> list[Delivery]:
        """The deliveries sent so far."""
        with self._lock:
            return list(self.deliveries)


# ---------------------------------------------------------------------- watching jobs and deployments


class Auditor:
    """Polls Redis (when it answers) for the accepted deliveries' jobs and every deployment's state."""

    def __init__(self, system: System, workload: Workload) -> None:
        self.system, self.workload = system, workload
        self.job_status: dict[str, str] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaos-auditor", daemon=True)

    def start(self) -> None:
        """Start polling every second."""
        self.thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self.stop_event.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.stop_event.wait(1.0):
            with contextlib.suppress(redis.RedisError, OSError):
                self.poll()

    def poll(self) -> None:
        """Record the status of every job not yet seen finished, and the state of every deployment."""
        connection = self.system.client()
        try:
            pending = [job for delivery in self.workload.snapshot() for job in delivery.jobs
                       if self.job_status.get(job) != "finished"]
            if pending:
                with connection.pipeline(transaction=False) as pipeline:
                    for job in pending:
                        pipeline.hget(f"rq:job:{job}", "status")
                    for job, status in zip(pending, pipeline.execute(), strict=True):
                        if status is not None:
                            self.job_status[job] = as_text(status)
                        elif job not in self.job_status:
                            self.job_status[job] = "missing"
            for deployment_id in (as_text(item) for item in
                                  connection.lrange(history_key(PRODUCT, ENVIRONMENT), 0, -1)):
                known = self.deployments.get(deployment_id)
                if known is not None and DeploymentState(known["state"]).finished:
                    continue
                fields = {as_text(key): as_text(value) for key, value in
                          connection.hgetall(deployment_key(deployment_id)).items()}
                if fields:
                    record = json.loads(fields.get("record", "{}"))
                    self.deployments[deployment_id] = {
                        "state": fields.get("state", ""), "message": fields.get("message", ""),
                        "version": record.get("version"), "createdAt": record.get("createdAt"),
                        "finishedAt": fields.get("finishedAt")}
        finally:
            connection.close()


# ---------------------------------------------------------------------- faults


class Injector:
    """Injects one fault of a kind and returns when it has ended."""

    def __init__(self, system: System, rng: random.Random, clock: float) -> None:
        self.system, self.rng, self.clock = system, rng, clock
        self.adapter_windows: list[tuple[float, float]] = []  # wall-clock (epoch) intervals of adapter faults

    def inject(self, kind: str) -> Fault:
        """Inject one fault of kind; the record (ready_after measured later)."""
        started = time.monotonic() - self.clock
        detail = getattr(self, "_" + kind.replace("-", "_"))()
        return Fault(kind, started, time.monotonic() - self.clock, detail=detail)

    def _worker_sigkill(self) -> str:
        pids = wait_until(self.system.worker_pids, 30, "an RQ worker of meshbot serve")
        pid = self.rng.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return f"pid {pid} of {pids}"

    def _redis_restart(self) -> str:
        process = self.system.redis.process
        assert process is not None
        process.send_signal(signal.SIGTERM)  # redis-server shuts down cleanly (the AOF is already on disk)
        process.wait(30)
        if self.system.redis.socket.exists():
            os.unlink(self.system.redis.socket)
        down = self.rng.uniform(0.5, 3.0)
        time.sleep(down)
        self.system.redis.start()
        return f"down {down:.1f} s"

    def _redis_sigkill(self) -> str:
        self.system.redis.kill()
        down = self.rng.uniform(0.5, 5.0)
        time.sleep(down)
        self.system.redis.start()
        return f"down {down:.1f} s"

    def _adapter_window(self, attribute: str) -> str:
        adapter = self.system.adapter
        assert adapter is not None
        seconds = self.rng.uniform(2.0, 6.0)
        begin = time.time()
        setattr(adapter, attribute, time.monotonic() + seconds)
        time.sleep(seconds)
        self.adapter_windows.append((begin, time.time()))
        return f"{seconds:.1f} s"

    def _adapter_500(self) -> str:
        return self._adapter_window("failing_until")

    def _adapter_hang(self) -> str:
        return self._adapter_window("hanging_until")

    def _slow_clients(self) -> str:
        count, seconds = self.rng.randint(4, 10), self.rng.uniform(2.0, 5.0)
        sockets = []
        for _ in range(count):
            with contextlib.suppress(OSError):
                client = socket.create_connection(("127.0.0.1", self.system.port), timeout=2)
                client.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sockets.append(client)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # one header byte at a time, never the end of the headers
            time.sleep(0.5)
            for client in sockets:
                with contextlib.suppress(OSError):
                    client.sendall(b"X")
        for client in sockets:
            client.close()
        return f"{len(sockets)} clients for {seconds:.1f} s"


def fault_plan(count: int, rng: random.Random) -> list[str]:
    """count fault kinds: each round of six holds every kind once, in a random order."""
    plan: list[str] = []
    while len(plan) < count:
        block = list(KINDS)
        rng.shuffle(block)
        plan.extend(block)
    return plan[:count]


def time_to_ready(system: System, since: float) -> float | None:
    """Seconds from since (monotonic) until /readyz answers 200, or None past READY_DEADLINE."""
    while time.monotonic() - since < READY_DEADLINE:
        if system.ready():
            return time.monotonic() - since
        time.sleep(0.05)
    return None


# ---------------------------------------------------------------------- the run


@dataclass
class Options:
    """What to run."""

    faults: int = 50
    seed: int = 1
    merge_requests: int = 3
    release_every: float = 6.0
    gap: tuple[float, float] = (1.0, 4.0)
    settle_timeout: float = 240.0
    web_workers: int = 2
    workers: int = 2
    catch_up_seconds: int = 15
    folder: Path | None = None


@dataclass
class Report:
    """What happened and what the checks found."""

    options: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"options": self.options, "figures": self.figures, "violations": self.violations,
                "faults": [asdict(fault) for fault in self.faults]}


def run(options: Options, say: Callable[[str], None] = lambda line: None) -> Report:
    """Start the system, inject the faults under load, settle, check; the report."""
    with contextlib.ExitStack() as stack:
        folder = options.folder or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshbot-chaos-")))
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the GitHub server's request lines
        system = System(folder, options.seed, options.web_workers, options.workers, options.catch_up_seconds)
        stack.callback(system.stop)
        started = time.monotonic()
        system.start()
        say(f"started in {time.monotonic() - started:.1f} s: serve {system.url}, redis {system.redis.url}")
        rng = random.Random(options.seed)
        clock = time.monotonic()
        workload = Workload(system, options.seed, options.merge_requests, options.release_every, clock)
        auditor = Auditor(system, workload)
        injector = Injector(system, rng, clock)
        report = Report(options={key: str(value) if isinstance(value, Path) else value
                                 for key, value in asdict(options).items()})
        workload.start()
        auditor.start()
        try:
            for number, kind in enumerate(fault_plan(options.faults, rng), 1):
                time.sleep(rng.uniform(*options.gap))
                fault = injector.inject(kind)
                fault.ready_after = time_to_ready(system, clock + fault.ended)
                report.faults.append(fault)
                ready = "never" if fault.ready_after is None else f"{fault.ready_after:.2f} s"
                say(f"fault {number:>3}/{options.faults} {kind:<15} {fault.detail:<28} ready after {ready}")
        finally:
            workload.stop()
        faults_ended = time.monotonic()
        settled = settle(system, workload, auditor, options.settle_timeout)
        say(f"settled in {time.monotonic() - faults_ended:.1f} s" if settled
            else f"not settled after {options.settle_timeout:.0f} s")
        final = final_release(system, workload, auditor)
        auditor.stop()
        auditor.poll()
        report.deliveries = workload.snapshot()
        check(report, system, workload, auditor, injector, final)
        report.figures["settleSeconds"] = round(time.monotonic() - faults_ended, 1)
        report.figures["runSeconds"] = round(time.monotonic() - clock, 1)
        report.figures["adapterRequests"] = system.adapter.requests if system.adapter else 0
        return report


def settle(system: System, workload: Workload, auditor: Auditor, timeout: float) -> bool:
    """Wait until every accepted job has finished (or failed for good) and no deployment is active."""
    def quiet() -> bool:
        with contextlib.suppress(redis.RedisError, OSError):
            auditor.poll()
            connection = system.client()
            try:
                busy = connection.scard(ACTIVE_KEY) or connection.llen("rq:queue:meshbot")
            finally:
                connection.close()
            open_jobs = [job for delivery in workload.snapshot() for job in delivery.jobs
                         if auditor.job_status.get(job) not in ("finished", "failed", "missing")]
            return not busy and not open_jobs
        return False

    def caught_up() -> bool:
        """What the catch-up sweep recovers: each merge request's last head reviewed, the newest tag released."""
        newest = max(workload.versions.items(), key=lambda item: tuple(map(int, item[0][1:].split("."))),
                     default=None)
        return all(_statuses(system, heads[-1], STATUS_CONTEXT) for heads in workload.pulls.values()) and \
            (newest is None or bool(_final_deploy_status(system, newest[1])))

    try:
        wait_until(quiet, timeout, "the jobs and deployments to end", every=1.0)
    except RuntimeError:
        return False
    with contextlib.suppress(RuntimeError):  # the sweep runs every catch_up_seconds: give it three rounds
        wait_until(lambda: caught_up() and quiet(), 3 * system.catch_up_seconds + 10, "the catch-up sweep",
                   every=1.0)
    return True


def final_release(system: System, workload: Workload, auditor: Auditor) -> dict[str, Any]:
    """One more release with no fault running: its status through the status API once it has ended."""
    delivery = workload.release()
    if not delivery.accepted:
        return {"delivery": delivery.status, "status": None}

    def ended() -> dict[str, Any] | None:
        with contextlib.suppress(requests.RequestException, ValueError):
            answer = requests.get(f"{system.url}/status/{PRODUCT}", params={"env": ENVIRONMENT}, timeout=5,
                                  headers={"Authorization": f"Bearer {API_TOKEN}"})
            document = answer.json() if answer.status_code == 200 else {}
            if document.get("version") == delivery.target[1:] and document.get("status") != "IN_PROGRESS":
                return document
            deployment = document.get("deployment") or {}
            if deployment.get("version") == delivery.target[1:] and \
                    DeploymentState(deployment.get("state", "QUEUED")).finished:
                return document
        return None

    try:
        document = wait_until(ended, 120, f"the final release {delivery.target}", every=0.5)
    except RuntimeError:
        return {"delivery": delivery.status, "status": None, "tag": delivery.target}
    wait_until(lambda: _final_deploy_status(system, delivery.sha), 30, "the final release's commit status")
    return {"delivery": delivery.status, "status": document.get("status"), "version": document.get("version"),
            "tag": delivery.target}


def _final_deploy_status(system: System, sha: str) -> str | None:
    statuses = _statuses(system, sha, DEPLOY_CONTEXT)
    return statuses[-1] if statuses and statuses[-1] in FINAL_STATES else None


def _statuses(system: System, sha: str, context: str) -> list[str]:
    assert system.github is not None and system.repository is not None
    with system.github.lock:
        return [status["state"] for status in system.repository.statuses
                if status["sha"] == sha and status["context"] == context]


# ---------------------------------------------------------------------- the checks


def check(report: Report, system: System, workload: Workload, auditor: Auditor, injector: Injector,
          final: dict[str, Any]) -> None:
    """Fill report.figures and report.violations."""
    assert system.github is not None and system.repository is not None
    violations = report.violations
    deliveries = report.deliveries
    accepted = [delivery for delivery in deliveries if delivery.accepted]
    refused = [delivery for delivery in deliveries if not delivery.accepted]

    # every accepted delivery acted on: its jobs finished
    lost = []
    for delivery in accepted:
        statuses = {job: auditor.job_status.get(job, "unknown") for job in delivery.jobs}
        if any(status != "finished" for status in statuses.values()):
            lost.append(delivery)
            violations.append(f"accepted delivery {delivery.id} ({delivery.kind} {delivery.target}, "
                              f"sent at {delivery.sent:.1f} s) not acted on: jobs {statuses}")

    # the outcome on GitHub: each merge request's last head reviewed, each accepted tag's commit with a final status
    for number, heads in workload.pulls.items():
        last = max((heads.index(d.sha) for d in accepted if d.kind == "review" and d.target == str(number)),
                   default=None)  # a review reads the newest head: that of its delivery or a later one
        if last is not None and not any(_statuses(system, head, STATUS_CONTEXT) for head in heads[last:]):
            violations.append(f"merge request {number}: no {STATUS_CONTEXT} status on {heads[last][:8]} or later")
    release_deliveries = [d for d in accepted if d.kind == "release"]
    for delivery in release_deliveries:
        states = _statuses(system, delivery.sha, DEPLOY_CONTEXT)
        if not states or states[-1] not in FINAL_STATES:
            violations.append(f"release {delivery.target}: {DEPLOY_CONTEXT} statuses {states}, none final")

    # exactly one governance comment per merge request
    with system.github.lock:
        comments = [dict(comment) for comment in system.repository.comments.values()]
    duplicate_comments = 0
    for number in workload.pulls:
        ours = [c for c in comments if c["issue"] == number and c["user"] == "meshbot" and c["body"].startswith(MARKER)]
        if len(ours) != 1:
            violations.append(f"merge request {number}: {len(ours)} governance comments")
        duplicate_comments += max(0, len(ours) - 1)

    # deployments: terminal; DEPLOYED unless an adapter fault overlapped them; one per version
    stuck = {key: value for key, value in auditor.deployments.items()
             if not DeploymentState(value["state"]).finished}
    for deployment_id, value in stuck.items():
        violations.append(f"deployment {deployment_id} ({value['version']}) stuck in {value['state']}")
    excused, unexcused = [], []
    for deployment_id, value in auditor.deployments.items():
        if deployment_id in stuck or value["state"] == DeploymentState.DEPLOYED:
            continue
        if _overlaps(value, injector.adapter_windows):
            excused.append(deployment_id)
        else:
            unexcused.append(deployment_id)
            violations.append(f"deployment {deployment_id} ({value['version']}) ended {value['state']} with the "
                              f"adapters up: {value['message']}")
    versions: dict[str, int] = {}
    for value in auditor.deployments.values():
        versions[value["version"]] = versions.get(value["version"], 0) + 1
    duplicate_deployments = {version: count for version, count in versions.items() if count > 1}
    for version, count in duplicate_deployments.items():
        violations.append(f"version {version} deployed {count} times")
    with system.github.lock:
        github_deployments = [dict(record) for record in system.repository.deployments.values()]
    shas: dict[str, int] = {}
    for record in github_deployments:
        shas[record["sha"]] = shas.get(record["sha"], 0) + 1
    for sha, count in shas.items():
        if count > 1:
            violations.append(f"{count} GitHub deployments of {sha[:8]}")

    # nothing left behind
    connection = system.client()
    try:
        locks = sorted(as_text(key) for key in connection.scan_iter(f"{PREFIX}:lock:*"))
        queues = [as_text(key) for key in connection.scan_iter(f"{PREFIX}:queue:*") if connection.llen(key)]
        active = sorted(as_text(item) for item in connection.smembers(ACTIVE_KEY))
    finally:
        connection.close()
    for what, left in (("lock", locks), ("waiting queue", queues), ("active deployment", active)):
        if left:
            violations.append(f"{what}s left: {left}")

    # the final release, no fault running
    if final.get("status") != "DEPLOYED":
        violations.append(f"the final release ended {final}")

    # readiness
    ready = [fault.ready_after for fault in report.faults if fault.ready_after is not None]
    never = [fault for fault in report.faults if fault.ready_after is None]
    slow = [fault for fault in report.faults if fault.ready_after is not None and fault.ready_after > 10.0]
    for fault in never:
        violations.append(f"{fault.kind} at {fault.started:.1f} s: /readyz not 200 within {READY_DEADLINE:.0f} s")
    for fault in slow:
        violations.append(f"{fault.kind} at {fault.started:.1f} s: ready only after {fault.ready_after:.1f} s")

    # refused deliveries: did the catch-up sweep (or a later delivery) make up for them?
    refused_reviews = [d for d in refused if d.kind == "review"]
    refused_releases = [d for d in refused if d.kind == "release"]
    deployment_states: dict[str, int] = {}
    for value in auditor.deployments.values():
        deployment_states[value["state"]] = deployment_states.get(value["state"], 0) + 1
    deployed_versions = {value["version"] for value in auditor.deployments.values()}
    by_kind: dict[str, list[float]] = {}
    for fault in report.faults:
        by_kind.setdefault(fault.kind, []).append(fault.ready_after if fault.ready_after is not None else -1)
    answers: dict[str, int] = {}
    for delivery in deliveries:
        answers[str(delivery.status)] = answers.get(str(delivery.status), 0) + 1
    report.figures.update({
        "faults": len(report.faults),
        "faultsByKind": {kind: len(values) for kind, values in by_kind.items()},
        "readyAfterSeconds": {
            "median": round(statistics.median(ready), 2) if ready else None,
            "max": round(max(ready), 2) if ready else None,
            "byKind": {kind: {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}
                       for kind, values in by_kind.items()},
        },
        "deliveries": {"sent": len(deliveries), "accepted": len(accepted), "refused": len(refused),
                       "answers": answers,
                       "refusedReviews": len(refused_reviews), "refusedReleases": len(refused_releases)},
        "mergeRequests": len(workload.pulls),
        "reviewsAccepted": sum(1 for d in accepted if d.kind == "review"),
        "releasesAccepted": len(release_deliveries),
        "refusedReleasesDeployedAnyway": sum(1 for d in refused_releases if d.target[1:] in deployed_versions),
        "mergeRequestsLastHeadReviewed": sum(1 for heads in workload.pulls.values()
                                             if _statuses(system, heads[-1], STATUS_CONTEXT)),
        "deployments": len(auditor.deployments),
        "deploymentStates": deployment_states,
        "notDeployedDuringAdapterFaults": len(excused),
        "lost": len(lost),
        "stuck": len(stuck),
        "duplicateComments": duplicate_comments,
        "duplicateDeployments": len(duplicate_deployments),
        "locksLeft": len(locks),
        "finalRelease": final,
        "violations": len(violations),
    })


def _overlaps(deployment: dict[str, Any], windows: list[tuple[float, float]]) -> bool:
    """Whether an adapter fault window overlaps the deployment's life (from its creation to its end)."""
    start = _epoch(deployment.get("createdAt"))
    end = _epoch(deployment.get("finishedAt")) or time.time()
    if start is None:
        return True  # nothing to tell: give it the benefit of the doubt
    return any(begin <= end and start <= until for begin, until in windows)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


# ---------------------------------------------------------------------- command line


def summary(report: Report) -> str:
    """The human-readable summary."""
    figures = report.figures
    ready = figures["readyAfterSeconds"]
    lines = [
        f"meshbot chaos run: seed {report.options['seed']}, {figures['faults']} faults "
        f"({', '.join(f'{kind} {count}' for kind, count in figures['faultsByKind'].items())})",
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"run {figures['runSeconds']} s (settle {figures['settleSeconds']} s)",
        f"deliveries: {figures['deliveries']['sent']} sent, {figures['deliveries']['accepted']} accepted, "
        f"{figures['deliveries']['refused']} refused (answers {figures['deliveries']['answers']})",
        f"merge requests: {figures['mergeRequests']}, reviews accepted {figures['reviewsAccepted']}; "
        f"releases accepted {figures['releasesAccepted']}",
        f"deployments: {figures['deployments']} {figures['deploymentStates']} "
        f"({figures['notDeployedDuringAdapterFaults']} not DEPLOYED overlapped an adapter fault)",
        f"lost {figures['lost']}, stuck {figures['stuck']}, duplicate comments {figures['duplicateComments']}, "
        f"duplicate deployments {figures['duplicateDeployments']}, locks left {figures['locksLeft']}",
        f"final release: {figures['finalRelease']}",
        f"time to /readyz 200 after a fault's end: median {ready['median']} s, max {ready['max']} s",
    ]
    lines += [f"  {kind:<15} median {values['median']:.2f} s, max {values['max']:.2f} s"
              for kind, values in ready["byKind"].items()]
    lines.append("violations: none" if not report.violations else f"violations ({len(report.violations)}):")
    lines += [f"  - {violation}" for violation in report.violations]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chaos suite from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=50, help="faults to inject (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="the random seed of the faults (default 1)")
    parser.add_argument("--merge-requests", type=int, default=3, help="merge requests the workload pushes to")
    parser.add_argument("--release-every", type=float, default=6.0, help="seconds between two release tags")
    parser.add_argument("--settle", type=float, default=240.0, help="seconds to wait for the work to end")
    parser.add_argument("--keep", type=Path, help="keep the logs and data in this (new) folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    arguments = parser.parse_args(argv)
    if arguments.keep:
        arguments.keep.mkdir(parents=True)
    options = Options(faults=arguments.faults, seed=arguments.seed, merge_requests=arguments.merge_requests,
                      release_every=arguments.release_every, settle_timeout=arguments.settle, folder=arguments.keep)
    report = run(options, lambda line: print(line, file=sys.stderr, flush=True))
    report.figures["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(json.dumps(report.as_json(), indent=2) if arguments.json else summary(report))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
