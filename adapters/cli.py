"""`meshbot adapter ...` commands: serve the reference SQLite tech adapter."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add the `adapter` command group to the meshbot command line."""
    adapter = commands.add_parser("adapter", help="tech adapter tools (serve the reference SQLite adapter)")
    adapter_commands = adapter.add_subparsers(metavar="ACTION")
    del adapter_commands  # `adapter serve` is added by the reference adapter work
    adapter.set_defaults(handler=lambda arguments: _usage(adapter))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
