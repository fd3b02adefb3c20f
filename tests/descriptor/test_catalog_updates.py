"""Reverse-provisioning updates applied to catalog-info.yaml files, everything else kept byte for byte."""

from __future__ import annotations

import pytest

from bot.descriptor.catalog_updates import UpdateError, apply_updates, guess_indentation
from bot.descriptor.yamlsafe import load_single

# A Backstage entity as people write them: comments, quotes, flow lists, blank lines, lists at the key's column.
INDENTED = """\
# The daily cash flow output port.
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: finance.cashflow.1.daily-cashflow   # keep this name
  description: 'Daily cash flow, one row per day.'
  tags: [finance, "daily"]

spec:
  type: outputport
  lifecycle: experimental
  owner: group:finance
  system: finance.cashflow.1
  mesh:
    name: Daily Cash Flow
    version: 1.0.0
    dependsOn:
      - urn:dmb:cmp:finance:cashflow:1:ledger
    dataContract:
      schema:
        - name: day          # the business day
          dataType: DATE
        - name: amount
          dataType: DECIMAL
    specific:
      table: daily_cashflow
"""

FLUSH = (INDENTED.replace("      - urn:", "    - urn:")
         .replace("        - name: day", "      - name: day")
         .replace("          dataType: DATE", "        dataType: DATE")
         .replace("        - name: amount", "      - name: amount")
         .replace("          dataType: DECIMAL", "        dataType: DECIMAL"))

NEW_SCHEMA = [{"name": "day", "dataType": "DATE"}, {"name": "amount", "dataType": "DECIMAL"},
              {"name": "currency", "dataType": "TEXT"}]


def value_at(text: str, path: str):
    value = load_single(text.encode(), "catalog-info.yaml").value
    for segment in path.split("."):
        value = value[int(segment)] if segment.isdigit() else value[segment]
    return value


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines only in before, lines only in after (order kept)."""
    import difflib

    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [line[2:] for line in diff if line.startswith("- ")], [line[2:] for line in diff if line.startswith("+ ")]


@pytest.mark.parametrize("text", [INDENTED, FLUSH], ids=["lists indented", "lists flush"])
def test_a_new_schema_changes_only_the_schema(text):
    after = apply_updates(text, {"spec.mesh.dataContract.schema": NEW_SCHEMA})
    assert value_at(after, "spec.mesh.dataContract.schema") == NEW_SCHEMA
    removed, added = changed_lines(text, after)
    assert removed == []  # every line written by the author is still there, comments included
    assert [line.strip() for line in added] == ["- name: currency", "dataType: TEXT"]


def test_nothing_to_change_gives_the_same_bytes():
    updates = {"spec.mesh.specific.table": "daily_cashflow", "metadata.tags": ["finance", "daily"],
               "spec.mesh.dataContract.schema": NEW_SCHEMA[:2]}
    assert apply_updates(INDENTED, updates) is INDENTED


def test_scalars_keep_their_line_and_comments_elsewhere_stay():
    after = apply_updates(INDENTED, {"spec.mesh.specific.table": "cashflow_v2", "spec.lifecycle": "production"})
    removed, added = changed_lines(INDENTED, after)
    assert removed == ["  lifecycle: experimental", "      table: daily_cashflow"]
    assert added == ["  lifecycle: production", "      table: cashflow_v2"]


def test_keys_that_do_not_exist_are_created_at_the_end_of_their_mapping():
    after = apply_updates(INDENTED, {"spec.mesh.specific.database.path": "/data/finance.db",
                                     "metadata.annotations.meshbot/imported": "yes"})
    assert value_at(after, "spec.mesh.specific.database.path") == "/data/finance.db"
    assert value_at(after, "metadata.annotations.meshbot/imported") == "yes"
    removed, _ = changed_lines(INDENTED, after)
    assert removed == []
    assert "'yes'" in after  # a YAML 1.1 reader would read a plain yes as a boolean


def test_a_mapping_value_replaces_the_mapping_and_list_items_can_be_addressed():
    after = apply_updates(INDENTED, {"spec.mesh.specific": {"view": "daily_v"},
                                     "spec.mesh.dataContract.schema.1.dataType": "NUMERIC"})
    assert value_at(after, "spec.mesh.specific") == {"view": "daily_v"}  # replaced, not merged
    assert value_at(after, "spec.mesh.dataContract.schema.1") == {"name": "amount", "dataType": "NUMERIC"}
    assert "# the business day" in after


def test_multi_line_text_becomes_a_literal_block():
    after = apply_updates(INDENTED, {"spec.mesh.description": "Line one.\nLine two.\n"})
    assert "description: |\n      Line one.\n      Line two.\n" in after
    assert value_at(after, "spec.mesh.description") == "Line one.\nLine two.\n"


@pytest.mark.parametrize(("updates", "message"), [
    ({"spec.type.sub": 1}, "'spec.type.sub': 'type' holds a"),
    ({"spec.mesh.dependsOn.3": "x"}, "index 3 is past the end of a list of 1"),
    ({"spec.mesh.dependsOn.first": "x"}, "'first' is not a list index"),
    ({"spec..mesh": 1}, "empty path segment"),
    ({"spec.mesh.tags.0": "x"}, "no list at 'tags' to index"),
])
def test_impossible_updates_name_their_path(updates, message):
    with pytest.raises(UpdateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_updates(INDENTED, updates)


def test_the_layout_is_guessed():
    assert guess_indentation(INDENTED) == (2, 2)
    assert guess_indentation(FLUSH) == (2, 0)
    assert guess_indentation("a:\n    b: 1\n    c:\n        - x\n") == (4, 4)
