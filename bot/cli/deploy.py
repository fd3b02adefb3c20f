"""`meshbot deploy`, `undeploy`, `status` and `worker`: the deploy engine from the command line."""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot.cli.common import DEFAULT_ENVIRONMENT
from bot.descriptor.errors import InputErrors
from bot.engine.deployment import DeploymentState, Operation

# Redis and the configuration are imported where a command uses them: every meshbot command registers these.
if TYPE_CHECKING:
    from redis import Redis

    from bot.config import ServerConfig

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LOST_CONTACT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
NOT_VALIDATED_HINTS = {  # what to do after a deployment that ended before provisioning anything
    DeploymentState.REFUSED: "nothing was deployed: the tech adapters refused the descriptor; fix what they name "
                             "(`meshbot validate {path} --env {env}` shows each error at its file:line:col) and deploy "
                             "again",
    DeploymentState.FAILED: "nothing was deployed: a tech adapter could not validate the descriptor (it did not "
                            "judge it); deploy again once the adapter answers (`meshbot validate {path} --env {env}` "
                            "asks it alone)",
}
UNDEPLOY_DESCRIPTION = (
    "Remove what is deployed of a data product in ENV: the tech adapters get the descriptor of its latest "
    "successful deployment there (after a first deploy that failed: the descriptor it sent), and its plan in "
    "reverse, whatever the working tree holds now; a component removed from the repository since is still "
    "unprovisioned. PATH_OR_ID names the data product: a repository "
    "folder (e.g. `meshbot undeploy . --env qa`) or its id (e.g. `meshbot undeploy urn:dmb:dp:finance:cashflow:1 "
    "--env qa`, no repository needed). When nothing is deployed there it prints 'nothing deployed in ENV', "
    "records no deployment and exits 0."
)


def register(commands: Any) -> None:
    """Add the deploy engine's commands to the meshbot command line."""
    for operation in (Operation.DEPLOY, Operation.UNDEPLOY):
        deploying = operation is Operation.DEPLOY
        parser = commands.add_parser(
            str(operation),
            help="check governance, then deploy the data product through its tech adapters (exit 0: DEPLOYED)"
            if deploying else "remove what is deployed of a data product in ENV through its tech adapters "
                              "(exit 0: NOT_DEPLOYED, or nothing deployed)",
            description=None if deploying else UNDEPLOY_DESCRIPTION,
        )
        if deploying:
            parser.add_argument("path", metavar="PATH", help="the data product repository folder")
        else:
            parser.add_argument("path", metavar="PATH_OR_ID",
                                help="the data product: its repository folder (read only to learn its id), or its id "
                                     "(urn:...), which needs no repository")
        parser.add_argument("--env", default=DEFAULT_ENVIRONMENT,
                            help=f"the target environment (default: {DEFAULT_ENVIRONMENT})")
        if not deploying:
            parser.add_argument("--remove-data", action="store_true",
                                help="ask the tech adapters to delete the data too (tables, files)")
        else:
            parser.add_argument("--prune", action="store_true",
                                help="also unprovision the components deployed in ENV that the repository no longer "
                                     "has, where the environment's prune mode is `confirm` (with `auto` they always "
                                     "are; with `never`, never)")
            parser.add_argument("--component", metavar="NAME", action="append", default=[],
                                help="deploy only this component (its name or id) and whatever it depends on that is "
                                     "not deployed; repeatable; a partial deploy never removes components")
        _add_config(parser)
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument("--workers", type=_positive, default=None, metavar="N",
                            help="local workers to start on the embedded Redis (default: the CPU count); "
                                 "ignored with REDIS_URL or redis_url, where running workers are used")
        parser.set_defaults(handler=_deploy_command if deploying else _undeploy_command, operation=operation)

    status = commands.add_parser(
        "status", help="the deployment status of a data product, from Redis (exit 1: no deployment of it recorded "
                       "in ENV, or in any environment)")
    status.add_argument("data_product", metavar="DATA_PRODUCT_ID", help="e.g. urn:dmb:dp:finance:cashflow:1")
    status.add_argument("--env", default=None, help="one environment (default: every environment with a record)")
    _add_config(status)
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(handler=_status_command)

    worker = commands.add_parser("worker", help="run a deploy worker on REDIS_URL, redis_url or the embedded Redis")
    worker.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    worker.add_argument("--name", help="the worker's name in Redis (default: a random one)")
    _add_config(worker)
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(handler=_worker_command)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="the server configuration (default: $MESHBOT_CONFIG)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least one worker is needed")
    return value


