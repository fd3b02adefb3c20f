"""`/import`: reverse provisioning into a merge request, on the in-memory forge with real HTTP tech adapters."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from adapters.payloads import component_request
from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.cli.main import main
from bot.config import AdapterSettings, ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.files import MemoryReader
from bot.descriptor.update_scope import screen_updates
from bot.engine.plan import build_plan
from bot.forge.importing import ImportOutcome, ImportStatus, import_component, recorded_head
from policies.loader import load_policies
from policies.model import Policy
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import AdapterServer, Reply, adapter_server
from vcs.base import MergeRequest
from vcs.memory import MemoryForge, MemoryRepository

PORT = "components/orders/catalog-info.yaml"
BRANCH = "meshbot/import/1/orders"
REVERSE = "/v1/reverse-provisioning"
ORIGINAL_SCHEMA = [
    {"name": "order_id", "dataType": "TEXT", "constraint": "PRIMARY_KEY"},
    {"name": "customer_id", "dataType": "TEXT", "constraint": "NOT_NULL"},
    {"name": "ordered_on", "dataType": "DATE", "constraint": "NOT_NULL"},
    {"name": "amount", "dataType": "DECIMAL", "constraint": "NOT_NULL"},
    {"name": "channel", "dataType": "TEXT"},
]
SCHEMA_END = "        - name: channel\n          dataType: TEXT\n"


@pytest.fixture(scope="module")
def example_files(tmp_path_factory) -> dict[str, bytes]:
    """The example data product (System, SQLite storage, SQLite output port) as repository files."""
    folder = tmp_path_factory.mktemp("product") / "orders"
    for template in ("dataproduct", "sqlite-storage", "sqlite-outputport"):
        assert main(["new", template, str(folder), "--example"]) == 0, template
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and ".git" not in path.relative_to(folder).parts}


@pytest.fixture(scope="module")
def policies() -> list[Policy]:
    return load_policies()


@pytest.fixture
def repository(example_files) -> MemoryRepository:
    repository = MemoryForge().add("sales/orders", example_files)
    repository.create_branch("feature", repository.branches["main"])
    repository.push("feature", {"README.md": b"# Orders\n\nA change under review.\n"})
    repository.add_merge_request("feature")
    return repository


@pytest.fixture
def server() -> Iterator[AdapterServer]:
    with adapter_server() as started:
        yield started


def config_for(url: str) -> ServerConfig:
    return ServerConfig(adapters=[AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, url),
                                  AdapterSettings(STORAGE_TEMPLATE_ID, url)])


def completed(updates: dict[str, Any], logs: list[dict[str, Any]] | None = None) -> Reply:
    return Reply(200, {"status": "COMPLETED", "updates": updates, "logs": logs or []})


def run_import(repository: MemoryRepository, config: ServerConfig, policies: list[Policy], component: str = "orders",
               parameters: dict[str, str] | None = None) -> ImportOutcome:
    request: MergeRequest = repository.merge_request(1)
    return import_component(repository, config, policies, forge="github", merge_request=request,
                            component=component, parameters=parameters or {}, environment="development")


def with_columns(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"spec.mesh.dataContract.schema": [*ORIGINAL_SCHEMA, *extra]}


def import_requests(repository: MemoryRepository) -> list[MergeRequest]:
    return [request for request in repository.merge_requests.values() if request.author == repository.user]


def test_import_opens_one_merge_request_then_updates_it_then_finds_nothing_to_do(repository, server, policies):
    config = config_for(server.url)
    original = repository.read_file("feature", PORT).decode()
    server.reply("POST", REVERSE, completed(with_columns({"name": "note", "dataType": "TEXT"}),
                                            [{"level": "INFO", "message": "read view 'orders_v': 6 columns"}]))

    first = run_import(repository, config, policies, "orders", {"view": "orders_v"})

    assert first.status is ImportStatus.OPENED, first.message
    sent = server.requests("POST", REVERSE)[0].json()
    assert sent["useCaseTemplateId"] == "urn:dmb:utm:sqlite-outputport-template:0.0.0"
    assert sent["environment"] == "development" and sent["params"] == {"view": "orders_v"}
    assert sent["catalogInfo"]["metadata"]["name"] == "sales.orders.0.orders"
    [opened] = import_requests(repository)
    assert (opened.source_branch, opened.target_branch) == (BRANCH, "feature")
    assert first.merge_request == opened and first.branch == BRANCH and (first.added, first.removed) == (2, 0)
    assert first.validation_passed is True
    head = repository.branches[BRANCH]
    assert recorded_head(opened.description) == head
    # The branch holds exactly the updated file on top of the merge request's head, comments and all.
    feature = repository.commits[repository.branches["feature"]]
    changed = {path for path, content in repository.commits[head].items() if feature.get(path) != content}
    assert changed == {PORT}
    assert repository.commits[head][PORT].decode() == original.replace(
        SCHEMA_END, SCHEMA_END + "        - name: note\n          dataType: TEXT\n")
    assert "# Exactly the columns of the source table" in repository.commits[head][PORT].decode()
    assert "```diff\n--- a/components/orders/catalog-info.yaml" in opened.description
    assert "+        - name: note" in opened.description
    assert "read view 'orders\\_v': 6 columns" in opened.description
    assert "##### meshbot governance: ✅ passed" in opened.description
    assert "never merges it" in opened.description
    reply = first.reply()
    assert opened.url in reply and "2 lines added, 0 removed" in reply and "✅ passes" in reply

    server.reply("POST", REVERSE, completed(with_columns({"name": "note", "dataType": "TEXT"},
                                                         {"name": "region", "dataType": "TEXT"})))
    second = run_import(repository, config, policies, "urn:dmb:cmp:sales:orders:0:orders")

    assert second.status is ImportStatus.UPDATED, second.message
    assert import_requests(repository) == [repository.merge_requests[opened.number]]
    updated = repository.merge_requests[opened.number]
    new_head = repository.branches[BRANCH]
    assert new_head != head and recorded_head(updated.description) == new_head
    assert repository.commits[new_head][PORT].decode() == original.replace(
        SCHEMA_END, SCHEMA_END + "        - name: note\n          dataType: TEXT\n"
                                 "        - name: region\n          dataType: TEXT\n")
    assert "+        - name: region" in updated.description and second.added == 4

    server.reply("POST", REVERSE, completed(with_columns()))
    third = run_import(repository, config, policies, "Orders")

    assert third.status is ImportStatus.UP_TO_DATE, third.message
    assert "already matches" in third.reply()
    assert repository.branches[BRANCH] == new_head and len(import_requests(repository)) == 1


def test_a_human_commit_on_the_import_branch_is_not_overwritten(repository, server, policies):
    config = config_for(server.url)
    server.reply("POST", REVERSE, completed(with_columns({"name": "note", "dataType": "TEXT"})))
    assert run_import(repository, config, policies).status is ImportStatus.OPENED
    human = repository.push(BRANCH, {PORT: repository.read_file(BRANCH, PORT) + b"# reviewed by jane\n"})
    [opened] = import_requests(repository)

    server.reply("POST", REVERSE, completed(with_columns({"name": "region", "dataType": "TEXT"})))
    outcome = run_import(repository, config, policies)

    assert outcome.status is ImportStatus.REFUSED
    assert "a commit meshbot did not make" in outcome.message and "does not overwrite" in outcome.message
    assert repository.branches[BRANCH] == human
    assert repository.merge_requests[opened.number].description == opened.description


def test_an_unknown_component_lists_the_known_ones(repository, server, policies):
    outcome = run_import(repository, config_for(server.url), policies, "order")

    assert outcome.status is ImportStatus.FAILED
    assert outcome.known_components == ["orders", "raw-orders"]
    assert "did you mean 'orders'?" in outcome.message
    assert "`orders`, `raw-orders`" in outcome.reply()
    assert server.requests() == [] and import_requests(repository) == []


def test_an_adapter_failure_is_reported_with_its_logs(repository, server, policies):
    server.reply("POST", REVERSE, Reply(200, {"status": "FAILED", "updates": {}, "logs": [
        {"level": "INFO", "message": "connecting"}, {"level": "ERROR", "message": "no view 'orders_v'"}]}))

    outcome = run_import(repository, config_for(server.url), policies)

    assert outcome.status is ImportStatus.FAILED
    assert outcome.message == "the tech adapter's reverse provisioning failed: no view 'orders_v'"
    assert "connecting" in outcome.reply() and "Adapter logs" in outcome.reply()
    assert BRANCH not in repository.branches and import_requests(repository) == []

    server.reply("POST", REVERSE, Reply(500, {"error": "database is locked"}))
    broken = run_import(repository, config_for(server.url), policies)
    assert broken.status is ImportStatus.FAILED and "database is locked" in broken.message


def test_a_component_without_use_case_template_or_adapter_is_refused_before_any_call(example_files, server, policies):
    repository = MemoryForge().add("sales/orders", example_files)
    text = example_files[PORT].decode().replace("    useCaseTemplateId: urn:dmb:utm:sqlite-outputport-template:0.0.0\n",
                                                "")
    repository.create_branch("feature", repository.branches["main"])
    repository.push("feature", {PORT: text.encode()})
    repository.add_merge_request("feature")

    outcome = run_import(repository, config_for(server.url), policies)
    assert outcome.status is ImportStatus.FAILED and "no spec.mesh.useCaseTemplateId" in outcome.message
    no_adapter = run_import(repository, ServerConfig(), policies, "raw-orders")
    assert no_adapter.status is ImportStatus.FAILED and "no tech adapter serves" in no_adapter.message
    assert server.requests() == []


def test_import_from_the_reference_sqlite_adapter_carries_exactly_the_new_column(example_files, tmp_path, policies):
    repository = MemoryForge().add("sales/orders", example_files)
    repository.create_branch("feature", repository.branches["main"])
    repository.add_merge_request("feature")
    descriptor = assemble(MemoryReader(example_files), "development")
    with running_adapter(tmp_path / "mesh.db") as adapter:
        client = adapter.client()
        for stage in build_plan(descriptor).stages:
            for component_id in stage:
                result = client.provision(component_request(descriptor.data, component_id))
                assert result.ok, (result.message, result.details)
        with sqlite3.connect(adapter.database) as connection:  # a DBA adds a column and exposes it
            connection.execute("ALTER TABLE orders ADD COLUMN note TEXT")
            connection.execute("DROP VIEW orders_v")
            connection.execute("CREATE VIEW orders_v AS SELECT order_id, customer_id, ordered_on, amount, channel, "
                               "note FROM orders")

        outcome = run_import(repository, config_for(adapter.url), policies)

    assert outcome.status is ImportStatus.OPENED, (outcome.message, outcome.details, outcome.logs)
    assert (outcome.added, outcome.removed) == (2, 0) and outcome.validation_passed is True
    original = example_files[PORT].decode()
    imported = repository.read_file(BRANCH, PORT).decode()
    assert imported == original.replace(SCHEMA_END, SCHEMA_END + "        - name: note\n          dataType: TEXT\n")
    assert repository.read_file(BRANCH, "components/raw-orders/catalog-info.yaml") == \
        example_files["components/raw-orders/catalog-info.yaml"]


def test_closed_and_fork_merge_requests_are_refused(repository, server, policies):
    request = repository.merge_request(1)
    for changed, expected in [(replace(request, state="closed"), "is closed"),
                              (replace(request, from_fork=True), "comes from a fork")]:
        outcome = import_component(repository, config_for(server.url), policies, forge="gitlab",
                                   merge_request=changed, component="orders", parameters={},
                                   environment="development")
        assert outcome.status is ImportStatus.REFUSED and expected in outcome.message
        assert "merge request" in outcome.message
    assert server.requests() == []


def test_a_change_that_breaks_the_data_product_is_still_proposed_with_the_failures(repository, server, policies):
    server.reply("POST", REVERSE, completed({"spec.mesh.dependsOn": ["urn:dmb:cmp:sales:orders:0:gone"]}))

    outcome = run_import(repository, config_for(server.url), policies)

    assert outcome.status is ImportStatus.OPENED and outcome.validation_passed is False
    assert outcome.merge_request is not None
    assert "does not assemble with this change" in outcome.merge_request.description
    assert "urn:dmb:cmp:sales:orders:0:gone" in outcome.merge_request.description
    assert "❌ fails" in outcome.reply()


# ---------------------------------------------------------------- updates an adapter may not make

REFUSED_ANSWER = {"metadata.name": "sales.orders.0.stolen", "spec.owner": "group:someone-else", "kind": "Resource",
                  "spec.mesh.description": "Orders as the view reads them"}


def test_only_the_updates_below_spec_mesh_are_applied_and_the_others_are_named(repository, server, policies):
    original = repository.read_file("feature", PORT).decode()
    server.reply("POST", REVERSE, completed(REFUSED_ANSWER))

    outcome = run_import(repository, config_for(server.url), policies)

    assert outcome.status is ImportStatus.OPENED, outcome.message
    # the template writes spec.mesh.description (Witboost reads spec.mesh alone): the update replaces its value
    old = '    description: "Every order with its customer, day, amount and sales channel"\n'  # spec.mesh's (metadata's
    assert original.count(old) == 1  # is indented two spaces less)
    assert repository.read_file(BRANCH, PORT).decode() == original.replace(
        old, '    description: "Orders as the view reads them"\n')
    assert [(update.path, update.reason) for update in outcome.refused] == [
        ("metadata.name", "not below spec.mesh: the component's identity, which its ids derive from"),
        ("spec.owner", "not below spec.mesh: the component's ownership"),
        ("kind", "not below spec.mesh: the entity's kind")]
    assert outcome.merge_request is not None
    description = outcome.merge_request.description
    assert "#### Updates not applied" in description
    for line in ["- `metadata.name`: not below spec.mesh: the component's identity, which its ids derive from",
                 "- `spec.owner`: not below spec.mesh: the component's ownership",
                 "- `kind`: not below spec.mesh: the entity's kind"]:
        assert line in description and line in outcome.reply()
    assert "stolen" not in description.split("#### The change")[1] and "someone-else" not in description
    assert outcome.validation_passed is True and (outcome.added, outcome.removed) == (1, 1)


def test_when_every_update_is_refused_nothing_is_opened_and_the_reply_says_so(repository, server, policies):
    server.reply("POST", REVERSE, completed({key: value for key, value in REFUSED_ANSWER.items()
                                             if not key.startswith("spec.mesh.")} | {"spec.mesh.id": "urn:x"},
                                            [{"level": "INFO", "message": "read the view"}]))

    outcome = run_import(repository, config_for(server.url), policies)

    assert outcome.status is ImportStatus.REFUSED
    assert BRANCH not in repository.branches and import_requests(repository) == []
    reply = outcome.reply()
    assert "no pull request was opened" in reply and "nothing was imported" in reply
    assert "- `spec.mesh.id`: the component's URN, not the tech adapter's to change" in reply
    assert "- `metadata.name`: not below spec.mesh" in reply and "read the view" in reply


def test_refused_updates_are_named_even_when_the_allowed_ones_change_nothing(repository, server, policies):
    server.reply("POST", REVERSE, completed(with_columns() | {"spec.system": "system:other.product.1"}))

    outcome = run_import(repository, config_for(server.url), policies)

    assert outcome.status is ImportStatus.UP_TO_DATE
    assert "- `spec.system`: not below spec.mesh: the data product the component belongs to" in outcome.reply()
    assert import_requests(repository) == []


IMPORT_REPLY_GOLDEN = """\
### meshbot /import `orders`: ✅ opened

