"""The provisioning plan: structure errors (duplicate ids, dangling or cyclic dependsOn) and parallel stages."""

from __future__ import annotations

import json

from bot.assembly import assemble
from bot.descriptor import Descriptor
from bot.errors import SourcePosition
from bot.files import DirectoryReader, MemoryReader
from bot.plan import Task, build_plan, structure_errors

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


# --- structure errors, with the positions assembly gives them ---------------------------------------


def repository(system_yaml, component, depends_on, graph: dict[str, list[str]]) -> MemoryReader:
    files = {"catalog-info.yaml": system_yaml}
    for local, deps in graph.items():
        files[f"{local}/catalog-info.yaml"] = component(local, mesh=depends_on(*deps))
    return MemoryReader(files)


def cycle(*locals_: str) -> str:
    return "dependsOn cycle: " + " -> ".join(cmp(local) for local in locals_) + " (each depends on the next)"


def test_two_long_cycle(system_yaml, component, depends_on, assembly_errors):
    reader = repository(system_yaml, component, depends_on, {"a": ["b"], "b": ["a"]})
    assert assembly_errors(reader) == [f"a/catalog-info.yaml:11:9: {cycle('a', 'b', 'a')}"]


def test_three_long_cycle_reported_from_its_first_component(system_yaml, component, depends_on, assembly_errors):
    reader = repository(system_yaml, component, depends_on, {"c": ["a"], "b": ["c"], "a": ["b"], "d": ["a"]})
    assert assembly_errors(reader) == [f"a/catalog-info.yaml:11:9: {cycle('a', 'b', 'c', 'a')}"]


def test_self_dependency(system_yaml, component, depends_on, assembly_errors):
    reader = repository(system_yaml, component, depends_on, {"a": ["b", "a"], "b": []})
    assert assembly_errors(reader) == [f"a/catalog-info.yaml:12:9: {cycle('a', 'a')}"]


def test_every_cycle_is_reported(system_yaml, component, depends_on, assembly_errors):
    reader = repository(system_yaml, component, depends_on, {"a": ["b"], "b": ["a"], "c": ["c"], "d": ["a"]})
    assert assembly_errors(reader) == [
        f"a/catalog-info.yaml:11:9: {cycle('a', 'b', 'a')}",
        f"c/catalog-info.yaml:11:9: {cycle('c', 'c')}",
    ]


def test_dangling_dependency(system_yaml, component, depends_on, assembly_errors):
    files = {
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh=depends_on("b", "nowhere")
                                         + "      - urn:dmb:cmp:finance:cashflow:2:b\n"
                                         + f"      - {DP}\n"
                                         + "      - 42\n"),
        "b/catalog-info.yaml": component("b"),
    }
    assert assembly_errors(MemoryReader(files)) == [
        f"a/catalog-info.yaml:12:9: dependsOn '{cmp('nowhere')}' is not a component of this data product",
        "a/catalog-info.yaml:13:9: dependsOn 'urn:dmb:cmp:finance:cashflow:2:b' is not a component of this data "
        f"product (did you mean '{cmp('b')}'?)",
        f"a/catalog-info.yaml:14:9: dependsOn '{DP}' names the data product itself; it is always provisioned first",
        "a/catalog-info.yaml:15:9: dependsOn entries must be component ids (strings)",
    ]


def test_depends_on_must_be_a_list(system_yaml, component, assembly_errors):
    files = {
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh=f"    dependsOn: {cmp('b')}\n"),
        "b/catalog-info.yaml": component("b"),
    }
    assert assembly_errors(MemoryReader(files)) == [
        "a/catalog-info.yaml:9:16: dependsOn must be a list of component ids"
    ]


def test_duplicate_component_ids(system_yaml, component, assembly_errors):
    files = {
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a"),
        "b/catalog-info.yaml": component("b", mesh=f"    id: {cmp('a')}\n"),
        "c/catalog-info.yaml": component("a"),
        "d/catalog-info.yaml": component("d", mesh=f"    id: {DP}\n"),
    }
    assert assembly_errors(MemoryReader(files)) == [
        f"b/catalog-info.yaml:9:9: duplicate id '{cmp('a')}' (also used at a/catalog-info.yaml:4:9)",
        f"c/catalog-info.yaml:4:9: duplicate id '{cmp('a')}' (also used at a/catalog-info.yaml:4:9)",
        f"d/catalog-info.yaml:9:9: duplicate id '{DP}' (also used at catalog-info.yaml:4:9)",
    ]


def test_structure_errors_of_a_hand_made_descriptor():
    broken = Descriptor(
        data={"id": DP, "components": [{"kind": "workload"}, {"id": cmp("a"), "dependsOn": [cmp("x")]}]},
        environment="development",
        sources={(): SourcePosition("catalog-info.yaml", 9, 3)},
    )
    assert [str(e) for e in structure_errors(broken)] == [
        "catalog-info.yaml:9:3: component has no id",
        f"catalog-info.yaml:9:3: dependsOn '{cmp('x')}' is not a component of this data product",
    ]
    assert structure_errors(descriptor({"a": [], "b": ["a"]})) == []
