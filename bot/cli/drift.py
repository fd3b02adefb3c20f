"""`meshbot drift`: ask the tech adapters what is really deployed of a data product and compare it with the
deployed descriptor the engine keeps (the embedded Redis when REDIS_URL and redis_url are unset, as `status`)."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_IN_SYNC, EXIT_DRIFT, EXIT_INPUT, EXIT_UNCHECKED = 0, 1, 2, 3
DESCRIPTION = (
    "Ask the tech adapter of each deployed component of DATA_PRODUCT_ID in ENV what is really there (reverse "
    "provisioning) and print each difference from the deployed descriptor, with the command that imports it "
    "(`/import NAME` on a merge request) or overwrites it (`/deploy ENV`). Components whose adapter has no reverse "
    "provisioning are listed as not checkable. Nothing is written: the forge issue is the drift sweep's. Exit 0 in "
    "sync, 1 drift, 2 input error (nothing deployed there, unknown environment), 3 some component could not be "
    "checked and no drift was found."
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `meshbot drift` to the command line."""
    drift = commands.add_parser(
        "drift", description=DESCRIPTION,
        help="compare what is really deployed (the tech adapters' reverse provisioning) with the deployed descriptor")
    drift.add_argument("data_product", metavar="DATA_PRODUCT_ID", help="the data product's id (urn:dmb:dp:...)")
    drift.add_argument("--env", required=True, help="the environment to check")
    drift.add_argument("--config", metavar="FILE", help="the server configuration (default: $MESHBOT_CONFIG)")
    drift.add_argument("--format", choices=("text", "json"), default="text")
    drift.set_defaults(handler=_drift_command)


def _drift_command(arguments: argparse.Namespace) -> int:
    from redis import RedisError

    from bot.cli.common import config_for_environment
    from bot.engine.deployed import RedisDeployedStates
    from bot.engine.drift import DriftStatus, check_deployed
    from bot.engine.local_workers import choose_redis, shown_url
    from bot.engine.redis_connection import EmbeddedRedisError
    from bot.metrics import Batch

    config = config_for_environment(arguments.config, arguments.env)
    if isinstance(config, int):
        return config
    try:
        choice = choose_redis(config.redis_url)
    except (EmbeddedRedisError, OSError) as error:
        return _error(str(error))
    try:
        deployed = RedisDeployedStates(choice.connection).deployed(arguments.data_product, arguments.env)
    except RedisError as error:
        return _error(f"cannot use Redis at {shown_url(choice.url)}: {error}")
    if deployed is None:
        return _error(f"nothing deployed of {arguments.data_product} in {arguments.env}")
    metrics = Batch()
    report = check_deployed(deployed, config, metrics=metrics)
    metrics.send(choice.connection)  # each reverse provisioning call's latency, by adapter (never raises)
    if arguments.format == "json":
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(report.to_text())
    return {DriftStatus.IN_SYNC: EXIT_IN_SYNC, DriftStatus.DRIFT: EXIT_DRIFT,
            DriftStatus.UNCHECKED: EXIT_UNCHECKED}[report.status]


def _error(message: str) -> int:
    """An input error (stderr, or the `--format json` document); the exit code."""
    from bot.cli.common import print_error

    print_error(message)
    return EXIT_INPUT
