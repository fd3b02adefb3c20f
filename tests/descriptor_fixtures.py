"""Descriptor fixture files (tests/fixtures/descriptors) loaded as assembly would give them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from bot.descriptor.yamlsafe import load_single

FIXTURES = Path(__file__).parent / "fixtures" / "descriptors"


@cache
def load_descriptor(name: str) -> Descriptor:
    """A fixture descriptor, with the file position of every value as assembly would record it.

    Loaded once per test session: tests never change it in place, they change a deep copy.
    """
    document = load_single((FIXTURES / name).read_bytes(), name)
    assert document is not None
    sources = {path: SourcePosition(name, line, column) for path, (line, column) in document.positions.items()}
    return Descriptor(data=document.value, environment="development", sources=sources)
