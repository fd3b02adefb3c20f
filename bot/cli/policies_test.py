"""`meshbot policies test DIR [--env ENV]`: which deployed data products the policies in DIR would fail."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line registers this module on every start: keep its imports light
    from bot.config import ServerConfig
    from bot.forge.policy_impact import PolicyImpact, ProductFailure
    from policies.model import Policy

EXIT_NONE_FAIL, EXIT_SOME_FAIL, EXIT_INPUT = 0, 1, 2
DESCRIPTION = (
    "Evaluate the policy files in DIR (only those: the built-in policies are left out; draft policies as if enabled) "
    "on every deployed descriptor the engine keeps, in every environment or only ENV, and list per policy the data "
    "products, environments and resources that would fail, with each message. Where a deployment names its "
    "repository and commit and the forge is reachable (MESHBOT_GITHUB_TOKEN, MESHBOT_GITLAB_TOKEN, ...), the "
    "descriptor is assembled again from that commit so that failures say file:line:column; otherwise the reason is "
    "shown. Each policy is marked new, changed or unchanged against the server's policies, and with what it would do "
    "(would block / would warn, from its status, grace_until and severity). Exit 0 when no deployed data product "
    "fails, 1 when some would fail, 2 for bad input (a bad policy file: file:line:column on stderr)."
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `policies` command group (`meshbot policies test`) to the command line."""
    policies = commands.add_parser("policies", help="governance policies: test new or changed ones on what is deployed")
    actions = policies.add_subparsers(metavar="ACTION")
    policies.set_defaults(handler=lambda arguments: _usage(policies))
    test = actions.add_parser(
        "test", description=DESCRIPTION,
        help="list the deployed data products the policies in DIR would fail (exit 0: none, 1: some, 2: bad input)")
    # Named `directory`, not `path`: the command line shows positions under a `path` as relative to that folder.
    test.add_argument("directory", metavar="DIR", help="a folder of policy files")
    test.add_argument("--env", help="only the data products deployed in this environment (default: every one)")
    test.add_argument("--config", metavar="FILE", help="the server configuration (default: $MESHBOT_CONFIG)")
    test.add_argument("--format", choices=("text", "json"), default="text")
    test.set_defaults(handler=_test_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_INPUT


def _test_command(arguments: argparse.Namespace) -> int:
    from redis import RedisError

    from bot.cli.common import print_error, print_errors
    from bot.descriptor.errors import InputErrors
    from bot.engine.local_workers import choose_redis, shown_url
    from bot.engine.redis_connection import EmbeddedRedisError
    from bot.forge.policy_impact import Positions, assess, deployed_descriptors, impact_json

    config = _config(arguments)
    if isinstance(config, int):
        return config
    try:
        policies = _load(arguments.directory, config)
        changes = _changes(policies, config)
    except InputErrors as invalid:
        print_errors(invalid.errors, None)
        return EXIT_INPUT
    try:
        choice = choose_redis(config.redis_url)
    except (EmbeddedRedisError, OSError) as error:
        print_error(str(error))
        return EXIT_INPUT
    try:
        found = deployed_descriptors(choice.connection, arguments.env)
    except RedisError as error:
        print_error(f"cannot use Redis at {shown_url(choice.url)}: {error}")
        return EXIT_INPUT
    today = date.today()
    result = assess(policies, found, Positions(), today, changes)
    if arguments.format == "json":
        sys.stdout.write(json.dumps(impact_json(result, today, arguments.env, len(found)), indent=2) + "\n")
    else:
        sys.stdout.write(impact_text(result, today, arguments.env, len(found)))
    return EXIT_SOME_FAIL if any(impact.failing for impact in result) else EXIT_NONE_FAIL


def _config(arguments: argparse.Namespace) -> ServerConfig | int:
    """The server configuration, checked against --env when given; an exit code when unusable."""
    from bot.cli.common import config_for_environment, print_errors
    from bot.config import config_path, load_config
    from bot.descriptor.errors import InputErrors

    if arguments.env:
        return config_for_environment(arguments.config, arguments.env)
    try:
        return load_config(config_path(arguments.config))
    except InputErrors as invalid:
        print_errors(invalid.errors, None)
        return EXIT_INPUT


def _load(directory: str, config: ServerConfig) -> list[Policy]:
    """DIR's own policies (no built-ins), with the configured remote engines when the loader knows them."""
    import inspect

    from bot.descriptor.errors import InputError, InputErrors, SourcePosition
    from policies.loader import load_policies

    if not Path(directory).is_dir():
        raise InputErrors([InputError("policy folder not found", SourcePosition(directory))])
    extra: dict[str, Any] = {}
    if "engines" in inspect.signature(load_policies).parameters:
        extra["engines"] = getattr(config, "policy_engines", {})
    policies = load_policies([directory], include_builtin=False, **extra)
    if not policies:
        raise InputErrors([InputError("no policy files (*.yaml, *.yml) in this folder", SourcePosition(directory))])
    return policies


def _changes(policies: Sequence[Policy], config: ServerConfig) -> dict[str, str]:
    """Each DIR policy against the server's: new, changed (another file content) or unchanged."""
    from bot.forge.policy_impact import change
    from policies.loader import policies_for

    server = {policy.id: Path(policy.file).read_bytes() for policy in policies_for(config)}
    return {policy.id: change(policy.id, Path(policy.file).read_bytes(), server) for policy in policies}


def impact_text(found: Sequence[PolicyImpact], today: date, environment: str | None, deployed: int) -> str:
    """The terminal report: each policy, what it would do, and the deployed resources failing it."""
    from bot.forge.policy_impact import failing_products
    from policies.report import counted

    where = f"in {environment}" if environment else "in every environment"
    tested, products = counted(len(found), "policy", "policies"), counted(deployed, "deployed data product")
    lines = [f"meshbot policies test: {tested} on {products} {where} (today {today.isoformat()})", ""]
    for impact in found:
        policy = impact.policy
        grace = f" until {policy.grace_until.isoformat()}" if policy.grace_until else ""
        outcome = f"{impact.would} {counted(len(impact.failing), 'resource')}" if impact.failing else \
            f"passes everywhere (it {impact.would.removeprefix('would ')}s on failure)"
        lines.append(f"{policy.id} ({impact.change or 'configured'}, {policy.status}{grace}, {policy.severity}): "
                     f"{outcome}")
        lines.append(f"  {policy.description}")
        for failure in impact.failing:
            lines.extend(_failure_lines(failure))
        lines.append("")
    failing = failing_products(found)
    lines.append(f"{counted(len(failing), 'deployed data product')} would fail" if failing else
                 "no deployed data product would fail")
    return "\n".join(lines) + "\n"


def _failure_lines(failure: ProductFailure) -> list[str]:
    where = f" from {failure.origin}" if failure.origin else f" (no position: {failure.no_position})"
    lines = [f"  ✗ {failure.data_product} {failure.version} in {failure.environment}: {failure.resource}{where}"]
    for error in failure.errors:
        position = error.position
        shown = f"{position}: " if position else ""
        lines.append(f"      {shown}{error.message} (at {error.path or '(root)'})")
    return lines
