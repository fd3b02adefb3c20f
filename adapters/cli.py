"""`meshbot adapter ...` commands: serve the reference SQLite tech adapter."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Add the `adapter` command group to the meshbot command line."""
    adapter = commands.add_parser("adapter", help="tech adapter tools (serve the reference SQLite adapter)")
    adapter_commands = adapter.add_subparsers(metavar="ACTION")
    adapter.set_defaults(handler=lambda arguments: _usage(adapter))

    serve = adapter_commands.add_parser(
        "serve",
        help="serve the reference SQLite tech adapter (Tech Adapter API 2.2.0)",
        description="Serve the Tech Adapter API 2.2.0 under /datamesh.specificprovisioner, provisioning storage "
        "(urn:dmb:itm:sqlite-storage-provisioner:0) and output port (urn:dmb:itm:sqlite-outputport-provisioner:0) "
        "components into one SQLite database. Stops on SIGINT or SIGTERM.",
    )
    serve.add_argument("--port", type=_port, required=True, help="the TCP port (0 picks a free one and prints it)")
    serve.add_argument("--db", metavar="FILE", required=True, help="the SQLite database (created if missing)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--async", dest="asynchronous", action="store_true",
                       help="answer 202 with a task token and finish in the background (default: answer 200)")
    serve.add_argument("--async-delay", metavar="SECONDS", type=_seconds, default=0.05,
                       help="how long an asynchronous task waits before it runs (default: 0.05)")
    serve.set_defaults(handler=_serve)


def _serve(arguments: argparse.Namespace) -> int:
    import sqlite3  # here, not at the top: every meshbot command registers this one

    from adapters.reference.server import serve

    database = Path(arguments.db)
    try:
        return serve(database, arguments.host, arguments.port, asynchronous=arguments.asynchronous,
                     async_delay=arguments.async_delay)
    except sqlite3.Error as error:
        print(f"meshbot: cannot use the SQLite database {database}: {error}", file=sys.stderr)
    except OSError as error:
        print(f"meshbot: cannot listen on {arguments.host}:{arguments.port}: {error.strerror or error}",
              file=sys.stderr)
    return 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535; 0 picks a free port)")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{seconds:g} is not between 0 and 3600 seconds")
    return seconds


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
