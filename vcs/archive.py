"""Wanted files out of a forge's repository archive (tar.gz), streamed in memory: nothing is written to disk."""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Collection, Iterable, Iterator

from bot.descriptor.files import FileTooLarge
from vcs.base import ForgeError


class ArchiveTooLarge(Exception):
    """The archive is past the size meshbot reads whole (the caller reads file by file instead)."""


class _ChunkStream(io.RawIOBase):
    """Byte chunks as a readable file, refusing to read past limit bytes."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self._read, self._limit = 0, limit

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill buffer from the next chunks; 0 at the end."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._read += len(chunk)
            if self._read > self._limit:
                raise ArchiveTooLarge(f"archive past {self._limit} bytes")
            self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def extract_files(chunks: Iterable[bytes], wanted: Collection[str], max_bytes: int, limit: int,
                  label: str) -> dict[str, bytes]:
    """The wanted paths found in a tar.gz whose members sit in one top folder (the forge's `name-sha/`).

    ArchiveTooLarge once more than limit bytes are downloaded or announced by member headers; FileTooLarge for
    a wanted member over max_bytes; ForgeError for an unreadable archive, an absolute or `..` member name, or
    a wanted path that the archive holds as a link (meshbot never follows links).
    """
    found: dict[str, bytes] = {}
    announced = 0
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkStream(chunks, limit)), mode="r|gz") as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts or "\\" in member.name:
                    raise ForgeError(f"{label}: the archive holds an unsafe path {member.name!r}; not reading it")
                announced += member.size
                # Checked before the member's data is read: a forged header cannot make us inflate past limit.
                if announced > limit:
                    raise ArchiveTooLarge(f"archive members past {limit} bytes")
                path = "/".join(parts[1:])
                if path not in wanted:
                    continue
                if not member.isfile():
                    raise ForgeError(f"{label}: {path} is a link or special file in the archive, not a file; "
                                     "not reading it")
                if member.size > max_bytes:
                    raise FileTooLarge(path, member.size, max_bytes)
                content = archive.extractfile(member)
                if content is None:  # pragma: no cover - isfile() members always have content
                    continue
                found[path] = content.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ForgeError(f"{label}: the archive cannot be read ({type(error).__name__}: {error})") from error
    return found


TAR_HEADER_BYTES = 512  # every member costs at least its header, counted against the limit too


def extract_all(chunks: Iterable[bytes], limit: int, label: str) -> dict[str, bytes] | None:
    """Every regular file of a tar.gz whose members sit in one top folder, by path under it; links left out.

    ArchiveTooLarge once more than limit bytes are downloaded or announced by member headers (sizes and
    headers); ForgeError for an absolute or `..` member name (an attack, never read around); None for an
    archive that is not what a forge serves (unreadable, empty, members outside one top folder, a path twice),
    which the caller reads another way.
    """
    found: dict[str, bytes] = {}
    announced, top = 0, None
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkStream(chunks, limit)), mode="r|gz") as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts or "\\" in member.name:
                    raise ForgeError(f"{label}: the archive holds an unsafe path {member.name!r}; not reading it")
                announced += member.size + TAR_HEADER_BYTES
                # Checked before the member's data is read: a forged header cannot make us inflate past limit.
                if announced > limit:
                    raise ArchiveTooLarge(f"archive members past {limit} bytes")
                top = parts[0] if top is None else top
                if parts[0] != top:
                    return None
                if not member.isfile():  # folders; links and special files, which meshbot never follows
                    continue
                path = "/".join(parts[1:])
                if not path or any(part in ("", ".") for part in parts[1:]) or path in found:
                    return None
                content = archive.extractfile(member)
                if content is None:  # pragma: no cover - isfile() members always have content
                    return None
                found[path] = content.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return None
    return found if top is not None else None
