"""Deep merge of environment overrides: maps merge, lists and scalars replace, positions follow the values."""

from __future__ import annotations

import copy

from bot.descriptor.merge import deep_merge
from bot.descriptor.yamlsafe import load_single

BASE = """\
version: 1.0.0
tags: [a, b]
specific:
  bucket: dev
  prefix: raw/
  nested:
    keep: 1
    change: 2
  options: {x: 1}
dataContract:
  schema:
    - name: id
"""

OVERRIDE = """\
version: 1.1.0
tags: [c]
specific:
  bucket: prod
  nested:
    change: 20
    added: 30
  options: null
dataContract: replaced
extra: {new: true}
"""


def load(text: str, file: str) -> tuple[dict, dict]:
    document = load_single(text, file)
    assert document is not None
    return document.value, {path: (file, *where) for path, where in document.positions.items()}


def test_maps_merge_lists_scalars_and_nulls_replace():
    base, base_positions = load(BASE, "catalog-info.yaml")
    override, override_positions = load(OVERRIDE, "environments/production/configurations.yaml")
    merged, _ = deep_merge(base, base_positions, override, override_positions)
    assert merged == {
        "version": "1.1.0",
        "tags": ["c"],
        "specific": {
            "bucket": "prod",
            "prefix": "raw/",
            "nested": {"keep": 1, "change": 20, "added": 30},
            "options": None,
        },
        "dataContract": "replaced",
        "extra": {"new": True},
    }
    # Key order: the base's keys where they were, new keys after them.
    assert list(merged) == ["version", "tags", "specific", "dataContract", "extra"]
    assert list(merged["specific"]["nested"]) == ["keep", "change", "added"]


def test_positions_follow_the_values():
    base, base_positions = load(BASE, "catalog-info.yaml")
    override, override_positions = load(OVERRIDE, "environments/production/configurations.yaml")
    _, positions = deep_merge(base, base_positions, override, override_positions)
    over = "environments/production/configurations.yaml"
    assert positions == {
        (): ("catalog-info.yaml", 1, 1),
        ("version",): (over, 1, 10),
        ("tags",): (over, 2, 1),
        ("tags", 0): (over, 2, 8),
        # A mapping that is merged, not replaced, stays where the base wrote it.
        ("specific",): ("catalog-info.yaml", 3, 1),
        ("specific", "bucket"): (over, 4, 11),
        ("specific", "prefix"): ("catalog-info.yaml", 5, 11),
        ("specific", "nested"): ("catalog-info.yaml", 6, 3),
        ("specific", "nested", "keep"): ("catalog-info.yaml", 7, 11),
        ("specific", "nested", "change"): (over, 6, 13),
        ("specific", "nested", "added"): (over, 7, 12),
        ("specific", "options"): (over, 8, 12),
        ("dataContract",): (over, 9, 15),
        ("extra",): (over, 10, 1),
        ("extra", "new"): (over, 10, 14),
    }
    # Nothing is left behind from replaced values: the old tags[1] and schema entries are gone.
    assert ("tags", 1) not in positions
    assert not [path for path in positions if path[:2] == ("dataContract", "schema")]
    assert ("specific", "options", "x") not in positions


def test_inputs_are_not_modified():
    base, base_positions = load(BASE, "catalog-info.yaml")
    override, override_positions = load(OVERRIDE, "o.yaml")
    snapshot = copy.deepcopy((base, base_positions, override, override_positions))
    deep_merge(base, base_positions, override, override_positions)
    assert (base, base_positions, override, override_positions) == snapshot


def test_type_changes_replace_whole_values():
    merged, positions = deep_merge(
        {"a": {"x": 1}, "b": "text"},
        {(): "base", ("a",): "base-a", ("a", "x"): "base-a-x", ("b",): "base-b"},
        {"a": [1], "b": {"y": 2}},
        {(): "over", ("a",): "over-a", ("a", 0): "over-a-0", ("b",): "over-b", ("b", "y"): "over-b-y"},
    )
    assert merged == {"a": [1], "b": {"y": 2}}
    assert positions == {
        (): "base",
        ("a",): "over-a",
        ("a", 0): "over-a-0",
        ("b",): "over-b",
        ("b", "y"): "over-b-y",
    }


def test_empty_override_changes_nothing():
    merged, positions = deep_merge({"a": 1}, {("a",): "base"}, {}, {(): "over"})
    assert (merged, positions) == ({"a": 1}, {("a",): "base"})


def test_a_non_mapping_override_replaces_everything():
    merged, positions = deep_merge({"a": 1}, {(): "base", ("a",): "base-a"}, [1], {(): "over", (0,): "over-0"})
    assert (merged, positions) == ([1], {(): "over", (0,): "over-0"})
