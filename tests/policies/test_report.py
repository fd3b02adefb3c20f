"""Reports: text for terminals, json for machines, markdown for merge request comments."""

import json
from datetime import date

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from policies.model import Failure, PolicyResult, Severity, Status
from policies.report import (
    CheckReport,
    category_of,
    code_span,
    escape_markdown,
    json_bytes,
    json_text,
    to_json,
    to_json_bytes,
    to_json_text,
    to_markdown,
    to_text,
)
from tests.forge.test_review_comments import assert_golden

DESCRIPTOR = Descriptor(data={"id": "urn:dmb:dp:finance:cashflow:1", "components": [{}, {}]},
                        environment="development")


def result(policy, severity="error", status="enabled", errors=(), resource="urn:dmb:cmp:finance:cashflow:1:op"):
    return PolicyResult(policy=policy, description=f"{policy} description", resource=resource,
                        severity=Severity(severity), status=Status(status), errors=list(errors))


FAILURE = Failure("missing required field 'specific'", "components[0].specific",
                  SourcePosition("components/op/catalog-info.yaml", 8, 3))


def report(*results):
    return CheckReport(descriptor=DESCRIPTOR, results=list(results), policy_count=len(results))


def test_categories():
    assert category_of(result("a", errors=[FAILURE])) == "blocking"
    assert category_of(result("a", status="grace", errors=[FAILURE])) == "grace"
    assert category_of(result("a", severity="warning", errors=[FAILURE])) == "warning"
    assert category_of(result("a", severity="error", status="grace", errors=[FAILURE])) == "grace"
    assert category_of(result("a", severity="info", errors=[FAILURE])) == "info"


def test_json_report():
    document = to_json(report(result("a", errors=[FAILURE]), result("b")))
    assert document["passed"] is False
    assert document["dataProduct"] == "urn:dmb:dp:finance:cashflow:1"
    assert [r["outcome"] for r in document["results"]] == ["failed", "passed"]


def test_text_report_lists_failures_by_category_with_clickable_positions():
    text = to_text(
        report(result("warn", severity="warning", errors=[FAILURE]), result("block", errors=[FAILURE]), result("ok")),
        show_file=lambda file: "repo/" + file,
    )
    lines = text.splitlines()
    assert lines[0] == "meshbot check: urn:dmb:dp:finance:cashflow:1 (development), 2 components, 3 policies"
    assert lines[2].startswith("BLOCKING  block on urn:dmb:cmp:finance:cashflow:1:op")
    assert lines[3] == ("    repo/components/op/catalog-info.yaml:8:3: components[0].specific: "
                        "missing required field 'specific'")
    assert lines[5].startswith("WARNING   warn on")
    assert lines[-2] == "1 passed, 1 blocking, 0 in grace, 1 warning, 0 info"
    assert lines[-1] == "Result: BLOCKED"
    assert "\x1b[" not in text


def test_text_report_in_colour():
    assert "\x1b[31;1mBLOCKING" in to_text(report(result("block", errors=[FAILURE])), color=True)


def test_markdown_blocking_first_and_passed_folded():
    body = to_markdown(report(result("ok"), result("warn", severity="warning", errors=[FAILURE]),
                              result("block", errors=[FAILURE])))
    assert body.startswith("### meshbot governance: ❌ blocked\n")
    assert body.index("#### ❌ Blocking failures") < body.index("#### ⚠️ Warnings")
    assert ("- `components/op/catalog-info.yaml` line 8, column 3 · `components[0].specific`: "
            "missing required field 'specific'") in body
    assert "<details><summary>✅ 1 passed check</summary>" in body
    assert "| `ok` | `urn:dmb:cmp:finance:cashflow:1:op` |" in body


def test_markdown_headline_with_warnings_only():
    body = to_markdown(report(result("warn", severity="warning", errors=[FAILURE])))
    assert body.startswith("### meshbot governance: ⚠️ passed with warnings\n")


def test_user_text_cannot_inject_markdown_html_or_mentions():
    hostile = Failure("column '<img src=x onerror=alert(1)>' [link](http://evil) **bold** @admin", "a|b", None)
    body = to_markdown(report(result("p", errors=[hostile], resource="urn:x|`y`")))
    assert "<img" not in body
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in body
    assert "\\[link\\]\\(http://evil\\)" in body
    assert "\\*\\*bold\\*\\*" in body
    assert "@admin" not in body and "@\u200badmin" in body
    assert "`` urn:x|`y` ``" in body


def test_escape_helpers():
    assert escape_markdown("a_b\nc") == "a\\_b c"
    assert code_span("plain") == "`plain`"
    assert code_span("has `tick`") == "`` has `tick` ``"


def test_markdown_is_cut_to_the_limit_and_says_so():
    many = [Failure(f"problem number {i} " + "x" * 200, f"components[{i}]", None) for i in range(50)]
    results = [result(f"p{i}", errors=many) for i in range(40)]
    body = to_markdown(report(*results), limit=20_000)
    assert len(body) <= 20_000
    assert "more failures were left out to fit the comment size limit" in body


