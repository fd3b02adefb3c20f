"""The meshbot command line: commands, formats, exit codes and error output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import EXAMPLE_DATA_PRODUCT, main
from tests.builders import SYSTEM, component

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(EXAMPLE_DATA_PRODUCT)


def write_repository(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def run_meshbot(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=60)


def test_python_dash_m_bot_checks_the_example_and_exits_zero():
    completed = run_meshbot("check", EXAMPLE)
    assert completed.returncode == 0, completed.stderr
    assert "Result: PASSED" in completed.stdout
    assert completed.stderr == ""


def test_descriptor_prints_yaml_for_the_environment(capsys):
    assert main(["descriptor", EXAMPLE, "--env", "production"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("id: urn:dmb:dp:finance:cashflow:1\n")
    assert "environment: production\n" in output
    assert "viewName: daily_cashflow_v1\n" in output


def test_descriptor_defaults_to_development(capsys):
    assert main(["descriptor", EXAMPLE]) == 0
    output = capsys.readouterr().out
    assert "environment: development\n" in output and "viewName: daily_cashflow_v\n" in output


def test_check_json_shape(capsys):
    assert main(["check", EXAMPLE, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is True
    assert set(document["results"][0]) == {"policy", "resource", "severity", "status", "outcome", "blocking",
                                           "errors"}


def test_check_markdown(capsys):
    assert main(["check", EXAMPLE, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("### meshbot governance: ✅ passed\n")


def test_blocking_policy_exits_one_with_the_file_line_in_the_report(tmp_path):
    repository = write_repository(tmp_path / "repo", {
        "catalog-info.yaml": SYSTEM,
        "components/op/catalog-info.yaml": component("op", mesh="id: urn:dmb:cmp:finance:cashflow:9:op\n"
                                                                 "version: 1.0.0\n"),
    })
    completed = run_meshbot("check", "repo", cwd=tmp_path)
    assert completed.returncode == 1
    assert ("    repo/components/op/catalog-info.yaml:9:9: components[0].id: component id "
            "'urn:dmb:cmp:finance:cashflow:9:op' ends with major version '9'") in completed.stdout
    assert completed.stdout.rstrip().endswith("Result: BLOCKED")
    assert repository.is_dir()


def test_input_errors_go_to_stderr_as_file_line_column_and_exit_two(tmp_path):
    write_repository(tmp_path / "repo", {
        "catalog-info.yaml": SYSTEM,
        "components/op/catalog-info.yaml": component("op", mesh="version: 1.0.0\ndependsOn: [urn:dmb:cmp:x:y:1:z]\n"),
        "components/bad/catalog-info.yaml": "kind: Component\nmetadata: {name: [\n",
    })
    completed = run_meshbot("check", "repo", cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [
        "repo/components/bad/catalog-info.yaml:3:1: malformed YAML: the '[' opened on line 2, column 18 is never "
        "closed; the parser says: while parsing a flow node expected the node content, but found '<stream end>'",
    ]


def test_structural_error_exits_two(tmp_path):
    write_repository(tmp_path / "repo", {
        "catalog-info.yaml": SYSTEM,
        "components/op/catalog-info.yaml": component("op", mesh="version: 1.0.0\ndependsOn: [urn:dmb:cmp:x:y:1:z]\n"),
    })
    for command in ("check", "descriptor", "plan"):
        completed = run_meshbot(command, "repo", cwd=tmp_path)
        assert completed.returncode == 2, command
        assert completed.stderr == (
            "repo/components/op/catalog-info.yaml:10:17: dependsOn 'urn:dmb:cmp:x:y:1:z' is not a component of "
            "this data product\n"
        )


def test_invalid_policy_folder_file_exits_two_and_names_the_field(tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("id: p\ndescription: d\ntarget: everything\nseverity: error\n"
                                     "status: enabled\nbuiltin: urn-ids\n")
    assert main(["check", EXAMPLE, "--policies", str(policies)]) == 2
    assert capsys.readouterr().err == (
        f"{policies / 'p.yaml'}:3:9: field 'target': 'everything' is not one of dataproduct, component\n"
    )


def test_policies_folder_adds_to_the_builtins(tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("id: needs-email\ndescription: an email to reach the team\n"
                                     "target: dataproduct\nseverity: error\nstatus: enabled\n"
                                     "schema: {required: [slack]}\n")
    assert main(["check", EXAMPLE, "--policies", str(policies), "--format", "json"]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert {"needs-email", "data-product-id"} <= {r["policy"] for r in results}
    [failed] = [r for r in results if r["outcome"] == "failed"]
    assert failed["errors"][0]["message"] == "missing required field 'slack'"


def test_previous_descriptor_detects_a_breaking_change(tmp_path, capsys):
    assert main(["descriptor", EXAMPLE]) == 0
    previous = capsys.readouterr().out.replace("- name: net_amount", "- name: gross_amount")
    (tmp_path / "previous.yaml").write_text(previous)
    assert main(["check", EXAMPLE, "--previous", str(tmp_path / "previous.yaml")]) == 1
    output = capsys.readouterr().out
    assert "column 'gross_amount' was dropped from output port 'Daily cash flow'" in output


def test_previous_descriptor_as_json(tmp_path, capsys):
    assert main(["check", EXAMPLE, "--format", "json"]) == 0
    capsys.readouterr()
    main(["descriptor", EXAMPLE])
    from ruamel.yaml import YAML
    data = YAML(typ="safe").load(capsys.readouterr().out)
    (tmp_path / "previous.json").write_text(json.dumps(data))
    assert main(["check", EXAMPLE, "--previous", str(tmp_path / "previous.json")]) == 0


def test_missing_previous_file_exits_two(tmp_path, capsys):
    assert main(["check", EXAMPLE, "--previous", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nope.yaml'}: previous descriptor not found\n"


def test_plan_text_and_json(capsys):
    assert main(["plan", EXAMPLE]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "3 tasks in 2 stages (tasks of one stage run in parallel)"
    assert main(["plan", EXAMPLE, "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["stages"] == [
        ["urn:dmb:cmp:finance:cashflow:1:ledger"],
        ["urn:dmb:cmp:finance:cashflow:1:daily-cashflow", "urn:dmb:cmp:finance:cashflow:1:transactions"],
    ]
    assert plan["tasks"][0] == {"id": "urn:dmb:cmp:finance:cashflow:1:daily-cashflow", "kind": "outputport",
                                "depends_on": ["urn:dmb:cmp:finance:cashflow:1:ledger"]}


def test_plan_text_counts_one_task_in_one_stage(capsys):
    from bot.cli.main import plan_text
    from bot.descriptor.model import Descriptor
    from bot.engine.plan import build_plan

    descriptor = Descriptor(data={"id": "urn:dmb:dp:finance:cashflow:1", "components": [
        {"id": "urn:dmb:cmp:finance:cashflow:1:ledger", "kind": "storage"}]}, environment="development")
    assert plan_text(build_plan(descriptor)).splitlines()[0] == "1 task in 1 stage (tasks of one stage run in parallel)"


def test_not_a_folder_exits_two(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert "is not a folder (expected a data product repository)" in capsys.readouterr().err


def test_invalid_environment_name_exits_two(capsys):
    assert main(["descriptor", EXAMPLE, "--env", "../etc"]) == 2
    assert capsys.readouterr().err == "meshbot: invalid environment name '../etc'\n"


def test_run_checks_plans_and_deploys_the_bundled_example(meshbot, tmp_path):
    completed = meshbot("run", timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Result: PASSED" in completed.stdout and "stage 2:" in completed.stdout
    assert "DEPLOYED: 3 completed" in completed.stdout
    assert (tmp_path / "home" / "demo" / "reference-adapter.db").is_file()


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    assert "usage: meshbot" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--version"])
def test_version(flag, capsys):
    with pytest.raises(SystemExit) as exited:
        main([flag])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("meshbot ")


def test_config_policy_folders_are_added(tmp_path, capsys, monkeypatch):
    policies = tmp_path / "governance"
    policies.mkdir()
    (policies / "p.yaml").write_text("id: needs-slack\ndescription: a slack channel\ntarget: dataproduct\n"
                                     "severity: error\nstatus: enabled\nschema: {required: [slack]}\n")
    (tmp_path / "meshbot.yaml").write_text("policies: [governance]\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    assert main(["check", EXAMPLE, "--format", "json"]) == 1
    assert "needs-slack" in {r["policy"] for r in json.loads(capsys.readouterr().out)["results"]}


def test_invalid_config_exits_two(tmp_path, capsys):
    (tmp_path / "meshbot.yaml").write_text("polices: []\n")
    assert main(["check", EXAMPLE, "--config", str(tmp_path / "meshbot.yaml")]) == 2
    assert capsys.readouterr().err == (
        f"{tmp_path / 'meshbot.yaml'}:1:1: configuration: unknown key 'polices' (known keys: adapters, policies, "
        "environments, marketplace, redis_url, deployments, deploy, merge_requests, releases, catch_up, "
        "policy_engines, compliance, access, public_url)\n"
    )