opened a merge request that updates components/orders/catalog-info.yaml from the tech adapter; review and merge it \
\\(meshbot never does\\)

Merge request: [!4](http://forge/mr/4) · 1 lines added, 0 removed in `components/orders/catalog-info.yaml`
Governance on the result: ✅ passes

Not applied: a tech adapter may change what is below `spec.mesh`, never a component's identity, ownership, kind, \
data product or adapter.

- `metadata.name`: not below spec.mesh: the component's identity, which its ids derive from
- `spec.mesh.infrastructureTemplateId`: which tech adapter deploys the component, not the tech adapter's to change
"""


def test_golden_reply_with_refused_updates():
    request = MergeRequest(number=4, title="t", description="", source_branch=BRANCH, target_branch="feature",
                           head_sha="0" * 40, author="meshbot", state="open", url="http://forge/mr/4", from_fork=False)
    refused = screen_updates({"metadata.name": "x", "spec.mesh.infrastructureTemplateId": "y",
                              "spec.mesh.specific.viewName": "z"}).refused
    outcome = ImportOutcome(status=ImportStatus.OPENED, component="orders", forge="gitlab", merge_request=request,
                            message="opened a merge request that updates components/orders/catalog-info.yaml from the "
                                    "tech adapter; review and merge it (meshbot never does)",
                            path=PORT, added=1, removed=0, validation_passed=True, refused=refused,
                            logs=[{"level": "INFO", "message": "shown in the merge request, not here"}])

    assert outcome.reply() == IMPORT_REPLY_GOLDEN
