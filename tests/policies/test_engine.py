"""The policy engine: selection, outcomes, blocking, messages and positions."""

from datetime import date
from pathlib import Path

import pytest

from bot.descriptor.errors import SourcePosition
from policies.engine import MAX_FAILURES_PER_RESULT, evaluate
from policies.loader import load_policy_file
from policies.model import Status, effective_status
from tests.builders import component, descriptor_of

OUTPUT_PORT = """\
version: 1.0.0
infrastructureTemplateId: urn:dmb:itm:sqlite-outputport-provisioner:0
specific:
  viewName: daily
"""
STORAGE = """\
version: 1.0.0
infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0
specific: {}
"""


def policy(tmp_path: Path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_policy_file(path)


def needs(field: str, *, target: str = "component", selector: str = "", severity: str = "error",
          status: str = "enabled", identifier: str = "needs-field") -> str:
    return (
        f"id: {identifier}\ndescription: needs {field}\ntarget: {target}\n{selector}"
        f"severity: {severity}\nstatus: {status}\nschema:\n  type: object\n  required: [{field}]\n"
    )


@pytest.fixture
def descriptor():
    return descriptor_of({
        "daily": component("daily", "outputport", OUTPUT_PORT),
        "raw": component("raw", "storage", STORAGE),
    })


def test_component_policy_runs_on_each_selected_component(tmp_path, descriptor):
    results = evaluate(descriptor, [policy(tmp_path, needs("specific"))])
    assert [(r.resource, r.outcome) for r in results] == [
        ("urn:dmb:cmp:finance:cashflow:1:daily", "passed"),
        ("urn:dmb:cmp:finance:cashflow:1:raw", "passed"),
    ]


def test_selector_by_kind_and_wildcard_template(tmp_path, descriptor):
    selector = "selector:\n  kind: OutputPort\n  infrastructureTemplateId: urn:dmb:itm:sqlite-*:0\n"
    results = evaluate(descriptor, [policy(tmp_path, needs("dataContract", selector=selector))])
    assert [r.resource for r in results] == ["urn:dmb:cmp:finance:cashflow:1:daily"]
    assert results[0].outcome == "failed"


def test_selector_on_environment(tmp_path, descriptor):
    selector = "selector:\n  environment: [production, qa]\n"
    assert evaluate(descriptor, [policy(tmp_path, needs("specific", selector=selector))]) == []


def test_missing_required_field_names_the_field_and_points_at_the_component(tmp_path, descriptor):
    [daily, raw] = evaluate(descriptor, [policy(tmp_path, needs("dataContract"))])
    assert daily.outcome == "failed" and daily.blocking
    [failure] = daily.errors
    assert failure.message == "missing required field 'dataContract'"
    assert failure.path == "components[0].dataContract"
    assert failure.position == SourcePosition("components/daily/catalog-info.yaml", 8, 3)


def test_wrong_value_points_at_the_value(tmp_path, descriptor):
    text = ("id: view-names\ndescription: view names are snake case\ntarget: component\nseverity: error\n"
            "status: enabled\nselector:\n  kind: outputport\nschema:\n  properties:\n    specific:\n"
            "      properties:\n        viewName: {pattern: '^v_'}\n")
    [result] = evaluate(descriptor, [policy(tmp_path, text)])
    [failure] = result.errors
    assert failure.path == "components[0].specific.viewName"
    assert failure.message == '"daily" does not match "^v_"'
    assert failure.position == SourcePosition("components/daily/catalog-info.yaml", 12, 17)


def test_x_message_replaces_the_validator_message(tmp_path, descriptor):
    text = needs("dataContract") + "  x-message: an output port publishes a data contract\n"
    [daily, _raw] = evaluate(descriptor, [policy(tmp_path, text)])
    assert daily.errors[0].message == "an output port publishes a data contract"


def test_only_enabled_error_failures_block(tmp_path, descriptor):
    cases = {("error", "enabled"): True, ("error", "grace"): False, ("warning", "enabled"): False,
             ("info", "enabled"): False}
    for (severity, status), blocking in cases.items():
        result = evaluate(descriptor, [policy(tmp_path, needs("nope", severity=severity, status=status))])[0]
        assert result.outcome == "failed"
        assert result.blocking is blocking, (severity, status)


def test_draft_policies_do_not_run(tmp_path, descriptor):
    draft = policy(tmp_path, needs("nope", status="draft"))
    assert draft.status is Status.DRAFT
    assert evaluate(descriptor, [draft]) == []


def test_data_product_policy_runs_once_on_the_descriptor(tmp_path, descriptor):
    [result] = evaluate(descriptor, [policy(tmp_path, needs("email", target="dataproduct"))])
    assert result.resource == "urn:dmb:dp:finance:cashflow:1"
    assert result.errors[0].path == "email"
    assert result.errors[0].position == SourcePosition("catalog-info.yaml", 10, 3)


def test_failures_per_result_are_capped(tmp_path):
    columns = "".join(f"  - name: c{i}\n" for i in range(80))
    descriptor = descriptor_of({"wide": component("wide", "outputport", "version: 1.0.0\ncolumns:\n" + columns)})
    text = ("id: typed-columns\ndescription: every column is typed\ntarget: component\nseverity: error\n"
            "status: enabled\nschema:\n  properties:\n    columns:\n      items: {required: [dataType]}\n")
    [result] = evaluate(descriptor, [policy(tmp_path, text)])
    assert len(result.errors) == MAX_FAILURES_PER_RESULT + 1
    assert result.errors[-1].message.startswith("more failures of this policy were left out")


def test_results_follow_policy_order_then_resource_order(tmp_path, descriptor):
    first = policy(tmp_path, needs("specific", identifier="b-first"), "b.yaml")
    second = policy(tmp_path, needs("version", target="dataproduct", identifier="a-second"), "a.yaml")
    results = evaluate(descriptor, [first, second])
    assert [(r.policy, r.resource.rsplit(":", 1)[-1]) for r in results] == [
        ("b-first", "daily"), ("b-first", "raw"), ("a-second", "1"),
    ]


def test_component_policies_with_different_selectors_keep_policy_then_resource_order(tmp_path):
    # Evaluated component by component, reported policy by policy: the selectors interleave the pairs.
    descriptor = descriptor_of({
        "a": component("a", "storage", STORAGE),
        "b": component("b", "outputport", OUTPUT_PORT),
        "c": component("c", "storage", STORAGE),
    })
    storage_only = policy(tmp_path, needs("specific", selector="selector:\n  kind: storage\n", identifier="z-storage"),
                          "z.yaml")
    everything = policy(tmp_path, needs("dataContract", identifier="y-all"), "y.yaml")
    product = policy(tmp_path, needs("version", target="dataproduct", identifier="x-product"), "x.yaml")
    draft = policy(tmp_path, needs("version", status="draft", identifier="w-draft"), "w.yaml")
    results = evaluate(descriptor, [storage_only, draft, everything, product])
    assert [(r.policy, r.resource.rsplit(":", 1)[-1], r.outcome) for r in results] == [
        ("z-storage", "a", "passed"), ("z-storage", "c", "passed"),
        ("y-all", "a", "failed"), ("y-all", "b", "failed"), ("y-all", "c", "failed"),
        ("x-product", "1", "passed"),
    ]
    assert [failure.path for r in results for failure in r.errors] == [
        "components[0].dataContract", "components[1].dataContract", "components[2].dataContract"]


def test_json_shape_of_a_result(tmp_path, descriptor):
    [daily, _raw] = evaluate(descriptor, [policy(tmp_path, needs("dataContract"))])
    assert daily.as_json() == {
        "policy": "needs-field",
        "resource": "urn:dmb:cmp:finance:cashflow:1:daily",
        "severity": "error",
        "status": "enabled",
        "outcome": "failed",
        "blocking": True,
        "errors": [{
            "message": "missing required field 'dataContract'",
            "path": "components[0].dataContract",
            "file": "components/daily/catalog-info.yaml",
            "line": 8,
            "column": 3,
        }],
    }


def test_x_message_beside_a_ref_and_inside_the_definition(tmp_path, descriptor):
    text = ("id: refs\ndescription: refs\ntarget: component\nseverity: error\nstatus: enabled\n"
            "schema:\n  $defs:\n    spec: {required: [database], x-message: needs a database}\n"
            "    contract: {required: [schema]}\n"
            "  properties:\n    specific: {$ref: '#/$defs/spec'}\n"
            "    dataContract: {$ref: '#/$defs/contract', x-message: the contract lists its columns}\n"
            "  required: [dataContract]\n")
    [daily, raw] = evaluate(descriptor, [policy(tmp_path, text)])
    assert sorted(f.message for f in daily.errors) == ["missing required field 'dataContract'", "needs a database"]
    beside = policy(tmp_path, text.replace("  required: [dataContract]\n", ""), "b.yaml")
    descriptor.components[0]["dataContract"] = {}
    [daily, raw] = evaluate(descriptor, [beside])
    assert "the contract lists its columns" in [f.message for f in daily.errors]


def test_a_component_that_is_not_a_mapping_is_skipped_not_a_crash(tmp_path):
    from bot.descriptor.model import Descriptor
    descriptor = Descriptor(data={"id": "urn:dmb:dp:a:b:1", "components": ["oops"]}, environment="development")
    assert evaluate(descriptor, [policy(tmp_path, needs("specific"))]) == []


@pytest.mark.parametrize(("today", "status", "blocking"), [
    (date(2027, 2, 28), Status.GRACE, False),
    (date(2027, 3, 1), Status.ENABLED, True),
    (date(2027, 3, 2), Status.ENABLED, True),
])
def test_grace_policy_blocks_from_its_grace_until(tmp_path, descriptor, today, status, blocking):
    dated = policy(tmp_path, needs("nope", status="grace") + "grace_until: 2027-03-01\n")
    [result, *_] = evaluate(descriptor, [dated], today=today)
    assert (result.status, result.blocking) == (status, blocking)
    assert result.grace_until == (date(2027, 3, 1) if status is Status.GRACE else None)
    assert result.blocks_from == ("blocks from 2027-03-01" if status is Status.GRACE else None)


def test_grace_until_does_not_make_a_warning_block(tmp_path, descriptor):
    dated = policy(tmp_path, needs("nope", severity="warning", status="grace") + "grace_until: 2027-03-01\n")
    [result, *_] = evaluate(descriptor, [dated], today=date(2027, 6, 1))
    assert result.status is Status.ENABLED
    assert result.outcome == "failed" and not result.blocking


def test_grace_without_a_date_stays_grace(tmp_path, descriptor):
    undated = policy(tmp_path, needs("nope", status="grace"))
    assert effective_status(undated, date(2999, 1, 1)) is Status.GRACE
    [result, *_] = evaluate(descriptor, [undated], today=date(2999, 1, 1))
    assert (result.status, result.blocking, result.blocks_from) == (Status.GRACE, False, None)


def test_json_of_a_dated_grace_result_carries_the_date(tmp_path, descriptor):
    dated = policy(tmp_path, needs("nope", status="grace") + "grace_until: 2027-03-01\n")
    before = evaluate(descriptor, [dated], today=date(2027, 1, 1))[0].as_json()
    after = evaluate(descriptor, [dated], today=date(2027, 3, 1))[0].as_json()
    assert (before["status"], before["blocking"], before["graceUntil"]) == ("grace", False, "2027-03-01")
    assert (after["status"], after["blocking"], "graceUntil" in after) == ("enabled", True, False)
