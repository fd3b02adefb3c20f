"""Which reverse-provisioning updates meshbot applies: only below spec.mesh, never identity, ownership or adapter."""

from __future__ import annotations

import pytest

from bot.descriptor.update_scope import IDENTITY_KEYS, RefusedUpdate, refusal, screen_updates


@pytest.mark.parametrize("path", [
    "spec.mesh.description",
    "spec.mesh.dataContract.schema",
    "spec.mesh.dataContract.schema.0.dataType",
    "spec.mesh.specific.viewName",
    "spec.mesh.tags",
    "spec.mesh.dependsOn",  # what reads from what: the assembly checks the ids
    "spec.mesh.specific.id",  # identity keys matter directly below spec.mesh only
    "spec.mesh.dataContract.name",
])
def test_paths_below_spec_mesh_are_applied(path):
    assert refusal(path) is None


@pytest.mark.parametrize(("path", "reason"), [
    ("metadata.name", "not below spec.mesh: the component's identity, which its ids derive from"),
    ("metadata.title", "not below spec.mesh: the entity's metadata"),
    ("metadata", "not below spec.mesh: the entity's metadata"),
    ("kind", "not below spec.mesh: the entity's kind"),
    ("apiVersion", "not below spec.mesh: the entity's format"),
    ("spec.owner", "not below spec.mesh: the component's ownership"),
    ("spec.system", "not below spec.mesh: the data product the component belongs to"),
    ("spec.type", "not below spec.mesh: the component's kind"),
    ("spec.lifecycle", "not below spec.mesh: the component's lifecycle stage, which its team decides"),
    ("spec", "not below spec.mesh: the whole spec, ownership and data product included"),
    ("spec.meshy.description", "not below spec.mesh: not part of what the infrastructure looks like"),
    ("status.items", "not below spec.mesh: not part of what the infrastructure looks like"),
    ("Spec.mesh.description", "not below spec.mesh: not part of what the infrastructure looks like"),
    ("spec.mesh", "all of spec.mesh at once, identity keys included (an adapter names the keys below it)"),
    ("spec.mesh.id", "the component's URN, not the tech adapter's to change"),
    ("spec.mesh.name", "the name the component is found by, not the tech adapter's to change"),
    ("spec.mesh.kind", "the component's kind, not the tech adapter's to change"),
    ("spec.mesh.version", "the version its team releases, not the tech adapter's to change"),
    ("spec.mesh.useCaseTemplateId", "the template the component was made from, not the tech adapter's to change"),
    ("spec.mesh.infrastructureTemplateId", "which tech adapter deploys the component, not the tech adapter's to "
                                           "change"),
    ("spec.mesh.infrastructureTemplateId.x", "which tech adapter deploys the component, not the tech adapter's to "
                                             "change"),
])
def test_everything_else_is_refused_with_its_reason(path, reason):
    assert refusal(path) == reason


def test_every_identity_key_is_refused():
    assert all(refusal(f"spec.mesh.{key}") is not None for key in IDENTITY_KEYS)
    assert set(IDENTITY_KEYS) == {"id", "name", "fullyQualifiedName", "kind", "version", "useCaseTemplateId",
                                  "infrastructureTemplateId"}


def test_screening_keeps_the_adapter_s_order_and_values():
    screened = screen_updates({"kind": "Resource", "spec.mesh.tags": ["a"], "spec.owner": "group:x",
                               "spec.mesh.description": "d"})

    assert list(screened.allowed.items()) == [("spec.mesh.tags", ["a"]), ("spec.mesh.description", "d")]
    assert [update.path for update in screened.refused] == ["kind", "spec.owner"]
    assert str(screened.refused[1]) == "spec.owner: not below spec.mesh: the component's ownership"


def test_nothing_to_screen():
    screened = screen_updates({})
    assert screened.allowed == {} and screened.refused == []
    assert RefusedUpdate("kind", "r") == RefusedUpdate("kind", "r")
