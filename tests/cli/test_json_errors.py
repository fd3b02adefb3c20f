"""Input errors under `--format json`: one JSON document on stdout (`{"errors": [...]}`), exit 2, for every command
that has `--format json`; text mode keeps FILE:LINE:COL: message on stderr. `python -m bot.cli` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = "urn:dmb:dp:finance:cashflow:1"


def run(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("REDIS_URL", "MESHBOT_CONFIG", "FORCE_COLOR")}
    environment.update({"MESHBOT_HOME": str(tmp_path / "home"), "NO_COLOR": "1"})
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """tmp_path with a configuration that knows only development, and a repository with malformed YAML."""
    (tmp_path / "meshbot.yaml").write_text("environments: [development]\n")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "catalog-info.yaml").write_text("kind: System\nmetadata: {name: [\n")
    return tmp_path


MALFORMED = {"message": "malformed YAML: ", "file": "repo/catalog-info.yaml", "line": 3, "column": 1}  # a prefix
UNKNOWN_ENVIRONMENT = {"message": "environment 'qa' is not in the server configuration (known: development)",
                       "file": None, "line": None, "column": None}


def missing(path: str) -> dict[str, object]:
    return {"message": f"'{path}' is not a folder (expected a data product repository)", "file": None, "line": None,
            "column": None}


CASES = {
    "check": (["check", "repo"], [MALFORMED]),
    "plan": (["plan", "nowhere"], [missing("nowhere")]),
    "diff": (["diff", "repo", "--against", "deployed.yaml"], None),  # the repository's and the file's errors
    "deploy": (["deploy", "repo", "--env", "qa", "--config", "meshbot.yaml"], [UNKNOWN_ENVIRONMENT]),
    "undeploy": (["undeploy", "no/such/folder", "--config", "meshbot.yaml"], [
        {"message": "'no/such/folder' is neither a data product repository folder nor a data product id (urn:...)",
         "file": None, "line": None, "column": None}]),
    "status": (["status", PRODUCT, "--env", "qa", "--config", "meshbot.yaml"], [UNKNOWN_ENVIRONMENT]),
    "rollback": (["rollback", "cashflow", "--config", "meshbot.yaml"], [
        {"message": "'cashflow' is not a data product id (urn:...)", "file": None, "line": None, "column": None}]),
    "drift": (["drift", PRODUCT, "--env", "qa", "--config", "meshbot.yaml"], [UNKNOWN_ENVIRONMENT]),
    "templates": (["templates", "--templates", "nowhere"], [
        {"message": "use-case template folder not found", "file": "nowhere", "line": None, "column": None}]),
    "config": (["check", "repo", "--config", "broken.yaml"], [MALFORMED, {
        "message": "configuration: unknown key 'polices' (known keys: adapters, policies, environments, "
                    "marketplace, redis_url, deployments, deploy, merge_requests, releases, catch_up, "
                    "policy_engines, compliance, access, public_url)",
        "file": "broken.yaml", "line": 1, "column": 1}]),
}


@pytest.mark.parametrize("case", CASES)
def test_input_errors_are_a_json_document_on_stdout_with_exit_two(folder, case):
    (folder / "broken.yaml").write_text("polices: []\n")
    arguments, expected = CASES[case]
    completed = run(folder, *arguments, "--format", "json")
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stderr == ""
    document = json.loads(completed.stdout)
    assert list(document) == ["errors"]
    errors = document["errors"]
    for error in errors:
        assert list(error) == ["message", "file", "line", "column"]
    # each message as expected, or beginning so (the YAML parser's own words follow "malformed YAML: ")
    expected = expected or [MALFORMED]
    assert [{**error, "message": error["message"][:len(wanted["message"])]}
            for error, wanted in zip(errors, expected, strict=False)] == expected
    assert len(errors) == len(expected) or case == "diff"
    text = run(folder, *arguments)
    assert (text.returncode, text.stdout) == (2, "")
    assert text.stderr.splitlines()[0] in [
        f"{error['file']}:{error['line']}:{error['column']}: {error['message']}" if error["line"] else
        f"{error['file']}: {error['message']}" if error["file"] else f"meshbot: {error['message']}"
        for error in document["errors"]]


@pytest.mark.parametrize("arguments", [["check", "--format", "json"], ["status", "--format=json"]])
def test_a_usage_error_under_format_json_is_a_json_document_too(tmp_path, arguments):
    completed = run(tmp_path, *arguments)
    assert completed.returncode == 2
    missing_argument = "PATH" if arguments[0] == "check" else "DATA_PRODUCT_ID"
    assert json.loads(completed.stdout) == {"errors": [
        {"message": f"the following arguments are required: {missing_argument}", "file": None, "line": None,
         "column": None}]}
    assert completed.stderr.startswith(f"usage: meshbot {arguments[0]}")  # the usage stays for the person


def test_json_output_keeps_working_when_nothing_is_wrong(tmp_path):
    completed = run(tmp_path, "plan", str(ROOT / "examples" / "finance-cashflow"), "--format", "json")
    assert completed.returncode == 0 and "errors" not in json.loads(completed.stdout)
