"""bot.engine.reconcile: what a deploy provisions, leaves alone, removes and keeps (pure decisions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.descriptor.model import Descriptor
from bot.engine.reconcile import Reconciliation, Scope, deployed_after, previous_components, reconcile

DP = "urn:dmb:dp:finance:cashflow:1"


def cmp(name: str, *depends: str, **fields: Any) -> dict[str, Any]:
    """A component of the test data product."""
    return {"id": f"urn:dmb:cmp:finance:cashflow:1:{name}", "kind": "outputport", "name": name,
            "dependsOn": [f"urn:dmb:cmp:finance:cashflow:1:{d}" for d in depends], **fields}


def ids(*names: str) -> list[str]:
    return [f"urn:dmb:cmp:finance:cashflow:1:{name}" for name in names]


def product(*components: dict[str, Any], version: str = "1.0.0", root: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"id": DP, "version": version, "environment": "qa", "components": list(components)}
    if root:
        data["infrastructureTemplateId"] = "urn:dmb:itm:dp:0"
    return data


def decide(desired: dict[str, Any], deployed: dict[str, Any] | None, scope: Scope,
           states: dict[str, str] | None = None) -> Reconciliation:
    if states is None:
        states = {c["id"]: "DEPLOYED" for c in (deployed or {}).get("components", [])}
    previous = previous_components(deployed, None, states)
    return reconcile(Descriptor(data=desired, environment="qa"), deployed, previous, states, scope)


# A storage `a`, a port `b` reading it, a port `c` reading `b`; `x` was deployed and is gone; `y` depends on `x`.
DEPLOYED = product(cmp("a"), cmp("b", "a"), cmp("c", "b"), cmp("x"), cmp("y", "x"))
DESIRED = product(cmp("a"), cmp("b", "a"), cmp("c", "b"), version="1.1.0")


def test_a_full_deploy_provisions_everything_and_removes_the_absent_dependents_first_after_the_rest():
    planned = decide(DESIRED, DEPLOYED, Scope(prune="auto"))
    assert planned.provision == ids("a", "b", "c") and planned.unchanged == []
    assert planned.remove == ids("y", "x")  # y depends on x: y goes first
    assert planned.depends_on[ids("y")[0]] == ids("a", "b", "c")
    assert planned.depends_on[ids("x")[0]] == ids("y") + ids("a", "b", "c")
    assert planned.kept == {} and planned.summary() == "3 to provision, 2 to remove"


@pytest.mark.parametrize(("scope", "reason"), [
    (Scope(prune="confirm"), "kept until a deploy with --prune, as prune is confirm in qa"),
    (Scope(prune="never", prune_confirmed=True), "kept, as prune is never in qa"),
])
def test_confirm_without_prune_and_never_keep_and_say_why(scope, reason):
    planned = decide(DESIRED, DEPLOYED, scope)
    assert planned.remove == [] and list(planned.kept) == ids("x", "y")
    assert all(text.endswith(reason) for text in planned.kept.values())
    assert planned.summary() == "3 to provision, 2 kept"


def test_confirm_with_prune_removes():
    assert decide(DESIRED, DEPLOYED, Scope(prune="confirm", prune_confirmed=True)).remove == ids("y", "x")


def test_a_component_recorded_not_deployed_is_never_removed():
    states = {**{c["id"]: "DEPLOYED" for c in DEPLOYED["components"]}, ids("y")[0]: "NOT_DEPLOYED"}
    assert decide(DESIRED, DEPLOYED, Scope(), states).remove == ids("x")


def test_only_changed_provisions_the_changed_and_their_dependents():
    desired = copy.deepcopy(DESIRED)
    desired["components"][1]["specific"] = {"viewName": "b2"}  # b changed: b and c run, a does not
    planned = decide(desired, product(cmp("a"), cmp("b", "a"), cmp("c", "b")), Scope(only_changed=True))
    assert planned.provision == ids("b", "c") and planned.unchanged == ids("a")
    assert planned.depends_on[ids("b")[0]] == [] and planned.depends_on[ids("c")[0]] == ids("b")


def test_only_changed_runs_what_is_not_deployed_and_ignores_a_version_bump_of_the_data_product():
    deployed = product(cmp("a"), cmp("b", "a"), cmp("c", "b"), root=True)
    desired = product(cmp("a"), cmp("b", "a"), cmp("c", "b"), version="1.2.0", root=True)
    states = {**{c["id"]: "DEPLOYED" for c in deployed["components"]}, DP: "DEPLOYED", ids("c")[0]: "FAILED"}
    planned = decide(desired, deployed, Scope(only_changed=True), states)
    assert planned.provision == ids("c") and planned.unchanged == [DP, *ids("a", "b")]
    desired["description"] = "now described"  # the data product's own fields changed: everything runs
    assert decide(desired, deployed, Scope(only_changed=True), states).provision == [DP, *ids("a", "b", "c")]


def test_only_changed_with_nothing_deployed_provisions_everything():
    assert decide(DESIRED, None, Scope(only_changed=True)).provision == ids("a", "b", "c")


def test_a_partial_deploy_runs_the_component_and_what_it_needs_that_is_not_deployed_and_never_removes():
    states = {ids("a")[0]: "NOT_DEPLOYED", ids("b")[0]: "DEPLOYED", ids("x")[0]: "DEPLOYED", ids("y")[0]: "DEPLOYED"}
    planned = decide(DESIRED, DEPLOYED, Scope(prune="auto", components=tuple(ids("c"))), states)
    assert planned.provision == ids("a", "c") and planned.unchanged == ids("b") and planned.partial
    assert planned.depends_on[ids("c")[0]] == [] and planned.remove == []
    assert all("never removes" in reason for reason in planned.kept.values())
    assert planned.summary() == "2 to provision, 1 left as they are, 2 kept"


def test_previous_components_add_those_the_latest_deployment_provisioned_beyond_the_deployed_record():
    last = product(cmp("a"), cmp("z"))
    found = previous_components(product(cmp("a", version=1)), last, {ids("z")[0]: "FAILED"})
    assert list(found) == ids("a", "z") and found[ids("a")[0]]["version"] == 1  # the deployed definition wins
    assert list(previous_components(None, last, {ids("z")[0]: "NOT_DEPLOYED"})) == ids("a")


def test_what_is_deployed_after_keeps_untouched_and_kept_definitions_and_drops_the_removed():
    previous = {c["id"]: c for c in DEPLOYED["components"]}
    desired = copy.deepcopy(DESIRED)
    desired["components"][0]["changed"] = True
    desired["components"].append(cmp("new"))
    after = deployed_after(desired, previous, provisioned=ids("b"), unchanged=[], removed=ids("y"))
    # a: not provisioned by this (partial) deploy: its deployed definition; c likewise; new: never deployed, left out
    assert [c["id"] for c in after["components"]] == ids("a", "b", "c", "x")
    assert "changed" not in after["components"][0] and after["version"] == "1.1.0"
    everything = deployed_after(desired, previous, provisioned=ids("a", "b", "c", "new"), unchanged=[],
                                removed=ids("x", "y"))
    assert everything["components"] == desired["components"]


def test_cycles_among_removed_components_still_give_an_order():
    deployed = product(cmp("a"), cmp("x", "y"), cmp("y", "x"))
    planned = decide(product(cmp("a")), deployed, Scope())
    assert planned.remove == ids("y", "x") and planned.depends_on[ids("x")[0]] == ids("y") + ids("a")


def test_scope_round_trips_and_an_old_record_without_one_never_prunes():
    scope = Scope(prune="confirm", prune_confirmed=True, only_changed=True, components=("c1",))
    assert Scope.from_json(scope.as_json()) == scope
    assert not Scope.from_json(None).removes()
    planned = decide(DESIRED, DEPLOYED, Scope())
    assert Reconciliation.from_json(planned.as_json()).remove == planned.remove
