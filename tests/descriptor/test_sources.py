"""Source positions looked up in the entity documents on demand."""

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import SourcePosition
from bot.descriptor.sources import SourceMap
from tests.builders import component, repository

ROOT = {("spec", "mesh"): (9, 3), ("spec", "mesh", "version"): (10, 14),
        ("spec", "mesh", "components", 0, "x"): (11, 5), ("spec", "mesh", "components", 0, "y"): (12, 5),
        ("metadata", "name"): (4, 9)}
COMPONENT = {("spec", "mesh"): (8, 3), ("spec", "mesh", "x"): (9, 8)}


@pytest.fixture
def sources():
    sources = SourceMap()
    sources.add_layer((), "catalog-info.yaml", ROOT, ("spec", "mesh"))
    sources.add_layer(("components", 0), "components/a/catalog-info.yaml", COMPONENT, ("spec", "mesh"))
    sources[("components", 0)] = SourcePosition("components/a/catalog-info.yaml", 8, 3)
    sources[("id",)] = SourcePosition("catalog-info.yaml", 4, 9)
    return sources


def test_a_layer_gives_the_position_in_its_file(sources):
    assert sources.get(("version",)) == SourcePosition("catalog-info.yaml", 10, 14)
    assert sources[("components", 0, "x")] == SourcePosition("components/a/catalog-info.yaml", 9, 8)


def test_what_the_component_lacks_falls_back_to_the_data_product_layer(sources):
    assert sources.get(("components", 0, "y")) == SourcePosition("catalog-info.yaml", 12, 5)


def test_only_paths_under_spec_mesh_are_read_from_a_layer(sources):
    assert sources.get(("metadata", "name")) is None
    assert ("metadata", "name") not in sources
    with pytest.raises(KeyError):
        sources[("nowhere",)]
    assert sources.get(("nowhere",), "default") == "default"


def test_values_set_win_over_layers(sources):
    assert sources[()] == SourcePosition("catalog-info.yaml", 9, 3)
    sources[()] = SourcePosition("catalog-info.yaml", 1, 1)
    assert sources[()] == SourcePosition("catalog-info.yaml", 1, 1)


def test_a_layer_of_ready_positions_is_read_as_it_is():
    sources = SourceMap()
    sources.add_layer(("components", 3), None, {("x",): SourcePosition("o.yaml", 2, 4)}, ())
    assert sources[("components", 3, "x")] == SourcePosition("o.yaml", 2, 4)
    assert dict(sources) == {("components", 3, "x"): SourcePosition("o.yaml", 2, 4)}


def test_the_whole_mapping_agrees_with_each_lookup(sources):
    everything = dict(sources.items())
    assert everything == {
        (): SourcePosition("catalog-info.yaml", 9, 3),
        ("version",): SourcePosition("catalog-info.yaml", 10, 14),
        ("id",): SourcePosition("catalog-info.yaml", 4, 9),
        ("components", 0): SourcePosition("components/a/catalog-info.yaml", 8, 3),
        ("components", 0, "x"): SourcePosition("components/a/catalog-info.yaml", 9, 8),
        ("components", 0, "y"): SourcePosition("catalog-info.yaml", 12, 5),
    }
    assert len(sources) == len(everything)
    assert all(sources.get(path) == position for path, position in everything.items())


def test_an_assembled_descriptor_points_overridden_values_at_the_override_file():
    override = "components/a/environments/production/configurations.yaml"
    reader = repository({"a": component("a", "storage", "version: 1.0.0\nspecific:\n  bucket: dev\n  region: eu\n")},
                        **{override: "specific:\n  bucket: prod\n"})
    descriptor = assemble(reader, "production")
    assert descriptor.position(("components", 0, "specific", "bucket")) == SourcePosition(override, 2, 11)
    assert descriptor.position(("components", 0, "specific", "region")) == SourcePosition(
        "components/a/catalog-info.yaml", 12, 15)
    assert descriptor.position(("components", 0, "version")) == SourcePosition("components/a/catalog-info.yaml", 9, 14)
    assert all(descriptor.sources.get(path) == position for path, position in descriptor.sources.items())


def test_positions_survive_pickling_and_copying():
    import copy
    import pickle

    descriptor = assemble(repository({"a": component("a", "storage")}))
    for other in (pickle.loads(pickle.dumps(descriptor)), copy.deepcopy(descriptor)):
        assert other.sources == descriptor.sources
        assert other.position(("components", 0, "version")) == SourcePosition("components/a/catalog-info.yaml", 9, 14)
