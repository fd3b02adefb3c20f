"""Find the entities of a data product: every catalog-info file in the tree, plus Location targets."""

from __future__ import annotations

import fnmatch
import posixpath
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.descriptor.entities import Entity, entity_shape_error
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES, FileReader, FileTooLarge, normalize_path
from bot.descriptor.yamlsafe import load_documents

CATALOG_FILE_NAMES = ("catalog-info.yaml", "catalog-info.yml")


class RemoteLocations(Protocol):
    """Reads Location targets in other repositories (the forge layer provides one)."""

    def open(self, target: str) -> tuple[FileReader, str, str]:
        """(reader of that repository at the pinned revision, path of the file in it, label for errors)."""
        ...


@dataclass(slots=True)
class Discovery:
    """The entities found and the problems met on the way."""

    entities: list[Entity] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def is_catalog_file(path: str) -> bool:
    """Whether a path names a catalog-info file outside hidden folders."""
    parts = path.split("/")
    return parts[-1] in CATALOG_FILE_NAMES and not any(part.startswith(".") for part in parts[:-1])


def discover(reader: FileReader, remote: RemoteLocations | None = None) -> Discovery:
    """Every entity in the repository's catalog files and in the files its Locations point at."""
    result = Discovery()
    listing = reader.list_files()
    queue: deque[tuple[FileReader, str, str]] = deque(
        (reader, path, path) for path in sorted(listing, key=_root_first) if is_catalog_file(path)
    )
    seen: set[str] = set()
    while queue:
        source_reader, path, label = queue.popleft()
        if label in seen:
            continue
        seen.add(label)
        for entity in _read_entities(source_reader, path, label, result.errors):
            result.entities.append(entity)
            if entity.is_kind("Location"):
                queue.extend(_location_targets(entity, listing if source_reader is reader else None, remote,
                                               result.errors))
    return result


def _root_first(path: str) -> tuple[int, str]:
    return path.count("/"), path


def _read_entities(reader: FileReader, path: str, label: str, errors: list[InputError]) -> list[Entity]:
    try:
        content = reader.read_bytes(path, MAX_FILE_BYTES)
    except FileTooLarge as too_large:
        errors.append(InputError(
            f"file is {too_large.size} bytes, over the {MAX_FILE_BYTES // 1024 // 1024} MiB limit",
            SourcePosition(label),
        ))
        return []
    except FileNotFoundError:
        errors.append(InputError("file not found", SourcePosition(label)))
        return []
    try:
        documents = load_documents(content, label)
    except InputErrors as invalid:
        errors.extend(invalid.errors)
        return []
    if not documents:
        errors.append(InputError("file is empty: expected a Backstage entity", SourcePosition(label, 1, 1)))
    entities = []
    for document in documents:
        problem = entity_shape_error(document)
        if problem:
            errors.append(problem)
        else:
            entities.append(Entity(document=document, reader=reader, path=path))
    return entities


def _location_targets(
    location: Entity,
    listing: Sequence[str] | None,
    remote: RemoteLocations | None,
    errors: list[InputError],
) -> list[tuple[FileReader, str, str]]:
    spec = location.spec
    targets: list[tuple[object, tuple[str | int, ...]]] = []
    if "target" in spec:
        targets.append((spec["target"], ("spec", "target")))
    raw_targets = spec.get("targets", [])
    if not isinstance(raw_targets, list):
        errors.append(InputError("Location 'spec.targets' must be a list", location.position("spec", "targets")))
        raw_targets = []
    targets.extend((target, ("spec", "targets", index)) for index, target in enumerate(raw_targets))
    found: list[tuple[FileReader, str, str]] = []
    for target, path in targets:
        position = location.position(*path)
        if not isinstance(target, str) or not target.strip():
            errors.append(InputError("Location target must be a non-empty string", position))
            continue
        target = target.strip()
        if "://" in target:
            found.extend(_remote_target(target, remote, position, errors))
        else:
            found.extend(_relative_target(location, target, listing, position, errors))
    return found


def _remote_target(
    target: str, remote: RemoteLocations | None, position: SourcePosition, errors: list[InputError]
) -> list[tuple[FileReader, str, str]]:
    if remote is None:
        errors.append(InputError(
            f"Location target '{target}' is in another repository; remote targets are read through the "
            "forge connection, which a local check does not have",
            position,
        ))
        return []
    try:
        return [remote.open(target)]
    except (LookupError, ValueError, OSError) as problem:
        errors.append(InputError(f"cannot read Location target '{target}': {problem}", position))
        return []


def _relative_target(
    location: Entity,
    target: str,
    listing: Sequence[str] | None,
    position: SourcePosition,
    errors: list[InputError],
) -> list[tuple[FileReader, str, str]]:
    base = posixpath.dirname(location.path)
    joined = normalize_path(posixpath.join(base, target))
    if joined is None or target.startswith("/"):
        errors.append(InputError(f"Location target '{target}' is outside the repository", position))
        return []
    files = listing if listing is not None else location.reader.list_files()
    if any(char in joined for char in "*?["):
        matches = [path for path in files if _glob_match(joined, path)]
        if not matches:
            errors.append(InputError(f"Location target '{target}' matches no file", position))
        return [(location.reader, path, _label(location, path)) for path in matches]
    if joined not in set(files):
        errors.append(InputError(f"Location target '{target}' not found (looked for '{joined}')", position))
        return []
    return [(location.reader, joined, _label(location, joined))]


def _glob_match(pattern: str, path: str) -> bool:
    """Whether path matches pattern folder by folder: `*`, `?`, `[...]` stay in one folder, `**` spans any."""
    parts = path.split("/")
    reachable = {0}  # how many leading parts of path the pattern so far can match
    for segment in pattern.split("/"):
        if segment == "**":
            reachable = set(range(min(reachable), len(parts) + 1))
        else:
            reachable = {i + 1 for i in reachable if i < len(parts) and fnmatch.fnmatchcase(parts[i], segment)}
        if not reachable:
            return False
    return len(parts) in reachable


def _label(location: Entity, path: str) -> str:
    # Files of another repository keep that repository's label prefix, so errors stay unambiguous.
    if location.file == location.path:
        return path
    prefix = location.file[: len(location.file) - len(location.path)]
    return prefix + path