def not_evaluated(policy="no-breaking-changes", reason="nothing deployed in production"):
    return PolicyResult(policy=policy, description="compares with what is deployed", resource=DESCRIPTOR.id,
                        severity=Severity.ERROR, status=Status.ENABLED, note=reason, evaluated=False)


def test_a_result_with_nothing_to_compare_is_not_evaluated_never_passed():
    checked = report(result("ok"), not_evaluated())
    assert [r["outcome"] for r in to_json(checked)["results"]] == ["passed", "not_evaluated"]
    assert to_json(checked)["results"][1]["note"] == "nothing deployed in production"
    assert checked.passed and [r.policy for r in checked.passed_results] == ["ok"]
    lines = to_text(checked).splitlines()
    assert ("NOT EVALUATED  no-breaking-changes on urn:dmb:dp:finance:cashflow:1: not evaluated: nothing deployed "
            "in production") in lines
    assert lines[-2] == "1 passed, 0 blocking, 0 in grace, 0 warnings, 0 info, 1 not evaluated"
    body = to_markdown(checked)
    assert "| ➖ not evaluated | 1 |" in body
    assert ("- **`no-breaking-changes`** on `urn:dmb:dp:finance:cashflow:1`: not evaluated: nothing deployed in "
            "production") in body
    assert "<details><summary>✅ 1 passed check</summary>" in body


def test_markdown_without_unevaluated_results_has_no_such_row():
    assert "not evaluated" not in to_markdown(report(result("ok")))


def test_counts_are_in_the_right_number():
    one = CheckReport(descriptor=Descriptor(data={"id": "urn:dmb:dp:finance:cashflow:1", "components": [{}]},
                                            environment="development"),
                      results=[result("warn", severity="warning", errors=[FAILURE, FAILURE])], policy_count=1)
    lines = to_text(one).splitlines()
    assert lines[0] == "meshbot check: urn:dmb:dp:finance:cashflow:1 (development), 1 component, 1 policy"
    assert lines[-2] == "0 passed, 0 blocking, 0 in grace, 1 warning, 0 info"
    body = to_markdown(one)
    assert " · 1 policy · 1 component\n" in body
    assert "1 passed check<" not in body
    assert "<details><summary>✅ 2 passed checks</summary>" in to_markdown(report(result("a"), result("b")))
    assert "<details><summary>✅ 1 passed check</summary>" in to_markdown(report(result("a")))


def test_zero_blocking_is_not_painted_red():
    text = to_text(report(result("warn", severity="warning", errors=[FAILURE]), result("ok")), color=True)
    summary = text.splitlines()[-2]
    assert "\x1b[31;1m" not in summary and ", 0 blocking, " in summary
    assert "\x1b[31;1m1 blocking\x1b[0m" in to_text(report(result("block", errors=[FAILURE])), color=True)


def dated_grace_report():
    dated = PolicyResult(policy="needs-owner", description="needs-owner description",
                         resource="urn:dmb:cmp:finance:cashflow:1:op", severity=Severity.ERROR, status=Status.GRACE,
                         errors=[FAILURE], grace_until=date(2027, 3, 1))
    return report(dated, result("undated", status="grace", errors=[FAILURE]), result("ok"))


def test_text_report_says_when_a_grace_policy_blocks_from():
    text = to_text(dated_grace_report())
    assert ("GRACE     needs-owner on urn:dmb:cmp:finance:cashflow:1:op  "
            "[error, grace, blocks from 2027-03-01] needs-owner description") in text.splitlines()
    assert_golden("governance-grace-until.txt", text)


def test_review_comment_says_when_a_grace_policy_blocks_from():
    body = to_markdown(dated_grace_report())
    assert ("**`needs-owner`** on `urn:dmb:cmp:finance:cashflow:1:op` (error, grace, blocks from 2027-03-01): "
            "needs-owner description") in body
    assert "**`undated`** on `urn:dmb:cmp:finance:cashflow:1:op` (error, grace): " in body
    assert_golden("governance-grace-until.md", body)


def test_json_report_carries_the_grace_date():
    results = to_json(dated_grace_report())["results"]
    assert [r.get("graceUntil") for r in results] == ["2027-03-01", None, None]


# ---------------------------------------------------------------------- remote policy engines that gave no answer


def engine_error_report():
    unreached = result("cue-sla")
    unreached.engine_error = "policy engine 'cue' timed out after 10 s"
    grace = result("opa-owner", status="grace", resource="urn:dmb:dp:finance:cashflow:1")
    grace.engine_error = "policy engine 'opa' answered HTTP 500"
    return report(unreached, grace, result("block", errors=[FAILURE]), result("ok"))


