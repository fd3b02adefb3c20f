"""Access grants on merge: the pure decisions (desired refs, their diff, what to send, what to report), the reading of
a merge commit through the in-memory forge with a real Redis (no worker), and the comment as written (a golden file,
tests/fixtures/comments/access-result.md; regenerate with `MESHBOT_REGENERATE_GOLDEN=1` and read the diff)."""

from __future__ import annotations

import json

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID
from bot.config import AccessSettings, AdapterSettings, ServerConfig
from bot.descriptor.access_file import Consumer
from bot.descriptor.errors import InputError, SourcePosition
from bot.engine.access import AccessStore, Applied, run_key
from bot.engine.deployed import deployed_record
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.store import Deployment
from bot.forge.access_grant import (
    PortAccess,
    access_comment,
    desired_refs,
    grant_after_deployment,
    grant_on_merge,
    needs_update,
    plan_access,
    read_access_files,
    refs_diff,
    worth_reporting,
)
from tests.deploy_harness import example_descriptor
from tests.forge.test_review_comments import assert_golden
from tests.vcs.test_reader import example_files
from vcs.memory import MemoryForge
from vcs.reader import RevisionReader

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
DAILY = "urn:dmb:cmp:finance:cashflow:1:daily-cashflow"
TRANSACTIONS = "urn:dmb:cmp:finance:cashflow:1:transactions"
CONFIG = ServerConfig(adapters=[AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, "http://127.0.0.1:8091/x")],
                      access=AccessSettings(refs={"group:acme/finance": "group:finance-analysts"},
                                            user_ref="user:{name}@acme.com"))


def test_desired_refs_map_each_consumer_through_the_configuration_sorted_once():
    consumers = [Consumer("user", "bob"), Consumer("group", "acme/finance"), Consumer("user", "alice"),
                 Consumer("user", "alice")]
    assert desired_refs(consumers, CONFIG.access) == ["group:finance-analysts", "user:alice@acme.com",
                                                      "user:bob@acme.com"]
    assert desired_refs([Consumer("group", "acme/other")], AccessSettings()) == ["group:acme/other"]
    assert desired_refs([], CONFIG.access) == []


def test_the_diff_of_refs_says_who_was_granted_and_who_revoked():
    assert refs_diff([], ["user:alice"]) == (["user:alice"], [])
    assert refs_diff(["user:alice", "user:bob"], ["user:bob", "user:carol"]) == (["user:carol"], ["user:alice"])
    assert refs_diff(["user:alice"], []) == ([], ["user:alice"])
    assert refs_diff(["user:alice"], ["user:alice"]) == ([], [])


def test_updateacl_is_needed_only_when_the_refs_differ_from_those_applied():
    assert needs_update(["user:alice"], None)
    assert not needs_update([], None)  # nobody wanted and nothing ever applied: nothing to revoke
    assert needs_update([], ["user:alice"])  # a revert: revoke
    assert not needs_update(["user:alice"], ["user:alice"])
    assert not worth_reporting([])
    assert not worth_reporting([{"status": "unchanged"}, {"status": "skipped"}])  # most merges: no comment
    for news in ("applied", "failed", "invalid", "unknown port", "unreadable"):
        assert worth_reporting([{"status": "unchanged"}, {"status": news}])


def files(**ports: list[Consumer] | None) -> dict[str, PortAccess]:
    return {port: PortAccess(port, f"access/{port}.yaml", consumers) for port, consumers in ports.items()}


def test_each_port_and_environment_is_granted_unchanged_skipped_or_revoked():
    descriptor = example_descriptor()
    descriptors = {"development": descriptor, "qa": descriptor}
    deployed = {"development": {DAILY, TRANSACTIONS}, "qa": {TRANSACTIONS}}
    applied = {"development": {"transactions": ["user:bob@acme.com"]}, "qa": {"transactions": ["user:old@acme.com"]}}
    plan = plan_access(files(**{"daily-cashflow": [Consumer("user", "alice")]}), descriptors, applied, deployed,
                       CONFIG)
    # development: daily-cashflow granted; transactions's file is gone, so what was applied is revoked (refs []).
    # qa: daily-cashflow not deployed there (skipped); transactions revoked too.
    assert {env: [(c.port, c.component, c.refs) for c in changes] for env, changes in plan.changes.items()} == {
        "development": [("daily-cashflow", DAILY, ["user:alice@acme.com"]), ("transactions", TRANSACTIONS, [])],
        "qa": [("transactions", TRANSACTIONS, [])]}
    assert plan.changes["qa"][0].adapter == {"url": "http://127.0.0.1:8091/x", "timeout": 600.0, "ca_bundle": None}
    assert [(entry["environment"], entry["port"], entry["status"], entry["message"]) for entry in plan.decided] == [
        ("qa", "daily-cashflow", "skipped", "not deployed in qa")]

    again = plan_access(files(**{"daily-cashflow": [Consumer("user", "alice")]}), {"development": descriptor},
                        {"development": {"daily-cashflow": ["user:alice@acme.com"]}}, deployed, CONFIG)
    assert again.changes == {}
    assert [(entry["port"], entry["status"]) for entry in again.decided] == [("daily-cashflow", "unchanged")]


