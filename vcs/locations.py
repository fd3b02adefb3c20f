"""Location targets in other repositories of the same forge, read at the ref their URL pins."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.descriptor.files import FileReader
from vcs.base import Forge, ForgeError
from vcs.reader import RevisionReader


@dataclass(frozen=True, slots=True)
class TargetFile:
    """A file named by a Location target URL."""

    project: str
    ref: str
    path: str


def parse_target(url: str, web_url: str) -> TargetFile:
    """The project, ref and path a file URL on this forge names; ValueError for any other URL.

    Accepted, with the ref a single path segment (a tag or a commit, as a reproducible release needs):
    GitHub `https://github.com/OWNER/REPO/blob/REF/PATH` (or `/raw/`), `https://raw.githubusercontent.com/
    OWNER/REPO/REF/PATH`; GitLab `https://HOST/GROUP/.../PROJECT/-/blob/REF/PATH` (or `/-/raw/`).
    """
    parts = urlsplit(url)
    forge = urlsplit(web_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if parts.hostname == "raw.githubusercontent.com" and forge.hostname == "github.com":
        if len(segments) < 4:
            raise ValueError("expected https://raw.githubusercontent.com/OWNER/REPO/REF/PATH")
        return _checked(TargetFile("/".join(segments[:2]), segments[2], "/".join(segments[3:])))
    if parts.hostname != forge.hostname or parts.port != forge.port:
        raise ValueError(f"only files on {forge.hostname} can be read (this meshbot's forge)")
    base = [segment for segment in forge.path.split("/") if segment]
    if segments[:len(base)] != base:
        raise ValueError(f"not under {web_url}")
    segments = segments[len(base):]
    if "-" in segments:  # GitLab: GROUP/.../PROJECT/-/blob/REF/PATH
        marker = segments.index("-")
        rest = segments[marker + 1:]
        if marker < 2 or len(rest) < 3 or rest[0] not in ("blob", "raw"):
            raise ValueError("expected HOST/GROUP/PROJECT/-/blob/REF/PATH")
        return _checked(TargetFile("/".join(segments[:marker]), rest[1], "/".join(rest[2:])))
    if len(segments) < 5 or segments[2] not in ("blob", "raw"):
        raise ValueError("expected HOST/OWNER/REPO/blob/REF/PATH")
    return _checked(TargetFile("/".join(segments[:2]), segments[3], "/".join(segments[4:])))


def _checked(target: TargetFile) -> TargetFile:
    if any(part in ("", ".", "..") for part in target.path.split("/")):
        raise ValueError("the path must not contain '.' or '..' segments")
    return target


class ForgeLocations:
    """Opens Location targets through the forge meshbot acts on (its token decides what it can read)."""

    def __init__(self, forge: Forge, web_url: str) -> None:
        self.forge, self.web_url = forge, web_url.rstrip("/")
        self._readers: dict[tuple[str, str], RevisionReader] = {}

    def open(self, target: str) -> tuple[FileReader, str, str]:
        """(reader of that repository at the pinned ref, path of the file in it, label for errors)."""
        file = parse_target(target, self.web_url)
        key = (file.project, file.ref)
        if key not in self._readers:
            try:
                self._readers[key] = RevisionReader(self.forge.repository(file.project), file.ref)
            except ForgeError as error:
                raise LookupError(error.message) from None
        return _Guarded(self._readers[key]), file.path, f"{file.project}@{file.ref}"


class _Guarded:
    """A reader whose forge errors surface as lookups that failed (what discovery reports with the position)."""

    def __init__(self, reader: RevisionReader) -> None:
        self.reader = reader

    def list_files(self) -> list[str]:
        """Every file at the ref."""
        try:
            return list(self.reader.list_files())
        except ForgeError as error:
            raise LookupError(error.message) from None

    def read_bytes(self, path: str, max_bytes: int | None = None) -> bytes:
        """One file at the ref."""
        try:
            if max_bytes is None:
                return self.reader.read_bytes(path)
            return self.reader.read_bytes(path, max_bytes)
        except ForgeError as error:
            raise LookupError(error.message) from None
