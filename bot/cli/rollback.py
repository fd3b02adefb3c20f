"""`meshbot rollback DATA_PRODUCT_ID --env ENV [--to VERSION] [--prune]`: redeploy a kept version.

The descriptor comes from the engine's deployment history (bot.engine.rollback), never from a working tree; it
passes today's governance against what is deployed, then goes through the normal deploy (prune mode, only_changed)
and is followed like `meshbot deploy` (bot.cli.deploy._run), with the same exit codes.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bot.cli.common import DEFAULT_ENVIRONMENT
from bot.cli.deploy import (
    EXIT_FAILED,
    EXIT_INPUT,
    _add_config,
    _config_for_environment,
    _error,
    _positive,
    _run,
    _Started,
    _started_by,
)
from bot.engine.deployment import Operation

if TYPE_CHECKING:
    from redis import Redis

DESCRIPTION = (
    "Redeploy a descriptor kept in the deployment history of DATA_PRODUCT_ID in ENV: by default the newest "
    "successful deployment older than the deployed one whose version differs from it, or --to VERSION (any kept "
    "successful deployment of that version). Only within the deployed major version, and only what the history "
    "keeps (`deployments.history`). The old descriptor must pass today's governance policies (compared with what "
    "is deployed); it is then deployed as any deploy: components it lacks are removed under the environment's "
    "prune mode (`confirm`: only with --prune). Exit 0: DEPLOYED; 1: failed or refused (nothing to roll back to, "
    "a policy blocks); 2: input error; 3: lost contact."
)


def register(commands: Any) -> None:
    """Add `meshbot rollback` to the meshbot command line."""
    parser = commands.add_parser(
        "rollback", description=DESCRIPTION,
        help="redeploy a version kept in the deployment history of ENV (default: the previous one; exit 0: DEPLOYED)")
    parser.add_argument("data_product", metavar="DATA_PRODUCT_ID", help="e.g. urn:dmb:dp:finance:cashflow:1")
    parser.add_argument("--env", default=DEFAULT_ENVIRONMENT,
                        help=f"the environment to roll back (default: {DEFAULT_ENVIRONMENT})")
    parser.add_argument("--to", metavar="VERSION", default=None,
                        help="the version to redeploy (default: the previous successful one)")
    parser.add_argument("--prune", action="store_true",
                        help="remove components the old version lacks where the environment's prune mode is "
                             "`confirm`")
    _add_config(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--workers", type=_positive, default=None, metavar="N",
                        help="local workers to start on the embedded Redis (default: the CPU count); "
                             "ignored with REDIS_URL or redis_url, where running workers are used")
    parser.set_defaults(handler=_rollback_command)


def _rollback_command(arguments: argparse.Namespace) -> int:
    """Choose, check governance, request and follow the rollback."""
    from adapters.registry import AdapterRegistry
    from policies.loader import policies_for

    config = _config_for_environment(arguments)
    if isinstance(config, int):
        return config
    if not arguments.data_product.startswith("urn:"):
        return _error(f"'{arguments.data_product}' is not a data product id (urn:...)")
    policies = policies_for(config)  # InputErrors: printed by main, exit 2
    registry = AdapterRegistry(config.adapters)
    environment = arguments.env

    def request(connection: Redis) -> _Started | int:
        from bot.cli.common import print_errors
        from bot.engine.reconcile import Scope
        from bot.engine.rollback import RollbackRefused, choose_from_redis, request_rollback

        try:
            choice = choose_from_redis(connection, arguments.data_product, environment, arguments.to,
                                       kept=config.history)
        except RollbackRefused as refused:
            print(f"meshbot: cannot roll back {arguments.data_product} in {environment}: {refused.message}",
                  file=sys.stderr)
            return EXIT_FAILED
        if not _governance_passes(choice, policies, arguments):
            return EXIT_FAILED
        scope = Scope(prune=config.rules(environment).prune, prune_confirmed=arguments.prune,
                      only_changed=config.only_changed)
        requested = request_rollback(connection, choice, registry, rollback_started_by(choice.version),
                                     scope=scope, marketplace=config.marketplace, history=config.history)
        if requested.unresolved:
            _error(f"cannot roll back {arguments.data_product} in {environment} to {choice.version}: the "
                   f"descriptor of deployment {choice.target.id} has tasks no configured tech adapter serves")
            print_errors(list(requested.unresolved), None)
            return EXIT_INPUT
        return _Started(requested.deployment_id, requested.ahead, choice.version,
                        f" (rollback from {choice.deployed.version}: the descriptor of deployment {choice.target.id})")

    return _run(arguments, config, arguments.data_product, environment, Operation.DEPLOY, request)


def _governance_passes(choice: Any, policies: list[Any], arguments: argparse.Namespace) -> bool:
    """Whether today's policies let the old descriptor replace what is deployed; else the report and the refusal."""
    import json

    from bot.cli.common import run_policies
    from policies.report import to_json, to_text

    report = run_policies(choice.descriptor, policies, choice.deployed.descriptor,
                          f"nothing deployed in {arguments.env}")
    if report.passed:
        if arguments.format == "text":
            print(f"governance: {len(report.passed_results)} passed (today's policies, against the deployed "
                  f"{choice.deployed.version})")
        return True
    if arguments.format == "json":
        print(json.dumps(to_json(report), indent=2))
    else:
        sys.stdout.write(to_text(report))
    blocking = ", ".join(dict.fromkeys(result.policy for result in report.results if result.blocking))
    print(f"meshbot: nothing was rolled back: version {choice.version} (deployment {choice.target.id}) no longer "
          f"passes governance: blocked by {blocking}", file=sys.stderr)
    return False


def rollback_started_by(version: str) -> str:
    """Who started a rollback from the command line, as deployment records show it."""
    return f"rollback to {version} by {_started_by().removeprefix('cli:')} (cli)"
