"""Reading repository files: on disk (DirectoryReader) and in memory (MemoryReader)."""

from __future__ import annotations

import os

import pytest

from bot.descriptor.files import MAX_FILE_BYTES, DirectoryReader, FileTooLarge, MemoryReader, normalize_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("catalog-info.yaml", "catalog-info.yaml"),
        ("./a/./b.yaml", "a/b.yaml"),
        ("a/../b.yaml", "b.yaml"),
        ("a/b/../../c", "c"),
        ("a//b", "a/b"),
        ("", ""),
        ("..", None),
        ("../x", None),
        ("a/../../x", None),
        ("/etc/passwd", None),
    ],
)
def test_normalize_path(path, expected):
    assert normalize_path(path) == expected


# --- MemoryReader ---------------------------------------------------------------------------------


def test_memory_reader_lists_sorted_and_reads_text_as_utf8():
    reader = MemoryReader({"b/catalog-info.yaml": "kind: Component\n", "a.yaml": b"\xc3\xa9", "catalog-info.yaml": "é"})
    assert list(reader.list_files()) == ["a.yaml", "b/catalog-info.yaml", "catalog-info.yaml"]
    assert reader.read_bytes("catalog-info.yaml") == "é".encode()
    assert reader.read_bytes("./b/../a.yaml") == b"\xc3\xa9"


@pytest.mark.parametrize("path", ["missing.yaml", "../a.yaml", "/a.yaml"])
def test_memory_reader_missing_and_escaping_paths(path):
    reader = MemoryReader({"a.yaml": "x"})
    with pytest.raises(FileNotFoundError):
        reader.read_bytes(path)


def test_memory_reader_size_limit():
    reader = MemoryReader({"exact": b"x" * MAX_FILE_BYTES, "big": b"x" * (MAX_FILE_BYTES + 1)})
    assert len(reader.read_bytes("exact")) == MAX_FILE_BYTES
    with pytest.raises(FileTooLarge) as raised:
        reader.read_bytes("big")
    assert str(raised.value) == "file is 1048577 bytes, over the 1048576 byte limit"
    assert (raised.value.path, raised.value.size, raised.value.limit) == ("big", 1048577, 1048576)
    with pytest.raises(FileTooLarge):
        reader.read_bytes("exact", max_bytes=10)


# --- DirectoryReader ------------------------------------------------------------------------------


def write(path, content: str | bytes = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def test_directory_reader_lists_posix_paths_sorted_and_skips_vcs_and_dependency_folders(tmp_path):
    for relative in [
        "catalog-info.yaml",
        "storage/catalog-info.yaml",
        "storage/environments/production/configurations.yaml",
        "a/b/c.yaml",
        ".git/config",
        ".git/objects/catalog-info.yaml",
        ".hg/store",
        ".svn/entries",
        "node_modules/pkg/catalog-info.yaml",
        ".venv/lib/catalog-info.yaml",
        "src/__pycache__/x.pyc",
        ".github/workflows/ci.yaml",
    ]:
        write(tmp_path / relative)
    reader = DirectoryReader(tmp_path)
    assert list(reader.list_files()) == [
        "catalog-info.yaml",
        ".github/workflows/ci.yaml",
        "a/b/c.yaml",
        "storage/catalog-info.yaml",
        "storage/environments/production/configurations.yaml",
    ]
    assert reader.read_bytes("storage/catalog-info.yaml") == b"x"
    # Only listed files can be read: nothing in the skipped folders.
    with pytest.raises(FileNotFoundError):
        reader.read_bytes(".git/config")


def test_directory_reader_refuses_paths_out_of_the_root(tmp_path):
    root = tmp_path / "repo"
    write(root / "catalog-info.yaml")
    write(tmp_path / "secret.txt", "secret")
    reader = DirectoryReader(root)
    for path in ["../secret.txt", "/etc/passwd", str(tmp_path / "secret.txt"), "missing.yaml", "."]:
        with pytest.raises(FileNotFoundError):
            reader.read_bytes(path)


def test_directory_reader_does_not_follow_symlinks_that_leave_the_root(tmp_path):
    root = tmp_path / "repo"
    write(root / "inside.yaml", "inside")
    write(tmp_path / "outside" / "secret.yaml", "secret")
    os.symlink(tmp_path / "outside" / "secret.yaml", root / "catalog-info.yaml")
    os.symlink(tmp_path / "outside", root / "linked-folder")
    os.symlink(root / "inside.yaml", root / "alias.yaml")
    os.symlink("/etc/passwd", root / "passwd")
    reader = DirectoryReader(root)
    # Linked folders are never walked; linked files are listed, but read only when they stay inside.
    assert list(reader.list_files()) == ["alias.yaml", "catalog-info.yaml", "inside.yaml", "passwd"]
    assert reader.read_bytes("alias.yaml") == b"inside"
    for path in ["catalog-info.yaml", "passwd", "linked-folder/secret.yaml"]:
        with pytest.raises(FileNotFoundError):
            reader.read_bytes(path)


def test_directory_reader_refuses_files_over_the_limit(tmp_path):
    write(tmp_path / "exact.yaml", b"a" * MAX_FILE_BYTES)
    write(tmp_path / "big.yaml", b"a" * (MAX_FILE_BYTES + 1))
    reader = DirectoryReader(tmp_path)
    assert len(reader.read_bytes("exact.yaml")) == MAX_FILE_BYTES
    with pytest.raises(FileTooLarge) as raised:
        reader.read_bytes("big.yaml")
    assert str(raised.value) == "file is 1048577 bytes, over the 1048576 byte limit"
    assert raised.value.path == "big.yaml"


def test_directory_reader_listing_is_computed_once(tmp_path):
    write(tmp_path / "a.yaml")
    reader = DirectoryReader(tmp_path)
    assert list(reader.list_files()) == ["a.yaml"]
    write(tmp_path / "b.yaml")
    assert list(reader.list_files()) == ["a.yaml"]
