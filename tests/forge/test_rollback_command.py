"""`/rollback ENV [VERSION]` on the in-memory forge with a real Redis: rights, refusals and the rendered replies.

The deployment history is recorded through the engine's Store as deploys leave it; the deploy itself and the
reply that follows it to DEPLOYED run end to end in tests/e2e/test_rollback_github.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bot.config import AdapterSettings, ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.engine.deployed import deployed_record
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.store import Deployment, Store, new_deployment_id
from bot.forge.comment_commands import REPLY_MARKER, run_comment
from bot.forge.merge_request_deploy import _reply, progress_reply
from policies.loader import load_policies
from tests.engine.test_store import LEDGER, PORT, make_deployment
from tests.forge.test_review import EXAMPLE, example_files
from tests.forge.test_review_comments import assert_golden
from vcs.base import Permission
from vcs.memory import MemoryForge, MemoryRepository

DP = "urn:dmb:dp:finance:cashflow:1"
STORAGE, OUTPUT_PORT = "urn:dmb:itm:sqlite-storage-provisioner:0", "urn:dmb:itm:sqlite-outputport-provisioner:0"
ADAPTERS = [AdapterSettings(STORAGE, "http://127.0.0.1:9/a"), AdapterSettings(OUTPUT_PORT, "http://127.0.0.1:9/a")]
CONFIG = ServerConfig(environments={"development": {}, "qa": {}, "production": {}}, adapters=ADAPTERS)


@pytest.fixture
def repository() -> MemoryRepository:
    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.create_branch("change", repository.branch_head("main"))
    repository.add_merge_request("change")
    repository.permissions.update({"writer": Permission.WRITE, "reader": Permission.READ,
                                   "owner": Permission.ADMIN})
    return repository


def replies(repository: MemoryRepository) -> list[str]:
    return [comment.body.removeprefix(REPLY_MARKER + "\n") for comment in repository.comment_threads[1]]


def descriptor_of(version: str, environment: str) -> dict[str, Any]:
    """The example's descriptor at version: 1.1.0 is tagged."""
    data = copy.deepcopy(assemble(DirectoryReader(EXAMPLE), environment).data)
    data["version"] = version
    if version != "1.0.0":
        data["tags"] = ["treasury"]
    return data


def deployed(store: Store, environment: str, *versions: str) -> list[str]:
    """Record successful deploys of the versions in turn, as the engine leaves them; their ids."""
    ids = []
    for version in versions:
        descriptor = descriptor_of(version, environment)
        deployment = Deployment(id=new_deployment_id(), data_product=DP, environment=environment, version=version,
                                operation=Operation.DEPLOY, descriptor=descriptor, tasks=[], started_by="tests",
                                reconciliation={"partial": False})
        store.create(deployment)
        store.set_state(deployment.id, DeploymentState.DEPLOYED, "3 completed")
        store.set_product(DP, environment, status="DEPLOYED", version=version, deployment=deployment.id,
                          deployed=deployed_record(descriptor, version, deployment.id, "2026-12-05T10:00:00Z",
                                                   "DEPLOYED"))
        ids.append(deployment.id)
    return ids


def test_every_rollback_reply_as_rendered():
    finished = make_deployment("d9", environment="qa", version="1.0.0", report_to={"command": "/rollback"})
    finished.state, finished.message = DeploymentState.DEPLOYED, "2 completed"
    tasks = [{"id": LEDGER, "kind": "storage", "state": "COMPLETED", "message": "tables made"},
             {"id": PORT, "kind": "outputport", "state": "COMPLETED", "message": "view made"}]
    rendered = [
        _reply("rollback_refused", data_product=DP, environment="qa",
               reason="version 1.5.0 is not among the successful deployments kept in the history of qa (kept: 1.1.0, "
                      "1.0.0; meshbot keeps the last 50 deployments per environment: `deployments.history`)"),
        _reply("rollback_governance_blocks", strip=False, data_product=DP, version="1.0.0", environment="production",
               deployment="d1", policies=["tagged", "needs-sla"], report="### the governance report\n"),
        _reply("rollback_no_adapter", data_product=DP, version="1.0.0", environment="qa", deployment="d1",
               errors=["no adapter for `urn:x` <b>"]),
        _reply("rollback_started", data_product=DP, version="1.0.0", deployed_version="1.1.0", environment="qa",
               source="d1", deployment="d9", queued=_reply("queued", ahead=1, data_product=DP, environment="qa")),
        progress_reply(finished, tasks, "https://meshbot.example.com/status/x?env=qa"),
    ]
    assert_golden("rollback-replies.md", "\n\n=====\n\n".join(rendered) + "\n")


