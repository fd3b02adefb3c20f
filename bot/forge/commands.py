"""Merge request commands read from a comment: `/deploy`, `/import`, `/undeploy`, `/help` (pure, no I/O).

A command is a line of the comment that starts with `/` and one of meshbot's words; its arguments are split
as a shell would (quotes allowed). Lines inside fenced code blocks and quoted lines (`> /deploy`, a reply
quoting an earlier comment) are not commands. An unknown `/word` is someone else's (other bots use
`/assign`, `/cc`, ...) unless it is close to one of ours, which earns a "did you mean".
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field

MAX_COMMANDS = 10  # per comment: more is a mistake (or a paste), not a plan
MAX_LINE = 1000
USAGE = {
    "deploy": "/deploy [ENV] [--dry-run]",
    "import": "/import COMPONENT [key=value ...]",
    "undeploy": "/undeploy ENV [--remove-data]",
    "help": "/help",
}
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True, slots=True)
class Deploy:
    """`/deploy [ENV] [--dry-run]`: deploy the merge request's head (ENV None: the merge-request environment)."""

    environment: str | None
    dry_run: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class Import:
    """`/import COMPONENT [key=value ...]`: reverse provisioning of one component."""

    component: str
    parameters: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, slots=True)
class Undeploy:
    """`/undeploy ENV [--remove-data]`."""

    environment: str
    remove_data: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class Help:
    """`/help`."""

    line: int = 0


@dataclass(frozen=True, slots=True)
class Malformed:
    """A command of ours written wrong: what is wrong, and its usage."""

    word: str
    problem: str
    line: int = 0

    @property
    def usage(self) -> str:
        """How the command is written."""
        return USAGE[self.word]


@dataclass(frozen=True, slots=True)
class Typo:
    """A `/word` that is not ours but close to one of ours."""

    written: str
    suggestion: str
    line: int = 0


Command = Deploy | Import | Undeploy | Help
Reading = Command | Malformed | Typo


def read_commands(body: str) -> list[Reading]:
    """The commands of a comment, in order, with the mistakes a person should hear about."""
    found: list[Reading] = []
    in_fence = False
    for number, raw in enumerate(body.splitlines(), start=1):
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        line = raw.strip()
        if in_fence or not line.startswith("/") or len(line) < 2 or not line[1].isalpha():
            continue  # prose, quotes ("> /deploy"), paths ("/usr/bin"), code
        word = re.match(r"/([A-Za-z][A-Za-z0-9_-]*)", line)
        if word is None:
            continue
        name = word.group(1).lower()
        if name not in USAGE:
            suggestion = difflib.get_close_matches(name, USAGE, n=1, cutoff=0.75)
            if suggestion:
                found.append(Typo(f"/{word.group(1)}", f"/{suggestion[0]}", number))
            continue
        if len(found) >= MAX_COMMANDS:
            found.append(Malformed(name, f"at most {MAX_COMMANDS} commands per comment; this one was not run",
                                   number))
            continue
        found.append(_read(name, line[word.end():], number))
    return found


def _read(name: str, rest: str, line: int) -> Reading:
    if len(rest) > MAX_LINE:
        return Malformed(name, f"the line is longer than {MAX_LINE} characters", line)
    if rest and not rest[0].isspace():
        return Malformed(name, f"unknown command '/{name}{rest.split()[0]}'", line)
    try:
        words = shlex.split(rest)
    except ValueError as error:  # an unbalanced quote
        return Malformed(name, f"cannot split the arguments: {error}", line)
    flags = [word for word in words if word.startswith("--")]
    positional = [word for word in words if not word.startswith("--")]
    if name == "deploy":
        return _deploy(positional, flags, line)
    if name == "undeploy":
        return _undeploy(positional, flags, line)
    if name == "import":
        return _import(positional, flags, line)
    if words:
        return Malformed(name, "/help takes no arguments", line)
    return Help(line)


def _deploy(positional: list[str], flags: list[str], line: int) -> Reading:
    unknown = [flag for flag in flags if flag != "--dry-run"]
    if unknown:
        return Malformed("deploy", f"unknown option {unknown[0]}", line)
    if len(positional) > 1:
        return Malformed("deploy", f"one environment at most, got {len(positional)}: {', '.join(positional)}", line)
    if positional and not _ENVIRONMENT.fullmatch(positional[0]):
        return Malformed("deploy", f"'{positional[0]}' is not an environment name", line)
    return Deploy(positional[0] if positional else None, "--dry-run" in flags, line)


def _undeploy(positional: list[str], flags: list[str], line: int) -> Reading:
    unknown = [flag for flag in flags if flag != "--remove-data"]
    if unknown:
        return Malformed("undeploy", f"unknown option {unknown[0]}", line)
    if len(positional) != 1:
        return Malformed("undeploy", "name exactly one environment" if not positional else
                         f"one environment, got {len(positional)}: {', '.join(positional)}", line)
    if not _ENVIRONMENT.fullmatch(positional[0]):
        return Malformed("undeploy", f"'{positional[0]}' is not an environment name", line)
    return Undeploy(positional[0], "--remove-data" in flags, line)


def _import(positional: list[str], flags: list[str], line: int) -> Reading:
    if flags:
        return Malformed("import", f"unknown option {flags[0]}", line)
    if not positional or "=" in positional[0]:
        return Malformed("import", "name the component first (its name or id)", line)
    parameters: dict[str, str] = {}
    for word in positional[1:]:
        key, equals, value = word.partition("=")
        if not equals or not _PARAMETER_NAME.fullmatch(key):
            return Malformed("import", f"'{word}' is not key=value", line)
        if key in parameters:
            return Malformed("import", f"'{key}' is given twice", line)
        parameters[key] = value
    return Import(positional[0], parameters, line)
