"""The plan diff: components to add, change (which fields), remove and leave alone, desired versus deployed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.descriptor.model import Descriptor
from bot.engine.plan_diff import Action, ChangeKind, FieldChange, PlanDiff, plan_diff
from tests.builders import component, descriptor_of

CMP = "urn:dmb:cmp:finance:cashflow:1:"
DP = "urn:dmb:dp:finance:cashflow:1"
DAILY_FILE = "components/daily/catalog-info.yaml"
LEDGER_FILE = "components/ledger/catalog-info.yaml"

# Lines 9.. of components/daily/catalog-info.yaml (tests.builders.component puts spec.mesh on line 8).
DAILY = """\
version: 1.0.0
dependsOn:
  - urn:dmb:cmp:finance:cashflow:1:ledger
dataContract:
  schema:
    - name: business_unit
      dataType: TEXT
    - name: amount
      dataType: DECIMAL
      constraint: NOT_NULL
specific:
  viewName: daily_v
"""
# Lines 9.. of components/ledger/catalog-info.yaml: the reference adapter's tables.
LEDGER = """\
version: 1.0.0
specific:
  tables:
    - tableName: transactions
      schema:
        - name: id
          dataType: TEXT
        - name: amount
          dataType: DECIMAL
"""
LOAD = """\
version: 1.0.0
dependsOn: [urn:dmb:cmp:finance:cashflow:1:ledger]
"""
COMPONENTS = {
    "daily": component("daily", mesh=DAILY),
    "ledger": component("ledger", "storage", LEDGER),
    "load": component("load", "workload", LOAD),
}
DESIRED = descriptor_of(COMPONENTS)


def deployed_copy(descriptor: Descriptor = DESIRED) -> dict[str, Any]:
    """The descriptor as the engine keeps it once deployed: through JSON."""
    return json.loads(json.dumps(descriptor.data))


def part(data: dict[str, Any], local: str) -> dict[str, Any]:
    """The component local of a descriptor's data."""
    return next(c for c in data["components"] if c["id"] == CMP + local)


def entry(diff: PlanDiff, local: str):
    return next(c for c in diff.components if c.id == CMP + local)


def described(changes: tuple[FieldChange, ...]) -> list[tuple[str, str, str, str]]:
    """Each change as (path, kind, summary, position) for compact assertions."""
    return [(c.path, str(c.kind), c.summary, str(c.position)) for c in changes]


# --- nothing deployed, nothing changed ----------------------------------------------------------------


def test_nothing_deployed_adds_every_component_in_plan_order():
    diff = plan_diff(DESIRED, None)
    assert diff.nothing_deployed is True
    # descriptor order is daily, ledger, load; the plan provisions ledger first
    assert [(c.id, c.action) for c in diff.components] == [
        (CMP + "ledger", Action.ADD), (CMP + "daily", Action.ADD), (CMP + "load", Action.ADD),
    ]
    assert all(c.changes == () for c in diff.components)
    assert str(entry(diff, "ledger").position) == f"{LEDGER_FILE}:8:3"
    assert diff.product.action is Action.ADD and diff.product.kind == "dataproduct"
    assert diff.counts == {"add": 3, "change": 0, "remove": 0, "unchanged": 0}
    assert diff.summary() == "nothing deployed: 3 to add"
    assert diff.has_changes is True


def test_the_same_descriptor_deployed_is_nothing_to_change():
    diff = plan_diff(DESIRED, deployed_copy())
    assert diff.nothing_deployed is False
    assert [c.action for c in diff.components] == [Action.UNCHANGED] * 3
    assert diff.product.action is Action.UNCHANGED and diff.product.changes == ()
    assert diff.has_changes is False
    assert diff.summary() == "nothing to change"
    assert diff.counts == {"add": 0, "change": 0, "remove": 0, "unchanged": 3}