def test_an_invalid_file_changes_nothing_and_a_file_for_no_port_is_named():
    descriptor = example_descriptor()
    broken = PortAccess("daily-cashflow", "access/daily-cashflow.yaml", None,
                        [InputError("field 'consumers.0': expected 'user: LOGIN'",
                                    SourcePosition("access/daily-cashflow.yaml", 3, 5))])
    plan = plan_access({"daily-cashflow": broken, **files(sales=[Consumer("user", "alice")])},
                       {"development": descriptor}, {"development": {"daily-cashflow": ["user:alice@acme.com"]}},
                       {"development": {DAILY, TRANSACTIONS}}, CONFIG)
    assert plan.changes == {}  # what was applied to daily-cashflow stays
    assert plan.decided == [
        {"port": "daily-cashflow", "status": "invalid", "path": "access/daily-cashflow.yaml",
         "errors": [{"message": "field 'consumers.0': expected 'user: LOGIN'", "file": "access/daily-cashflow.yaml",
                     "line": 3, "column": 5}]},
        {"port": "sales", "status": "unknown port", "path": "access/sales.yaml",
         "known": ["daily-cashflow", "transactions"]}]


def test_a_port_no_adapter_serves_fails_without_a_call():
    plan = plan_access(files(transactions=[Consumer("user", "alice")]), {"development": example_descriptor()}, {},
                       {"development": {TRANSACTIONS}}, ServerConfig())
    assert plan.changes == {}
    [entry] = plan.decided
    assert (entry["status"], entry["message"]) == (
        "failed", f"no tech adapter serves infrastructureTemplateId '{OUTPUT_PORT_TEMPLATE_ID}' in development")


def test_access_files_are_read_at_the_revision_with_positions():
    repository = MemoryForge().add("acme/cashflow", {
        **example_files(), "access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n  - group: acme/finance\n",
        "access/transactions.yml": b"consumers:\n  - user: alice\n  - robot: r2d2\n", "access/README.md": b"x\n",
        "access/nested/sales.yaml": b"consumers: []\n"})
    found = read_access_files(RevisionReader(repository, "main"))
    assert sorted(found) == ["daily-cashflow", "transactions"]
    assert found["daily-cashflow"].consumers == [Consumer("group", "acme/finance"), Consumer("user", "alice")]
    [error] = found["transactions"].errors
    assert found["transactions"].consumers is None
    assert (error.position.file, error.position.line, error.position.column) == ("access/transactions.yml", 3, 5)


def test_the_comment_as_written():
    rows = [
        {"environment": "qa", "port": "daily-cashflow", "component": DAILY, "status": "applied",
         "before": ["user:bob"], "refs": ["group:finance-analysts", "user:alice"], "message": "recorded"},
        {"environment": "production", "port": "daily-cashflow", "component": DAILY, "status": "applied",
         "before": ["user:alice"], "refs": [], "message": "recorded"},
        {"environment": "development", "port": "transactions", "component": TRANSACTIONS, "status": "unchanged",
         "before": ["user:alice"], "refs": ["user:alice"], "message": ""},
        {"environment": "qa", "port": "transactions", "component": TRANSACTIONS, "status": "skipped",
         "before": [], "refs": ["user:alice"], "message": "not deployed in qa"},
        {"environment": "production", "port": "transactions", "component": TRANSACTIONS, "status": "failed",
         "before": [], "refs": ["user:alice"], "message": "<b>@admin</b> | the catalog [is] read-only"},
        {"port": "sales", "status": "invalid", "path": "access/sales.yaml",
         "errors": [{"message": "field 'consumers.0': expected 'user: LOGIN' `x`", "file": "access/sales.yaml",
                     "line": 2, "column": 5}]},
        {"port": "orders", "status": "unknown port", "path": "access/orders.yaml",
         "known": ["daily-cashflow", "transactions"]},
    ]
    text = access_comment(PRODUCT, rows)
    assert "| `daily-cashflow` | `qa` | ✅ granted to `group:finance-analysts`, `user:alice`; revoked from " \
           "`user:bob` |" in text
    assert "&lt;b&gt;@\u200badmin&lt;/b&gt; \\| the catalog \\[is\\] read-only" in text  # escaped, no mention
    assert_golden("access-result.md", text)
    quiet = access_comment(PRODUCT, [rows[2]])
    assert quiet.startswith("### 🔑 meshbot: access to the output ports of `urn:dmb:dp:finance:cashflow:1`\n\n"
                            "No access changed with this merge.\n")


