"""`meshbot config schema` and `meshbot config check`, run as real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

from bot.config import CONFIG_SCHEMA

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
adapters:
  - infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0
    url: http://127.0.0.1:8091/datamesh.specificprovisioner
environments: [development, production]
"""


def run_meshbot(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=60)


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    (tmp_path / "meshbot.yaml").write_text(text)
    return run_meshbot("config", "check", "meshbot.yaml", cwd=tmp_path)


def test_a_good_file_is_ok(tmp_path):
    completed = check(tmp_path, GOOD)
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "meshbot.yaml: ok\n", "")


def test_the_example_configuration_is_ok():
    completed = run_meshbot("config", "check", "examples/meshbot.yaml")
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "examples/meshbot.yaml: ok\n", "")


def test_a_typo_in_a_key_names_the_known_keys(tmp_path):
    completed = check(tmp_path, GOOD.replace("    url:", "    timout: 5\n    url:"))
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == ("meshbot.yaml:3:5: adapters.0: unknown key 'timout' (known keys: "
                                "infrastructureTemplateId, url, environments, timeout, ca_bundle)\n")


def test_wrong_types_are_each_reported_with_their_position(tmp_path):
    completed = check(tmp_path, GOOD + "deployments:\n  history: fifty\nreleases:\n  environments: production\n")
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "meshbot.yaml:6:12: deployments.history: 'fifty' is not of type 'integer'",
        "meshbot.yaml:8:17: releases.environments: 'production' is not of type 'array'",
    ]


def test_malformed_yaml_is_reported_at_its_line_and_column(tmp_path):
    completed = check(tmp_path, "policies: [governance\nadapters: []\n")
    assert completed.returncode == 1
    assert completed.stderr == ("meshbot.yaml:2:9: malformed YAML: the '[' opened on line 1, column 11 is never "
                                "closed (or a ',' is missing); the parser says: while parsing a flow sequence "
                                "expected ',' or ']', but got ':'\n")


def test_a_missing_file_is_a_mistake(tmp_path):
    completed = run_meshbot("config", "check", "absent.yaml", cwd=tmp_path)
    assert (completed.returncode, completed.stdout, completed.stderr) == (
        1, "", "absent.yaml: configuration file not found\n")


def test_config_without_an_action_prints_its_usage():
    completed = run_meshbot("config")
    assert completed.returncode == 2
    assert "schema" in completed.stderr and "check" in completed.stderr


def test_the_schema_is_json_and_a_valid_draft_2020_12_schema():
    completed = run_meshbot("config", "schema")
    assert completed.returncode == 0, completed.stderr
    schema = json.loads(completed.stdout)
    assert schema == CONFIG_SCHEMA
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"deployments": {"history": 5}})
    assert not validator.is_valid({"deployments": {"history": "five"}})
