"""The forge clients of this process, built once from the environment (tokens never come from files)."""

from __future__ import annotations

import threading

from vcs.base import Forge, ForgeError

_FORGES: dict[str, Forge] = {}
_LOCK = threading.Lock()


def forge(name: str) -> Forge:
    """The client of forge `name` ("github" or "gitlab"), configured from MESHBOT_* environment variables."""
    with _LOCK:
        if name not in _FORGES:
            _FORGES[name] = _build(name)
        return _FORGES[name]


def _build(name: str) -> Forge:
    if name == "github":
        from vcs.github import GitHubForge

        return GitHubForge.from_environment()
    if name == "gitlab":
        from vcs.gitlab import GitLabForge

        return GitLabForge.from_environment()
    raise ForgeError(f"unknown forge {name!r} (known: github, gitlab)")


def forget() -> None:
    """Drop the clients built so far (after the environment changed)."""
    with _LOCK:
        _FORGES.clear()
