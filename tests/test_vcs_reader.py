"""A forge repository at a revision read as a FileReader: one listing, then only the files asked for."""

from __future__ import annotations

import pytest

from bot.assembly import assemble
from tests.deploy_harness import EXAMPLE
from vcs.memory import MemoryForge
from vcs.reader import RevisionReader


def example_files() -> dict[str, bytes]:
    return {str(path.relative_to(EXAMPLE)): path.read_bytes() for path in EXAMPLE.rglob("*") if path.is_file()}


def test_assembly_reads_through_the_forge_with_one_listing():
    files = example_files()
    repository = MemoryForge().add("acme/cashflow", {**files, "docs/big.bin": b"0" * 100_000})
    reader = RevisionReader(repository, "main")
    descriptor = assemble(reader, "development")
    assert descriptor.id == "urn:dmb:dp:finance:cashflow:1"
    catalog_files = [path for path in files if path.endswith("catalog-info.yaml")]
    # one listing, then at most the catalog files and environment overrides: never docs/big.bin
    assert repository.api_calls <= 1 + len([path for path in files if path.endswith((".yaml", ".yml"))])
    assert repository.api_calls >= 1 + len(catalog_files)


def test_a_path_outside_the_tree_is_not_fetched():
    repository = MemoryForge().add("acme/cashflow", {"a.yaml": b"x: 1\n"})
    reader = RevisionReader(repository, "main")
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("b.yaml")
    assert repository.api_calls == 1  # the listing only
    assert reader.read_bytes("a.yaml") == b"x: 1\n"