def merge_commit(extra: dict[str, bytes]):
    repository = MemoryForge().add("acme/cashflow", example_files())
    return repository, repository.push("main", extra)


def test_a_merge_queues_only_what_differs_where_the_product_is_deployed(redis_engine):
    descriptor = example_descriptor()
    redis_engine.store.set_product(PRODUCT, "development", status="DEPLOYED", deployed=deployed_record(
        descriptor.data, "1.0.0", "d1", "2026-01-01T00:00:00Z", "DEPLOYED"))
    repository, sha = merge_commit({"access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n"})
    outcome = grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=4,
                             target_branch="main", merge_sha=sha, merged_by="owner", config=CONFIG)
    assert outcome.startswith("access run ") and outcome.endswith(": 1 updateacl call(s) queued, 0 settled")
    [key] = [key.decode() for key in redis_engine.redis.scan_iter(run_key("*"))]
    changes = json.loads(redis_engine.redis.hget(key, "changes:development"))
    assert [(item["port"], item["refs"]) for item in changes] == [("daily-cashflow", ["user:alice@acme.com"])]
    assert json.loads(redis_engine.redis.hget(key, "origin")) == {
        "forge": "github", "project": "acme/cashflow", "number": 4, "mergedBy": "owner", "sha": sha}

    assert grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=4,
                          target_branch="main", merge_sha=sha, merged_by="owner", config=CONFIG) == (
        "this access run was started before (a retried job): nothing more to do")
    assert len(list(redis_engine.redis.scan_iter(run_key("*")))) == 1
    assert grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=4,
                          target_branch="release", merge_sha=sha, merged_by="owner", config=CONFIG) == (
        "merged into release, not the default branch: access files there grant nothing")


def test_a_merge_without_access_files_does_nothing_unless_access_was_applied_before(redis_engine):
    descriptor = example_descriptor()
    redis_engine.store.set_product(PRODUCT, "development", status="DEPLOYED", deployed=deployed_record(
        descriptor.data, "1.0.0", "d1", "2026-01-01T00:00:00Z", "DEPLOYED"))
    repository, sha = merge_commit({"README.md": b"a change\n"})
    arguments = {"forge": "github", "project": "acme/cashflow", "number": 5, "target_branch": "main",
                 "merge_sha": sha, "merged_by": "owner", "config": CONFIG}
    assert grant_on_merge(repository, redis_engine.redis, **arguments) == (
        "no access file, and no access ever applied: nothing to do")
    assert list(redis_engine.redis.scan_iter(run_key("*"))) == []

    access = AccessStore(redis_engine.redis)
    access.remember_project("github", "acme/cashflow")
    access.record(PRODUCT, "development", "transactions", {"status": "COMPLETED"},
                  Applied(["user:alice@acme.com"], "2026-01-01T00:00:00Z", 3, "owner"))
    outcome = grant_on_merge(repository, redis_engine.redis, **arguments)  # the file was deleted: revoke
    assert outcome.endswith(": 1 updateacl call(s) queued, 0 settled")
    [key] = [key.decode() for key in redis_engine.redis.scan_iter(run_key("*"))]
    assert [(item["port"], item["refs"]) for item in json.loads(redis_engine.redis.hget(key, "changes:development"))
            ] == [("transactions", [])]


