"""A repository at one revision as a `FileReader`: one archive download when the repository is small enough
(the listing and every file from it), else one tree listing, then only the files asked for."""

from __future__ import annotations

from collections.abc import Sequence

from bot.descriptor.discovery import is_catalog_file
from bot.descriptor.files import MAX_FILE_BYTES, FileTooLarge
from vcs.base import Repository

SNAPSHOT_LIMIT = 20 * 1024 * 1024  # past this, the archive download stops and the tree is listed instead
PREFETCH_ATTEMPTS = 3  # a too-large file drops out of the batch, which is asked for again


def read_by_assembly(path: str) -> bool:
    """Whether assembly reads this path whenever it is in the tree: catalog files and environment overrides."""
    parts = path.split("/")
    if any(part.startswith(".") for part in parts[:-1]):
        return False
    return is_catalog_file(path) or (len(parts) >= 3 and parts[-3] == "environments"
                                     and parts[-1] == "configurations.yaml")


class RevisionReader:
    """The files of a forge repository at a commit, read lazily (assembly reads only what it needs)."""

    def __init__(self, repository: Repository, ref: str, snapshot_limit: int | None = SNAPSHOT_LIMIT) -> None:
        self.repository, self.ref, self.snapshot_limit = repository, ref, snapshot_limit
        self._snapshot: dict[str, bytes] | None = None
        self._files: Sequence[str] | None = None
        self._listed: frozenset[str] = frozenset()
        self._prefetched: dict[str, bytes] | None = None

    def list_files(self) -> Sequence[str]:
        """Every file path at the revision: from the snapshot, else from the tree listing (cached)."""
        if self._files is None:
            if self.snapshot_limit is not None:
                self._snapshot = self.repository.snapshot(self.ref, self.snapshot_limit)
            self._files = sorted(self._snapshot) if self._snapshot is not None else \
                list(self.repository.list_files(self.ref))
            self._listed = frozenset(self._files)
        return self._files

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """One file's content; FileNotFoundError for a path the revision does not hold."""
        if path not in self._listed and path not in self.list_files():
            raise FileNotFoundError(path)
        if self._snapshot is not None:
            whole = self._snapshot[path]
            if len(whole) > max_bytes:
                raise FileTooLarge(path, len(whole), max_bytes)
            return whole
        if self._prefetched is None and read_by_assembly(path):
            self._prefetch()
        content = (self._prefetched or {}).get(path)
        if content is None:
            return self.repository.read_file(self.ref, path, max_bytes)
        if len(content) > max_bytes:
            raise FileTooLarge(path, len(content), max_bytes)
        return content

    def _prefetch(self) -> None:
        """Fetch every file assembly will read in one read_files call; too-large ones are left to read_file."""
        wanted = [path for path in self.list_files() if read_by_assembly(path)]
        self._prefetched = {}
        for _ in range(PREFETCH_ATTEMPTS):
            try:
                self._prefetched = self.repository.read_files(self.ref, wanted, MAX_FILE_BYTES)
                return
            except FileTooLarge as too_large:
                if too_large.path not in wanted:
                    return
                wanted.remove(too_large.path)
