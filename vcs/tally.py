"""A forge that adds up the REST calls of the repositories it hands out: the cost of one event, for metrics."""

from __future__ import annotations

from vcs.base import Forge, Repository


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

    @property
    def api_calls(self) -> int:
        """Calls made through the repositories handed out, since they were handed out."""
        return sum(repository.api_calls - before for repository, before in zip(self._repositories, self._before,
                                                                                  strict=True))