def test_an_invalid_file_is_told_once_until_it_changes(redis_engine):
    descriptor = example_descriptor()
    redis_engine.store.set_product(PRODUCT, "development", status="DEPLOYED", deployed=deployed_record(
        descriptor.data, "1.0.0", "d1", "2026-01-01T00:00:00Z", "DEPLOYED"))
    repository = MemoryForge().add("acme/cashflow", example_files())

    def merge(number: int, content: bytes) -> str:
        sha = repository.push("main", {"access/daily-cashflow.yaml": content})
        return grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=number,
                              target_branch="main", merge_sha=sha, merged_by="owner", config=CONFIG)

    def decided() -> list[str]:
        runs = sorted(key.decode() for key in redis_engine.redis.scan_iter(run_key("*")))
        return [entry["status"] for entry in json.loads(redis_engine.redis.hget(runs[-1], "decided"))]

    assert merge(1, b"consumers:\n  - robot: r2d2\n").endswith(": 0 updateacl call(s) queued, 1 settled")
    assert decided() == ["invalid"]
    assert merge(2, b"consumers:\n  - robot: r2d2\n") == (
        "no access changes where the data product is deployed: nothing to send or report")
    assert merge(3, b"consumers:\n  - robot: r2d2\n  - droid: c3po\n").endswith(": 0 updateacl call(s) queued, "
                                                                            "1 settled")  # a new mistake: told
    assert merge(4, b"consumers: []\n") == (
        "no access changes where the data product is deployed: nothing to send or report")  # nobody, never applied
    assert merge(5, b"consumers:\n  - robot: r2d2\n").endswith("1 settled")  # fixed, then broken again: told


def test_a_repository_cannot_make_meshbot_read_more_than_a_hundred_access_files():
    many = {f"access/port-{index:03d}.yaml": b"consumers: []\n" for index in range(105)}
    repository = MemoryForge().add("acme/cashflow", {**example_files(), **many})
    found = read_access_files(RevisionReader(repository, "main"))
    assert len(found) == 101
    [error] = found["port-100"].errors
    assert str(error) == "access/port-100.yaml: not read, nor any access file after it: over 100 access files"


def finished(deployment_id: str, environment: str, report_to: dict[str, object] | None,
             state: DeploymentState = DeploymentState.DEPLOYED, operation: Operation = Operation.DEPLOY,
             finished_at: str = "2026-01-05T00:00:00Z", removed: list[str] | None = None) -> Deployment:
    """A finished deployment record of the example product."""
    return Deployment(id=deployment_id, data_product=PRODUCT, environment=environment, version="1.0.0",
                      operation=operation, descriptor=example_descriptor().data, tasks=[],
                      started_by="test", report_to=report_to, state=state, finished_at=finished_at,
                      reconciliation={"remove": removed or []})


def deployed_in(redis_engine, *environments: str) -> None:
    for environment in environments:
        redis_engine.store.set_product(PRODUCT, environment, status="DEPLOYED", deployed=deployed_record(
            example_descriptor().data, "1.0.0", "d1", "2026-01-01T00:00:00Z", "DEPLOYED"))


def runs(redis_engine) -> list[dict[str, object]]:
    found = []
    for key in sorted(key.decode() for key in redis_engine.redis.scan_iter(run_key("*"))):
        fields = {name.decode(): value.decode() for name, value in redis_engine.redis.hgetall(key).items()}
        found.append({name: json.loads(value) if name != "dataProduct" else value for name, value in fields.items()
                      if name != "pending"})
    return found


def test_a_merge_with_access_files_marks_its_repository_for_later_deployments(redis_engine):
    access = AccessStore(redis_engine.redis)
    repository, sha = merge_commit({"README.md": b"a change\n"})
    grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=3,
                   target_branch="main", merge_sha=sha, merged_by="owner", config=CONFIG)
    assert not access.follows_deployments("github", "acme/cashflow")  # no access file: deployments cost nothing
    sha = repository.push("main", {"access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n"})
    assert grant_on_merge(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=4,
                          target_branch="main", merge_sha=sha, merged_by="owner", config=CONFIG) == (
        "no access changes where the data product is deployed: nothing to send or report")  # deployed nowhere
    assert access.follows_deployments("github", "acme/cashflow")
    assert not access.follows_deployments("gitlab", "acme/cashflow")


