"""Descriptor paths in tech adapters' error texts: each error split out, its path parsed, filed under its component.

Adapters name the place of an error in many spellings: a pydantic/FastAPI `loc` tuple (`('components', 0,
'semanticLinking')`, as the Witboost Python scaffold prints its errors), a JSON list (`["components", 0, "x"]`),
brackets (`components[0].x`), JSON pointers (`/components/0/x`) and dotted paths (`components.0.x`). A path that
starts at `components` (or `dataProduct.components`) is absolute; any other is within the part of the descriptor
the asking task provisions (its component, or the data product itself).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor, format_path
from bot.descriptor.yamlsafe import DataPath, PathKey

_NAME = r"[A-Za-z_$][\w$-]*"
_LOC = re.compile(r"""['"]?loc['"]?\s*[:=]\s*(\([^()]*\)|\[[^\[\]]*\])""")
_POINTER = re.compile(rf"(?<![\w/.:~-])(/{_NAME}(?:/(?:{_NAME}|\d+))*)")
_DOTTED = re.compile(rf"(?<![\w.\[/$-])({_NAME}(?:(?:\.(?:{_NAME}|\d+))|\[\d+\])+)")
_BARE = re.compile(rf"^\s*({_NAME})\s*:")
_STEP = re.compile(rf"\.?({_NAME})|\.(\d+)|\[(\d+)\]")
_PYDANTIC_TITLE = re.compile(r"^\d+ validation errors? for \S+\s*$")
_PYDANTIC_TAIL = re.compile(r"\s*\[type=([\w.]+)[^\]]*\]\s*$")
WRAPPERS = ("dataProduct",)  # a component request nests the data product under it


@dataclass(frozen=True, slots=True)
class PathError:
    """One error text and the descriptor paths it may name, as written; explicit: a `loc` named it for sure."""

    message: str
    paths: tuple[DataPath, ...] = ()
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class LocatedError:
    """One adapter error placed: the task it is about, its absolute descriptor path and where that was written."""

    task: str
    message: str
    path: DataPath | None = None
    position: SourcePosition | None = None

    @property
    def where(self) -> str:
        """The descriptor path as people read it, or empty."""
        return format_path(self.path) if self.path is not None else ""


def split_errors(errors: Sequence[str]) -> list[PathError]:
    """Each error text as one or more errors: Python reprs of pydantic errors and pydantic's own text are split."""
    found: list[PathError] = []
    for text in errors:
        found.extend(_split(str(text)))
    return found


def _split(text: str) -> list[PathError]:
    items = [item for item in (_literal(chunk) for chunk in _dict_chunks(text)) if item is not None]
    if items:
        return [_pydantic_item(item) for item in items]
    listed = _pydantic_text(text)
    if listed:
        return listed
    return [PathError(text.strip(), tuple(candidate_paths(text)))]


def _dict_chunks(text: str) -> Iterator[str]:
    """The outermost `{...}` parts of text, braces inside quotes ignored."""
    depth, start, quote = 0, -1, ""
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "'\"" and depth:
            quote = char
        elif char == "{":
            start = index if depth == 0 else start
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start:index + 1]


