"""The provisioning plan: its tasks and the stages whose tasks run concurrently."""

from __future__ import annotations

import json

from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.descriptor.model import Descriptor
from bot.engine.plan import Task, build_plan

DP = "urn:dmb:dp:finance:cashflow:1"


def cmp(local: str) -> str:
    return f"urn:dmb:cmp:finance:cashflow:1:{local}"


def descriptor(components: dict[str, list[str]], infrastructure: bool = False, kind: str = "workload") -> Descriptor:
    data = {"id": DP, "kind": "dataproduct"}
    if infrastructure:
        data["infrastructureTemplateId"] = "urn:dmb:itm:snowflake-database:1"
    data["components"] = [
        {"id": cmp(local), "kind": kind, "dependsOn": [cmp(d) for d in deps]} for local, deps in components.items()
    ]
    return Descriptor(data=data, environment="development")


def stages(plan) -> list[list[str]]:
    return [[identifier.rsplit(":", 1)[-1] for identifier in stage] for stage in plan.stages]


# --- stages ---------------------------------------------------------------------------------------


def test_chain_runs_one_after_the_other():
    plan = build_plan(descriptor({"c": ["b"], "b": ["a"], "a": []}))
    assert stages(plan) == [["a"], ["b"], ["c"]]
    assert plan.tasks == [
        Task(id=cmp("c"), kind="workload", depends_on=(cmp("b"),)),
        Task(id=cmp("b"), kind="workload", depends_on=(cmp("a"),)),
        Task(id=cmp("a"), kind="workload", depends_on=()),
    ]


def test_diamond_runs_the_middle_concurrently():
    plan = build_plan(descriptor({"top": [], "left": ["top"], "right": ["top"], "bottom": ["right", "left"]}))
    assert stages(plan) == [["top"], ["left", "right"], ["bottom"]]


def test_independent_components_share_one_stage_in_descriptor_order():
    plan = build_plan(descriptor({"z": [], "a": [], "m": []}))
    assert stages(plan) == [["z", "a", "m"]]


def test_data_product_task_first_only_with_an_infrastructure_template():
    with_template = build_plan(descriptor({"a": [], "b": ["a"], "c": []}, infrastructure=True))
    assert with_template.stages == [[DP], [cmp("a"), cmp("c")], [cmp("b")]]
    assert with_template.tasks[0] == Task(id=DP, kind="dataproduct", depends_on=())
    assert with_template.tasks[2] == Task(id=cmp("b"), kind="workload", depends_on=(DP, cmp("a")))
    assert set(with_template.graph.edges) == {(DP, cmp("a")), (DP, cmp("b")), (DP, cmp("c")), (cmp("a"), cmp("b"))}

    without = build_plan(descriptor({"a": [], "b": ["a"], "c": []}))
    assert without.stages == [[cmp("a"), cmp("c")], [cmp("b")]]
    assert DP not in without.graph

    empty_template = descriptor({"a": []})
    empty_template.data["infrastructureTemplateId"] = ""
    assert build_plan(empty_template).stages == [[cmp("a")]]


def test_a_data_product_without_components():
    assert build_plan(descriptor({}, infrastructure=True)).as_json() == {
        "tasks": [{"id": DP, "kind": "dataproduct", "depends_on": []}],
        "stages": [[DP]],
    }
    assert build_plan(descriptor({})).as_json() == {"tasks": [], "stages": []}


def test_json_shape():
    plan = build_plan(descriptor({"storage": [], "port": ["storage"]}, infrastructure=True, kind="storage"))
    as_json = plan.as_json()
    assert as_json == {
        "tasks": [
            {"id": DP, "kind": "dataproduct", "depends_on": []},
            {"id": cmp("storage"), "kind": "storage", "depends_on": [DP]},
            {"id": cmp("port"), "kind": "storage", "depends_on": [DP, cmp("storage")]},
        ],
        "stages": [[DP], [cmp("storage")], [cmp("port")]],
    }
    assert json.loads(json.dumps(as_json)) == as_json


def test_finance_cashflow_plan(repos):
    plan = build_plan(assemble(DirectoryReader(repos / "finance-cashflow"), "production"))
    assert plan.as_json() == {
        "tasks": [
            {"id": DP, "kind": "dataproduct", "depends_on": []},
            {"id": cmp("cashflow_view"), "kind": "outputport", "depends_on": [DP, cmp("raw_storage")]},
            {"id": cmp("quality"), "kind": "observability", "depends_on": [DP, cmp("cashflow_view")]},
            {"id": cmp("raw_storage"), "kind": "storage", "depends_on": [DP]},
            {"id": cmp("ingestion"), "kind": "workload", "depends_on": [DP, cmp("raw_storage")]},
        ],
        "stages": [[DP], [cmp("raw_storage")], [cmp("cashflow_view"), cmp("ingestion")], [cmp("quality")]],
    }


def test_dps_example_plan_has_no_data_product_task(repos):
    plan = build_plan(assemble(DirectoryReader(repos / "dps-example")))
    prefix = "urn:dmb:cmp:my_domain:my_data_product:1:"
    assert plan.stages == [
        [prefix + "my_observability", prefix + "my_raw_s3_port", prefix + "my_spark_workload"],
        [prefix + "my_view_impala_port"],
    ]
