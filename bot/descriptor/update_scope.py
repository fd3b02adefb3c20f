"""Which reverse-provisioning `updates` meshbot applies to a component's catalog-info.yaml, and why it refuses others.

A tech adapter reports what the infrastructure looks like; it never decides what the component is, who owns it,
which data product it belongs to or which adapter deploys it. The rule, on each dot-path of `updates`:

- Only paths below `spec.mesh` are applied (`spec.mesh.dataContract.schema`, `spec.mesh.specific.viewName`).
  Everything else is refused: `kind`, `apiVersion`, `metadata.*` (`metadata.name` is the component's identity:
  its ids derive from it), `spec.owner` (ownership), `spec.system` (its data product), `spec.type`,
  `spec.lifecycle`. `spec.mesh` itself is refused too: replacing the whole of it would replace the keys below.
- Below `spec.mesh`, these keys (and anything under them) are refused as well: `id`, `name`,
  `fullyQualifiedName` and `kind` (identity: ids, URNs and the names a component is found by), `version` (the
  team's release decision; the major version is part of every id), `useCaseTemplateId` and
  `infrastructureTemplateId` (which template made the component and which adapter deploys it: an adapter may not
  pick its successor).
- Everything else below `spec.mesh` is applied, `dependsOn` included: which components another one reads from is
  part of what the infrastructure looks like, and the assembly that validates the result rejects unknown ids and
  cycles.

The rule is about where a path points, not whether it is well formed: a malformed path below `spec.mesh` is
allowed here and reported by `catalog_updates.apply_updates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESH = ("spec", "mesh")

IDENTITY_KEYS: dict[str, str] = {
    "id": "the component's URN",
    "name": "the name the component is found by",
    "fullyQualifiedName": "the component's qualified name",
    "kind": "the component's kind",
    "version": "the version its team releases",
    "useCaseTemplateId": "the template the component was made from",
    "infrastructureTemplateId": "which tech adapter deploys the component",
}

OUTSIDE_MESH: dict[tuple[str, ...], str] = {
    ("kind",): "the entity's kind",
    ("apiVersion",): "the entity's format",
    ("metadata", "name"): "the component's identity, which its ids derive from",
    ("metadata",): "the entity's metadata",
    ("spec", "owner"): "the component's ownership",
    ("spec", "system"): "the data product the component belongs to",
    ("spec", "type"): "the component's kind",
    ("spec", "lifecycle"): "the component's lifecycle stage, which its team decides",
}


@dataclass(frozen=True, slots=True)
class RefusedUpdate:
    """An update meshbot does not apply: its path and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ScreenedUpdates:
    """The updates to apply, in the adapter's order, and the refused ones."""

    allowed: dict[str, Any] = field(default_factory=dict)
    refused: list[RefusedUpdate] = field(default_factory=list)


def screen_updates(updates: dict[str, Any]) -> ScreenedUpdates:
    """Split updates into those meshbot applies and those it refuses, with the reason for each."""
    allowed: dict[str, Any] = {}
    refused: list[RefusedUpdate] = []
    for path, value in updates.items():
        reason = refusal(path)
        if reason is None:
            allowed[path] = value
        else:
            refused.append(RefusedUpdate(path, reason))
    return ScreenedUpdates(allowed, refused)


def refusal(path: str) -> str | None:
    """Why an update of path is refused, or None when meshbot applies it."""
    segments = tuple(str(path).split("."))
    if segments == MESH:
        return "all of spec.mesh at once, identity keys included (an adapter names the keys below it)"
    if segments[:len(MESH)] != MESH:
        return f"not below spec.mesh: {_outside(segments)}"
    key = segments[len(MESH)]
    if key in IDENTITY_KEYS:
        return f"{IDENTITY_KEYS[key]}, not the tech adapter's to change"
    return None


def _outside(segments: tuple[str, ...]) -> str:
    if segments == MESH[:1]:
        return "the whole spec, ownership and data product included"
    for length in range(len(segments), 0, -1):
        if segments[:length] in OUTSIDE_MESH:
            return OUTSIDE_MESH[segments[:length]]
    return "not part of what the infrastructure looks like"
