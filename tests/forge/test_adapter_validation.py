"""Each adapter's read-only validate during a review: verdicts per task, errors mapped to file:line:col."""

from __future__ import annotations

from pathlib import Path

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.config import AdapterSettings, ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.forge.adapter_validation import validate_with_adapters
from bot.forge.review import STATUS_CONTEXT, review_merge_request
from policies.loader import load_policies
from tests.forge.test_review import PROJECT, open_merge_request, setup_forge
from tests.servers.tech_adapter import Reply, adapter_server, closed_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finance-cashflow"
LEDGER = "urn:dmb:cmp:finance:cashflow:1:ledger"
REFUSAL = {"valid": False, "error": {"errors": [
    "components[1].specific.tables[0].schema: column type MONEY is not a SQLite type",
    "specific.tables: at most 10 tables",
    "the data product is not in the catalog",
]}}


def settings(storage_url: str, port_url: str) -> list[AdapterSettings]:
    return [AdapterSettings(infrastructure_template_id=STORAGE_TEMPLATE_ID, url=storage_url, timeout=5.0),
            AdapterSettings(infrastructure_template_id=OUTPUT_PORT_TEMPLATE_ID, url=port_url, timeout=5.0)]


def test_verdicts_in_plan_order_with_errors_at_their_file_line_and_column():
    descriptor = assemble(DirectoryReader(EXAMPLE), "development")
    with adapter_server() as storage, adapter_server() as ports:
        storage.reply("POST", "/v1/validate", Reply(200, REFUSAL))
        ports.reply("POST", "/v1/validate", Reply(200, {"valid": True}))
        verdicts = validate_with_adapters(descriptor, settings(storage.url, ports.url))
    assert [(verdict.task, verdict.valid) for verdict in verdicts][0] == (LEDGER, False)
    assert all(verdict.valid for verdict in verdicts[1:]) and len(verdicts) == 3
    ledger = verdicts[0]
    assert ledger.refused
    index = [component["id"] for component in descriptor.components].index(LEDGER)
    absolute, relative, none = ledger.errors
    assert absolute.position == descriptor.position(("components", 1, "specific", "tables", 0, "schema"))
    assert relative.position == descriptor.position(("components", index, "specific", "tables"))
    assert relative.position is not None and relative.position.file == "components/ledger/catalog-info.yaml"
    assert none.position is None


def test_an_unreachable_adapter_refuses_nothing_and_a_missing_one_is_named():
    descriptor = assemble(DirectoryReader(EXAMPLE), "development")
    unreachable = f"http://127.0.0.1:{closed_port()}/datamesh.specificprovisioner"
    verdicts = validate_with_adapters(descriptor, settings(unreachable, unreachable)[:1])
    ledger, *ports = verdicts
    assert not ledger.valid and not ledger.reachable and not ledger.refused
    assert all(verdict.refused and "no tech adapter serves this task" in verdict.message for verdict in ports)


def test_a_review_shows_the_adapters_answers_and_a_refusal_fails_the_environment():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    with adapter_server() as storage, adapter_server() as ports:
        storage.reply("POST", "/v1/validate", Reply(200, REFUSAL))
        ports.reply("POST", "/v1/validate", Reply(200, {"valid": True}))
        config = ServerConfig(adapters=settings(storage.url, ports.url), validate_with_adapters=True,
                              environment_statuses=True)
        review_merge_request(forge, PROJECT, number, sha, load=lambda: (config, load_policies()))
        asked = len(storage.requests("POST", "/v1/validate")) + len(ports.requests("POST", "/v1/validate"))
    assert asked == 6  # three tasks in each of the two reviewed environments
    status = repository.status(sha, f"{STATUS_CONTEXT}/development")
    assert status is not None and status.description.startswith("3 of 4 policies pass, 1 not evaluated; adapters "
                                                                  "refused 1; plan:")
    body = repository.comment_threads[number][0].body
    assert "| `development` 🔒 | ❌ 1 refused by adapters, 1 not evaluated |" in body
    assert "#### Tech adapters' validate in `development`" in body
    assert f"| `{LEDGER}` | storage | ❌ not valid |" in body
    assert ("- `components/ledger/catalog-info.yaml` line 23, column 7: specific.tables: at most 10 tables"
            in body), body
