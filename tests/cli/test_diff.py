"""`meshbot diff` and `meshbot check --against-deployed`: desired against deployed from a file or a meshbot's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from bot.cli.main import EXAMPLE_DATA_PRODUCT, main
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.engine.deployed import DEPLOYED_FIELD, deployed_record

EXAMPLE = str(EXAMPLE_DATA_PRODUCT)
DP = "urn:dmb:dp:finance:cashflow:1"
PORT = "urn:dmb:cmp:finance:cashflow:1:daily-cashflow"
TOKEN = "t0ken"
ROOT = Path(__file__).resolve().parents[2]


def deployed_with_an_extra_column(environment: str = "production") -> dict:
    """The example as deployed, with one more output-port column than the repository now has."""
    data = json.loads(json.dumps(assemble(DirectoryReader(EXAMPLE_DATA_PRODUCT), environment).data))
    port = next(component for component in data["components"] if component["id"] == PORT)
    port["dataContract"]["schema"].append({"name": "currency", "dataType": "TEXT"})
    return data


@pytest.fixture
def service(redis_engine, monkeypatch) -> Iterator[str]:
    """meshbot's web app over real HTTP on 127.0.0.1, on the engine's Redis."""
    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    server = make_server("127.0.0.1", 0, create_app(redis_connection=redis_engine.redis), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def record_deployed(redis_engine, environment: str, descriptor: dict) -> None:
    redis_engine.store.set_product(DP, environment, status="DEPLOYED", **{
        DEPLOYED_FIELD: deployed_record(descriptor, "1.0.0", "d1", "2026-12-05T10:00:00Z", "DEPLOYED")})


def test_diff_against_a_file_names_the_removed_column_with_its_position(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    deployed = tmp_path / "deployed.json"
    deployed.write_text(json.dumps(deployed_with_an_extra_column()))
    assert main(["diff", EXAMPLE, "--env", "production", "--against", str(deployed)]) == 1  # changes
    text = capsys.readouterr().out
    assert "0 to add, 1 to change, 0 to remove, 2 unchanged" in text
    assert f"~ {PORT}" in text and "column `currency` removed" in text
    assert main(["diff", EXAMPLE, "--env", "production", "--against", str(deployed), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["counts"] == {"add": 0, "change": 1, "remove": 0, "unchanged": 2}
    [changed] = [entry for entry in document["components"] if entry["action"] == "change"]
    assert (changed["id"], [change["summary"] for change in changed["changes"]]) == (
        PORT, ["column `currency` removed"])
    position = changed["changes"][0]["position"]
    assert position["file"].endswith("components/daily-cashflow/catalog-info.yaml") and position["line"] == 22


def test_diff_accepts_the_apis_document_as_the_file(tmp_path, capsys):
    document = {"dataProduct": DP, "environment": "production", "descriptor": deployed_with_an_extra_column()}
    deployed = tmp_path / "deployed.json"
    deployed.write_text(json.dumps(document))
    assert main(["diff", EXAMPLE, "--env", "production", "--against", str(deployed), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["counts"]["change"] == 1


def test_diff_against_a_meshbot_service(redis_engine, service, capsys, monkeypatch):
    record_deployed(redis_engine, "production", deployed_with_an_extra_column())
    assert main(["diff", EXAMPLE, "--env", "production", "--server", service, "--format", "markdown"]) == 1
    markdown = capsys.readouterr().out
    assert markdown.startswith("### meshbot plan for `production`: 0 to add, 1 to change, 0 to remove, 2 unchanged")
    assert "column `currency` removed" in markdown
    assert main(["diff", EXAMPLE, "--env", "qa", "--server", service]) == 1
    assert "nothing deployed: 3 to add" in capsys.readouterr().out


def test_diff_exits_zero_only_when_a_deploy_would_change_nothing(tmp_path, capsys):
    from bot.cli.common import assemble_folder

    same = tmp_path / "same.json"
    same.write_text(json.dumps(assemble_folder(EXAMPLE, "production").data))
    assert main(["diff", EXAMPLE, "--env", "production", "--against", str(same)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("nothing to change")


def test_a_wrong_token_or_an_unreachable_server_is_a_clear_error(redis_engine, service, capsys):
    # The command line runs apart from the service here: the service holds the token, the client another.
    wrong = meshbot("diff", EXAMPLE, "--env", "production", "--server", service, token="wrong")
    assert wrong.returncode == 2 and "the service refused the API token" in wrong.stderr, wrong.stderr
    missing = meshbot("diff", EXAMPLE, "--env", "production", "--server", service, token=None)
    assert missing.returncode == 2 and "set MESHBOT_API_TOKEN" in missing.stderr, missing.stderr
    assert main(["diff", EXAMPLE, "--env", "production", "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach http://127.0.0.1:9/api/v1/products/" in capsys.readouterr().err


def meshbot(*arguments: str, token: str | None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "MESHBOT_API_TOKEN"}
    environment.update({"MESHBOT_API_TOKEN": token} if token else {})
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_check_against_deployed_blocks_a_dropped_column_as_the_review_does(redis_engine, service, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    record_deployed(redis_engine, "production", deployed_with_an_extra_column())
    code = main(["check", EXAMPLE, "--env", "production", "--against-deployed", "--server", service])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "BLOCKING  no-breaking-changes" in text and "'currency' was dropped" in text
    assert main(["check", EXAMPLE, "--env", "qa", "--against-deployed", "--server", service]) == 0
    assert "not evaluated: nothing deployed in qa" in capsys.readouterr().out


def test_check_without_a_deployed_descriptor_says_the_breaking_change_check_was_not_evaluated(capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["check", EXAMPLE]) == 0
    text = capsys.readouterr().out
    assert ("NOT EVALUATED  no-breaking-changes on urn:dmb:dp:finance:cashflow:1: not evaluated: no deployed "
            "descriptor given (--previous FILE or --against-deployed)") in text
    assert "1 not evaluated" in text


def test_check_refuses_two_sources_of_the_deployed_descriptor(tmp_path, capsys):
    previous = tmp_path / "previous.json"
    previous.write_text("{}")
    assert main(["check", EXAMPLE, "--previous", str(previous), "--against-deployed"]) == 2
    assert "use one" in capsys.readouterr().err
    assert main(["check", EXAMPLE, "--server", "http://127.0.0.1:9"]) == 2
    assert "--server goes with --against-deployed" in capsys.readouterr().err


def test_diff_of_a_folder_that_is_not_a_repository(tmp_path: Path, capsys):
    assert main(["diff", str(tmp_path / "nowhere"), "--against", str(tmp_path / "x.json")]) == 2
