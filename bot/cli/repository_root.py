"""Which folder is the data product repository when a command is given PATH: found upward, never by walking PATH.

PATH itself when its catalog-info.yaml holds the System; else the nearest folder above it whose catalog-info.yaml
holds the System (a component's folder names its data product), stopping at the git repository's root (`.git`);
else that git root. With neither, PATH is used when it holds a catalog-info.yaml (the System may be a Location's
target) and refused otherwise, at once: a big folder that is no repository is never read file by file.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from bot.descriptor.discovery import CATALOG_FILE_NAMES
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.model import Descriptor
from bot.descriptor.yamlsafe import load_documents

# A catalog file the YAML loader refuses may still be the System's: then its own error is worth showing.
_SYSTEM_LINE = re.compile(r"^kind:\s*['\"]?system['\"]?\s*(#.*)?$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RepositoryRoot:
    """The repository folder, how far above PATH it is, and why it was chosen."""

    folder: Path
    levels_up: int
    reason: str

    def shown(self, path: str) -> str:
        """The root as the person would type it: PATH followed by `..` once per level."""
        return os.path.normpath(os.path.join(path, *[".."] * self.levels_up))


def find_root(path: str) -> RepositoryRoot | None:
    """The data product repository PATH belongs to (see the module docstring), or None: refuse it."""
    start = Path(os.path.abspath(path))
    for levels, folder in enumerate([start, *start.parents]):
        if holds_system(folder):
            return RepositoryRoot(folder, levels, "its catalog-info.yaml holds the data product's System")
        if (folder / ".git").exists():
            return RepositoryRoot(folder, levels, "the root of its git repository")
    if any((start / name).is_file() for name in CATALOG_FILE_NAMES):
        return RepositoryRoot(start, 0, "it holds a catalog-info.yaml")
    return None


def holds_system(folder: Path) -> bool:
    """Whether the folder's catalog-info file holds a kind: System entity (read only that file)."""
    for name in CATALOG_FILE_NAMES:
        try:
            with open(folder / name, "rb") as file:
                content = file.read(MAX_FILE_BYTES + 1)
        except OSError:
            continue
        try:
            documents = load_documents(content, name)
        except InputErrors:
            return bool(_SYSTEM_LINE.search(content.decode("utf-8", "replace")))
        if any(isinstance(d.value, dict) and str(d.value.get("kind", "")).lower() == "system" for d in documents):
            return True
    return False


def refusal(path: str) -> InputError:
    """Why PATH is not read: no repository around it and no System in it or above it."""
    return InputError(
        f"'{path}' is not in a data product repository: no catalog-info.yaml with a 'kind: System' entity in it or "
        "in a folder above it, and no git repository (.git) around it; give the repository's folder"
    )


def relocate_positions(descriptor: Descriptor, levels_up: int, path: str) -> None:
    """Name the descriptor's files relative to PATH (not to the root above it), as the person sees them."""
    if levels_up:  # at the root, every position already names its file relative to PATH: nothing to copy
        descriptor.sources = {key: relocated(position, levels_up, path)
                              for key, position in descriptor.sources.items()}
    descriptor.warnings = [relocated_error(warning, levels_up, path) for warning in descriptor.warnings]


def relocated_error(error: InputError, levels_up: int, path: str) -> InputError:
    """The error with its file named relative to PATH."""
    if error.position is None:
        return error
    return InputError(error.message, relocated(error.position, levels_up, path))


def relocated(position: SourcePosition, levels_up: int, path: str) -> SourcePosition:
    """A position in a file named relative to the root, named relative to PATH instead."""
    if levels_up == 0 or "://" in position.file or position.file.startswith("/"):
        return position
    below = _below_root(path, levels_up)
    return SourcePosition(posixpath.relpath(position.file, below or "."), position.line, position.column)


def _below_root(path: str, levels_up: int) -> str:
    """PATH relative to the root levels_up above it, as a POSIX path."""
    parts = Path(os.path.abspath(path)).parts
    return posixpath.join(*parts[len(parts) - levels_up:]) if levels_up else ""
