"""Rollback: which kept deployment is redeployed (pure), and the redeploy itself on real Redis, workers and HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.reference import STORAGE_TEMPLATE_ID
from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.reconcile import Scope
from bot.engine.rollback import (
    RollbackRefused,
    choose_from_redis,
    choose_rollback,
    request_rollback,
    rollback_history,
)
from bot.engine.store import Deployment
from tests.deploy_harness import ENVIRONMENT, adapters_for, component_id, generated_descriptor, scripted_adapter
from tests.engine.test_undeploy import registry, sent_descriptor

PRODUCT = "urn:dmb:dp:x:y:1"


def kept(number: int, version: str, state: DeploymentState = DeploymentState.DEPLOYED,
         operation: Operation = Operation.DEPLOY, partial: bool = False) -> Deployment:
    """A deployment of the history, created at time `number` (ids sort by creation time)."""
    return Deployment(id=f"{number:013d}-abcd", data_product=PRODUCT, environment="qa", version=version,
                      operation=operation, descriptor={"id": PRODUCT, "version": version}, tasks=[],
                      started_by="tests", state=state, reconciliation={"partial": partial})


def deployed_from(deployment: Deployment) -> Deployed:
    """What is deployed after deployment ended well."""
    return Deployed(data_product=PRODUCT, environment="qa", descriptor=deployment.descriptor,
                    version=deployment.version, deployment=deployment.id)


def refusal(history: list[Deployment], deployed: Deployed | None, version: str | None, kept_count: int = 50) -> str:
    """The message of the refusal choose_rollback must raise."""
    with pytest.raises(RollbackRefused) as refused:
        choose_rollback(history, deployed, version, environment="qa", kept=kept_count)
    return refused.value.message


def test_the_default_is_the_newest_older_successful_deployment_of_another_version() -> None:
    v100, v110, v110_again, v120 = kept(1, "1.0.0"), kept(2, "1.1.0"), kept(3, "1.1.0"), kept(5, "1.2.0")
    failed = kept(4, "1.1.5", state=DeploymentState.CORRUPT)
    history = [v120, failed, v110_again, v110, v100]  # newest first
    assert choose_rollback(history, deployed_from(v120), None) is v110_again
    assert choose_rollback(history, deployed_from(v110_again), None) is v100  # the same version is skipped


def test_undeploys_refusals_partial_deploys_and_newer_deployments_are_never_the_default() -> None:
    v100, v110 = kept(1, "1.0.0"), kept(2, "1.1.0")
    history = [kept(7, "1.4.0"),  # newer than what is deployed (after a rollback): not "back"
               kept(6, "1.3.0", operation=Operation.UNDEPLOY, state=DeploymentState.NOT_DEPLOYED),
               kept(5, "1.2.0", partial=True), kept(4, "1.2.5", state=DeploymentState.REFUSED),
               kept(3, "1.2.6", state=DeploymentState.PARTIALLY_DEPLOYED), v110, v100]
    assert choose_rollback(history[1:], deployed_from(v110), None) is v100
    assert choose_rollback(history, deployed_from(v110), None) is v100


def test_an_explicit_version_is_the_newest_successful_deployment_of_it_older_or_newer() -> None:
    v100, v110, v120 = kept(1, "1.0.0"), kept(2, "1.1.0"), kept(4, "1.2.0")
    rolled_back = kept(5, "1.0.0")
    history = [rolled_back, v120, v110, v100]
    assert choose_rollback(history[1:], deployed_from(v120), "1.0.0") is v100
    assert choose_rollback(history, deployed_from(rolled_back), "v1.2.0") is v120  # forward again, `v` ignored
    assert choose_rollback(history, deployed_from(rolled_back), "1.1.0") is v110


def test_nothing_deployed_is_refused() -> None:
    assert refusal([kept(1, "1.0.0")], None, None) == "nothing deployed in qa: there is nothing to roll back"


def test_no_earlier_successful_deployment_says_how_many_are_kept() -> None:
    only = kept(1, "1.0.0")
    assert refusal([only], deployed_from(only), None, kept_count=20) == (
        "no earlier successful deployment of a version other than 1.0.0 is kept in the history of qa (meshbot "
        "keeps the last 20 deployments of a data product per environment: `deployments.history` in the server "
        "configuration)")
    failed = kept(0, "0.9.0", state=DeploymentState.CORRUPT)
    assert "no earlier successful deployment" in refusal([only, failed], deployed_from(only), None)


def test_an_unknown_version_lists_the_kept_successful_versions() -> None:
    v100, v110 = kept(1, "1.0.0"), kept(2, "1.1.0")
    history = [kept(3, "1.2.0", state=DeploymentState.CORRUPT), v110, v100]
    assert refusal(history, deployed_from(v110), "1.2.0") == (
        "version 1.2.0 is not among the successful deployments kept in the history of qa (kept: 1.1.0, 1.0.0; "
        "meshbot keeps the last 50 deployments per environment: `deployments.history`)")


def test_another_major_version_is_refused_as_another_data_product() -> None:
    v090, v100 = kept(1, "0.9.0"), kept(2, "1.0.0")
    expected = ("version 0.9.0 is major version 0, but 1.0.0 (major 1) is deployed: component ids carry the major "
                "version, so rolling back across it would deploy a different data product; deploy that version's "
                "release instead")
    assert refusal([v100, v090], deployed_from(v100), "0.9.0") == expected
    assert refusal([v100, v090], deployed_from(v100), None) == expected


def test_the_deployed_version_is_already_deployed() -> None:
    v100, v110 = kept(1, "1.0.0"), kept(2, "1.1.0")
    assert refusal([v110, v100], deployed_from(v110), "v1.1.0") == (
        f"version 1.1.0 is already deployed in qa (deployment {v110.id})")


# ---------------------------------------------------------------------- for real


def next_version(descriptor: Descriptor) -> Descriptor:
    """Version 1.1.0: output port b exposes another view, and a new storage k."""
    data = copy.deepcopy(descriptor.data)
    data["version"] = "1.1.0"
    b = next(component for component in data["components"] if component["id"].endswith(":b"))
    b["specific"]["viewName"] = "b_v2"
    k: dict[str, Any] = {"id": data["id"].replace(":dp:", ":cmp:") + ":k", "kind": "storage",
                         "infrastructureTemplateId": STORAGE_TEMPLATE_ID, "dependsOn": [],
                         "specific": {"tables": [{"tableName": "k1", "schema": [{"name": "key", "dataType": "TEXT"}]}]}}
    data["components"].append(k)
    return Descriptor(data=data, environment=descriptor.environment)


def test_a_rollback_redeploys_the_previous_descriptor_and_prunes_what_it_lacks(start) -> None:
    first = generated_descriptor()
    second = next_version(first)
    b, k = component_id(first, "b"), component_id(second, "k")
    with scripted_adapter() as scripted:
        running = start(3)
        for descriptor in (first, second):
            deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
            assert running.wait(deployment_id).state is DeploymentState.DEPLOYED
        assert [deployment.version for deployment in rollback_history(running.redis, first.id, ENVIRONMENT)] == \
            ["1.1.0", "1.0.0"]
        provisioned_before = len(scripted.requests("/v1/provision"))

        choice = choose_from_redis(running.redis, first.id, ENVIRONMENT, None)
        assert (choice.version, choice.deployed.version) == ("1.0.0", "1.1.0")
        requested = request_rollback(running.redis, choice, registry(scripted.url), "rollback to 1.0.0 by tests",
                                     scope=Scope(prune="auto"))
        assert requested.unresolved == () and requested.ahead == 0
        rollback = running.wait(requested.deployment_id)
        assert rollback.state is DeploymentState.DEPLOYED, rollback.message
        assert (rollback.version, rollback.operation, rollback.started_by) == (
            "1.0.0", Operation.DEPLOY, "rollback to 1.0.0 by tests")
        assert rollback.descriptor == first.data
        assert scripted.targets("/v1/unprovision") == [k]  # added by 1.1.0, pruned under `auto`
        reprovisioned = scripted.requests("/v1/provision")[provisioned_before:]
        assert b in {call.target for call in reprovisioned}
        assert all(sent_descriptor(call) == first.data for call in reprovisioned)
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and deployed.descriptor == first.data and deployed.version == "1.0.0"
        assert deployed.deployment == requested.deployment_id

        # rolled back: 1.0.0 is deployed, and the previous other version is 1.1.0 again
        with pytest.raises(RollbackRefused, match="already deployed"):
            choose_from_redis(running.redis, first.id, ENVIRONMENT, "1.0.0")
        assert choose_from_redis(running.redis, first.id, ENVIRONMENT, None).version == "1.1.0"
        running.assert_clean((first.id, ENVIRONMENT))


def test_a_rollback_keeps_what_it_lacks_under_confirm_without_prune_and_needs_every_adapter(start) -> None:
    first = generated_descriptor()
    second = next_version(first)
    k = component_id(second, "k")
    with scripted_adapter() as scripted:
        running = start(2)
        for descriptor in (first, second):
            assert running.wait(running.request(descriptor, adapters_for(descriptor, scripted.url))[0]).state is \
                DeploymentState.DEPLOYED
        choice = choose_from_redis(running.redis, first.id, ENVIRONMENT, "1.0.0")
        storage_only = request_rollback(running.redis, choice, registry(scripted.url, STORAGE_TEMPLATE_ID), "tests",
                                        scope=Scope(prune="confirm"))
        assert storage_only.deployment_id == "" and len(storage_only.unresolved) == 6  # the output ports
        assert len(running.store.history(first.id, ENVIRONMENT)) == 2  # nothing recorded
        requested = request_rollback(running.redis, choice, registry(scripted.url), "tests",
                                     scope=Scope(prune="confirm"))
        rollback = running.wait(requested.deployment_id)
        assert rollback.state is DeploymentState.DEPLOYED, rollback.message
        assert scripted.requests("/v1/unprovision") == []
        assert rollback.reconciliation is not None and list(rollback.reconciliation["kept"]) == [k]
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and [c["id"] for c in deployed.descriptor["components"]][-1] == k
        running.assert_clean((first.id, ENVIRONMENT))


def test_nothing_deployed_is_refused_from_redis(redis_engine) -> None:
    with pytest.raises(RollbackRefused, match=f"nothing deployed in {ENVIRONMENT}"):
        choose_from_redis(redis_engine.redis, PRODUCT, ENVIRONMENT, None)
