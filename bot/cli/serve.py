"""`meshbot serve`: the webhook service under gunicorn, with RQ workers beside it, until stopped.

A supervisor thread replaces RQ workers that exit or are killed, and restarts the embedded Redis on the same data
if it dies (docs/operations.md says why rather than exiting).

The web application (app.py, Flask) and gunicorn are imported only when the command runs, so the domain
never depends on them.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

from bot.descriptor.errors import InputErrors

EXIT_INPUT = 2

logger = logging.getLogger("meshbot.supervisor")


def register(commands: Any) -> None:
    """Add `meshbot serve` to the command line."""
    serve = commands.add_parser("serve", help="run the webhook service (gunicorn) and RQ workers until stopped")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    serve.add_argument("--workers", type=int, default=None,
                       help="RQ worker processes started here (default: the number of cores; 0 when workers run "
                            "elsewhere on REDIS_URL)")
    serve.add_argument("--config", default=None, help="server configuration file (default: $MESHBOT_CONFIG)")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request on stdout (gunicorn's "
                       "access log; it costs about a tenth of a delivery's CPU)")
    serve.set_defaults(handler=_serve_command)


def _serve_command(arguments: argparse.Namespace) -> int:
    from bot.config import CONFIG_ENVIRONMENT_VARIABLE, config_path, load_config
    from bot.engine.local_workers import LocalWorkers, choose_redis, shown_url
    from bot.engine.redis_connection import REDIS_URL_ENVIRONMENT_VARIABLE, EmbeddedRedisError
    from bot.forge.webhook_secret import use_secret_when_none_is_set
    from bot.logs import configure_logging

    configure_logging()  # before gunicorn forks its workers: they inherit it
    path = config_path(arguments.config)
    try:
        config = load_config(path)
    except InputErrors as invalid:
        for error in invalid.errors:
            print(f"meshbot serve: {error}", file=sys.stderr)
        return EXIT_INPUT
    problem = port_problem(arguments.host, arguments.port)
    if problem:
        print(f"meshbot: {problem}", file=sys.stderr)
        return EXIT_INPUT
    if path:
        os.environ[CONFIG_ENVIRONMENT_VARIABLE] = os.path.abspath(path)  # web and RQ workers read the same file
    try:
        choice = choose_redis(config.redis_url)
    except EmbeddedRedisError as error:
        print(f"meshbot serve: {error}", file=sys.stderr)
        return EXIT_INPUT
    os.environ[REDIS_URL_ENVIRONMENT_VARIABLE] = choice.url  # the web workers join the same Redis
    generated = use_secret_when_none_is_set()
    count = arguments.workers if arguments.workers is not None else (os.cpu_count() or 1)
    workers = LocalWorkers(choice.url, count)
    base = f"http://{arguments.host}:{arguments.port}"
    try:
        workers.start()
        workers.supervise(_keep_embedded_redis() if choice.embedded else None)
        print(_banner(base, shown_url(choice.url), choice.embedded, count, generated), flush=True)
        if count and workers.log_path:
            print(f"  worker log:     {workers.log_path}", flush=True)
        for line in missing_forge_credentials(os.environ):
            print(f"  {line}", flush=True)
        _run_gunicorn(f"{arguments.host}:{arguments.port}", arguments.web_workers, arguments.access_log)
    finally:
        workers.stop()
    return 0


def port_problem(host: str, port: int) -> str | None:
    """Why gunicorn could not listen on host:port (in use, no such address), or None; checked by binding it once."""
    if not 0 < port < 65536:
        return f"--port {port} is not a TCP port (1-65535)"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        return f"cannot listen on {host}:{port}: {error}"
    family, kind, protocol, _, address = addresses[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: a TIME_WAIT port is free
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is in use (another meshbot serve, or another service): stop it, "
                        "or choose another port with --port")
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def _banner(base: str, redis_url: str, embedded: bool, workers: int, generated: tuple[str, bool] | None) -> str:
    lines = [
        f"meshbot is serving on {base} ({'embedded ' if embedded else ''}Redis {redis_url}, {workers} RQ "
        f"worker{'s' if workers != 1 else ''})",
        f"  GitHub webhook: {base}/webhooks/github  (content type application/json; events: push, pull requests, "
        "issue comments)",
        f"  GitLab webhook: {base}/webhooks/gitlab  (push, tag push, merge request and comment events)",
        f"  health:         {base}/healthz  (liveness); readiness: {base}/readyz (Redis and workers)",
    ]
    if generated:
        secret, new = generated
        origin = "generated now" if new else "generated on an earlier run"
        lines += [
            f"  webhook secret ({origin}, kept in meshbot's state folder; set MESHBOT_GITHUB_WEBHOOK_SECRET / "
            "MESHBOT_GITLAB_WEBHOOK_SECRET to choose your own):",
            f"    {secret}",
            "  GitHub: paste it as the webhook's Secret; GitLab: as the webhook's Secret token.",
        ]
    return "\n".join(lines)


def _keep_embedded_redis() -> Callable[[], None]:
    """A supervision round for the embedded Redis: if its server died, start it again on the same files."""
    from bot.engine.redis_connection import embedded_server

    pids = [embedded_server().pid]

    def keep() -> None:
        server = embedded_server()  # pings it; one that stopped answering is found again or restarted
        if server.pid != pids[0]:
            logger.warning("the embedded Redis server (pid %d) was gone: restarted it on the same data (pid %d)",
                           pids[0], server.pid)
            pids[0] = server.pid

    return keep


def missing_forge_credentials(environment: Mapping[str, str]) -> list[str]:
    """A warning for each forge meshbot has no credentials for: its deliveries are accepted, its jobs fail."""
    missing = []
    if not environment.get("MESHBOT_GITHUB_TOKEN") and not (
            environment.get("MESHBOT_GITHUB_APP_ID") and environment.get("MESHBOT_GITHUB_APP_PRIVATE_KEY")):
        missing.append("no GitHub credentials (MESHBOT_GITHUB_TOKEN, or MESHBOT_GITHUB_APP_ID and "
                       "MESHBOT_GITHUB_APP_PRIVATE_KEY): GitHub deliveries are accepted, but their jobs fail "
                       "until one is set")
    if not environment.get("MESHBOT_GITLAB_TOKEN"):
        missing.append("no GitLab credentials (MESHBOT_GITLAB_TOKEN): GitLab deliveries are accepted, but their "
                       "jobs fail until it is set")
    return missing


def load_application() -> Any:
    """meshbot's Flask application, with every object that exists by then kept out of garbage collection.

    Without this, a full collection walks the ~70,000 objects of Flask, RQ and redis-py every few thousand
    requests: a pause of 25-50 ms for every delivery waiting on that worker (the webhook benchmark's worst cases).
    """
    from app import create_app

    application = create_app()
    gc.freeze()
    return application


HEADER_DEADLINE_SECONDS = 5  # the request line and headers, from the connection (or the previous answer)
BODY_DEADLINE_SECONDS = 10  # the body, from the headers: GitHub itself gives up on a delivery after 10 s
WORKER_CONNECTIONS = 1000  # per web worker; each slow client holds one for at most the two deadlines above

# How gunicorn serves (docs/operations.md, "Serving model"; docs/benchmarks.md, "Session 4: slow clients" and its
# tuning): gevent.pywsgi, so that a slow client costs a greenlet rather than a whole worker, at less CPU per
# connection than gunicorn's own gevent worker; gevent, sync and gthread are kept for comparison.
SERVING_MODELS: dict[str, dict[str, Any]] = {
    # keepalive: the deadline of every request's line and headers (read_deadline.PyWSGIDeadlineWorker)
    "gevent_pywsgi": {"worker_class": "bot.cli.read_deadline.PyWSGIDeadlineWorker",
                      "worker_connections": WORKER_CONNECTIONS, "keepalive": HEADER_DEADLINE_SECONDS},
    # gevent's keep-alive timeout is also the deadline of every request's line and headers (gunicorn's AsyncWorker)
    "gevent": {"worker_class": "gevent", "worker_connections": WORKER_CONNECTIONS,
               "keepalive": HEADER_DEADLINE_SECONDS},
    "sync": {"worker_class": "sync"},
    "gthread": {"worker_class": "gthread", "threads": 64, "keepalive": 2},
}
DEFAULT_SERVING_MODEL = "gevent_pywsgi"


def _run_gunicorn(bind: str, web_workers: int, access_log: bool = False,
                  model: str = DEFAULT_SERVING_MODEL) -> None:
    from gunicorn.app.base import BaseApplication

    from bot.logs import gunicorn_logger_class, json_logs

    class Service(BaseApplication):  # type: ignore[misc]
        """gunicorn serving meshbot's Flask application."""

        def load_config(self) -> None:
            """gunicorn settings: where to listen, how many workers, the serving model, logs to stderr."""
            settings = {"bind": bind, "workers": max(1, web_workers), "accesslog": "-" if access_log else None,
                        "errorlog": "-", "timeout": 30, "graceful_timeout": 10, "proc_name": "meshbot-web",
                        # gunicorn's control socket would live in ~/.gunicorn, outside meshbot's state folder
                        "control_socket_disable": True, **SERVING_MODELS[model]}
            if json_logs():  # gunicorn's lines (errors, the access log) as meshbot's JSON lines, on stderr
                settings["logger_class"] = gunicorn_logger_class()
            for key, value in settings.items():
                if key in self.cfg.settings:  # older gunicorn versions lack the newer settings
                    self.cfg.set(key, value)

        def load(self) -> Any:
            """The WSGI application, loaded in each web worker."""
            application = load_application()
            if model in ("gevent", "gevent_pywsgi"):
                from bot.cli.read_deadline import with_body_deadline

                return with_body_deadline(application, BODY_DEADLINE_SECONDS)
            return application

    Service().run()
