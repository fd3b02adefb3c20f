"""`meshbot deploy`, `undeploy`, `status` and `worker`: the deploy engine from the command line."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the deploy engine's commands to the meshbot command line (arrives with the deploy work)."""
    del commands