def test_environment_and_key_order_are_bookkeeping():
    deployed = deployed_copy()
    deployed["environment"] = "production"
    deployed = dict(reversed(list(deployed.items())))
    ledger = part(deployed, "ledger")
    ledger["specific"]["tables"][0] = dict(reversed(list(ledger["specific"]["tables"][0].items())))
    assert plan_diff(DESIRED, deployed).summary() == "nothing to change"


def test_keys_compare_as_text_but_true_is_not_one():
    desired = descriptor_of({"load": component("load", "workload", "version: 1.0.0\nspecific:\n  1: daily\n  on: 1\n")})
    deployed = deployed_copy(desired)
    assert part(deployed, "load")["specific"] == {"1": "daily", "on": 1}  # JSON made the key a string
    assert plan_diff(desired, deployed).summary() == "nothing to change"
    part(deployed, "load")["specific"]["on"] = True
    assert described(entry(plan_diff(desired, deployed), "load").changes) == [
        ("specific.on", "changed", "specific.on `true` -> `1`", "components/load/catalog-info.yaml:12:11"),
    ]


# --- adds and removals --------------------------------------------------------------------------------


def test_a_component_not_deployed_is_to_add():
    deployed = deployed_copy()
    deployed["components"] = [c for c in deployed["components"] if c["id"] != CMP + "load"]
    diff = plan_diff(DESIRED, deployed)
    assert [(c.id, c.action) for c in diff.components] == [
        (CMP + "ledger", Action.UNCHANGED), (CMP + "daily", Action.UNCHANGED), (CMP + "load", Action.ADD),
    ]
    assert entry(diff, "load").changes == ()
    assert diff.summary() == "1 to add, 0 to change, 0 to remove, 2 unchanged"


def test_removals_come_last_dependents_first():
    deployed = deployed_copy()
    deployed["components"] += [
        {"id": CMP + "raw", "kind": "storage"},
        {"id": CMP + "report", "kind": "outputport", "dependsOn": [CMP + "clean"]},
        {"id": CMP + "clean", "kind": "workload", "dependsOn": [CMP + "raw", CMP + "ledger"]},
        {"id": CMP + "audit", "kind": "observability", "dependsOn": [CMP + "unknown"]},
        "not a component",
        {"kind": "workload"},  # no id: cannot be matched, ignored
    ]
    diff = plan_diff(DESIRED, deployed)
    assert [(c.id.removeprefix(CMP), c.action) for c in diff.components] == [
        ("ledger", Action.UNCHANGED), ("daily", Action.UNCHANGED), ("load", Action.UNCHANGED),
        ("report", Action.REMOVE), ("audit", Action.REMOVE), ("clean", Action.REMOVE), ("raw", Action.REMOVE),
    ]
    removed = entry(diff, "report")
    assert (removed.kind, removed.name, removed.position, removed.changes) == ("outputport", "report", None, ())
    assert diff.summary() == "0 to add, 0 to change, 4 to remove, 3 unchanged"


def test_removals_of_a_cycle_keep_reverse_descriptor_order():
    deployed = deployed_copy()
    deployed["components"] += [
        {"id": CMP + "a", "kind": "workload", "dependsOn": [CMP + "b"]},
        {"id": CMP + "b", "kind": "workload", "dependsOn": [CMP + "a"]},
    ]
    removals = [c.id.removeprefix(CMP) for c in plan_diff(DESIRED, deployed).of(Action.REMOVE)]
    assert removals == ["b", "a"]


def test_summary_with_every_action():
    desired = descriptor_of({**COMPONENTS, "extra": component("extra", "workload", "version: 1.0.0\n"),
                             "more": component("more", "workload", "version: 1.0.0\n"),
                             "other": component("other", "workload", "version: 1.0.0\n")})
    deployed = deployed_copy(desired)
    deployed["components"] = [c for c in deployed["components"] if c["id"] != CMP + "extra"]
    part(deployed, "ledger")["version"] = "0.9.0"
    part(deployed, "daily")["specific"]["viewName"] = "old_v"
    deployed["components"].append({"id": CMP + "gone", "kind": "workload"})
    diff = plan_diff(desired, deployed)
    assert diff.summary() == "1 to add, 2 to change, 1 to remove, 3 unchanged"
    assert [c.id.removeprefix(CMP) for c in diff.of(Action.UNCHANGED)] == ["more", "other", "load"]  # plan order