def _config(arguments: argparse.Namespace) -> ServerConfig | None:
    """The server configuration, or None after printing its errors (without a data product root)."""
    from bot.cli.common import print_errors
    from bot.config import config_path, load_config

    try:
        return load_config(config_path(arguments.config))
    except InputErrors as invalid:
        print_errors(invalid.errors, None)
        return None


def _error(message: str) -> int:
    """An input error (stderr, or the `--format json` document); the exit code."""
    from bot.cli.common import print_error

    print_error(message)
    return EXIT_INPUT


# ---------------------------------------------------------------------- deploy and undeploy


def _deploy_command(arguments: argparse.Namespace) -> int:
    from adapters.registry import AdapterRegistry
    from bot.cli.common import assemble_folder, print_errors
    from bot.engine.reconcile import Scope

    operation: Operation = arguments.operation
    config = _config_for_environment(arguments)
    if isinstance(config, int):
        return config
    descriptor = assemble_folder(arguments.path, arguments.env)  # InputErrors: printed by main, exit 2
    text = arguments.format == "text"
    if operation is Operation.DEPLOY and not _governance_passes(_governance(descriptor, config, None), arguments):
        return EXIT_FAILED  # what blocks without comparing with the deployed state blocks before Redis starts
    registry = AdapterRegistry(config.adapters)
    unresolved = registry.unresolved(descriptor)
    if unresolved:
        print_errors(unresolved, arguments.path)
        return EXIT_INPUT
    adapters = registry.resolve_all(descriptor)
    components = _component_ids(descriptor, arguments.component)
    if isinstance(components, int):
        return components
    if components and arguments.prune:
        return _error("--prune and --component do not go together: a deploy of single components never removes any")
    scope = Scope(prune=config.rules(arguments.env).prune, prune_confirmed=arguments.prune,
                  only_changed=config.only_changed, components=components)

    def request(connection: Redis) -> _Started | int:
        from bot.engine.runner import request_deployment

        # Governance against what is deployed in this environment, as a merge request review checks it.
        report = _governance(descriptor, config, connection)
        if not _governance_passes(report, arguments):
            return EXIT_FAILED
        if text:
            from policies.report import counted

            counts = f"{len(report.passed_results)} passed"
            warnings = sum(1 for result in report.results if result.errors)
            print(f"governance: {counts}" + (f", {counted(warnings, 'non-blocking finding')} (see `meshbot check`)"
                                             if warnings else ""))
        from bot.engine.runner import preview

        if text:
            planned = preview(connection, descriptor, scope, registry.resolve_all)
            print(f"plan: {planned.summary()}")
            for note in planned.notes(descriptor.environment):
                print(f"  {note}")
        deployment_id, ahead = request_deployment(connection, descriptor, operation, adapters, _started_by(),
                                                  marketplace=config.marketplace, history=config.history,
                                                  scope=scope, resolve_removed=registry.resolve_all)
        return _Started(deployment_id, ahead, str(descriptor.data.get("version") or ""))

    return _run(arguments, config, descriptor.id, descriptor.environment, operation, request)


def _component_ids(descriptor: Any, names: list[str]) -> tuple[str, ...] | int:
    """The ids --component names, or the exit code after saying which name matches no single component."""
    from bot.descriptor.model import component_name, find_components

    ids = []
    for name in names:
        found = find_components(descriptor.components, name)
        if len(found) != 1:
            known = [component_name(component) for component in descriptor.components]
            close = difflib.get_close_matches(name, known, n=1)
            why = f"names {len(found)} components: give its id" if found else \
                f"is not a component of {descriptor.id}" + (f"; did you mean '{close[0]}'?" if close else
                                                            f" (components: {', '.join(known)})")
            return _error(f"--component '{name}' {why}")
        ids.append(str(found[0]["id"]))
    return tuple(dict.fromkeys(ids))


