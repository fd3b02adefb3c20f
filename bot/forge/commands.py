"""Commands read from a comment: `/deploy`, `/import`, `/undeploy`, `/rollback`, `/request-access`, `/help` (pure).

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
    "deploy": "/deploy [ENV] [--dry-run] [--prune] [--component NAME ...]",
    "import": "/import COMPONENT [key=value ...]",
    "undeploy": "/undeploy ENV [--remove-data]",
    "rollback": "/rollback ENV [VERSION]",
    "request-access": "/request-access OUTPUT_PORT [--group GROUP_PATH]",
    "help": "/help",
}
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FENCE = re.compile(r"^\s*(```|~~~)")
_VERSION = re.compile(r"v?\d+\.\d+\.\d+[0-9A-Za-z.+-]*")
_PORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}")  # a short name, or a component id (urn:...)
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*(/[A-Za-z0-9][A-Za-z0-9_.@-]*)*")  # GitHub org/team, GitLab path
MAX_GROUP = 255
VALUE_FLAGS = frozenset({"--component"})  # options followed by a value


@dataclass(frozen=True, slots=True)
class Deploy:
    """`/deploy [ENV] [--dry-run] [--prune] [--component NAME ...]`: deploy the merge request's head.

    ENV None: the merge-request environment; --prune removes components no longer in the repository where the
    environment's prune mode is `confirm`; --component deploys only those components (and what they need).
    """

    environment: str | None
    dry_run: bool = False
    line: int = 0
    prune: bool = False
    components: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rollback:
    """`/rollback ENV [VERSION]`: redeploy a version kept in the environment's history (default: the previous)."""

    environment: str
    version: str | None = None
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
class RequestAccess:
    """`/request-access OUTPUT_PORT [--group GROUP_PATH]`: a merge request adding the commenter (or group) as consumer.

    Anyone may ask, for themselves or for any group: the port's owners decide by merging (or closing) it.
    """

    port: str
    group: str | None = None
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


Command = Deploy | Import | Undeploy | Rollback | RequestAccess | Help
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
    if name == "deploy":
        return _deploy(words, line)
    flags = [word for word in words if word.startswith("--")]
    positional = [word for word in words if not word.startswith("--")]
    if name == "rollback":
        return _rollback(positional, flags, line)
    if name == "undeploy":
        return _undeploy(positional, flags, line)
    if name == "import":
        return _import(positional, flags, line)
    if name == "request-access":
        return _request_access(words, line)
    if words:
        return Malformed(name, "/help takes no arguments", line)
    return Help(line)


def _deploy(words: list[str], line: int) -> Reading:
    flags: set[str] = set()
    components: list[str] = []
    positional: list[str] = []
    remaining = iter(words)
    for word in remaining:
        option, equals, value = word.partition("=")
        if option in VALUE_FLAGS:
            if not equals:
                value = next(remaining, "")
            if not value or value.startswith("--"):
                return Malformed("deploy", f"{option} needs a component name or id", line)
            components.append(value)
        elif word in ("--dry-run", "--prune"):
            flags.add(word)
        elif word.startswith("--"):
            return Malformed("deploy", f"unknown option {word}", line)
        else:
            positional.append(word)
    if len(positional) > 1:
        return Malformed("deploy", f"one environment at most, got {len(positional)}: {', '.join(positional)}", line)
    if positional and not _ENVIRONMENT.fullmatch(positional[0]):
        return Malformed("deploy", f"'{positional[0]}' is not an environment name", line)
    if components and "--prune" in flags:
        return Malformed("deploy", "--prune and --component do not go together: a deploy of single components "
                                   "never removes any", line)
    return Deploy(positional[0] if positional else None, "--dry-run" in flags, line, "--prune" in flags,
                  tuple(dict.fromkeys(components)))


def _rollback(positional: list[str], flags: list[str], line: int) -> Reading:
    if flags:
        return Malformed("rollback", f"unknown option {flags[0]}", line)
    if not positional or len(positional) > 2:
        return Malformed("rollback", "name the environment, and at most one version" if positional else
                         "name the environment", line)
    if not _ENVIRONMENT.fullmatch(positional[0]):
        return Malformed("rollback", f"'{positional[0]}' is not an environment name", line)
    if len(positional) == 2 and not _VERSION.fullmatch(positional[1]):
        return Malformed("rollback", f"'{positional[1]}' is not a version (like 1.4.2)", line)
    version = positional[1].removeprefix("v") if len(positional) == 2 else None
    return Rollback(positional[0], version, line)


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


def _request_access(words: list[str], line: int) -> Reading:
    positional: list[str] = []
    groups: list[str] = []
    remaining = iter(words)
    for word in remaining:
        option, equals, value = word.partition("=")
        if option == "--group":
            if not equals:
                value = next(remaining, "")
            if not value or value.startswith("--"):
                return Malformed("request-access", "--group needs a group path (a GitHub org/team, a GitLab group)",
                                 line)
            groups.append(value)
        elif word.startswith("--"):
            return Malformed("request-access", f"unknown option {word}", line)
        else:
            positional.append(word)
    if len(positional) != 1:
        return Malformed("request-access", "name exactly one output port" if not positional else
                         f"one output port, got {len(positional)}: {', '.join(positional)}", line)
    if not _PORT.fullmatch(positional[0]):
        return Malformed("request-access", f"'{positional[0]}' is not an output port name", line)
    if len(groups) > 1:
        return Malformed("request-access", "one --group at most", line)
    if groups and (len(groups[0]) > MAX_GROUP or not _GROUP.fullmatch(groups[0])):
        return Malformed("request-access", f"'{groups[0]}' is not a group path (letters, digits, '_', '.', '@', "
                                           "'-', parts separated by '/')", line)
    return RequestAccess(positional[0], groups[0] if groups else None, line)
