"""The two shapes of environments/<env>/configurations.yaml: bare spec.mesh fields, or the entity's `spec: mesh:`."""

from __future__ import annotations

from typing import Any

from bot.descriptor.errors import InputError, SourcePosition
from bot.descriptor.yamlsafe import DataPath

# Keys that only an entity has: a file holding one of them is written in the entity's shape.
_ENTITY_KEYS = frozenset({"apiVersion", "metadata", "spec"})
_SHAPES = "environment overrides hold spec.mesh fields, bare or under 'spec: mesh:'"

Positions = dict[DataPath, tuple[int, int]]


def mesh_overrides(
    value: dict[str, Any], positions: Positions, file: str
) -> tuple[dict[str, Any], Positions, list[InputError]]:
    """The spec.mesh fields an override mapping holds, their positions relative to spec.mesh, and its errors.

    `positions` are keyed by paths relative to `value` and hold (line, column) in `file`.
    """
    if not _ENTITY_KEYS.intersection(value):
        return value, positions, []

    def at(*path: str) -> SourcePosition:
        line, column = positions.get(path, positions.get((), (1, 1)))
        return SourcePosition(file, line, column)

    errors = [InputError(f"'{key}' cannot be overridden: {_SHAPES}", at(key)) for key in value if key != "spec"]
    spec = value.get("spec")
    if not isinstance(spec, dict):
        errors.append(InputError("spec must be a mapping holding mesh", at("spec")))
        return {}, {}, errors
    errors.extend(InputError(f"'spec.{key}' cannot be overridden: {_SHAPES}", at("spec", key))
                  for key in spec if key != "mesh")
    mesh = spec.get("mesh") or {}
    if not isinstance(mesh, dict):
        errors.append(InputError("spec.mesh must be a mapping", at("spec", "mesh")))
        return {}, {}, errors
    inner = {path[2:]: where for path, where in positions.items() if path[:2] == ("spec", "mesh")}
    return mesh, inner, errors
