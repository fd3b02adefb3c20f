"""`meshbot validate` against adapters shaped like the Witboost Python scaffold: the exact text a person reads for
each answer (valid: false, 400, 422, 500 JSON, 500 text, 404), its exit code, and `meshbot deploy`'s words when
the same adapters refuse or fail at the deployment's validation."""

from __future__ import annotations

import json

import pytest

from bot.cli.main import main
from tests.adapters.test_client_answers import (
    LEDGER,
    SCENARIOS,
    VIEW,
    config_text,
    storage_answer,
    write_product,
)
from tests.servers.scaffold_adapter import scaffold_adapter, system_error

HEAD = "urn:dmb:dp:sales:orders:1 in development: 2 tasks, "
VIEW_FILE = "PATH/components/orders-view/catalog-info.yaml"
FAILED_TAIL = "an adapter that failed judged nothing: ask it again once it answers\n"
EXPECTED = {
    "valid-false": (1, f"""{HEAD}2 refused
  storage     {LEDGER}: refused
    the adapter says:
        cannot create table orders:
        sqlite3.OperationalError('table orders already exists')
  outputport  {VIEW}: refused
    {VIEW_FILE}:11:17 (said by the adapter of {LEDGER}): components[1].dependsOn[0]: the view would read a table \
this adapter cannot create
    {VIEW_FILE}:12:5: components[1].semanticLinking: Input should be a valid list (list_type)
    {VIEW_FILE}:15:11: components[1].dataContract.schema[0].dataType: Field required (missing)
"""),
    "400": (1, f"""{HEAD}1 valid, 1 refused
  storage     {LEDGER}: valid
  outputport  {VIEW}: refused
    {VIEW_FILE}:17:17: components[1].specific.viewName: must be lower case
    owner group:sales is unknown
"""),
    "422": (3, f"""{HEAD}1 valid, 1 adapter failed
  storage     {LEDGER}: valid
  outputport  {VIEW}: adapter failed, could not validate
    the tech adapter rejected meshbot's request itself (/v1/validate answered HTTP 422: meshbot and the adapter \
disagree on the Tech Adapter API): body -> descriptor: Field required
    (the adapter at VIEW_URL)
{FAILED_TAIL}"""),
    "500-json": (3, f"""{HEAD}1 valid, 1 adapter failed
  storage     {LEDGER}: valid
  outputport  {VIEW}: adapter failed, could not validate
    the tech adapter reported a system error: cannot connect to the warehouse
    (the adapter at VIEW_URL)
{FAILED_TAIL}"""),
    "500-text": (3, f"""{HEAD}1 valid, 1 adapter failed
  storage     {LEDGER}: valid
  outputport  {VIEW}: adapter failed, could not validate
    /v1/validate answered HTTP 500: 'Internal Server Error'
    (the adapter at VIEW_URL)
{FAILED_TAIL}"""),
    "404": (3, f"""{HEAD}1 valid, 1 adapter failed
  storage     {LEDGER}: valid
  outputport  {VIEW}: adapter failed, could not validate
    VIEW_URL/v1/validate answered HTTP 404 (the adapter does not serve this path): '{{"detail": "Not Found"}}'
{FAILED_TAIL}"""),
}


@pytest.fixture
def adapters():
    with scaffold_adapter() as storage, scaffold_adapter() as view:
        yield storage, view


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_validate_shows_each_answer_in_words_with_its_exit_code(scenario, adapters, tmp_path, capsys):
    storage, view = adapters
    folder = write_product(tmp_path / "orders")
    (tmp_path / "meshbot.yaml").write_text(config_text(storage.url, view.url))
    storage.answer("/v1/validate", storage_answer(scenario))
    view.answer("/v1/validate", SCENARIOS[scenario])
    code = main(["validate", str(folder), "--config", str(tmp_path / "meshbot.yaml")])
    out, err = capsys.readouterr()
    expected_code, expected = EXPECTED[scenario]
    assert (code, err) == (expected_code, "")
    assert out.replace(str(folder), "PATH").replace(view.url, "VIEW_URL") == expected


