"""Read the files of a repository at one revision: a folder on disk, or files held in memory."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

MAX_FILE_BYTES = 1024 * 1024


class FileTooLarge(Exception):
    """A file is larger than meshbot is willing to read."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"file is {size} bytes, over the {limit} byte limit")
        self.path, self.size, self.limit = path, size, limit


class FileReader(Protocol):
    """The files of one repository at one revision, by POSIX path relative to its root."""

    def list_files(self) -> Sequence[str]:
        """Every file path in the tree."""
        ...

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's content; FileNotFoundError if absent, FileTooLarge past max_bytes."""
        ...


def normalize_path(path: str) -> str | None:
    """The path with `.` and `..` resolved, or None when it escapes the repository root."""
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part in ("", "."):
            continue
        if part == "/":
            return None
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class DirectoryReader:
    """A folder on disk; symbolic links that leave the folder are not followed."""

    SKIPPED_DIRECTORIES = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "__pycache__"})

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._files: list[str] | None = None
        self._listed: frozenset[str] = frozenset()

    def list_files(self) -> Sequence[str]:
        """Every regular file under the root, skipping VCS and dependency folders."""
        if self._files is None:
            found: list[str] = []
            root = str(self.root)
            for directory, subdirectories, names in os.walk(root):
                subdirectories[:] = sorted(d for d in subdirectories if d not in self.SKIPPED_DIRECTORIES)
                # os.walk joins each folder onto root: the rest of the string is the folder relative to it.
                relative = directory[len(root):].lstrip(os.sep).replace(os.sep, "/")
                found.extend(f"{relative}/{name}" if relative else name for name in sorted(names))
            self._files = found
            self._listed = frozenset(found)
        return self._files

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's bytes, refusing files past max_bytes and links out of the root."""
        self.list_files()
        normalized = path if path in self._listed else normalize_path(path)  # listed paths are normalized already
        # Listed paths never pass through a linked folder (os.walk does not follow them), so only the
        # file itself can be a link, and only then is the real path worth resolving.
        if normalized is None or normalized not in self._listed:
            raise FileNotFoundError(path)
        full = os.path.join(self.root, normalized)
        if os.path.islink(full) and not Path(full).resolve().is_relative_to(self.root):
            raise FileNotFoundError(path)
        try:
            with open(full, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > max_bytes:
                    raise FileTooLarge(path, size, max_bytes)
                return file.read(max_bytes + 1)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(path) from None


class MemoryReader:
    """Files held in memory: tests, and content fetched from a forge."""

    def __init__(self, files: Mapping[str, str | bytes]) -> None:
        self._files = {
            path: content.encode() if isinstance(content, str) else content for path, content in files.items()
        }

    def list_files(self) -> Sequence[str]:
        """Every path, sorted."""
        return sorted(self._files)

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The stored bytes, with the same size limit as on disk."""
        normalized = normalize_path(path)
        if normalized is None or normalized not in self._files:
            raise FileNotFoundError(path)
        content = self._files[normalized]
        if len(content) > max_bytes:
            raise FileTooLarge(path, len(content), max_bytes)
        return content
