"""`meshbot config schema` and `meshbot config check`: the server configuration's JSON Schema, and a file checked."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.descriptor.errors import InputErrors

EXIT_OK, EXIT_MISTAKES, EXIT_USAGE = 0, 1, 2


def register(commands: Any) -> None:
    """Add the `config` command group to the meshbot command line."""
    config = commands.add_parser("config", help="the server configuration: print its JSON Schema, check a file")
    actions = config.add_subparsers(metavar="ACTION")
    config.set_defaults(handler=lambda arguments: _usage(config))

    schema = actions.add_parser("schema", help="print the server configuration's JSON Schema (Draft 2020-12)")
    schema.add_argument("--markdown", action="store_true",
                        help="print the reference page generated from it instead (docs/configuration.md)")
    schema.set_defaults(handler=_schema_command)

    check = actions.add_parser(
        "check", help="check a server configuration file as meshbot serve reads it (exit 0: ok, 1: mistakes)")
    # Named `file`, not `path`: the command line shows positions under a `path` as relative to that folder.
    check.add_argument("file", metavar="FILE", help="the configuration file, e.g. examples/meshbot.yaml")
    check.set_defaults(handler=_check_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _schema_command(arguments: argparse.Namespace) -> int:
    from bot.config import CONFIG_SCHEMA  # imported here: the configuration module costs every other command

    if arguments.markdown:
        from bot.cli.config_reference import configuration_markdown

        sys.stdout.write(configuration_markdown(CONFIG_SCHEMA))
    else:
        sys.stdout.write(json.dumps(CONFIG_SCHEMA, indent=2) + "\n")
    return EXIT_OK


def _check_command(arguments: argparse.Namespace) -> int:
    from bot.cli.common import print_errors
    from bot.config import load_config

    try:
        load_config(arguments.file)
    except InputErrors as invalid:
        print_errors(invalid.errors, None)
        return EXIT_MISTAKES
    print(f"{arguments.file}: ok")
    return EXIT_OK