def test_validate_as_json_and_a_404_without_the_usual_prefix(adapters, tmp_path, capsys):
    storage, view = adapters
    folder = write_product(tmp_path / "orders")
    (tmp_path / "meshbot.yaml").write_text(config_text(storage.url, view.root))  # no /datamesh.specificprovisioner
    code = main(["validate", str(folder), "--config", str(tmp_path / "meshbot.yaml"), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert (code, document["status"]) == (3, "failed")
    assert [(task["task"], task["status"]) for task in document["tasks"]] == [(LEDGER, "valid"), (VIEW, "failed")]
    assert document["tasks"][1]["message"] == (
        f"{view.root}/v1/validate answered HTTP 404 (is the URL right? adapters usually serve under "
        "/datamesh.specificprovisioner): '{\"detail\": \"Not Found\"}'")

    view.answer("/v1/validate", SCENARIOS["400"])
    (tmp_path / "meshbot.yaml").write_text(config_text(storage.url, view.url))
    code = main(["validate", str(folder), "--config", str(tmp_path / "meshbot.yaml"), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert (code, document["status"]) == (1, "refused")
    assert document["tasks"][1]["errors"] == [
        {"message": "components[1].specific.viewName: must be lower case", "path": "components[1].specific.viewName",
         "file": str(folder / "components/orders-view/catalog-info.yaml"), "line": 17, "column": 17, "saidBy": None},
        {"message": "owner group:sales is unknown", "path": None, "file": None, "line": None, "column": None,
         "saidBy": None}]


def test_validate_input_errors_exit_2(tmp_path, capsys):
    folder = write_product(tmp_path / "orders")
    (tmp_path / "meshbot.yaml").write_text("adapters: []\n")
    code = main(["validate", str(folder), "--config", str(tmp_path / "meshbot.yaml")])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "no tech adapter" in err and f"{folder}/components/ledger/catalog-info.yaml:" in err
    assert main(["validate", str(tmp_path / "missing"), "--config", str(tmp_path / "meshbot.yaml")]) == 2


def test_deploy_says_refused_or_could_not_validate_in_its_own_words(meshbot, tmp_path):
    folder = str(write_product(tmp_path / "orders"))
    with scaffold_adapter() as storage, scaffold_adapter() as view:
        config = meshbot.config(config_text(storage.url, view.url))
        view.answer("/v1/validate", SCENARIOS["valid-false"])
        refused = meshbot("deploy", folder, "--config", config, "--workers", "1")
        view.answer("/v1/validate", system_error("cannot connect to the warehouse"))
        failed = meshbot("deploy", folder, "--config", config, "--workers", "1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.splitlines()[-4:-1] == [
        "REFUSED: the tech adapters refused the descriptor; nothing was provisioned:",
        f"- {VIEW}: components[1].semanticLinking: Input should be a valid list (list_type)",
        f"- {VIEW}: components[1].dataContract.schema[0].dataType: Field required (missing)",
    ]
    assert refused.stderr.endswith(
        f"meshbot: nothing was deployed: the tech adapters refused the descriptor; fix what they name (`meshbot "
        f"validate {folder} --env development` shows each error at its file:line:col) and deploy again\n")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stdout.splitlines()[-3:-1] == [
        "FAILED: could not validate: a tech adapter failed; nothing was provisioned:",
        f"- {VIEW}: the tech adapter reported a system error: cannot connect to the warehouse",
    ]
    assert failed.stderr.endswith(
        f"meshbot: nothing was deployed: a tech adapter could not validate the descriptor (it did not judge it); "
        f"deploy again once the adapter answers (`meshbot validate {folder} --env development` asks it alone)\n")
    assert view.received and not [path for path, _ in view.received if path.endswith("/v1/provision")]
