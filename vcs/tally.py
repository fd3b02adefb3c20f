"""A forge that adds up the REST calls of the repositories it hands out: the cost of one event, for metrics."""

from __future__ import annotations

import threading

from vcs.base import Forge, Repository


class RateLimitWaits:
    """What this process's forge clients were asked to wait by rate limits, per forge, until taken (thread-safe).

    The clients (vcs.github's retry, vcs.gitlab's session) record each 403/429 rate-limit answer with the wait asked
    for; the job that used them takes the figures when it counts its event (bot.metrics sits above vcs).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: dict[str, tuple[int, float]] = {}

    def record(self, forge: str, seconds: float) -> None:
        """One rate-limit answer from forge asking to wait seconds (waited, or refused as too long)."""
        with self._lock:
            times, total = self._waits.get(forge, (0, 0.0))
            self._waits[forge] = (times + 1, total + max(0.0, seconds))

    def take(self) -> list[tuple[str, int, float]]:
        """(forge, times, seconds) recorded since the last take, and forget them."""
        with self._lock:
            taken, self._waits = self._waits, {}
        return [(forge, times, seconds) for forge, (times, seconds) in sorted(taken.items())]


rate_limit_waits = RateLimitWaits()


class CallTally:
    """Wraps a forge for the length of one job; `api_calls` is what that job's repositories have spent."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self.name, self.web_url = forge.name, forge.web_url
        self._repositories: list[Repository] = []
        self._before: list[int] = []

    def repository(self, project: str) -> Repository:
        """The forge's repository, remembered with its count so far."""
        repository = self.forge.repository(project)
        self._repositories.append(repository)
        self._before.append(repository.api_calls)
        return repository

    def bot_username(self) -> str:
        """The forge's bot user."""
        return self.forge.bot_username()

    def take_rate_limit_waits(self) -> list[tuple[str, int, float]]:
        """The rate-limit waits of this process's forge clients since they were last taken: (forge, times, seconds)."""
        return rate_limit_waits.take()

    @property
    def api_calls(self) -> int:
        """Calls made through the repositories handed out, since they were handed out."""
        return sum(repository.api_calls - before for repository, before in zip(self._repositories, self._before,
                                                                                  strict=True))
