"""A repository at one revision as a `bot.files.FileReader`: one tree listing, then only the files asked for."""

from __future__ import annotations

from collections.abc import Sequence

from bot.files import MAX_FILE_BYTES
from vcs.base import Repository


class RevisionReader:
    """The files of a forge repository at a commit, read lazily (assembly reads only what it needs)."""

    def __init__(self, repository: Repository, ref: str) -> None:
        self.repository, self.ref = repository, ref
        self._files: Sequence[str] | None = None
        self._listed: frozenset[str] = frozenset()

    def list_files(self) -> Sequence[str]:
        """Every file path at the revision (one call, cached)."""
        if self._files is None:
            self._files = list(self.repository.list_files(self.ref))
            self._listed = frozenset(self._files)
        return self._files

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file's content; FileNotFoundError for a path the tree does not hold."""
        if path not in self._listed and path not in self.list_files():
            raise FileNotFoundError(path)
        return self.repository.read_file(self.ref, path, max_bytes)
