"""Where each descriptor value was written, looked up in the entity documents' own positions on demand."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from typing import Any

from bot.descriptor.errors import SourcePosition
from bot.descriptor.yamlsafe import DataPath

# (file, positions, inner): a value at prefix + rest sits at positions[inner + rest]; positions hold (line, column)
# tuples in file, or SourcePositions already when file is None.
_Layer = tuple[str | None, Mapping[DataPath, Any], DataPath]


class SourceMap(Mapping[DataPath, SourcePosition]):
    """A descriptor's positions by path: the values set one by one, over layers that each map a whole entity.

    Assembly used to copy every position of every entity into one dict (a tuple and a SourcePosition per value):
    most are never read, as only failures and structure errors ask where a value is. A layer keeps the entity
    document's own positions instead; a lookup builds the one SourcePosition it returns. Values set win over
    layers, and a component's layer over the data product's, as if written in that order.
    """

    __slots__ = ("_set", "_layers")

    def __init__(self) -> None:
        self._set: dict[DataPath, SourcePosition] = {}
        self._layers: dict[DataPath, _Layer] = {}

    def add_layer(self, prefix: DataPath, file: str | None, positions: Mapping[DataPath, Any], inner: DataPath) -> None:
        """Values under prefix (the root, or one component) are where positions[inner + rest] says."""
        self._layers[prefix] = (file, positions, inner)

    def __setitem__(self, path: DataPath, position: SourcePosition) -> None:
        self._set[path] = position

    def get(self, path: DataPath, default: Any = None) -> Any:
        """The position of exactly path, or default."""
        found = self._set.get(path)
        if found is not None:
            return found
        if len(path) >= 2 and path[0] == "components":
            found = self._from_layer(path[:2], path[2:])
            if found is not None:
                return found
        found = self._from_layer((), path)
        return default if found is None else found

    def _from_layer(self, prefix: DataPath, rest: DataPath) -> SourcePosition | None:
        layer = self._layers.get(prefix)
        if layer is None:
            return None
        file, positions, inner = layer
        where = positions.get(inner + rest if inner else rest)
        if where is None or file is None:
            return where
        return SourcePosition(file, *where)

    def __getitem__(self, path: DataPath) -> SourcePosition:
        found = self.get(path)
        if found is None:
            raise KeyError(path)
        return found

    def _materialized(self) -> dict[DataPath, SourcePosition]:
        everything: dict[DataPath, SourcePosition] = {}
        # The data product's layer first, the components' after it, the values set last: the precedence of get().
        for prefix, (file, positions, inner) in sorted(self._layers.items(), key=lambda item: len(item[0])):
            size = len(inner)
            for path, where in positions.items():
                if path[:size] == inner:
                    everything[prefix + path[size:]] = where if file is None else SourcePosition(file, *where)
        everything.update(self._set)
        return everything

    def items(self) -> ItemsView[DataPath, SourcePosition]:
        """Every (path, position), computed in one pass."""
        return self._materialized().items()

    def __iter__(self) -> Iterator[DataPath]:
        return iter(self._materialized())

    def __len__(self) -> int:
        return len(self._materialized())

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self.get(path) is not None
