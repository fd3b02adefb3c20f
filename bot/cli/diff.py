"""`meshbot diff`: what deploying a repository would change in an environment, against what is deployed there."""

from __future__ import annotations

import argparse
import json
import sys

from bot.cli.common import DEFAULT_ENVIRONMENT
from bot.cli.deployed_source import add_deployed_arguments, deployed_source

EXIT_NO_CHANGE, EXIT_CHANGES = 0, 1  # as `git diff --exit-code`: a script can tell whether a deploy would act


def register(commands: argparse._SubParsersAction) -> None:
    """Add `meshbot diff` to the command line."""
    diff = commands.add_parser(
        "diff", help="the plan against what is deployed: components to add, change (which fields) and remove "
                     "(exit 0: nothing to change, 1: changes, 2: bad input)")
    diff.add_argument("path", metavar="PATH", help="the data product repository folder")
    diff.add_argument("--env", default=DEFAULT_ENVIRONMENT,
                      help=f"the environment to compare with (default: {DEFAULT_ENVIRONMENT})")
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    add_deployed_arguments(diff, "")
    diff.set_defaults(handler=_diff_command)


def _diff_command(arguments: argparse.Namespace) -> int:
    from bot.cli.common import assemble_folder
    from bot.engine.plan_diff import plan_diff
    from bot.forge.plan_report import plan_markdown

    desired = assemble_folder(arguments.path, arguments.env)
    deployed = deployed_source(arguments).deployed(desired.id, arguments.env)
    diff = plan_diff(desired, deployed.descriptor if deployed else None)
    if arguments.format == "json":
        sys.stdout.write(json.dumps(diff.as_json(), indent=2) + "\n")
    elif arguments.format == "markdown":
        sys.stdout.write(plan_markdown(diff, limit=1_000_000))
    else:
        sys.stdout.write(diff.to_text())
    return EXIT_CHANGES if diff.has_changes else EXIT_NO_CHANGE
