"""Repository archives (tar.gz) as forges serve them, built in memory for the test servers."""

from __future__ import annotations

import gzip
import io
import tarfile


def tar_gz(top: str, files: dict[str, bytes]) -> bytes:
    """A tar.gz of files under one top folder, with its folder entries, as GitHub and GitLab build them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folders = sorted({"/".join(path.split("/")[:depth]) for path in files
                          for depth in range(1, path.count("/") + 1)})
        for folder in ["", *folders]:
            info = tarfile.TarInfo(f"{top}/{folder}".rstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


def crafted_tar_gz(members: list[tuple[str, bytes | str]]) -> bytes:
    """A tar.gz of exactly these members, in order: (name, content) files or (name, "->target") symbolic links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())