def test_nothing_deployed_is_refused_and_nothing_recorded(repository, redis_engine):
    run_comment(repository, CONFIG, "github", 1, "c1", "/rollback qa", "writer", connection=redis_engine.redis)
    assert replies(repository) == [
        f"`/rollback` of `{DP}` in `qa` refused: nothing deployed in qa: there is nothing to roll back"]
    assert redis_engine.store.history(DP, "qa") == []


def test_a_reader_is_refused_and_versions_not_kept_or_deployed_are_named(repository, redis_engine):
    first, second = deployed(redis_engine.store, "qa", "1.0.0", "1.1.0")
    body = "/rollback qa\n/rollback qa 1.5.0\n/rollback qa v1.1.0"
    run_comment(repository, CONFIG, "github", 1, "c1", body, "reader", connection=redis_engine.redis)
    run_comment(repository, CONFIG, "github", 1, "c2", "/rollback qa 1.5.0\n/rollback qa v1.1.0", "writer",
                connection=redis_engine.redis)
    refused, *_, unknown, already = replies(repository)
    assert refused.startswith("@reader `/rollback` refused: /rollback in `qa` needs the write role or higher")
    assert unknown == (f"`/rollback` of `{DP}` in `qa` refused: version 1.5.0 is not among the successful "
                       r"deployments kept in the history of qa \(kept: 1.1.0, 1.0.0; meshbot keeps the last 50 "
                       r"deployments per environment: \`deployments.history\`\)")
    assert already == (f"`/rollback` of `{DP}` in `qa` refused: version 1.1.0 is already deployed in qa "
                       f"\\(deployment {second}\\)")
    assert redis_engine.store.history(DP, "qa") == [second, first]


def test_production_takes_rollbacks_without_merge_request_deploys_under_todays_governance(
        repository, redis_engine, tmp_path: Path):
    first, second = deployed(redis_engine.store, "production", "1.0.0", "1.1.0")
    folder = tmp_path / "governance"
    folder.mkdir()
    (folder / "tagged.yaml").write_text(
        "id: tagged\ndescription: a data product has at least one tag\ntarget: dataproduct\n"
        "severity: error\nstatus: enabled\nschema:\n  type: object\n  required: [tags]\n"
        "  properties:\n    tags: {type: array, minItems: 1}\n")
    policies = load_policies([folder])
    run_comment(repository, CONFIG, "github", 1, "c1", "/deploy production", "owner", connection=redis_engine.redis,
                policies=policies)
    assert "takes no deploys from merge requests" in replies(repository)[-1]
    run_comment(repository, CONFIG, "github", 1, "c2", "/rollback production", "owner",
                connection=redis_engine.redis, policies=policies)
    assert "requires an approved merge request before /rollback" in replies(repository)[-1]
    repository.approvals[1] = True
    run_comment(repository, CONFIG, "github", 1, "c3", "/rollback production", "owner",
                connection=redis_engine.redis, policies=policies)
    blocked = replies(repository)[-1]
    assert blocked.startswith(
        f"`/rollback` of `{DP}` to 1.0.0 in `production` refused: the descriptor of deployment `{first}` no longer "
        "passes governance, blocked by `tagged`. Nothing was deployed.")
    assert "tagged" in blocked.split("\n", 1)[1]  # the report follows
    assert redis_engine.store.history(DP, "production") == [second, first]


def test_tasks_without_an_adapter_today_record_nothing(repository, redis_engine):
    first, second = deployed(redis_engine.store, "qa", "1.0.0", "1.1.0")
    storage_only = ServerConfig(environments={"qa": {}}, adapters=ADAPTERS[:1])
    run_comment(repository, storage_only, "github", 1, "c1", "/rollback qa 1.0.0", "writer",
                connection=redis_engine.redis)
    [reply] = replies(repository)
    assert reply.startswith(f"`/rollback` of `{DP}` to 1.0.0 in `qa` refused: the descriptor of deployment `{first}` "
                            "has tasks no tech adapter serves:")
    assert reply.count("\n- ") == 2  # the two output ports
    assert redis_engine.store.history(DP, "qa") == [second, first]
