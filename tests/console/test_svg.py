"""The console's drawings: the plan as a layered graph and a deployment's tasks as a timeline (pure functions)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from bot.console.data import edges_of
from bot.console.svg import Span, dependency_graph_svg, duration_seconds, short_label, timeline_svg
from bot.descriptor.model import Descriptor
from bot.engine.plan import build_plan

SVG = "{http://www.w3.org/2000/svg}"


def diamond() -> Descriptor:
    """a -> b, a -> c, b and c -> d."""
    def component(name: str, *after: str) -> dict[str, object]:
        return {"id": f"urn:dmb:cmp:fin:cash:1:{name}", "kind": "outputport",
                "dependsOn": [f"urn:dmb:cmp:fin:cash:1:{other}" for other in after]}

    return Descriptor(data={"id": "urn:dmb:dp:fin:cash:1", "components": [
        component("a"), component("b", "a"), component("c", "a"), component("d", "b", "c")]}, environment="dev")


def test_the_graph_has_one_column_per_stage_and_one_arrow_per_dependency() -> None:
    plan = build_plan(diamond())
    edges = edges_of(plan.as_json()["tasks"])
    root = ElementTree.fromstring(dependency_graph_svg(plan.stages, edges, {"urn:dmb:cmp:fin:cash:1:a": "DEPLOYED"}))
    nodes = {node.get("data-id"): node for node in root.iter(f"{SVG}g")}
    assert sorted(nodes) == [f"urn:dmb:cmp:fin:cash:1:{name}" for name in "abcd"]
    assert len(list(root.iter(f"{SVG}line"))) == 4
    x = {name: float(nodes[f"urn:dmb:cmp:fin:cash:1:{name}"].find(f"{SVG}rect").get("x")) for name in "abcd"}
    assert x["a"] < x["b"] == x["c"] < x["d"]
    assert "ok" in nodes["urn:dmb:cmp:fin:cash:1:a"].get("class", "")
    assert "none" in nodes["urn:dmb:cmp:fin:cash:1:d"].get("class", "")


def test_the_graph_escapes_ids_and_draws_an_empty_plan() -> None:
    text = dependency_graph_svg([["<script>alert(1)</script>"]], [])
    assert "<script>" not in text and "&lt;script&gt;" in text
    ElementTree.fromstring(text)
    ElementTree.fromstring(dependency_graph_svg([], []))


def test_short_labels() -> None:
    assert short_label("urn:dmb:cmp:fin:cash:1:ledger") == "ledger"
    assert short_label("urn:dmb:dp:fin:cash:1") == "cash:1"
    assert short_label("x" * 40).endswith("…") and len(short_label("x" * 40)) == 30


def test_the_timeline_places_bars_by_time_and_says_what_never_started() -> None:
    spans = [Span("urn:dmb:cmp:f:c:1:a", "COMPLETED", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z"),
             Span("urn:dmb:cmp:f:c:1:b", "FAILED", "2026-01-01T00:00:01.000Z", "2026-01-01T00:00:03.000Z"),
             Span("urn:dmb:cmp:f:c:1:c", "SKIPPED", None, None)]
    text = timeline_svg(spans, width=720, label_width=220)
    root = ElementTree.fromstring(text)
    bars = [group for group in root.iter(f"{SVG}g")]
    assert [bar.get("class") for bar in bars] == ["bar ok", "bar bad"]
    first, second = (bar.find(f"{SVG}rect") for bar in bars)
    assert float(first.get("x")) == 220 and float(second.get("x")) > float(first.get("x"))
    assert float(second.get("width")) == 2 * float(first.get("width"))
    assert "not started" in text and "3.00 s" in text and "1.00 s" in text


def test_the_timeline_of_a_running_task_and_of_nothing() -> None:
    text = timeline_svg([Span("t", "RUNNING", "2026-01-01T00:00:00Z", None)])
    assert "running" in text
    ElementTree.fromstring(text)
    ElementTree.fromstring(timeline_svg([]))


def test_durations() -> None:
    assert duration_seconds("2026-01-01T00:00:00Z", "2026-01-01T00:01:00.500Z") == 60.5
    assert duration_seconds(None, "2026-01-01T00:00:00Z") is None
    assert duration_seconds("not a time", "2026-01-01T00:00:00Z") is None
