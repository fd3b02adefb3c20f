"""`meshbot templates` and `meshbot new`: list and render use-case templates."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the use-case template commands to the meshbot command line (arrives with the templates work)."""
    del commands
