"""Undeploy removes what is deployed: real Redis, real workers, the scripted and the reference adapter over HTTP.

request_undeploy is given a data product and an environment, never a working tree's descriptor: the adapters must
receive the descriptor of the latest successful deployment, and nothing may be recorded when nothing is deployed.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from adapters.registry import AdapterRegistry
from bot.config import AdapterSettings
from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.deployment import DeploymentState
from bot.engine.status import product_status
from bot.engine.store import Deployment, PlannedTask
from bot.engine.undeploy import request_undeploy
from bot.engine.undeploy_target import choose_target
from tests.deploy_harness import (
    DATA_PRODUCT_TEMPLATE_ID,
    ENVIRONMENT,
    Call,
    adapters_for,
    component_id,
    example_descriptor,
    generated_descriptor,
    scripted_adapter,
)
from tests.engine.test_runner import sqlite_objects
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply


def registry(url: str, *templates: str) -> AdapterRegistry:
    """One adapter URL serving these templates (every template meshbot's test descriptors use by default)."""
    chosen = templates or (STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID, DATA_PRODUCT_TEMPLATE_ID)
    return AdapterRegistry([AdapterSettings(template, url, timeout=10) for template in chosen])


def sent_descriptor(call: Call) -> dict[str, Any]:
    """The data product descriptor a provision or unprovision request carried (either descriptor kind)."""
    document = yaml.safe_load(call.body["descriptor"])
    if call.body["descriptorKind"] == "COMPONENT_DESCRIPTOR":
        assert document["componentIdToProvision"] == call.target
        return dict(document["dataProduct"])
    return dict(document)


def edited(descriptor: Descriptor) -> Descriptor:
    """The working tree after the deploy: component j removed, b's view renamed, a column of d changed."""
    data = copy.deepcopy(descriptor.data)
    data["components"] = [component for component in data["components"] if not component["id"].endswith(":j")]
    by_local = {component["id"].rsplit(":", 1)[1]: component for component in data["components"]}
    by_local["b"]["specific"]["viewName"] = "renamed_b_v"
    by_local["d"]["dataContract"]["schema"][1] = {"name": "amount", "dataType": "DECIMAL"}
    return Descriptor(data=data, environment=descriptor.environment)


def test_undeploy_sends_the_deployed_descriptor_whatever_the_working_tree_holds(start):
    deployed = generated_descriptor(with_data_product_task=True)
    working_tree = edited(deployed)
    j = component_id(deployed, "j")
    with scripted_adapter(delay=0.05) as scripted:
        running = start(3)
        assert running.wait(running.request(deployed, adapters_for(deployed, scripted.url))[0]).state is \
            DeploymentState.DEPLOYED
        # The working tree's descriptor is not even an input: only the data product and the environment are.
        requested = request_undeploy(running.redis, working_tree.id, ENVIRONMENT, registry(scripted.url), "tests",
                                     remove_data=True)
        assert requested.target is not None and requested.target.descriptor == deployed.data
        assert requested.unresolved == () and requested.ahead == 0
        undeployment = running.wait(requested.deployment_id)
        assert (undeployment.state, undeployment.message) == (DeploymentState.NOT_DEPLOYED, "11 completed")
        assert undeployment.descriptor == deployed.data and undeployment.version == "1.0.0"
        unprovisions = scripted.requests("/v1/unprovision")
        assert sorted(call.target for call in unprovisions) == sorted([deployed.id, *(c["id"] for c in
                                                                                     deployed.components)])
        assert j in {call.target for call in unprovisions}  # removed from the working tree, still unprovisioned
        assert all(sent_descriptor(call) == deployed.data for call in unprovisions)
        assert all(call.body["removeData"] is True for call in unprovisions)
        assert RedisDeployedStates(running.redis).deployed(deployed.id, ENVIRONMENT) is None
        running.assert_clean((deployed.id, ENVIRONMENT))


def test_the_reference_adapter_keeps_nothing_after_a_working_tree_edit(start, tmp_path):
    descriptor = example_descriptor()
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(2)
        adapters = registry(adapter.url, STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)
        deploy_id = running.request(descriptor, adapters.resolve_all(descriptor))[0]
        assert running.wait(deploy_id).state is DeploymentState.DEPLOYED
        assert sqlite_objects(adapter.database) == {"table transactions", "table daily_cashflow",
                                                    "view daily_cashflow_v", "view transactions_v"}
        requested = request_undeploy(running.redis, descriptor.id, ENVIRONMENT, adapters, "tests", remove_data=True)
        undeployment = running.wait(requested.deployment_id)
        assert (undeployment.state, undeployment.message) == (DeploymentState.NOT_DEPLOYED, "3 completed")
        assert sqlite_objects(adapter.database) == set()
        assert running.store.history(descriptor.id, ENVIRONMENT) == [requested.deployment_id, deploy_id]
        assert product_status(running.redis, descriptor.id, ENVIRONMENT)[0]["status"] == "NOT_DEPLOYED"

        again = request_undeploy(running.redis, descriptor.id, ENVIRONMENT, adapters, "tests")
        assert again.nothing_deployed and again.deployment_id == ""
        assert running.store.history(descriptor.id, ENVIRONMENT) == [requested.deployment_id, deploy_id]
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_nothing_deployed_records_nothing_and_stays_not_deployed(redis_engine):
    descriptor = generated_descriptor()
    requested = request_undeploy(redis_engine.redis, descriptor.id, ENVIRONMENT, registry("http://127.0.0.1:9/x"),
                                 "tests", remove_data=True)
    assert requested.nothing_deployed and requested.target is None
    assert (requested.deployment_id, requested.ahead, requested.unresolved) == ("", 0, ())
    assert redis_engine.store.history(descriptor.id, ENVIRONMENT) == []
    assert redis_engine.store.product(descriptor.id, ENVIRONMENT) == {}
    document, waiting = product_status(redis_engine.redis, descriptor.id, ENVIRONMENT)
    assert (document["status"], document["deployment"], waiting) == ("NOT_DEPLOYED", None, [])
    redis_engine.assert_clean((descriptor.id, ENVIRONMENT))


def test_tasks_of_the_deployed_descriptor_without_an_adapter_record_nothing(start):
    descriptor = generated_descriptor()
    with scripted_adapter() as scripted:
        running = start(1)
        deploy_id = running.request(descriptor, adapters_for(descriptor, scripted.url))[0]
        assert running.wait(deploy_id).state is DeploymentState.DEPLOYED
        requested = request_undeploy(running.redis, descriptor.id, ENVIRONMENT,
                                     registry(scripted.url, STORAGE_TEMPLATE_ID), "tests")
        assert requested.target is not None and requested.deployment_id == ""
        assert len(requested.unresolved) == 6  # the six output ports
        assert all(f"'{OUTPUT_PORT_TEMPLATE_ID}'" in error.message for error in requested.unresolved)
        assert running.store.history(descriptor.id, ENVIRONMENT) == [deploy_id]
        assert scripted.requests("/v1/unprovision") == []
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_an_undeploy_waiting_while_a_deploy_changes_what_is_deployed_unprovisions_nothing(start):
    first = generated_descriptor()
    second = edited(first)
    b = component_id(first, "b")
    with scripted_adapter() as scripted:
        running = start(2)
        assert running.wait(running.request(first, adapters_for(first, scripted.url))[0]).state is \
            DeploymentState.DEPLOYED
        scripted.script(b, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "slow b"}, delay=1.0))
        second_id, _ = running.request(second, adapters_for(second, scripted.url))
        requested = request_undeploy(running.redis, first.id, ENVIRONMENT, registry(scripted.url), "tests")
        assert requested.target is not None and requested.target.descriptor == first.data  # what is deployed now
        assert requested.ahead == 1
        assert running.wait(second_id).state is DeploymentState.DEPLOYED
        refused = running.wait(requested.deployment_id)
        assert refused.state is DeploymentState.REFUSED
        assert refused.message == (
            f"what is deployed in {ENVIRONMENT} changed while this undeploy waited (now version 1.0.0, deployment "
            f"{second_id}); nothing was unprovisioned: undeploy again")
        assert scripted.requests("/v1/unprovision") == []
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        j = next(component for component in first.components if component["id"].endswith(":j"))
        # j left the repository, and nothing resolved an adapter to remove it: it stays, and the record says so.
        assert deployed is not None and deployed.descriptor == {**second.data, "components": [*second.components, j]}
        assert running.store.product(first.id, ENVIRONMENT)["status"] == "DEPLOYED"

        again = request_undeploy(running.redis, first.id, ENVIRONMENT, registry(scripted.url), "tests")
        assert running.wait(again.deployment_id).state is DeploymentState.NOT_DEPLOYED
        assert all(sent_descriptor(call) == deployed.descriptor for call in scripted.requests("/v1/unprovision"))
        assert j["id"] in scripted.targets("/v1/unprovision")
        running.assert_clean((first.id, ENVIRONMENT))


