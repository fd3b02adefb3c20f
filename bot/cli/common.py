"""What the `meshbot` commands share: reading a repository folder, running policies, printing errors.

The command modules import this, never each other (the import contracts in pyproject.toml hold them to it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from bot.descriptor.errors import InputError, InputErrors, SourcePosition

# Assembly, policies and the configuration are imported by the functions that use them: every command imports
# this module, and `meshbot --version` or `--help` should not pay for them (tests/cli/test_startup.py).
if TYPE_CHECKING:
    from bot.config import ServerConfig
    from bot.descriptor.model import Descriptor
    from policies.report import CheckReport

EXIT_OK, EXIT_BLOCKED, EXIT_INPUT = 0, 1, 2
# bot.descriptor.assembly's DEFAULT_ENVIRONMENT (a test holds them equal), without importing assembly for --help.
DEFAULT_ENVIRONMENT = "development"
# While a `--format json` command runs (main() sets it): where print_errors keeps its errors (files as shown).
_json_errors: list[InputError] | None = None


def assemble_folder(path: str, environment: str) -> Descriptor:
    """The descriptor of the data product repository path is in (see repository_root); InputErrors when none."""
    from bot.cli.repository_root import find_root, refusal, relocate_positions, relocated_error
    from bot.descriptor.assembly import assemble
    from bot.descriptor.files import DirectoryReader

    folder = Path(path)
    if not folder.is_dir():
        raise InputErrors([InputError(f"'{path}' is not a folder (expected a data product repository)")])
    root = find_root(path)
    if root is None:
        raise InputErrors([refusal(path)])
    if root.levels_up:
        print(f"meshbot: using the repository root '{root.shown(path)}' ({root.reason})", file=sys.stderr)
    try:
        descriptor = assemble(DirectoryReader(root.folder), environment)
    except InputErrors as invalid:
        raise InputErrors([relocated_error(error, root.levels_up, path) for error in invalid.errors]) from None
    relocate_positions(descriptor, root.levels_up, path)
    show = display_file(path)
    for warning in descriptor.warnings:
        where = warning.position
        shown = f"{SourcePosition(show(where.file), where.line, where.column)}: " if where else ""
        print(f"{shown}warning: {warning.message}", file=sys.stderr)
    return descriptor


def run_policies(descriptor: Descriptor, policies: list[Any], previous: dict[str, Any] | None,
                 previous_missing: str = "no deployed descriptor given") -> CheckReport:
    from policies.engine import evaluate
    from policies.report import CheckReport

    results = evaluate(descriptor, policies, previous, previous_missing=previous_missing)
    active = sum(1 for policy in policies if policy.status != "draft")
    return CheckReport(descriptor=descriptor, results=results, policy_count=active)


def use_color(stream: TextIO) -> bool:
    """Whether to colour output on stream (NO_COLOR and FORCE_COLOR win over the terminal check)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def display_file(root: str | None) -> Callable[[str], str]:
    """Show repository files relative to where the user stands, so terminals and editors can open them."""
    def show(file: str) -> str:
        if root is None or "://" in file or os.path.isabs(file):
            return file
        return os.path.normpath(os.path.join(root, file))

    return show


def print_errors(errors: list[InputError], root: str | None) -> None:
    """Each error on stderr as file:line:col: message, files shown relative to where the user stands.

    Under `--format json` (errors_as_json) they are kept for the command's JSON document instead.
    """
    show = display_file(root)
    for error in errors:
        position = error.position
        if _json_errors is not None:
            _json_errors.append(InputError(error.message, position and position._replace(file=show(position.file))))
            continue
        if position is None:
            print(f"meshbot: {error.message}", file=sys.stderr)
            continue
        shown = SourcePosition(show(position.file), position.line, position.column)
        print(f"{shown}: {error.message}", file=sys.stderr)


def print_error(message: str) -> None:
    """One input error without a place: `meshbot: message` on stderr (or kept for the JSON document)."""
    print_errors([InputError(message)], None)


def config_for_environment(config_file: str | None, environment: str) -> ServerConfig | int:
    """The server configuration (--config, else $MESHBOT_CONFIG), or exit 2 after saying why it is unusable or
    does not know the environment."""
    from bot.config import config_path, load_config

    try:
        config = load_config(config_path(config_file))
    except InputErrors as invalid:
        print_errors(invalid.errors, None)
        return EXIT_INPUT
    problem = config.environment_error(environment)
    if problem:
        print_error(problem)
        return EXIT_INPUT
    return config


def end_process(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process with code at once: no freeing of objects, no exit handlers.

    Only for a command that started nothing an exit handler would stop (no embedded Redis, no workers). A reader
    that went away (`meshbot check | head`) is not an error of ours: exit 0, as main() answers it.
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = EXIT_OK
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def write_bytes(stream: TextIO, data: bytes) -> None:
    """Write ASCII data to a text stream through its binary buffer when it has one (no decoding to text and encoding
    back), after what was written to it as text; a stream without a buffer (io.StringIO) gets the text."""
    binary = getattr(stream, "buffer", None)
    if binary is None:
        stream.write(data.decode("ascii"))
        return
    stream.flush()
    binary.write(data)


@contextmanager
def errors_as_json(enabled: bool) -> Iterator[list[InputError]]:
    """While enabled, print_errors keeps errors in the list this yields (for errors_document) instead of printing."""
    global _json_errors
    outer = _json_errors
    kept: list[InputError] | None = [] if enabled else None
    _json_errors = kept
    try:
        yield kept if kept is not None else []
    finally:
        _json_errors = outer


def errors_document(errors: list[InputError]) -> str:
    """The JSON document of a command's input errors: `{"errors": [{message, file, line, column}]}`."""
    def entry(error: InputError) -> dict[str, Any]:
        file, line, column = error.position or (None, None, None)
        return {"message": error.message, "file": file, "line": line, "column": column}

    return json.dumps({"errors": [entry(error) for error in errors]}, indent=2, ensure_ascii=False) + "\n"
