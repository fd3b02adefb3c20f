"""The commands other modules register, and registering only the module of the command being run.

Importing every command module costs each start of `meshbot` about 25 ms of CPU (issue 18, CLI start-up), so the
command line lists them here with their one-line help: the module of the command being run registers its full
parsers; every other command gets a parser holding its help line alone, for `meshbot --help` and argparse's
messages. tests/cli/test_startup.py holds this table to what the modules register.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

# Each module (its register(commands) adds these commands) with its commands' help lines, in `--help` order.
COMMAND_MODULES: tuple[tuple[str, dict[str, str]], ...] = (
    ("adapters.cli", {"adapter": "tech adapter tools (serve the reference SQLite adapter)"}),
    ("bot.cli.usecases", {
        "templates": "list the use-case templates and their parameters",
        "new": "render a use-case template into a folder: a new data product, or a component of the data product "
               "in that folder",
    }),
    ("bot.cli.deploy", {
        "deploy": "check governance, then deploy the data product through its tech adapters (exit 0: DEPLOYED)",
        "undeploy": "remove what is deployed of a data product in ENV through its tech adapters (exit 0: "
                    "NOT_DEPLOYED, or nothing deployed)",
        "status": "the deployment status of a data product, from Redis (exit 1: no deployment of it recorded in "
                  "ENV, or in any environment)",
        "worker": "run a deploy worker on REDIS_URL, redis_url or the embedded Redis",
    }),
    ("bot.cli.rollback", {
        "rollback": "redeploy a version kept in the deployment history of ENV (default: the previous one; exit 0: "
                    "DEPLOYED)",
    }),
    ("bot.cli.serve", {"serve": "run the webhook service (gunicorn) and RQ workers until stopped"}),
    ("bot.cli.config", {"config": "the server configuration: print its JSON Schema, check a file"}),
    ("bot.cli.diff", {
        "diff": "the plan against what is deployed: components to add, change (which fields) and remove (exit 0: "
                "nothing to change, 1: changes, 2: bad input)",
    }),
    ("bot.cli.drift", {
        "drift": "compare what is really deployed (the tech adapters' reverse provisioning) with the deployed "
                 "descriptor",
    }),
    ("bot.cli.github_app", {"github-app": "the GitHub App meshbot acts as: its manifest"}),
    ("bot.cli.validate", {
        "validate": "ask each tech adapter's read-only validate (exit 0 valid, 1 refused, 2 input error, 3 adapter "
                    "failed)",
    }),
    ("bot.cli.policies_test", {"policies": "governance policies: test new or changed ones on what is deployed"}),
)


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is no option (meshbot's own options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def register_commands(commands: Any, command: str | None, everything: bool = False) -> None:
    """Add every module's commands to the subparsers `commands`: in full for the module of `command` (or for all
    with everything), as their help line alone for the others."""
    for module, helps in COMMAND_MODULES:
        if everything or command in helps:
            importlib.import_module(module).register(commands)
        else:
            for name, help_line in helps.items():
                commands.add_parser(name, help=help_line)
