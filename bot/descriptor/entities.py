"""Backstage entities as meshbot reads them, and Backstage entity references."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from bot.descriptor.errors import InputError, SourcePosition
from bot.descriptor.files import FileReader
from bot.descriptor.yamlsafe import DataPath, YamlDocument

COMPONENT_TYPES = ("outputport", "workload", "storage", "observability")
BACKSTAGE_KINDS = ("Component", "System", "Domain", "Resource", "API", "Group", "User", "Location", "Template")


@dataclass(slots=True)
class Entity:
    """One entity document, the reader it came from and its path there."""

    document: YamlDocument
    reader: FileReader
    path: str

    @property
    def kind(self) -> str:
        """The entity kind as written (System, Component, Location, ...)."""
        return str(self.document.value["kind"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata mapping."""
        return self.document.value["metadata"]

    @property
    def name(self) -> str:
        """metadata.name."""
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        """metadata.namespace, `default` when absent."""
        return str(self.metadata.get("namespace") or "default")

    @property
    def spec(self) -> dict[str, Any]:
        """The spec mapping (empty when absent)."""
        spec = self.document.value.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def file(self) -> str:
        """How errors name the file this entity is in."""
        return self.document.file

    def position(self, *path: str | int) -> SourcePosition:
        """Where the value at path is written (or its nearest written ancestor)."""
        return self.document.position(tuple(path))

    def is_kind(self, kind: str) -> bool:
        """Whether the entity kind equals kind, ignoring case as Backstage does."""
        return self.kind.lower() == kind.lower()


def entity_shape_error(document: YamlDocument) -> InputError | None:
    """Why a document is not a Backstage entity, or None when it is one."""
    value = document.value
    if not isinstance(value, dict):
        return InputError(
            "not a Backstage entity: expected a mapping with apiVersion, kind and metadata",
            document.position(),
        )
    missing = [key for key in ("apiVersion", "kind", "metadata") if key not in value]
    if missing:
        return InputError(
            f"not a Backstage entity: missing {', '.join(repr(key) for key in missing)}", document.position()
        )
    if not isinstance(value["kind"], str) or not value["kind"]:
        return InputError("not a Backstage entity: 'kind' must be a string", document.position(("kind",)))
    metadata = value["metadata"]
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return InputError(
            "not a Backstage entity: 'metadata.name' must be a non-empty string",
            document.position(("metadata", "name")),
        )
    if "spec" in value and not isinstance(value["spec"], dict):
        return InputError("'spec' must be a mapping", document.position(("spec",)))
    return None


def closest(word: str, choices: tuple[str, ...] | list[str], cutoff: float = 0.6) -> str | None:
    """The choice closest to word (ignoring case), or None when none is close enough."""
    folded = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=cutoff)
    return folded[found[0]] if found else None


def known_kind(kind: str) -> bool:
    """Whether kind is one of Backstage's own kinds (ignoring case, as Backstage does)."""
    return kind.lower() in {known.lower() for known in BACKSTAGE_KINDS}


def parse_reference(reference: str, default_kind: str) -> tuple[str, str | None, str]:
    """(kind, namespace or None when not written, name) of `name`, `kind:name` or `kind:namespace/name`."""
    kind, _, rest = reference.partition(":") if ":" in reference else ("", "", reference)
    namespace, _, name = rest.rpartition("/")
    return (kind or default_kind).lower(), namespace or None, name


def reference_name(reference: Any, default_kind: str) -> str | None:
    """The name a reference of default_kind points at, or None when it is not such a reference."""
    if not isinstance(reference, str) or not reference.strip():
        return None
    kind, _namespace, name = parse_reference(reference.strip(), default_kind)
    return name if kind == default_kind.lower() else None


def mesh_positions(entity: Entity) -> dict[DataPath, tuple[int, int]]:
    """Positions of the values under spec.mesh, keyed by their path inside spec.mesh."""
    prefix = ("spec", "mesh")
    return {path[2:]: position for path, position in entity.document.positions.items() if path[:2] == prefix}
