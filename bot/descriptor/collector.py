"""Pause Python's cyclic garbage collector around work that allocates many long-lived, acyclic objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off for the block when it was on, and back on afterwards, even when the block raises.

    Assembly and evaluation build hundreds of thousands of objects that live until the check ends, and no
    reference cycles: each collection the allocations trigger only walks the growing heap, which makes large
    checks grow faster than linearly. Reference counting still frees everything as before. Nested or
    concurrent uses are safe: only the use that turned the collector off turns it back on. Turned back on,
    the collector walks what the block allocated once: a cost linear in the work done.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
