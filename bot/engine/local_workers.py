"""Which Redis the deploy commands use, and the local worker subprocesses run beside the embedded server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
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

    def start(self) -> None:
        """Start count workers; their output goes to MESHBOT_HOME/logs/workers.log."""
        folder = meshbot_home() / LOG_FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        self.log_path = folder / "workers.log"
        self._log = self.log_path.open("ab")
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
        environment = {**os.environ, REDIS_URL_ENVIRONMENT_VARIABLE: self.url, "PYTHONPATH": python_path}
        for index in range(self.count):
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "worker", "--name", f"local-{os.getpid()}-{index}",
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=environment, cwd=ROOT,
                start_new_session=True,  # Ctrl-C reaches this process only; it stops the workers itself
            ))

    def alive(self) -> int:
        """How many workers still run."""
        return sum(1 for process in self.processes if process.poll() is None)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (each finishes its current job), then SIGKILL those still running after grace."""
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


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """In a local worker: SIGTERM ourselves (a warm shutdown) when the meshbot process that started us is gone."""
    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="meshbot-parent-watch", daemon=True).start()