# --- field changes of a component ---------------------------------------------------------------------


def test_output_port_columns_added_removed_retyped_and_changed():
    deployed = deployed_copy()
    schema = part(deployed, "daily")["dataContract"]["schema"]
    schema[1]["dataType"] = "INTEGER"  # desired DECIMAL: retyped
    schema[1]["constraint"] = "UNIQUE"  # desired NOT_NULL
    schema[0]["dataType"] = "text"  # desired TEXT: the same type
    schema.append({"name": "region", "dataType": "TEXT"})  # not desired: removed
    del schema[0]  # desired business_unit: added
    schema.insert(0, {"name": "amount_old", "dataType": "TEXT"})
    changes = entry(plan_diff(DESIRED, deployed), "daily").changes
    assert described(changes) == [
        ("dataContract.schema", "added", "column `business_unit` added (TEXT)", f"{DAILY_FILE}:14:11"),
        ("dataContract.schema", "retyped", "column `amount` retyped INTEGER -> DECIMAL", f"{DAILY_FILE}:17:21"),
        ("dataContract.schema", "changed", "column `amount` constraint `UNIQUE` -> `NOT_NULL`",
         f"{DAILY_FILE}:18:23"),
        # a removed column points at the list that no longer has it
        ("dataContract.schema", "removed", "column `amount_old` removed", f"{DAILY_FILE}:13:7"),
        ("dataContract.schema", "removed", "column `region` removed", f"{DAILY_FILE}:13:7"),
    ]
    assert [c.column for c in changes] == ["business_unit", "amount", "amount", "amount_old", "region"]
    assert (changes[0].before, changes[0].after) == (None, {"name": "business_unit", "dataType": "TEXT"})
    assert (changes[1].kind, changes[1].before, changes[1].after) == (ChangeKind.RETYPED, "INTEGER", "DECIMAL")
    assert (changes[3].before, changes[3].after) == ({"name": "amount_old", "dataType": "TEXT"}, None)


def test_a_type_differing_only_in_case_is_no_change():
    deployed = deployed_copy()
    part(deployed, "daily")["dataContract"]["schema"][1]["dataType"] = "decimal"
    part(deployed, "ledger")["specific"]["tables"][0]["schema"][0]["dataType"] = "Text"
    assert plan_diff(DESIRED, deployed).summary() == "nothing to change"


def test_columns_reordered_nested_children_and_array_types():
    desired = descriptor_of({"port": component("port", mesh="""\
        version: 1.0.0
        dataContract:
          schema:
            - name: b
              dataType: ARRAY
              arrayDataType: INT
            - name: a
              dataType: STRUCT
              children:
                - name: x
                  dataType: TEXT
        """)})
    deployed = deployed_copy(desired)
    schema = part(deployed, "port")["dataContract"]["schema"]
    schema.reverse()
    schema[0]["children"] = [{"name": "x", "dataType": "INT"}, {"name": "y", "dataType": "TEXT"}]
    schema[1]["arrayDataType"] = "TEXT"
    file = "components/port/catalog-info.yaml"
    assert described(entry(plan_diff(desired, deployed), "port").changes) == [
        ("dataContract.schema", "retyped", "column `b` arrayDataType retyped TEXT -> INT", f"{file}:14:26"),
        ("dataContract.schema[1].children", "retyped", "column `a.x` retyped INT -> TEXT", f"{file}:19:25"),
        ("dataContract.schema[1].children", "removed", "column `a.y` removed", f"{file}:17:11"),
        ("dataContract.schema", "changed", "columns reordered: `[\"a\", \"b\"]` -> `[\"b\", \"a\"]`", f"{file}:11:7"),
    ]


