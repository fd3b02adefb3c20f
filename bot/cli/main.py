"""The `meshbot` command line: descriptor, check, plan and run."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from bot import __version__
from bot.cli.commands import command_of, register_commands
from bot.cli.common import (
    DEFAULT_ENVIRONMENT,
    EXIT_BLOCKED,
    EXIT_INPUT,
    EXIT_OK,
    display_file,
    end_process,
    errors_as_json,
    errors_document,
    print_errors,
    use_color,
    write_bytes,
)
from bot.descriptor.errors import InputError, InputErrors

# Each command imports what only it needs (assembly, policies, Redis, web frameworks ...) when it runs, so that
# `meshbot --version`, `--help` and a check pay only for their own imports (tests/cli/test_startup.py).
if TYPE_CHECKING:
    from bot.engine.plan import Plan
    from policies.report import CheckReport

EXAMPLE_DATA_PRODUCT = Path(__file__).resolve().parents[2] / "examples" / "finance-cashflow"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one meshbot command; the return value is the process exit code.

    Under `--format json`, input errors (exit 2) are one JSON document on stdout: `{"errors": [...]}`.
    As the process's own command line (argv None), a check that wrote its report ends the process here, once its
    output is flushed: freeing its millions of objects one by one would only delay the exit (end_process).
    """
    parser = _parser(command_of(sys.argv[1:] if argv is None else argv))
    try:
        arguments = parser.parse_args(argv)
    except _UsageError as usage:
        if not _asks_for_json(sys.argv[1:] if argv is None else argv):
            argparse.ArgumentParser.error(usage.parser, usage.message)  # exits 2, as argparse does
        usage.parser.print_usage(sys.stderr)
        sys.stdout.write(errors_document([InputError(usage.message)]))
        return EXIT_INPUT
    if not hasattr(arguments, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    arguments.ends_process = argv is None
    with errors_as_json(getattr(arguments, "format", None) == "json") as errors:
        code = _handle(arguments)
    if errors and code == EXIT_INPUT:
        sys.stdout.write(errors_document(errors))
    elif errors:  # an error beside an outcome that has its own document: never lost
        print_errors(errors, None)
    if getattr(arguments, "kept_until_exit", None) is not None:
        end_process(code)
    return code


def _handle(arguments: argparse.Namespace) -> int:
    try:
        return int(arguments.handler(arguments))
    except InputErrors as invalid:
        print_errors(invalid.errors, getattr(arguments, "path", None))
        return EXIT_INPUT
    except BrokenPipeError:
        # `meshbot check | head`: the reader went away; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


class _UsageError(Exception):
    """A command line argparse refuses, raised so that main() answers it in the format asked for."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser, self.message = parser, message


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' parsers are of this class too) whose usage errors are raised."""

    def error(self, message: str) -> NoReturn:
        """Raise the usage error for main()."""
        raise _UsageError(self, message)


def _asks_for_json(argv: Sequence[str]) -> bool:
    """Whether a command line argparse refused asked for `--format json`."""
    return "--format=json" in argv or any(first == "--format" and second == "json"
                                          for first, second in zip(argv, argv[1:], strict=False))


def _parser(command: str | None, everything: bool = False) -> argparse.ArgumentParser:
    """meshbot's parser, in full for the command named (every command's in full with everything)."""
    parser = _Parser(
        prog="meshbot",
        description="GitOps bot for data-mesh platforms: assemble data product descriptors, "
        "check governance policies, plan deployments.",
    )
    parser.add_argument("--version", action="version", version=f"meshbot {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    descriptor = commands.add_parser("descriptor", help="print the data product descriptor as YAML")
    _add_path_and_env(descriptor)
    descriptor.set_defaults(handler=_descriptor_command)

    check = commands.add_parser(
        "check",
        help="run the governance policies (exit 0: nothing blocks, 1: a policy blocks, 2: bad input)",
    )
    _add_path_and_env(check)
    check.add_argument("--policies", metavar="DIR", action="append", default=[],
                       help="a folder of policy files added to the built-in policies (repeatable)")
    check.add_argument("--config", metavar="FILE",
                       help="the server configuration (default: $MESHBOT_CONFIG); its policy folders are added")
    check.add_argument("--previous", metavar="FILE",
                       help="the previously deployed descriptor (YAML or JSON), for breaking-change checks")
    check.add_argument("--against-deployed", action="store_true",
                       help="compare with what is deployed in --env (the local engine, or --server URL), as a "
                            "merge request review does")
    check.add_argument("--server", metavar="URL",
                       help="with --against-deployed: a meshbot service to ask (MESHBOT_API_TOKEN holds its token)")
    check.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    check.set_defaults(handler=_check_command)

    plan = commands.add_parser("plan", help="show the provisioning plan and the stages that run in parallel")
    _add_path_and_env(plan)
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(handler=_plan_command)

    run = commands.add_parser("run", help="check the bundled example data product and print its report and plan")
    run.set_defaults(handler=_run_command)

    # Commands whose code lives beside what they drive (adapters, use-case templates, the engine) register here;
    # they import web frameworks only when they run, so the domain never depends on them. Only the module of the
    # command being run is imported (bot.cli.commands).
    register_commands(commands, command, everything)
    return parser


def _add_path_and_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="the data product repository folder")
    parser.add_argument("--env", default=DEFAULT_ENVIRONMENT,
                        help=f"the environment to assemble for (default: {DEFAULT_ENVIRONMENT})")


def _descriptor_command(arguments: argparse.Namespace) -> int:
    from bot.cli.common import assemble_folder
    from bot.descriptor.yamldump import dump_yaml

    descriptor = assemble_folder(arguments.path, arguments.env)
    sys.stdout.write(dump_yaml(descriptor.data))
    return EXIT_OK


def _check_command(arguments: argparse.Namespace) -> int:
    from bot.descriptor.collector import collector_paused

    # A large check allocates millions of long-lived objects and no cycles; the process ends right after.
    if _check_ends_process(arguments):
        # main() ends the process once the report is out: the collector stays off, so that neither a collection
        # nor the freeing of the report's objects comes between the report and the exit.
        gc.disable()
        return _check(arguments)
    with collector_paused():
        return _check(arguments)


def _check(arguments: argparse.Namespace) -> int:
    from bot.cli.common import assemble_folder, run_policies
    from bot.cli.deployed_source import load_deployed_file
    from bot.config import config_path, load_config
    from policies.loader import load_policies

    errors: list[InputError] = []
    policies, descriptor, previous = [], None, None
    try:
        config = load_config(config_path(arguments.config))
        policies = load_policies([*config.policy_folders, *arguments.policies], engines=config.policy_engines)
    except InputErrors as invalid:
        errors.extend(invalid.errors)
    missing = "no deployed descriptor given (--previous FILE or --against-deployed)"
    try:
        previous = load_deployed_file(arguments.previous, "previous descriptor") if arguments.previous else None
    except InputErrors as invalid:
        errors.extend(invalid.errors)
    if arguments.previous and arguments.against_deployed:
        errors.append(InputError("--previous and --against-deployed both name the deployed descriptor: use one"))
    if arguments.server and not arguments.against_deployed:
        errors.append(InputError("--server goes with --against-deployed"))
    try:
        descriptor = assemble_folder(arguments.path, arguments.env)
    except InputErrors as invalid:
        print_errors(invalid.errors, arguments.path)
    if descriptor is not None and arguments.against_deployed and not errors:
        from bot.cli.deployed_source import deployed_source

        try:
            deployed = deployed_source(arguments).deployed(descriptor.id, arguments.env)
            previous = deployed.descriptor if deployed else None
            missing = f"nothing deployed in {arguments.env}"
        except InputErrors as invalid:
            errors.extend(invalid.errors)
    if errors:
        print_errors(errors, None)
    if errors or descriptor is None:
        return EXIT_INPUT
    report = run_policies(descriptor, policies, previous, missing)
    _write_report(report, arguments.format, arguments.path, sys.stdout)
    if _check_ends_process(arguments):
        arguments.kept_until_exit = report  # for main()'s end_process, which never frees it
    return EXIT_OK if report.passed else EXIT_BLOCKED


def _check_ends_process(arguments: argparse.Namespace) -> bool:
    """Whether main() ends the process after this check: it is the process's command line, and it starts nothing
    an exit handler would stop (--against-deployed may start the embedded Redis)."""
    return bool(arguments.ends_process) and not arguments.against_deployed


def _write_report(report: CheckReport, output_format: str, path: str, stream: TextIO) -> None:
    from policies.report import to_json_bytes, to_markdown, to_text

    if output_format == "json":
        write_bytes(stream, to_json_bytes(report))  # orjson's bytes as they are: no 49 MB decoded, then encoded again
        stream.write("\n")  # on its own: `+ b"\n"` would copy all of a large report
    elif output_format == "markdown":
        stream.write(to_markdown(report))
    else:
        stream.write(to_text(report, color=use_color(stream), show_file=display_file(path)))


def _plan_command(arguments: argparse.Namespace) -> int:
    from bot.cli.common import assemble_folder
    from bot.engine.plan import build_plan

    plan = build_plan(assemble_folder(arguments.path, arguments.env))
    if arguments.format == "json":
        sys.stdout.write(json.dumps(plan.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(plan_text(plan))
    return EXIT_OK


def plan_text(plan: Plan) -> str:
    """The plan as numbered stages of tasks that run at the same time."""
    from policies.report import counted

    kinds = {task.id: task.kind for task in plan.tasks}
    lines = [f"{counted(len(plan.tasks), 'task')} in {counted(len(plan.stages), 'stage')} "
             "(tasks of one stage run in parallel)"]
    for number, stage in enumerate(plan.stages, start=1):
        lines.append(f"stage {number}:")
        lines.extend(f"  {kinds[task_id]:<13} {task_id}" for task_id in stage)
    return "\n".join(lines) + "\n"


def _run_command(arguments: argparse.Namespace) -> int:
    path = str(EXAMPLE_DATA_PRODUCT)
    from bot.cli.common import run_policies
    from bot.descriptor.assembly import assemble
    from bot.descriptor.files import DirectoryReader
    from bot.engine.plan import build_plan
    from policies.loader import load_policies

    print(f"meshbot {__version__}: checking the bundled example data product in {path}\n")
    descriptor = assemble(DirectoryReader(EXAMPLE_DATA_PRODUCT), DEFAULT_ENVIRONMENT)
    report = run_policies(descriptor, load_policies(), None)
    _write_report(report, "text", path, sys.stdout)
    print()
    sys.stdout.write(plan_text(build_plan(descriptor)))
    if not report.passed:
        return EXIT_BLOCKED
    from bot.cli.demo import deploy_example

    code = deploy_example(EXAMPLE_DATA_PRODUCT, DEFAULT_ENVIRONMENT, main)
    print(f"\nNext: `meshbot status {descriptor.id}`, `meshbot check PATH` and `meshbot deploy PATH --config FILE` "
          "on your own data product, and `meshbot serve` for the webhook service (see README.md).")
    return code