def test_a_first_deploy_that_failed_is_undeployed_with_the_descriptor_it_sent(start):
    descriptor = generated_descriptor()
    b = component_id(descriptor, "b")
    with scripted_adapter() as scripted:
        scripted.script(b, "/v1/provision", Reply(200, {"status": "FAILED", "result": "quota exceeded"}))
        running = start(2)
        failed_id = running.request(descriptor, adapters_for(descriptor, scripted.url))[0]
        assert running.wait(failed_id).state is DeploymentState.CORRUPT
        assert RedisDeployedStates(running.redis).deployed(descriptor.id, ENVIRONMENT) is None
        requested = request_undeploy(running.redis, descriptor.id, ENVIRONMENT, registry(scripted.url), "tests")
        assert requested.target is not None
        assert (requested.target.deployment, requested.target.status) == (failed_id, "CORRUPT")
        undeployment = running.wait(requested.deployment_id)
        assert undeployment.state is DeploymentState.NOT_DEPLOYED, undeployment.message
        assert len(scripted.requests("/v1/unprovision")) == 10
        assert running.store.product(descriptor.id, ENVIRONMENT)["status"] == "NOT_DEPLOYED"
        assert request_undeploy(running.redis, descriptor.id, ENVIRONMENT, registry(scripted.url),
                                "tests").nothing_deployed
        running.assert_clean((descriptor.id, ENVIRONMENT))