def test_an_engine_error_is_its_own_outcome_never_passed_and_blocks_when_enabled():
    built = engine_error_report()
    assert [r.outcome for r in built.results] == ["error", "error", "failed", "passed"]
    assert [r.blocking for r in built.results] == [True, False, True, False]
    assert not built.passed
    assert [r.policy for r in built.passed_results] == ["ok"]
    assert [r.policy for r in built.engine_errors] == ["cue-sla", "opa-owner"]
    assert [r.policy for r in built.failed("blocking")] == ["cue-sla", "block"]
    assert [r.policy for r in built.failed("grace")] == ["opa-owner"]


def test_text_report_shows_engine_errors_distinctly():
    text = to_text(engine_error_report())
    assert ("    ENGINE ERROR: policy engine 'cue' timed out after 10 s; the policy engine gave no verdict, so "
            "this policy counts as failed and blocks (fail closed)") in text.splitlines()
    assert text.splitlines()[-2] == ("1 passed, 2 blocking, 1 in grace, 0 warnings, 0 info, "
                                     "2 engine errors (counted above)")
    assert_golden("governance-engine-error.txt", text)


def test_review_comment_shows_engine_errors_distinctly():
    body = to_markdown(engine_error_report())
    assert body.startswith("### meshbot governance: ❌ blocked\n")
    assert "| ⛔ policy engine errors (counted above) | 2 |" in body
    assert ("- ⛔ **engine error**: policy engine 'cue' timed out after 10 s; the policy engine gave no verdict, "
            "so this policy counts as failed and blocks (fail closed)") in body.splitlines()
    assert ("- ⛔ **engine error**: policy engine 'opa' answered HTTP 500; the policy engine gave no verdict, "
            "so this policy was not evaluated") in body.splitlines()
    assert "| `cue-sla` |" not in body  # not among the passed checks
    assert_golden("governance-engine-error.md", body)


def test_engine_error_text_is_escaped_in_the_comment():
    unreached = result("cue-sla")
    unreached.engine_error = "policy engine 'cue' answered **bold** <b>@team</b>"
    body = to_markdown(report(unreached))
    assert "answered \\*\\*bold\\*\\* &lt;b&gt;@\u200bteam&lt;/b&gt;" in body


def test_json_report_names_the_engine_error():
    results = to_json(engine_error_report())["results"]
    assert [(r["outcome"], r["blocking"], r.get("engineError")) for r in results] == [
        ("error", True, "policy engine 'cue' timed out after 10 s"),
        ("error", False, "policy engine 'opa' answered HTTP 500"),
        ("failed", True, None), ("passed", False, None)]


def test_reports_without_engine_errors_have_no_such_row():
    body = to_markdown(report(result("ok")))
    assert "engine error" not in body and "engine error" not in to_text(report(result("ok")))


# ---------------------------------------------------------------------- the JSON text (orjson, as json.dumps wrote it)


def test_json_text_is_what_json_dumps_with_indent_writes_byte_for_byte():
    every_character = "".join(chr(code) for code in range(0x300)) + "\u2028\u20ac\ufeff\uffff\U0001f600\U0010ffff"
    document = {"passed": False, "text": every_character, "empty": [], "nothing": {}, "none": None, "true": True,
                "numbers": [0, -1, 2**63 - 1], "nested": [{"a": ["b", {"c": "d\u00e9"}]}], "del": "x\x7fy"}
    assert json_text(document) == json.dumps(document, indent=2)
    assert json_bytes(document) == json.dumps(document, indent=2).encode("ascii")


def test_json_text_hands_what_orjson_refuses_to_the_standard_library():
    for document in ({"lone surrogate": "\ud800"}, {"big": 2**70}, {1: "integer key"}):
        assert json_text(document) == json.dumps(document, indent=2)
        assert json_bytes(document) == json.dumps(document, indent=2).encode("ascii")


def test_check_json_text_is_the_documented_document_in_key_order():
    grace = result("later", status="grace", errors=[FAILURE])
    grace.grace_until = date(2027, 3, 1)
    unreached = result("cue-sla")
    unreached.engine_error = "policy engine 'cue' timed out after 10 s"
    not_evaluated = result("compat", status="enabled")
    not_evaluated.evaluated, not_evaluated.note = False, "nothing deployed in production: café"
    built = report(result("a", errors=[FAILURE]), result("b"), grace, unreached, not_evaluated)
    text = to_json_text(built)
    assert text == json.dumps(to_json(built), indent=2)
    assert to_json_bytes(built) == text.encode("ascii")
    results = json.loads(text)["results"]
    assert [list(r) for r in results[:2]] == [
        ["policy", "resource", "severity", "status", "outcome", "blocking", "errors"]] * 2
    assert [(r["outcome"], r["blocking"]) for r in results] == [
        ("failed", True), ("passed", False), ("failed", False), ("error", True), ("not_evaluated", False)]
    assert results[2]["graceUntil"] == "2027-03-01" and results[3]["engineError"].startswith("policy engine 'cue'")
    assert results[4]["note"] == "nothing deployed in production: café" and "caf\\u00e9" in text
    assert results[0]["errors"] == [{"message": FAILURE.message, "path": "components[0].specific",
                                     "file": "components/op/catalog-info.yaml", "line": 8, "column": 3}]
