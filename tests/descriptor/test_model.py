"""The Descriptor value: ids, components, positions of values and human-readable paths."""

from __future__ import annotations

import pytest

from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.model import Descriptor, format_path, major_version


def test_id_and_components():
    descriptor = Descriptor(data={"id": "urn:dmb:dp:finance:cashflow:1", "components": [{"id": "c"}]},
                            environment="production")
    assert descriptor.id == "urn:dmb:dp:finance:cashflow:1"
    assert descriptor.components == [{"id": "c"}]
    assert descriptor.environment == "production"


def test_missing_or_malformed_parts_read_as_empty():
    assert Descriptor(data={}, environment="development").id == ""
    assert Descriptor(data={"components": {"a": 1}}, environment="development").components == []


def test_position_falls_back_to_the_nearest_ancestor_with_a_source():
    root = SourcePosition("catalog-info.yaml", 9, 3)
    component = SourcePosition("storage/catalog-info.yaml", 8, 3)
    bucket = SourcePosition("storage/environments/production/configurations.yaml", 2, 11)
    descriptor = Descriptor(
        data={},
        environment="production",
        sources={(): root, ("components", 0): component, ("components", 0, "specific", "bucket"): bucket},
    )
    assert descriptor.position(("components", 0, "specific", "bucket")) == bucket
    assert descriptor.position(("components", 0, "specific", "prefix")) == component
    assert descriptor.position(("components", 1, "id")) == root
    assert descriptor.position(()) == root
    assert Descriptor(data={}, environment="development").position(("a",)) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), "(root)"),
        (("id",), "id"),
        (("components", 2, "dataContract", "schema", 0, "name"), "components[2].dataContract.schema[0].name"),
        (("specific", "my-key"), "specific.my-key"),
        (("specific", "with space"), 'specific["with space"]'),
        (("specific", 'quo"te\\'), 'specific["quo\\"te\\\\"]'),
        (("1abc",), '["1abc"]'),
        ((0, "a"), "[0].a"),
    ],
)
def test_format_path(path, expected):
    assert format_path(path) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.4.0", "1"), ("0.0.0", "0"), ("12", "12"), ("v1.0.0", None), ("", None), (None, None), (1, None)],
)
def test_major_version(version, expected):
    assert major_version(version) == expected


def test_source_positions_and_errors_print_as_file_line_column():
    assert str(SourcePosition("a.yaml", 3, 7)) == "a.yaml:3:7"
    assert str(SourcePosition("a.yaml", 3)) == "a.yaml:3"
    assert str(SourcePosition("a.yaml")) == "a.yaml"
    assert str(InputError("bad", SourcePosition("a.yaml", 1, 2))) == "a.yaml:1:2: bad"
    assert str(InputError("bad")) == "bad"
    errors = InputErrors([InputError("one", SourcePosition("a.yaml", 1, 1)), InputError("two")])
    assert str(errors) == "a.yaml:1:1: one\ntwo"
    assert [e.message for e in errors.errors] == ["one", "two"]