def _deployment(operation: str = "deploy") -> Deployment:
    from bot.engine.deployment import Operation

    return Deployment(id="d2", data_product="urn:dmb:dp:x:y:1", environment="qa", version="2.0.0",
                      operation=Operation(operation), descriptor={"id": "urn:dmb:dp:x:y:1", "version": "2.0.0"},
                      tasks=[PlannedTask("c", "storage", [])], started_by="t")


def test_the_target_is_the_deployed_state_then_a_corrupt_products_latest_descriptor():
    deployed = Deployed("urn:dmb:dp:x:y:1", "qa", {"id": "urn:dmb:dp:x:y:1", "version": "1.0.0"}, "1.0.0", "d1")
    latest = _deployment()
    assert choose_target(deployed, {"status": "CORRUPT"}, latest) is deployed  # a failed later deploy: still v1
    assert choose_target(None, {"status": "CORRUPT"}, latest) == Deployed(
        "urn:dmb:dp:x:y:1", "qa", latest.descriptor, "2.0.0", "d2", status="CORRUPT")
    assert choose_target(None, {"status": "CORRUPT"}, None) is None  # its record left the history
    for status in ("NOT_DEPLOYED", "IN_PROGRESS", None):  # never deployed, or a first deploy still running
        assert choose_target(None, {"status": status} if status else {}, latest) is None
