"""Writing one of meshbot's own issues (drift, compliance) on a forge: what was done, or why it could not be."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from vcs.base import Forge, ForgeError, Issue, Repository


class IssueAction(StrEnum):
    """What a check did to its forge issue."""

    OPENED = "opened"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CLOSED = "closed"
    NONE = "none"  # no issue to open or close


@dataclass(frozen=True, slots=True)
class IssueOutcome:
    """The action and the issue it was about (None: no issue)."""

    action: IssueAction
    issue: Issue | None = None


@dataclass(frozen=True, slots=True)
class IssueWrite:
    """How writing the issue went: its outcome, or the forge's error; the API calls it took either way."""

    outcome: IssueOutcome | None
    error: str | None
    api_calls: int


def write_issue(forge_for: Callable[[str], Forge], name: str, project: str,
                write: Callable[[Repository, str], IssueOutcome], kind: str, about: str,
                log: logging.Logger) -> IssueWrite:
    """Open project on the forge called name and write the issue with write(repository, meshbot's user name).

    Logged as "<kind>[ #N] <about> on <forge> <project>: <action>" (an action taken) or, at WARNING, with the forge's
    error; a forge error is returned, never raised.
    """
    forge = forge_for(name)
    repository = forge.repository(project)
    before = repository.api_calls
    try:
        outcome = write(repository, forge.bot_username())
    except ForgeError as error:
        log.warning("%s %s on %s %s: %s", kind, about, name, project, error.message)
        return IssueWrite(None, error.message, repository.api_calls - before)
    if outcome.action is not IssueAction.NONE:
        log.info("%s%s %s on %s %s: %s", kind, issue_number(outcome), about, name, project, outcome.action)
    return IssueWrite(outcome, None, repository.api_calls - before)


def issue_number(outcome: IssueOutcome) -> str:
    """" #N" for an outcome about issue N, "" when there is no issue."""
    return f" #{outcome.issue.number}" if outcome.issue is not None else ""