def _config_for_environment(arguments: argparse.Namespace) -> ServerConfig | int:
    """The server configuration, or the exit code after saying why it is unusable or does not know --env."""
    from bot.cli.common import config_for_environment

    return config_for_environment(arguments.config, arguments.env)


def _undeploy_command(arguments: argparse.Namespace) -> int:
    from adapters.registry import AdapterRegistry

    config = _config_for_environment(arguments)
    if isinstance(config, int):
        return config
    data_product = _data_product_of(arguments.path, arguments.env)  # InputErrors: printed by main, exit 2
    if data_product is None:
        return _error(f"'{arguments.path}' is neither a data product repository folder nor a data product id "
                      "(urn:...)")
    registry = AdapterRegistry(config.adapters)

    def request(connection: Redis) -> _Started | int:
        from bot.cli.common import print_errors
        from bot.engine.undeploy import request_undeploy

        requested = request_undeploy(connection, data_product, arguments.env, registry, _started_by(),
                                     remove_data=arguments.remove_data, history=config.history)
        if requested.target is None:
            _say_nothing_deployed(arguments.format, data_product, arguments.env)
            return EXIT_OK
        if requested.unresolved:
            _error(f"cannot undeploy {data_product} from {arguments.env}: the descriptor of deployment "
                   f"{requested.target.deployment} has tasks no configured tech adapter serves")
            print_errors(list(requested.unresolved), None)
            return EXIT_INPUT
        return _Started(requested.deployment_id, requested.ahead, requested.target.version,
                        f" (the descriptor of deployment {requested.target.deployment})")

    return _run(arguments, config, data_product, arguments.env, Operation.UNDEPLOY, request)


def _data_product_of(path_or_id: str, environment: str) -> str | None:
    """The data product id a repository folder assembles to, the id itself (urn:...), or None."""
    from bot.cli.common import assemble_folder

    if Path(path_or_id).is_dir():
        return assemble_folder(path_or_id, environment).id
    return path_or_id if path_or_id.startswith("urn:") else None


def _say_nothing_deployed(output: str, data_product: str, environment: str) -> None:
    message = f"nothing deployed in {environment}"
    if output == "json":
        print(json.dumps({"dataProduct": data_product, "environment": environment, "status": "NOT_DEPLOYED",
                          "deployment": None, "message": message}, indent=2))
    else:
        print(f"{data_product}: {message}")


def _governance_passes(report: Any, arguments: argparse.Namespace) -> bool:
    """True when nothing blocks; else the report on stdout and the refusal on stderr."""
    if report.passed:
        return True
    from bot.cli.common import display_file
    from policies.report import to_text

    sys.stdout.write(to_text(report, show_file=display_file(arguments.path)))
    print("nothing was deployed: a governance policy blocks", file=sys.stderr)
    return False


def _governance(descriptor: Any, config: ServerConfig, connection: Redis | None) -> Any:
    """The governance report, against what is deployed in the descriptor's environment when connection is given."""
    from bot.cli.common import run_policies
    from bot.engine.deployed import RedisDeployedStates
    from policies.loader import policies_for

    if connection is None:
        return run_policies(descriptor, policies_for(config), None, "not compared yet")
    deployed = RedisDeployedStates(connection).deployed(descriptor.id, descriptor.environment)
    return run_policies(descriptor, policies_for(config), deployed.descriptor if deployed else None,
                        f"nothing deployed in {descriptor.environment}")


@dataclass(frozen=True, slots=True)
class _Started:
    """A deployment the command requested: its id, how many wait before it, and what its headline adds."""

    deployment_id: str
    ahead: int
    version: str
    note: str = ""


