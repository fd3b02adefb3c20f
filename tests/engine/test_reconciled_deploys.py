"""Reconciled deploys on real Redis, real workers and adapters over HTTP: removals, only_changed, single components."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.descriptor.model import Descriptor
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import DeploymentState
from bot.engine.reconcile import Scope
from bot.engine.runner import preview
from tests.deploy_harness import (
    ENVIRONMENT,
    adapters_for,
    component_id,
    example_descriptor,
    generated_descriptor,
    scripted_adapter,
)
from tests.engine.test_runner import sqlite_objects
from tests.engine.test_undeploy import registry
from tests.servers.reference_adapter import running_adapter


def without(descriptor: Descriptor, *locals_: str) -> Descriptor:
    """The descriptor without some components (and without dependencies on them), version 1.1.0."""
    data = copy.deepcopy(descriptor.data)
    gone = {component_id(descriptor, local) for local in locals_}
    data["components"] = [c for c in data["components"] if c["id"] not in gone]
    for component in data["components"]:
        component["dependsOn"] = [d for d in component.get("dependsOn", []) if d not in gone]
    data["version"] = "1.1.0"
    return Descriptor(data=data, environment=descriptor.environment)


def sent(call: Any) -> dict[str, Any]:
    return yaml.safe_load(call.body["descriptor"])["dataProduct"]


def test_removed_components_are_unprovisioned_after_the_others_dependents_first_with_what_they_were_sent(start):
    first = generated_descriptor()
    second = without(first, "h", "i")  # i depends on h: i goes first
    h, i = component_id(first, "h"), component_id(first, "i")
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        planned = preview(running.redis, second, Scope(prune="auto"), lambda d: adapters_for(d, scripted.url))
        assert planned.remove == [i, h] and planned.summary() == "8 to provision, 2 to remove"
        deployment_id, _ = running.request(second, adapters, scope=Scope(prune="auto"),
                                           resolve_removed=lambda d: adapters_for(d, scripted.url))
        deployment = running.wait(deployment_id)
        assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "8 completed, 2 removed")
        unprovisions = scripted.requests("/v1/unprovision")
        assert [call.target for call in unprovisions] == [i, h]
        assert all(sent(call) == first.data and call.body["removeData"] is False for call in unprovisions)
        last_provision = max(call.ended or 0.0 for call in scripted.requests("/v1/provision")[10:])
        assert min(call.started for call in unprovisions) >= last_provision  # after every other task
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and deployed.descriptor == second.data
        components = running.store.product(first.id, ENVIRONMENT)["components"]
        assert h not in components and i not in components and len(components) == 8
        running.assert_clean((first.id, ENVIRONMENT))


def test_confirm_keeps_removed_components_listed_until_a_deploy_with_prune(start):
    first = generated_descriptor()
    second = without(first, "j")
    j = component_id(first, "j")
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        resolve = lambda d: adapters_for(d, scripted.url)  # noqa: E731
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        kept = running.wait(running.request(second, adapters, scope=Scope(prune="confirm"), resolve_removed=resolve)[0])
        assert kept.state is DeploymentState.DEPLOYED and scripted.requests("/v1/unprovision") == []
        assert kept.message == ("9 completed; 1 kept though no longer in the repository: " + j)
        record = running.store.product(first.id, ENVIRONMENT)
        assert record["components"][j]["status"] == "DEPLOYED"  # status still lists it, and says why
        assert "--prune" in record["components"][j]["message"]
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and [c["id"] for c in deployed.descriptor["components"]][-1] == j
        pruned = running.wait(running.request(second, adapters, scope=Scope(prune="confirm", prune_confirmed=True),
                                              resolve_removed=resolve)[0])
        assert pruned.state is DeploymentState.DEPLOYED and scripted.targets("/v1/unprovision") == [j]
        assert j not in running.store.product(first.id, ENVIRONMENT)["components"]
        running.assert_clean((first.id, ENVIRONMENT))


def test_a_failed_provision_removes_nothing(start):
    from tests.servers.tech_adapter import Reply

    first = generated_descriptor()
    second = without(first, "j")
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        scripted.script(component_id(first, "g"), "/v1/provision", Reply(200, {"status": "FAILED", "result": "no"}))
        failed = running.wait(running.request(second, adapters, scope=Scope(prune="auto"),
                                              resolve_removed=lambda d: adapters_for(d, scripted.url))[0])
        assert failed.state is DeploymentState.CORRUPT and scripted.requests("/v1/unprovision") == []
        tasks = running.store.task_states(failed.id)
        assert tasks[component_id(first, "j")]["state"] == "SKIPPED"


def test_only_changed_provisions_one_changed_component_and_its_dependents(start):
    first = generated_descriptor()
    second = copy.deepcopy(first)
    second.data["version"] = "1.0.1"
    a = component_id(first, "a")
    next(c for c in second.data["components"] if c["id"] == a)["description"] = "the diamond's storage"
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        only = running.wait(running.request(second, adapters, scope=Scope(only_changed=True))[0])
        assert only.state is DeploymentState.DEPLOYED and only.message == "4 completed, 6 unchanged"
        assert sorted(scripted.targets("/v1/provision")[10:]) == sorted(component_id(first, x) for x in "abcd")
        # only what runs is validated
        assert sorted(scripted.targets("/v1/validate")[10:]) == sorted(component_id(first, x) for x in "abcd")
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and deployed.descriptor == second.data and deployed.version == "1.0.1"
        again = running.wait(running.request(second, adapters, scope=Scope(only_changed=True))[0])
        assert again.message == "10 unchanged" and len(scripted.targets("/v1/provision")) == 14
        running.assert_clean((first.id, ENVIRONMENT))


def test_a_single_component_deploy_is_partial_and_leaves_the_rest_as_deployed(start):
    first = generated_descriptor()
    changed = copy.deepcopy(first)
    f, g = component_id(first, "f"), component_id(first, "g")
    for component in changed.data["components"]:
        component["description"] = "edited"
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        partial = running.wait(running.request(changed, adapters, scope=Scope(components=(g,)))[0])
        assert partial.state is DeploymentState.DEPLOYED
        assert partial.message == f"partial deploy of {g}: 1 completed, 9 left as they are"
        assert scripted.targets("/v1/provision")[10:] == [g]
        record = running.store.product(first.id, ENVIRONMENT)
        assert record["partial"] is True and record["status"] == "DEPLOYED"
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None
        by_id = {c["id"]: c for c in deployed.descriptor["components"]}
        assert by_id[g].get("description") == "edited" and "description" not in by_id[f]  # f: as deployed before
        running.assert_clean((first.id, ENVIRONMENT))


def test_the_reference_adapter_drops_the_view_of_a_removed_output_port(start, tmp_path):
    descriptor = example_descriptor()
    port = next(c for c in descriptor.components if c.get("kind") == "outputport" and
                c["specific"]["viewName"] == "daily_cashflow_v")
    second = Descriptor(data={**copy.deepcopy(descriptor.data), "version": "1.1.0",
                              "components": [c for c in descriptor.components if c["id"] != port["id"]]},
                        environment=descriptor.environment)
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(2)
        adapters = registry(adapter.url, STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)
        assert running.wait(running.request(descriptor, adapters.resolve_all(descriptor))[0]).state is \
            DeploymentState.DEPLOYED
        assert "view daily_cashflow_v" in sqlite_objects(adapter.database)
        removed = running.wait(running.request(second, adapters.resolve_all(second), scope=Scope(prune="auto"),
                                               resolve_removed=adapters.resolve_all)[0])
        assert removed.state is DeploymentState.DEPLOYED, removed.message
        objects = sqlite_objects(adapter.database)
        assert "view daily_cashflow_v" not in objects and "table daily_cashflow" in objects  # data kept
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_deploy_is_planned_again_when_it_starts_against_what_the_deploy_before_it_left(start):
    from tests.servers.tech_adapter import Reply

    first = generated_descriptor()
    second = copy.deepcopy(first)
    a, j = component_id(first, "a"), component_id(first, "j")
    next(c for c in second.data["components"] if c["id"] == a)["description"] = "changed"
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        scripted.script(j, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "slow j"}, delay=1.0))
        full_id, _ = running.request(second, adapters)  # every task, j slowly
        queued_id, ahead = running.request(second, adapters, scope=Scope(only_changed=True))
        assert ahead == 1
        queued = running.store.load(queued_id)
        assert queued is not None and queued.reconciliation is not None
        assert sorted(queued.reconciliation["provision"]) == sorted(component_id(first, x) for x in "abcd")
        assert running.wait(full_id).state is DeploymentState.DEPLOYED
        replanned = running.wait(queued_id)
        # planned again at its start: the deploy before it deployed the change, so nothing is left to provision
        assert (replanned.state, replanned.message) == (DeploymentState.DEPLOYED, "10 unchanged")
        assert replanned.tasks == [] and len(scripted.targets("/v1/provision")) == 20
        running.assert_clean((first.id, ENVIRONMENT))


def test_tasks_a_deploy_plans_only_when_it_starts_have_their_adapters(start):
    from tests.servers.tech_adapter import Reply

    first = generated_descriptor()
    second = copy.deepcopy(first)
    a, j = component_id(first, "a"), component_id(first, "j")
    next(c for c in second.data["components"] if c["id"] == a)["description"] = "changed"
    with scripted_adapter() as scripted:
        running = start(2)
        adapters = adapters_for(first, scripted.url)
        assert running.wait(running.request(first, adapters)[0]).state is DeploymentState.DEPLOYED
        scripted.script(j, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "slow j"}, delay=1.0))
        ahead_id, _ = running.request(second, adapters)
        back_id, _ = running.request(first, adapters, scope=Scope(only_changed=True))  # nothing to do, for now
        back = running.store.load(back_id)
        assert back is not None and back.tasks == []
        assert running.wait(ahead_id).state is DeploymentState.DEPLOYED
        restored = running.wait(back_id)
        assert (restored.state, restored.message) == (DeploymentState.DEPLOYED, "4 completed, 6 unchanged")
        assert all(task.adapter_url == scripted.url for task in restored.tasks)
        deployed = RedisDeployedStates(running.redis).deployed(first.id, ENVIRONMENT)
        assert deployed is not None and deployed.descriptor == first.data
