"""Descriptor structure: duplicate ids, dangling or malformed dependsOn and dependency cycles, with positions."""

from __future__ import annotations

import random

from bot.descriptor.errors import SourcePosition
from bot.descriptor.files import MemoryReader
from bot.descriptor.model import Descriptor
from bot.descriptor.structure import structure_errors

DP = "urn:dmb:dp:finance:cashflow:1"


def cmp(local: str) -> str:
    return f"urn:dmb:cmp:finance:cashflow:1:{local}"


def descriptor(components: dict[str, list[str]]) -> Descriptor:
    data = {"id": DP, "kind": "dataproduct", "components": [
        {"id": cmp(local), "kind": "workload", "dependsOn": [cmp(d) for d in deps]}
        for local, deps in components.items()
    ]}
    return Descriptor(data=data, environment="development")


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


def test_a_cycle_reached_through_a_long_chain(system_yaml, component, depends_on, assembly_errors):
    graph = {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["e"], "e": ["f"], "f": ["d"]}
    reader = repository(system_yaml, component, depends_on, graph)
    assert assembly_errors(reader) == [f"d/catalog-info.yaml:11:9: {cycle('d', 'e', 'f', 'd')}"]


def test_the_first_cycle_the_walk_closes_inside_a_larger_loop(system_yaml, component, depends_on, assembly_errors):
    # one strongly connected group a, b, c: walking from a, the edge c -> b closes the cycle b -> c -> b first
    reader = repository(system_yaml, component, depends_on, {"a": ["b"], "b": ["c", "a"], "c": ["b"]})
    assert assembly_errors(reader) == [f"b/catalog-info.yaml:11:9: {cycle('b', 'c', 'b')}"]


def test_a_repeated_dependency_in_a_cycle_is_named_at_its_first_entry(system_yaml, component, depends_on,
                                                                      assembly_errors):
    reader = repository(system_yaml, component, depends_on, {"a": ["c", "b", "b"], "b": ["a"], "c": []})
    assert assembly_errors(reader) == [f"a/catalog-info.yaml:12:9: {cycle('a', 'b', 'a')}"]


def _networkx_cycle_messages(described: Descriptor) -> list[str]:
    """The cycle check as it was written with networkx (strongly connected components, then find_cycle)."""
    import networkx as nx

    graph = nx.DiGraph()
    index_of = {component["id"]: index for index, component in enumerate(described.components)}
    for component in described.components:
        graph.add_node(component["id"])
        for dependency in component.get("dependsOn") or []:
            graph.add_edge(component["id"], dependency)
    errors = []
    for members in nx.strongly_connected_components(graph):
        first = min(members, key=index_of.__getitem__)
        if len(members) == 1 and not graph.has_edge(first, first):
            continue
        ordered = [edge[0] for edge in nx.find_cycle(graph.subgraph(members), source=first)]
        dependents = described.components[index_of[ordered[0]]].get("dependsOn") or []
        next_one = ordered[1] if len(ordered) > 1 else ordered[0]
        where = described.position(("components", index_of[ordered[0]], "dependsOn", dependents.index(next_one)))
        chain = " -> ".join([*ordered, ordered[0]])
        errors.append((index_of[first], f"{where}: dependsOn cycle: {chain} (each depends on the next)"))
    return [message for _, message in sorted(errors)]


def test_cycles_are_named_as_the_networkx_check_named_them_on_random_graphs():
    rng = random.Random(20261206)
    cyclic = 0
    for _ in range(3000):
        size = rng.randint(1, 9)
        names = [f"n{number}" for number in range(size)]
        rng.shuffle(names)
        density = rng.choice([0.1, 0.2, 0.35, 0.6])
        graph = {name: [rng.choice(names) for _ in range(rng.randint(0, 4)) if rng.random() < density * 2]
                 for name in names}
        described = descriptor(graph)
        described.sources = {
            ("components", index, "dependsOn", position): SourcePosition(f"{index}.yaml", position + 1, 1)
            for index, component in enumerate(described.components) for position in range(len(component["dependsOn"]))
        }
        expected = _networkx_cycle_messages(described)
        cyclic += bool(expected)
        assert [str(error) for error in structure_errors(described)] == expected, graph
    assert cyclic > 1000  # the random graphs hold cycles of many shapes, not only acyclic ones