def _literal(chunk: str) -> dict[str, Any] | None:
    """A pydantic error dict written as a Python or JSON literal, when chunk is one."""
    try:
        value = ast.literal_eval(chunk.replace(": true", ": True").replace(": false", ": False")
                                 .replace(": null", ": None"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, dict) and "msg" in value and isinstance(value.get("loc"), tuple | list):
        return value
    return None


def _pydantic_item(item: dict[str, Any]) -> PathError:
    path = _unwrap(tuple(part for part in item["loc"] if isinstance(part, str | int)))
    kind = f" ({item['type']})" if isinstance(item.get("type"), str) and item["type"] else ""
    message = f"{item['msg']}{kind}"
    return PathError(f"{format_path(path)}: {message}" if path else message, (path,) if path else (), True)


def _pydantic_text(text: str) -> list[PathError]:
    """pydantic's own `str(ValidationError)`: a title, then each error's dotted location and indented message."""
    lines = text.strip().splitlines()
    if not lines or not _PYDANTIC_TITLE.match(lines[0]):
        return []
    found, location = [], None
    for line in lines[1:]:
        if line.startswith("  ") and location is not None:
            tail = _PYDANTIC_TAIL.search(line)
            message = line[:tail.start()].strip() + (f" ({tail.group(1)})" if tail else "") if tail else line.strip()
            path = _unwrap(_steps(location))
            found.append(PathError(f"{format_path(path)}: {message}" if path else message, (path,) if path else (),
                                   True))
            location = None
        elif line.strip():
            location = line.strip()
    return found


def candidate_paths(text: str) -> list[DataPath]:
    """The descriptor paths text may name, in any of the spellings adapters use, likeliest first (guesses)."""
    found: list[DataPath] = []
    for loc in _LOC.finditer(text):
        try:
            value = ast.literal_eval(loc.group(1).replace("null", "None"))
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, tuple | list):
            found.append(_unwrap(tuple(part for part in value if isinstance(part, str | int))))
    for pattern, convert in ((_DOTTED, _steps), (_POINTER, _pointer_steps)):
        found.extend(_unwrap(convert(match.group(1))) for match in pattern.finditer(text))
    bare = _BARE.match(text)
    if bare and not found:
        found.append((bare.group(1),))
    return [path for path in dict.fromkeys(found) if path]


def _steps(text: str) -> DataPath:
    steps: list[PathKey] = []
    for name, dotted_index, index in _STEP.findall(text):
        steps.append(name if name else int(dotted_index or index))
    return tuple(steps)


def _pointer_steps(text: str) -> DataPath:
    parts = [part.replace("~1", "/").replace("~0", "~") for part in text.strip("/").split("/")]
    return tuple(int(part) if part.isdigit() else part for part in parts)


def _unwrap(path: DataPath) -> DataPath:
    """The path without the request's own wrappers (FastAPI's `body`, the component request's `dataProduct`)."""
    while path and path[0] in ("body", "descriptor", *WRAPPERS):
        path = path[1:]
    return path


def component_base(descriptor: Descriptor, task_id: str) -> DataPath:
    """Where the part of the descriptor a task provisions sits: `('components', i)`, or the root."""
    for index, component in enumerate(descriptor.components):
        if component.get("id") == task_id:
            return ("components", index)
    return ()


def locate(descriptor: Descriptor, task_id: str, errors: Sequence[str],
           tasks: Sequence[str] = ()) -> list[LocatedError]:
    """The errors task_id's adapter gave, each filed under the task whose component it names, at its position.

    A path is believed only when the descriptor has its first key (so `e.g.` or a URL is not a path); an
    error naming a component that is not among tasks (when given) stays with the task that asked.
    """
    base = component_base(descriptor, task_id)
    placed = []
    for error in split_errors(errors):
        path = next((absolute for absolute in (_absolute(descriptor, base, candidate, error.explicit)
                                               for candidate in error.paths) if absolute is not None), None)
        task = task_id
        if path is not None and len(path) >= 2 and path[0] == "components" and isinstance(path[1], int) \
                and path[1] < len(descriptor.components):
            named = str(descriptor.components[path[1]].get("id", ""))
            task = named if named and (not tasks or named in tasks) else task_id
        position = descriptor.position(path) if path is not None else None
        placed.append(LocatedError(task, error.message, path, position))
    return placed


def _absolute(descriptor: Descriptor, base: DataPath, path: DataPath, explicit: bool) -> DataPath | None:
    """path in the whole descriptor: as is from `components`, else within the task's part, else from the root."""
    if path[0] == "components" and isinstance(descriptor.data.get("components"), list):
        return path
    part: Any = descriptor.data
    for step in base:
        part = part[step]
    if isinstance(part, dict) and path[0] in part:
        return (*base, *path)
    if path[0] in descriptor.data:
        return path
    return (*base, *path) if explicit else None  # a field the adapter misses: where it belongs
