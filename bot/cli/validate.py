"""`meshbot validate`: each tech adapter's read-only validate of a data product, from the command line.

The same questions `/deploy --dry-run` and a merge request review ask, without a forge: the folder is assembled
for ENV, each task's adapter is resolved from the server configuration and asked (in parallel, bounded), and
every error is shown at the file:line:col of the value it names, under the component it names.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from bot.cli.common import DEFAULT_ENVIRONMENT

EXIT_VALID, EXIT_REFUSED, EXIT_INPUT, EXIT_ADAPTER_FAILED = 0, 1, 2, 3
VALIDATE_TIMEOUT = 60.0  # at most, per adapter (less when the adapter's own `timeout` is shorter)
PARALLEL = 8
DESCRIPTION = (
    "Assemble the data product at PATH for ENV and ask the tech adapter of each of its tasks (from the server "
    "configuration's `adapters`) whether it would accept it: their read-only /v1/validate, nothing provisioned. "
    "Each task is valid, refused by its adapter (each error at the file:line:col of the value it names, under "
    "the component it names), or its adapter failed (unreachable, HTTP 5xx, 404, 422, a malformed answer: it "
    "judged nothing). Exit 0 every task valid, 1 an adapter refused, 2 input error (the folder, the "
    "configuration, a task no adapter serves), 3 an adapter failed and none refused."
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `meshbot validate` to the command line."""
    validate = commands.add_parser(
        "validate", description=DESCRIPTION,
        help="ask each tech adapter's read-only validate (exit 0 valid, 1 refused, 2 input error, 3 adapter failed)")
    validate.add_argument("path", metavar="PATH", help="the data product repository folder")
    validate.add_argument("--env", default=DEFAULT_ENVIRONMENT,
                          help=f"the environment to assemble for and whose adapters to ask (default: "
                               f"{DEFAULT_ENVIRONMENT})")
    validate.add_argument("--config", metavar="FILE", help="the server configuration (default: $MESHBOT_CONFIG)")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(handler=_validate_command)


def _validate_command(arguments: argparse.Namespace) -> int:
    from adapters.registry import AdapterRegistry
    from bot.cli.common import assemble_folder, config_for_environment, display_file, print_errors
    from bot.engine.plan import build_plan
    from bot.forge.adapter_validation import ask_adapters

    config = config_for_environment(arguments.config, arguments.env)
    if isinstance(config, int):
        return config
    descriptor = assemble_folder(arguments.path, arguments.env)  # InputErrors: printed by main, exit 2
    registry = AdapterRegistry(config.adapters)
    unresolved = registry.unresolved(descriptor)
    if unresolved:
        print_errors(unresolved, arguments.path)
        return EXIT_INPUT
    plan = build_plan(descriptor)
    verdicts = ask_adapters(descriptor, registry.resolve_all(descriptor),
                            [task_id for stage in plan.stages for task_id in stage], VALIDATE_TIMEOUT, PARALLEL)
    show = display_file(arguments.path)
    if arguments.format == "json":
        sys.stdout.write(json.dumps(validation_json(descriptor.id, descriptor.environment, verdicts, show),
                                    indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(validation_text(descriptor.id, descriptor.environment, verdicts, show))
    return exit_code(verdicts)


def exit_code(verdicts: list[Any]) -> int:
    """1 when an adapter refused (the descriptor must change), else 3 when one failed, else 0."""
    if any(verdict.refused for verdict in verdicts):
        return EXIT_REFUSED
    return EXIT_ADAPTER_FAILED if any(verdict.failed for verdict in verdicts) else EXIT_VALID


def validation_text(data_product: str, environment: str, verdicts: list[Any],
                    show_file: Callable[[str], str] = str) -> str:
    """Each task's verdict on a line, its errors indented below it (a multi-line error as an indented block)."""
    counts = {status: sum(1 for verdict in verdicts if verdict.status == status)
              for status in ("valid", "refused", "failed")}
    summary = ", ".join(part for part in (
        f"{counts['valid']} valid" if counts["valid"] else "",
        f"{counts['refused']} refused" if counts["refused"] else "",
        f"{counts['failed']} adapter{'s' if counts['failed'] != 1 else ''} failed" if counts["failed"] else "",
    ) if part)
    lines = [f"{data_product} in {environment}: {len(verdicts)} task{'s' if len(verdicts) != 1 else ''}, "
             f"{summary or 'none asked'}"]
    kind_width = max((len(verdict.kind) for verdict in verdicts), default=0)
    for verdict in verdicts:
        lines.append(f"  {verdict.kind:<{kind_width}}  {verdict.task}: {_verdict_words(verdict)}")
        if verdict.failed:
            lines.append(f"    {_one_line(verdict.message)}")
            if verdict.adapter and verdict.adapter not in verdict.message:
                lines.append(f"    (the adapter at {verdict.adapter})")
        for error in verdict.errors:
            lines.extend(_error_lines(error, show_file))
    if counts["failed"]:
        lines.append("an adapter that failed judged nothing: ask it again once it answers")
    return "\n".join(lines) + "\n"


def _verdict_words(verdict: Any) -> str:
    if verdict.valid:
        return "valid"
    if verdict.failed:
        return "adapter failed, could not validate"
    if verdict.message and not verdict.said:
        return f"refused: {_one_line(verdict.message)}"
    return "refused"


def _error_lines(error: Any, show_file: Callable[[str], str]) -> list[str]:
    position = error.position
    where = ""
    if position is not None:
        where = show_file(position.file) + "".join(f":{part}" for part in (position.line, position.column)
                                                   if part is not None)
    by = f"said by the adapter of {error.said_by}" if error.said_by else ""
    head = where + (f" ({by})" if where and by else by)
    first, *rest = error.lines
    if not rest:
        return [f"    {head + ': ' if head else ''}{first}"]
    return [f"    {head or 'the adapter says'}:", *(f"        {line}" for line in error.lines)]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def validation_json(data_product: str, environment: str, verdicts: list[Any],
                    show_file: Callable[[str], str] = str) -> dict[str, Any]:
    """The verdicts as plain data: `{dataProduct, environment, status, tasks: [{..., errors: [...]}]}`."""
    code = exit_code(verdicts)
    status = {EXIT_VALID: "valid", EXIT_REFUSED: "refused", EXIT_ADAPTER_FAILED: "failed"}[code]

    def error_json(error: Any) -> dict[str, Any]:
        position = error.position
        return {"message": error.message, "path": error.path or None,
                "file": show_file(position.file) if position else None,
                "line": position.line if position else None, "column": position.column if position else None,
                "saidBy": error.said_by or None}

    return {"dataProduct": data_product, "environment": environment, "status": status, "tasks": [
        {"task": verdict.task, "kind": verdict.kind, "status": verdict.status, "adapter": verdict.adapter or None,
         "message": verdict.message, "errors": [error_json(error) for error in verdict.errors]}
        for verdict in verdicts]}
