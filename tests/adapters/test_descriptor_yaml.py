"""The fast descriptor writer gives dump_yaml's bytes, and falls back to it for anything it does not know."""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.descriptor_yaml import adapter_yaml, plain_yaml
from bot.descriptor.yamldump import dump_yaml
from tests.descriptor_fixtures import load_descriptor

PLAIN = ["id", "urn:dmb:cmp:finance:cashflow:1:raw", "Hello world, again", "1.0.0", "user:ada", "group:a/b", "(a) b",
         "a+b=c", "e@x.com", "a:b", "9a", "1,000", "_x", "TRUE", "True", "Yes", "nan", ".5", "12:30:45", "0o8", "a  b"]
TRICKY = ["yes", "on", "0777", "1.5", "7", "true", "null", "~", "", " a", "a ", "a: b", "a #b", "a:", "-x", "? x",
          "x\ny", "é", "'q'", '"q"', "[a]", "{a}", "a" * 1200]  # each one is written by dump_yaml


def random_document(rng: random.Random) -> dict[str, Any]:
    """Maps, lists of maps and scalars, mostly plain strings and now and then one dump_yaml must write."""
    def scalar() -> Any:
        roll = rng.random()
        if roll < 0.85:
            return rng.choice(PLAIN)
        if roll < 0.93:
            return rng.choice(TRICKY)
        return rng.choice([True, False, 0, 42, -1, None, 2.5, 10**20])

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth < 4 and roll < 0.25:
            return {rng.choice(PLAIN): value(depth + 1) for _ in range(rng.randint(0, 4))}
        if depth < 4 and roll < 0.45:
            return [value(depth + 1) if rng.random() < 0.3 else
                    {rng.choice(PLAIN): value(depth + 1) for _ in range(rng.randint(1, 3))}
                    for _ in range(rng.randint(0, 4))]
        return scalar()

    return {rng.choice(PLAIN): value(0) for _ in range(rng.randint(1, 5))}


def test_random_documents_are_written_as_dump_yaml_writes_them() -> None:
    rng = random.Random(20261206)
    written = 0
    for _ in range(1000):
        document = random_document(rng)
        text = plain_yaml(document)
        assert adapter_yaml(document) == dump_yaml(document), document
        if text is not None:
            assert text == dump_yaml(document), document
            written += 1
    assert written > 50  # the fast writer wrote many of them itself, not only dump_yaml


def test_a_descriptor_of_many_components_is_dump_yaml_s_text() -> None:
    components = [{"id": f"urn:dmb:cmp:bench:deploy:1:c{number:03d}", "kind": "outputport", "dependsOn": [],
                   "tags": [], "specific": {"resource": f"bench_c{number:03d}", "retentionDays": 30, "enabled": True},
                   "dataContract": {"schema": [{"name": "id", "dataType": "TEXT"}]}} for number in range(50)]
    descriptor = {"id": "urn:dmb:dp:bench:deploy:1", "version": "1.0.0", "specific": {}, "components": components}
    assert plain_yaml(descriptor) == dump_yaml(descriptor)


@pytest.mark.parametrize("name", ["minimal-valid.yaml", "snowflake-valid.yaml", "dps-invalid.yaml"])
def test_the_fixture_descriptors_are_dump_yaml_s_text(name: str) -> None:
    data = load_descriptor(name).data
    assert adapter_yaml(data) == dump_yaml(data)


@pytest.mark.parametrize("value", TRICKY + [None, 2.5, [[1]], [{}], {1: "a"}])
def test_what_the_fast_writer_does_not_know_is_written_by_dump_yaml(value: Any) -> None:
    document = {"id": "urn:dmb:dp:x:y:1", "value": value, "components": [{"id": "c", "field": value}]}
    assert plain_yaml(document) is None
    assert adapter_yaml(document) == dump_yaml(document)


def test_a_multi_line_description_keeps_its_literal_block() -> None:
    document = {"description": "first line\nsecond line\n", "name": "x"}
    assert adapter_yaml(document) == dump_yaml(document)
    assert "description: |" in adapter_yaml(document)
