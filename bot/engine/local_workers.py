"""Which Redis the deploy commands use, and the local worker subprocesses run beside the embedded server.

LocalWorkers.supervise() keeps them running: a worker that exits or is killed is replaced within a second, with
back-off (1, 2, 4 ... 30 s) while replacements keep dying, and a hook (serve's: the embedded Redis) runs each round.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import redis

from bot.engine.redis_connection import REDIS_URL_ENVIRONMENT_VARIABLE, connect, embedded_url, redis_url
from bot.home import meshbot_home

ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_SECONDS = 10.0  # after SIGTERM, a worker finishes its current job; then it gets SIGKILL
LOG_FOLDER = "logs"
SUPERVISE_SECONDS = 0.2  # how often the supervisor looks at the workers
STABLE_SECONDS = 10.0  # a worker that ran this long before exiting is replaced at once; sooner: with back-off
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger("meshbot.supervisor")


@dataclass
class RedisChoice:
    """The Redis server to use: a URL (REDIS_URL, else the configuration's redis_url), or the embedded one."""

    url: str
    embedded: bool
    connection: redis.Redis


def choose_redis(configured: str | None, ride_out: bool = False) -> RedisChoice:
    """REDIS_URL wins (it may carry credentials), then the configuration's redis_url, else the embedded server.

    ride_out: the connection retries through a Redis outage (connect(ride_out=True)), for workers and deploys.
    """
    url = redis_url() or configured
    if url:
        return RedisChoice(url, False, connect(url, ride_out=ride_out))
    connection = connect(ride_out=ride_out)  # starts (or joins) the embedded server; this process holds it until exit
    return RedisChoice(embedded_url(), True, connection)


def shown_url(url: str) -> str:
    """url with any password masked, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, parts.query, parts.fragment))


@dataclass
class LocalWorkers:
    """`meshbot worker` subprocesses on the embedded server, for as long as one command runs."""

    url: str
    count: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_path: Path | None = None
    _log: IO[bytes] | None = None
    _started: list[float] = field(default_factory=list)  # when each slot's process started (monotonic)
    _delays: list[float] = field(default_factory=list)  # each slot's last back-off
    _due: list[float | None] = field(default_factory=list)  # when a dead slot's replacement starts
    _generation: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Start count workers; their output goes to MESHBOT_HOME/logs/workers.log."""
        folder = meshbot_home() / LOG_FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        self.log_path = folder / "workers.log"
        self._log = self.log_path.open("ab")
        for index in range(self.count):
            self.processes.append(self._spawn(index, replacing=False))
            self._started.append(time.monotonic())
            self._delays.append(0.0)
            self._due.append(None)

    def _spawn(self, index: int, replacing: bool = True) -> subprocess.Popen[bytes]:
        """One `meshbot worker` process for slot index, under a name no earlier worker had (RQ refuses to register
        a name whose key a killed worker left behind)."""
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
        environment = {**os.environ, REDIS_URL_ENVIRONMENT_VARIABLE: self.url, "PYTHONPATH": python_path}
        name = f"local-{os.getpid()}-{index}"
        if replacing:
            self._generation += 1
            name += f"-{self._generation}"
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", "--name", name, "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=environment, cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches this process only; it stops the workers itself
        )

    def alive(self) -> int:
        """How many workers still run."""
        return sum(1 for process in self.processes if process.poll() is None)

    def supervise(self, each_round: Callable[[], None] | None = None) -> threading.Thread:
        """Start a thread that replaces workers that exit, and runs each_round (errors logged) every round."""
        def loop() -> None:
            while not self._stopping.wait(SUPERVISE_SECONDS):
                if each_round is not None:
                    try:
                        each_round()
                    except Exception:  # the supervisor must outlive whatever one round does
                        log.exception("supervision round failed")
                self.replace_exited(time.monotonic())

        self._supervisor = threading.Thread(target=loop, name="meshbot-supervisor", daemon=True)
        self._supervisor.start()
        return self._supervisor

    def replace_exited(self, now: float) -> None:
        """Replace each worker that has exited, once its back-off has passed."""
        for index, process in enumerate(self.processes):
            code = process.poll()
            if code is None or self._stopping.is_set():
                continue
            if self._due[index] is None:
                delay = restart_delay(self._delays[index], now - self._started[index])
                self._delays[index], self._due[index] = delay, now + delay
                # 0 also when another waitpid() reaped it first (gunicorn's master reaps every child)
                how = f" (signal {-code})" if code < 0 else f" (status {code})" if code else ""
                log.warning("local worker %d (pid %d) exited%s; replacing it%s", index, process.pid, how,
                            f" in {delay:g} s" if delay else "")
            due = self._due[index]
            if due is not None and now >= due:
                self.processes[index] = self._spawn(index)
                self._started[index], self._due[index] = time.monotonic(), None
                log.warning("local worker %d replaced: pid %d", index, self.processes[index].pid)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (each finishes its current job), then SIGKILL those still running after grace."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


def restart_delay(previous: float, lived: float) -> float:
    """How long to wait before replacing a worker that ran lived seconds: none after a long run, else back-off
    doubling from 1 s up to MAX_BACKOFF_SECONDS while replacements keep dying."""
    if lived >= STABLE_SECONDS:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, max(1.0, previous * 2))


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """In a local worker: SIGTERM ourselves (a warm shutdown) when the meshbot process that started us is gone."""
    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="meshbot-parent-watch", daemon=True).start()
