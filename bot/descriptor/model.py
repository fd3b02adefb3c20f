"""The assembled data product descriptor, with the source position of every value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.descriptor.errors import InputError, SourcePosition
from bot.descriptor.yamlsafe import DataPath

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


@dataclass(slots=True)
class Descriptor:
    """A descriptor for one environment and where each of its values was written."""

    data: dict[str, Any]
    environment: str
    sources: Mapping[DataPath, SourcePosition] = field(default_factory=dict)
    component_files: dict[str, str] = field(default_factory=dict)
    # Mistakes that do not stop assembly (an unknown kind in a catalog file): shown beside the policy results.
    warnings: list[InputError] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The data product id."""
        return str(self.data.get("id", ""))

    @property
    def components(self) -> list[dict[str, Any]]:
        """The component descriptors, in order."""
        components = self.data.get("components")
        return components if isinstance(components, list) else []

    def position(self, path: DataPath) -> SourcePosition | None:
        """Where the value at path (or its nearest ancestor with a known source) was written."""
        while True:
            found = self.sources.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]


def format_path(path: DataPath) -> str:
    """A descriptor path as people read it: `components[2].dataContract.schema[0].name`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return text or "(root)"


def major_version(version: Any) -> str | None:
    """The major part of a version string such as `1.4.0`, or None when there is none."""
    if not isinstance(version, str):
        return None
    head = version.split(".", 1)[0]
    return head if head.isdigit() else None


def component_name(item: dict[str, Any]) -> str:
    """A component's short name: the last part of its id (metadata.name after the data product's name)."""
    return str(item.get("id", "")).rsplit(":", 1)[-1]


def find_components(components: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The components wanted names: by id, else by name (spec.mesh.name, or the last part of the id), any case."""
    by_id = [item for item in components if str(item.get("id")) == wanted]
    if by_id:
        return by_id
    folded = wanted.casefold()
    return [item for item in components
            if folded in {component_name(item).casefold(), str(item.get("name") or "").casefold()}]