def test_specific_keys_added_removed_changed_and_table_columns():
    deployed = deployed_copy()
    daily = part(deployed, "daily")
    daily["specific"]["viewName"] = "daily_old"
    daily["specific"]["sourceTable"] = "daily"  # not desired: removed
    part(deployed, "ledger")["specific"]["tables"] = [{"tableName": "archive", "schema": []},
                                                      {"tableName": "transactions",
                                                       "schema": [{"name": "amount", "dataType": "TEXT"}]}]
    diff = plan_diff(DESIRED, deployed)
    assert described(entry(diff, "daily").changes) == [
        ("specific.viewName", "changed", "specific.viewName `daily_old` -> `daily_v`", f"{DAILY_FILE}:20:17"),
        ("specific.sourceTable", "removed", "specific.sourceTable removed (was `daily`)", f"{DAILY_FILE}:19:5"),
    ]
    assert described(entry(diff, "ledger").changes) == [
        ("specific.tables[0].schema", "added", "specific.tables[0].schema: column `id` added (TEXT)",
         f"{LEDGER_FILE}:14:15"),
        ("specific.tables[0].schema", "retyped", "specific.tables[0].schema: column `amount` retyped TEXT -> DECIMAL",
         f"{LEDGER_FILE}:17:25"),
        ("specific.tables", "removed", "specific.tables - `archive`", f"{LEDGER_FILE}:11:7"),
    ]


def test_a_whole_specific_key_added_shows_its_value():
    deployed = deployed_copy()
    del part(deployed, "ledger")["specific"]["tables"]
    del part(deployed, "daily")["specific"]
    diff = plan_diff(DESIRED, deployed)
    assert described(entry(diff, "ledger").changes) == [
        ("specific.tables", "added", 'specific.tables added: `[{"tableName": "transactions", "schema"…`',
         f"{LEDGER_FILE}:11:7"),
    ]
    assert described(entry(diff, "daily").changes) == [
        ("specific", "added", 'specific added: `{"viewName": "daily_v"}`', f"{DAILY_FILE}:19:5"),
    ]


def test_depends_on_added_and_removed_with_short_ids():
    deployed = deployed_copy()
    part(deployed, "daily")["dependsOn"] = [CMP + "load"]
    part(deployed, "load")["dependsOn"] = [CMP + "ledger", "urn:dmb:cmp:other:thing:1:x"]
    diff = plan_diff(DESIRED, deployed)
    assert described(entry(diff, "daily").changes) == [
        ("dependsOn", "added", "dependsOn + `…:ledger`", f"{DAILY_FILE}:11:9"),
        ("dependsOn", "removed", "dependsOn - `…:load`", f"{DAILY_FILE}:10:5"),
    ]
    change = entry(diff, "daily").changes[0]
    assert (change.before, change.after) == (None, CMP + "ledger")  # the whole value, not the shortened one
    assert entry(diff, "load").changes[0].summary == "dependsOn - `urn:dmb:cmp:other:thing:1:x`"


def test_version_and_other_top_level_fields():
    deployed = deployed_copy()
    load = part(deployed, "load")
    load["version"] = "0.9.0"
    load["description"] = "old description"  # not desired: removed
    load["tags"] = ["b", "a"]  # not desired: removed
    part(deployed, "daily")["kind"] = "workload"
    diff = plan_diff(DESIRED, deployed)
    assert described(entry(diff, "load").changes) == [
        ("version", "changed", "version `0.9.0` -> `1.0.0`", "components/load/catalog-info.yaml:9:14"),
        ("description", "removed", "description removed (was `old description`)",
         "components/load/catalog-info.yaml:8:3"),
        ("tags", "removed", 'tags removed (was `["b", "a"]`)', "components/load/catalog-info.yaml:8:3"),
    ]
    assert described(entry(diff, "daily").changes) == [
        ("kind", "changed", "kind `workload` -> `outputport`", f"{DAILY_FILE}:6:9"),
    ]


