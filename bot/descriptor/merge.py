"""Deep merge of environment overrides, carrying the source positions along with the values."""

from __future__ import annotations

from typing import Any

from bot.descriptor.yamlsafe import DataPath


def deep_merge(
    base: Any,
    base_positions: dict[DataPath, Any],
    override: Any,
    override_positions: dict[DataPath, Any],
) -> tuple[Any, dict[DataPath, Any]]:
    """Merge override into base: mappings merge key by key; lists, scalars and nulls replace.

    Returns the merged value and positions where every replaced or added value points at the override
    and everything else, merged mappings included, keeps its base position.
    """
    replaced: set[DataPath] = set()
    merged = _merge(base, override, (), replaced)

    def from_override(path: DataPath) -> bool:
        return any(path[:length] in replaced for length in range(len(path) + 1))

    positions = {path: position for path, position in base_positions.items() if not from_override(path)}
    # Mappings that were merged, not replaced, keep the position where the base wrote them.
    positions.update((path, position) for path, position in override_positions.items() if from_override(path))
    return merged, positions


def _merge(base: Any, override: Any, path: DataPath, replaced: set[DataPath]) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = _merge(base[key], value, (*path, key), replaced) if key in base else value
            if key not in base:
                replaced.add((*path, key))
        return result
    replaced.add(path)
    return override
