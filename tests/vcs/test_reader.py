"""A forge repository at a revision read as a FileReader: one snapshot, else one listing and the files asked for."""

from __future__ import annotations

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.files import FileTooLarge
from tests.deploy_harness import EXAMPLE
from vcs.memory import MemoryForge
from vcs.reader import RevisionReader


def example_files() -> dict[str, bytes]:
    return {str(path.relative_to(EXAMPLE)): path.read_bytes() for path in EXAMPLE.rglob("*") if path.is_file()}


def test_assembly_reads_a_small_repository_from_one_snapshot():
    files = {**example_files(), "docs/big.bin": b"0" * 100_000}
    repository = MemoryForge().add("acme/cashflow", files)
    reader = RevisionReader(repository, "main")
    descriptor = assemble(reader, "development")
    assert descriptor == assemble(RevisionReader(repository, "main", snapshot_limit=None), "development")
    calls = repository.api_calls
    assert reader.list_files() == sorted(files)
    assert reader.read_bytes("docs/big.bin") == files["docs/big.bin"]
    assert repository.api_calls == calls  # everything came from the snapshot, asked once
    with pytest.raises(FileTooLarge):
        reader.read_bytes("docs/big.bin", max_bytes=1000)
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("nowhere.yaml")
    assert repository.api_calls == calls


def test_a_repository_over_the_snapshot_limit_is_listed_and_prefetched():
    files = {**example_files(), "docs/big.bin": b"0" * 100_000}
    repository = MemoryForge().add("acme/cashflow", files)
    descriptor = assemble(RevisionReader(repository, "main", snapshot_limit=50_000), "development")
    assert descriptor.id == "urn:dmb:dp:finance:cashflow:1"
    assert repository.api_calls == 3  # the refused snapshot, the listing, one read_files


def test_assembly_reads_through_the_forge_with_one_listing():
    files = example_files()
    repository = MemoryForge().add("acme/cashflow", {**files, "docs/big.bin": b"0" * 100_000})
    reader = RevisionReader(repository, "main", snapshot_limit=None)
    descriptor = assemble(reader, "development")
    assert descriptor.id == "urn:dmb:dp:finance:cashflow:1"
    # one listing, then one read_files call for every catalog file and environment override: never docs/big.bin
    assert repository.api_calls == 2


def test_prefetch_takes_catalog_files_and_environment_overrides_only():
    files = {"catalog-info.yaml": b"a: 1\n", "x/catalog-info.yml": b"b: 1\n", ".hidden/catalog-info.yaml": b"c\n",
             "x/environments/dev/configurations.yaml": b"d: 1\n", "x/other.yaml": b"e: 1\n",
             "big/catalog-info.yaml": b"f" * 2_000_000}
    repository = MemoryForge().add("acme/cashflow", files)
    reader = RevisionReader(repository, "main", snapshot_limit=None)
    assert reader.read_bytes("x/other.yaml") == b"e: 1\n"  # not one assembly reads: no prefetch
    assert repository.api_calls == 2
    assert reader.read_bytes("catalog-info.yaml") == b"a: 1\n"
    # the too-large file drops out of the batch, which is asked again: two read_files calls
    assert repository.api_calls == 4
    assert reader.read_bytes("x/catalog-info.yml") == b"b: 1\n"
    assert reader.read_bytes("x/environments/dev/configurations.yaml") == b"d: 1\n"
    assert repository.api_calls == 4
    with pytest.raises(FileTooLarge):
        reader.read_bytes("big/catalog-info.yaml")
    assert reader.read_bytes(".hidden/catalog-info.yaml") == b"c\n"  # hidden: read on its own
    assert repository.api_calls == 6


def test_a_path_outside_the_tree_is_not_fetched():
    repository = MemoryForge().add("acme/cashflow", {"a.yaml": b"x: 1\n"})
    reader = RevisionReader(repository, "main", snapshot_limit=None)
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("b.yaml")
    assert repository.api_calls == 1  # the listing only
    assert reader.read_bytes("a.yaml") == b"x: 1\n"