def test_scalar_lists_reordered_and_long_values_clipped():
    desired = descriptor_of({"load": component("load", "workload", """\
        version: 1.0.0
        tags: [a, b]
        description: |
          A description much longer than forty characters,
          on two lines
        """)})
    deployed = deployed_copy(desired)
    part(deployed, "load")["tags"] = ["b", "a"]
    part(deployed, "load")["description"] = "short"
    changes = entry(plan_diff(desired, deployed), "load").changes
    assert [c.summary for c in changes] == [
        'tags reordered: `["b", "a"]` -> `["a", "b"]`',
        "description `short` -> `A description much longer than forty ch…`",
    ]
    assert changes[1].after == "A description much longer than forty characters,\non two lines\n"


def test_lists_without_names_compare_position_by_position():
    desired = descriptor_of({"load": component("load", "workload", """\
        version: 1.0.0
        specific:
          steps:
            - {run: a}
            - {run: b}
        """)})
    deployed = deployed_copy(desired)
    part(deployed, "load")["specific"]["steps"] = [{"run": "z"}, {"run": "b"}, {"run": "c"}]
    file = "components/load/catalog-info.yaml"
    assert described(entry(plan_diff(desired, deployed), "load").changes) == [
        ("specific.steps[0].run", "changed", "specific.steps[0].run `z` -> `a`", f"{file}:12:17"),
        ("specific.steps[2]", "removed", 'specific.steps[2] removed (was `{"run": "c"}`)', f"{file}:11:7"),
    ]


def test_an_environment_override_points_at_its_own_file():
    override = "components/daily/environments/production/configurations.yaml"
    desired = descriptor_of(COMPONENTS, "production", **{override: "# production\nspecific:\n  viewName: daily_v1\n"})
    deployed = deployed_copy(desired)
    part(deployed, "daily")["specific"]["viewName"] = "daily_v"
    assert described(entry(plan_diff(desired, deployed), "daily").changes) == [
        ("specific.viewName", "changed", "specific.viewName `daily_v` -> `daily_v1`", f"{override}:3:13"),
    ]


# --- the data product's own fields --------------------------------------------------------------------


def test_data_product_level_changes_are_their_own_entry():
    deployed = deployed_copy()
    deployed["version"] = "1.1.0"
    deployed["description"] = "Old cash flow"
    deployed["infrastructureTemplateId"] = "urn:dmb:itm:snowflake:1"
    diff = plan_diff(DESIRED, deployed)
    assert (diff.product.id, diff.product.kind, diff.product.action) == (DP, "dataproduct", Action.CHANGE)
    assert described(diff.product.changes) == [
        ("description", "changed", "description `Old cash flow` -> `Cash flow`", "catalog-info.yaml:5:16"),
        ("version", "changed", "version `1.1.0` -> `1.2.0`", "catalog-info.yaml:11:14"),
        ("infrastructureTemplateId", "removed", "infrastructureTemplateId removed (was `urn:dmb:itm:snowflake:1`)",
         "catalog-info.yaml:10:3"),
    ]
    assert diff.summary() == "data product changed; 0 to add, 0 to change, 0 to remove, 3 unchanged"
    assert diff.has_changes is True


# --- JSON and text ------------------------------------------------------------------------------------


def small_diff() -> PlanDiff:
    deployed = deployed_copy()
    deployed["version"] = "1.1.0"
    part(deployed, "daily")["dataContract"]["schema"][1]["dataType"] = "TEXT"
    deployed["components"] = [c for c in deployed["components"] if c["id"] != CMP + "load"]
    deployed["components"].append({"id": CMP + "old", "kind": "workload", "name": "old job"})
    return plan_diff(DESIRED, deployed)


