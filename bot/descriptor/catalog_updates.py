"""Apply reverse-provisioning `updates` to a catalog-info.yaml, keeping everything else as its author wrote it.

`updates` maps dot-paths (`spec.mesh.dataContract.schema`) to new values (Tech Adapter API 2.2.0). The
file is edited with ruamel.yaml round-trip, so comments, key order, quoting, flow style and blank lines of
everything not updated stay byte for byte. The rules:

- A path names a mapping key at each step; mappings missing on the way are created (block style, at the
  end of their parent). A segment made of digits indexes an existing list (0-based); it never creates one.
- The value at the end becomes the value there, whatever its kind: a scalar, a whole list, a whole mapping
  (replaced, not merged: keys the update lacks are removed). Only what differs is rewritten: list items and
  keys equal to the update keep their text and comments. A key that did not exist is added at the end of its
  mapping; list items beyond the old length are appended, items past the new length removed.
- A value equal to the current one changes nothing (so an unchanged file stays byte-identical).
- A path through a scalar, a list index out of range, or an empty segment is an error naming the path.
- New text is written with meshbot's YAML conventions (multi-line strings as literal blocks, values a
  YAML 1.1 reader would misread quoted).
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.descriptor.yamldump import prepared_for_yaml, round_trip_yaml


class UpdateError(ValueError):
    """An update that cannot be applied, with the path it names."""


def apply_updates(text: str, updates: dict[str, Any]) -> str:
    """The catalog-info.yaml text with the updates applied (the same text when nothing changes)."""
    yaml = round_trip_yaml()
    yaml.preserve_quotes = True
    mapping, offset = guess_indentation(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    document = yaml.load(text)
    if not isinstance(document, CommentedMap):
        raise UpdateError("the catalog-info.yaml is not a mapping")
    changed = False
    for path, value in updates.items():
        changed |= _apply(document, path, value)
    if not changed:
        return text
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def guess_indentation(text: str) -> tuple[int, int]:
    """(mapping indent, indent of a list's dash under its key) the file uses, so a rewrite keeps its layout."""
    mappings: Counter[int] = Counter()
    dashes: Counter[int] = Counter()
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:], strict=False):
        stripped = parent.rstrip()
        if not stripped.endswith(":") or stripped.lstrip().startswith("- "):
            continue
        depth = len(parent) - len(parent.lstrip())
        child_depth = len(child) - len(child.lstrip())
        if child.lstrip().startswith("- ") and child_depth >= depth:
            dashes[child_depth - depth] += 1
        elif child_depth > depth:
            mappings[child_depth - depth] += 1
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    offset = dashes.most_common(1)[0][0] if dashes else mapping
    return mapping, offset


def _apply(document: CommentedMap, path: str, value: Any) -> bool:
    segments = path.split(".")
    if not path or any(segment == "" for segment in segments):
        raise UpdateError(f"'{path}': empty path segment")
    node: Any = document
    for depth, segment in enumerate(segments[:-1]):
        node = _step(node, segment, path, segments[depth + 1])
    return _set(node, segments[-1], value, path)


def _step(node: Any, segment: str, path: str, following: str) -> Any:
    if isinstance(node, CommentedSeq):
        return node[_index(node, segment, path)]
    if not isinstance(node, CommentedMap):
        raise UpdateError(f"'{path}': '{segment}' is inside a value that is not a mapping")
    if segment not in node or node[segment] is None:
        if following.isdigit():
            raise UpdateError(f"'{path}': no list at '{segment}' to index")
        node[segment] = CommentedMap()
    child = node[segment]
    if not isinstance(child, (CommentedMap, CommentedSeq)):
        raise UpdateError(f"'{path}': '{segment}' holds a {type(child).__name__}, not a mapping")
    return child


def _set(node: Any, key: str, value: Any, path: str) -> bool:
    if isinstance(node, CommentedSeq):
        return _replace(node, _index(node, key, path), value)
    if not isinstance(node, CommentedMap):
        raise UpdateError(f"'{path}': '{key}' is inside a value that is not a mapping")
    if key not in node:
        node[key] = prepared_for_yaml(value)
        return True
    return _replace(node, key, value)


def _replace(container: Any, key: Any, value: Any) -> bool:
    """Make container[key] equal value, touching only what differs (so untouched items keep their comments)."""
    old = container[key]
    if _plain(old) == value:
        return False
    if isinstance(old, CommentedMap) and isinstance(value, dict):
        for gone in [existing for existing in old if existing not in value]:
            del old[gone]
        for item_key, item in value.items():
            if item_key in old:
                _replace(old, item_key, item)
            else:
                old[item_key] = prepared_for_yaml(item)
        return True
    if isinstance(old, CommentedSeq) and isinstance(value, list):
        for index, item in enumerate(value):
            if index < len(old):
                _replace(old, index, item)
            else:
                old.append(prepared_for_yaml(item))
        del old[len(value):]
        return True
    container[key] = prepared_for_yaml(value)
    return True


def _index(node: CommentedSeq, segment: str, path: str) -> int:
    if not segment.isdigit():
        raise UpdateError(f"'{path}': '{segment}' is not a list index")
    index = int(segment)
    if index >= len(node):
        raise UpdateError(f"'{path}': index {index} is past the end of a list of {len(node)}")
    return index


def _plain(value: Any) -> Any:
    """A round-trip value as plain data, for comparing with an update."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value