def test_after_a_deployment_its_environment_follows_the_default_branch_not_the_merge_request(redis_engine):
    deployed_in(redis_engine, "development", "qa")
    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.push("main", {"access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n"})
    head = repository.push("asks-more", {"access/daily-cashflow.yaml": b"consumers:\n  - user: mallory\n",
                                         "access/transactions.yaml": b"consumers:\n  - user: mallory\n"})
    assert head != repository.branch_head("main")
    report_to = {"forge": "github", "project": "acme/cashflow", "sha": head,
                 "comment": {"number": "9", "id": "c1"}, "command": "/deploy"}
    outcome = grant_after_deployment(repository, redis_engine.redis, finished("d-qa", "qa", report_to),
                                     config=CONFIG)
    assert outcome.endswith(": 1 updateacl call(s) queued, 0 settled"), outcome
    [run] = runs(redis_engine)
    assert sorted(run) == ["changes:qa", "dataProduct", "decided", "origin"]  # that environment only
    assert [(item["port"], item["refs"], item["resend"]) for item in run["changes:qa"]] == [
        ("daily-cashflow", ["user:alice@acme.com"], False)]  # mallory's unmerged asks grant nothing
    assert run["origin"] == {"forge": "github", "project": "acme/cashflow", "number": 9, "mergedBy": "",
                             "sha": repository.branch_head("main"), "deployment": "d-qa", "environment": "qa"}
    assert grant_after_deployment(repository, redis_engine.redis, finished("d-qa", "qa", report_to),
                                  config=CONFIG) == (
        "this access run was started before (a retried job): nothing more to do")


def test_after_a_deployment_applied_refs_count_unless_the_component_was_unprovisioned_since(redis_engine):
    deployed_in(redis_engine, "qa")
    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.push("main", {"access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n"})
    access = AccessStore(redis_engine.redis)
    access.record(PRODUCT, "qa", "daily-cashflow", {"status": "COMPLETED"},
                  Applied(["user:alice@acme.com"], "2026-01-02T00:00:00Z", 3, "owner"))
    release = {"forge": "github", "project": "acme/cashflow", "sha": "b" * 40, "tag": "v1.0.0"}
    assert grant_after_deployment(repository, redis_engine.redis, finished("d-2", "qa", release),
                                  config=CONFIG) == (
        "no access changes where the data product is deployed: nothing to send or report")  # refs unchanged

    undeploy = finished("d-3", "qa", release, state=DeploymentState.NOT_DEPLOYED, operation=Operation.UNDEPLOY)
    for deployment in (undeploy, finished("d-4", "qa", release)):  # both end now, after the refs were applied
        redis_engine.store.create(deployment)
        redis_engine.store.set_state(deployment.id, deployment.state)
    outcome = grant_after_deployment(repository, redis_engine.redis, finished("d-4", "qa", release), config=CONFIG)
    assert outcome.endswith(": 1 updateacl call(s) queued, 0 settled"), outcome  # the undeploy took the refs
    [run] = runs(redis_engine)
    assert [(item["port"], item["refs"], item["resend"]) for item in run["changes:qa"]] == [
        ("daily-cashflow", ["user:alice@acme.com"], True)]
    assert run["origin"]["number"] is None  # a release tag: no merge request to comment on


def test_after_a_deployment_of_another_data_product_nothing_is_applied(redis_engine):
    deployed_in(redis_engine, "qa")
    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.push("main", {"access/daily-cashflow.yaml": b"consumers:\n  - user: alice\n"})
    other = Deployment(id="d-9", data_product="urn:dmb:dp:finance:cashflow:2", environment="qa", version="2.0.0",
                       operation=Operation.DEPLOY, descriptor={}, tasks=[], started_by="test",
                       report_to={"forge": "github", "project": "acme/cashflow"}, state=DeploymentState.DEPLOYED)
    assert grant_after_deployment(repository, redis_engine.redis, other, config=CONFIG).endswith(
        f"is {PRODUCT}, not urn:dmb:dp:finance:cashflow:2: nothing applied")
    assert runs(redis_engine) == []


def test_the_comment_after_a_deployment_as_written():
    rows = [{"environment": "qa", "port": "daily-cashflow", "component": DAILY, "status": "applied",
             "before": [], "refs": ["user:alice"], "message": "recorded"},
            {"environment": "qa", "port": "transactions", "component": TRANSACTIONS, "status": "failed",
             "before": [], "refs": ["user:bob"], "message": "catalog down"}]
    origin = {"forge": "github", "project": "acme/cashflow", "number": 9, "sha": "c" * 40, "deployment": "d-qa",
              "environment": "qa"}
    text = access_comment(PRODUCT, rows, origin)
    assert "After deployment `d-qa`, access in `qa` follows the access files of the default branch at " \
           "`cccccccccccc`" in text
    assert "This changed who may read 1 output port:" in text
    assert_golden("access-after-deployment.md", text)
    assert "No access changed with this deployment." in access_comment(PRODUCT, [], origin)