def test_json_shape():
    document = small_diff().as_json()
    assert json.loads(json.dumps(document)) == document
    assert document == {
        "version": 1,
        "dataProduct": DP,
        "environment": "development",
        "nothingDeployed": False,
        "summary": "data product changed; 1 to add, 1 to change, 1 to remove, 1 unchanged",
        "counts": {"add": 1, "change": 1, "remove": 1, "unchanged": 1},
        "product": {
            "id": DP, "kind": "dataproduct", "name": "cashflow", "action": "change",
            "position": {"file": "catalog-info.yaml", "line": 10, "column": 3},
            "changes": [{
                "path": "version", "kind": "changed", "column": None, "before": "1.1.0", "after": "1.2.0",
                "summary": "version `1.1.0` -> `1.2.0`",
                "position": {"file": "catalog-info.yaml", "line": 11, "column": 14},
            }],
        },
        "components": [
            {"id": CMP + "ledger", "kind": "storage", "name": "ledger", "action": "unchanged",
             "position": {"file": LEDGER_FILE, "line": 8, "column": 3}, "changes": []},
            {"id": CMP + "daily", "kind": "outputport", "name": "daily", "action": "change",
             "position": {"file": DAILY_FILE, "line": 8, "column": 3},
             "changes": [{
                 "path": "dataContract.schema", "kind": "retyped", "column": "amount", "before": "TEXT",
                 "after": "DECIMAL", "summary": "column `amount` retyped TEXT -> DECIMAL",
                 "position": {"file": DAILY_FILE, "line": 17, "column": 21},
             }]},
            {"id": CMP + "load", "kind": "workload", "name": "load", "action": "add",
             "position": {"file": "components/load/catalog-info.yaml", "line": 8, "column": 3}, "changes": []},
            {"id": CMP + "old", "kind": "workload", "name": "old job", "action": "remove", "position": None,
             "changes": []},
        ],
    }


def test_nothing_deployed_json():
    document = plan_diff(DESIRED, None).as_json()
    assert (document["nothingDeployed"], document["summary"], document["product"]["action"]) == (
        True, "nothing deployed: 3 to add", "add")


TEXT = f"""\
meshbot diff: {DP} (development)

~ {DP} (dataproduct)
    repo/catalog-info.yaml:11:14: version `1.1.0` -> `1.2.0`
= {CMP}ledger (storage)
~ {CMP}daily (outputport)
    repo/{DAILY_FILE}:17:21: column `amount` retyped TEXT -> DECIMAL
+ {CMP}load (workload)
- {CMP}old (workload)

data product changed; 1 to add, 1 to change, 1 to remove, 1 unchanged
"""


def test_text_golden():
    assert small_diff().to_text(show_file=lambda file: "repo/" + file) == TEXT


def test_text_in_colour_and_when_nothing_changes():
    assert f"\x1b[31m- {CMP}old (workload)\x1b[0m" in small_diff().to_text(color=True)
    assert plan_diff(DESIRED, deployed_copy()).to_text() == (
        f"meshbot diff: {DP} (development)\n\n= {CMP}ledger (storage)\n= {CMP}daily (outputport)\n"
        f"= {CMP}load (workload)\n\nnothing to change\n"
    )


def test_plan_diff_reads_and_never_changes_its_inputs():
    deployed = deployed_copy()
    part(deployed, "daily")["dataContract"]["schema"].pop()
    before_desired, before_deployed = copy.deepcopy(DESIRED.data), copy.deepcopy(deployed)
    plan_diff(DESIRED, deployed)
    assert (DESIRED.data, deployed) == (before_desired, before_deployed)


def test_results_are_frozen():
    diff = small_diff()
    with pytest.raises(AttributeError):
        diff.environment = "production"  # type: ignore[misc]