def _run(arguments: argparse.Namespace, config: ServerConfig, data_product: str, environment: str,
         operation: Operation, request: Callable[[Redis], _Started | int]) -> int:
    """Request the deployment (request's int: nothing was requested, the exit code), then follow it to its end.

    The request comes before the local workers start: a request that starts nothing starts no worker.
    """
    from redis import RedisError

    from bot.engine.local_workers import LocalWorkers, choose_redis, shown_url
    from bot.engine.progress import WorkersGone, deployment_json, follow
    from bot.engine.redis_connection import EmbeddedRedisError
    from bot.engine.store import Store
    from policies.report import counted

    text = arguments.format == "text"
    out = sys.stdout if text else None
    try:
        choice = choose_redis(config.redis_url, ride_out=True)
    except (EmbeddedRedisError, OSError) as error:
        return _error(str(error))
    workers: LocalWorkers | None = None
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    deployment_id = ""
    try:
        started = request(choice.connection)
        if isinstance(started, int):
            return started
        deployment_id = started.deployment_id
        if choice.embedded:
            workers = LocalWorkers(choice.url, arguments.workers or os.cpu_count() or 1)
            workers.start()
            _say(out, f"embedded Redis {choice.url}: started {counted(workers.count, 'local worker')}")
        else:
            _say(out, f"Redis {shown_url(choice.url)}")
            _hint_without_workers(choice.connection)
        if arguments.format == "text" and getattr(arguments, "remove_data", False):
            print("removing data: the tech adapters are asked to delete it")
        version = f" {started.version}" if started.version else ""
        _say(out, f"{operation} of {data_product}{version} in {environment}{started.note}: deployment {deployment_id}")
        if started.ahead:
            print(f"queued behind {counted(started.ahead, 'deployment')} of {data_product} in {environment}",
                  file=sys.stdout if text else sys.stderr)
        store = Store(choice.connection)
        alive = (lambda: workers.alive() > 0) if workers else (lambda: True)
        deployment = follow(store, deployment_id, out, alive)
    except KeyboardInterrupt:
        _interrupted(deployment_id, data_product, environment)
        return EXIT_INTERRUPTED
    except RedisError as error:
        if not deployment_id:
            return _redis_error(choice.url, error)
        print(f"meshbot: lost contact with Redis at {shown_url(choice.url)} ({error}); deployment {deployment_id} "
              f"may still be running: follow it with `meshbot status {data_product} --env {environment}` once "
              "Redis answers", file=sys.stderr)
        return EXIT_LOST_CONTACT
    except WorkersGone as gone:
        log = f" (their log: {workers.log_path})" if workers and workers.log_path else ""
        print(f"meshbot: {gone}{log}; deployment {deployment_id} continues when a worker runs "
              f"(`meshbot worker`); check it with `meshbot status {data_product} --env {environment}`",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if workers:
            workers.stop()
    success = DeploymentState.DEPLOYED if operation is Operation.DEPLOY else DeploymentState.NOT_DEPLOYED
    if text:
        print(f"{deployment.state}: {deployment.message}" if deployment.message else str(deployment.state))
        print(f"deployment {deployment.id}")
    else:
        print(json.dumps(deployment_json(store, deployment), indent=2))
    if deployment.state is DeploymentState.PARTIALLY_DEPLOYED and (deployment.reconciliation or {}).get("partial"):
        success = deployment.state  # --component: what was asked for deployed, the rest left as it was
    hint = NOT_VALIDATED_HINTS.get(deployment.state) if operation is Operation.DEPLOY else None
    if hint:
        print(f"meshbot: {hint.format(path=getattr(arguments, 'path', 'PATH'), env=environment)}", file=sys.stderr)
    return EXIT_OK if deployment.state is success else EXIT_FAILED


def _redis_error(url: str, error: Exception) -> int:
    from bot.engine.local_workers import shown_url

    return _error(f"cannot use Redis at {shown_url(url)}: {error}")


def _say(out: Any, line: str) -> None:
    if out is not None:
        print(line, file=out, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _interrupted(deployment_id: str, data_product: str, environment: str) -> None:
    if not deployment_id:
        print("\nmeshbot: interrupted before the deployment was requested; nothing was deployed", file=sys.stderr)
        return
    print(f"\nmeshbot: interrupted; deployment {deployment_id} is not cancelled: it continues when workers run "
          f"(`meshbot worker`, or the next deploy). Check it with "
          f"`meshbot status {data_product} --env {environment}`", file=sys.stderr)


def _started_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _hint_without_workers(connection: Any) -> None:
    from rq import Worker

    from bot.engine.runner import queue

    if not Worker.all(connection=connection, queue=queue(connection)):
        print("meshbot: no meshbot worker is registered in this Redis: the deployment waits until one runs "
              "(start one with `meshbot worker`)", file=sys.stderr)


# ---------------------------------------------------------------------- status


def _status_command(arguments: argparse.Namespace) -> int:
    from redis import RedisError

    from bot.engine.local_workers import choose_redis
    from bot.engine.redis_connection import EmbeddedRedisError
    from bot.engine.status import environments, product_status, status_text

    config = _config(arguments)
    if config is None:
        return EXIT_INPUT
    if arguments.env is not None:
        problem = config.environment_error(arguments.env)
        if problem:
            return _error(problem)
    try:
        choice = choose_redis(config.redis_url)
    except (EmbeddedRedisError, OSError) as error:
        return _error(str(error))
    try:
        known = environments(choice.connection, arguments.data_product)
        names = [arguments.env] if arguments.env else known
        if not known or arguments.env not in (None, *known):
            return _unknown_product(arguments.data_product, arguments.env, known, arguments.format)
        statuses = [product_status(choice.connection, arguments.data_product, name) for name in names]
    except RedisError as error:
        return _redis_error(choice.url, error)
    if arguments.format == "json":
        documents = [status for status, _ in statuses]
        print(json.dumps(documents[0] if arguments.env else documents, indent=2))
    else:
        print("\n".join(status_text(status, waiting) for status, waiting in statuses))
    return EXIT_OK


def _unknown_product(data_product: str, environment: str | None, known: list[str], output: str) -> int:
    """No record of the data product where asked (a typo in its id, or never deployed there): say so, exit 1."""
    where = f"in {environment}" if environment else "in any environment"
    message = f"no deployment of {data_product} {where}" + (
        f" (it has records in: {', '.join(known)})" if known else "")
    if output == "json":
        print(json.dumps({"dataProduct": data_product, "environment": environment, "status": "NOT_DEPLOYED",
                          "version": None, "deployment": None, "components": [], "message": message}, indent=2))
    else:
        print(f"meshbot: {message}", file=sys.stderr)
    return EXIT_FAILED


# ---------------------------------------------------------------------- worker


def _worker_command(arguments: argparse.Namespace) -> int:
    from redis import RedisError

    from bot.engine.local_workers import choose_redis, exit_with_parent, shown_url
    from bot.engine.redis_connection import EmbeddedRedisError
    from bot.engine.worker import run_worker
    from bot.logs import configure_logging, json_logs

    configure_logging()
    config = _config(arguments)
    if config is None:
        return EXIT_INPUT
    try:
        choice = choose_redis(config.redis_url, ride_out=True)
    except (EmbeddedRedisError, OSError) as error:
        return _error(str(error))
    where = f"the embedded Redis {choice.url}" if choice.embedded else f"Redis {shown_url(choice.url)}"
    started = f"meshbot worker{' ' + arguments.name if arguments.name else ''}: working on {where}"
    if json_logs():  # stderr is one JSON object per line
        logging.getLogger("meshbot.worker").info("%s", started)
    else:
        print(started, file=sys.stderr, flush=True)
    if arguments.parent_pid:
        exit_with_parent(arguments.parent_pid)
    try:
        run_worker(choice.connection, burst=arguments.burst, name=arguments.name)
    except KeyboardInterrupt:
        pass
    except RedisError as error:
        return _redis_error(choice.url, error)
    return EXIT_OK

