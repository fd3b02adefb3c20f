"""Descriptor paths in adapters' error texts: every spelling parsed, each error filed under the component it names."""

from __future__ import annotations

import pytest

from adapters.error_paths import candidate_paths, locate, split_errors
from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor

SCAFFOLD = ("Failed to parse the descriptor. Details: \n"
            "{'type': 'missing', 'loc': ('components', 1, 'semanticLinking'), 'msg': 'Field required'} , \n"
            "{'type': 'string_type', 'loc': ('dataProduct', 'name'), 'msg': 'Input should be a valid string'}")
DESCRIPTOR = Descriptor(
    {"id": "urn:dmb:dp:d:p:1", "name": "p", "components": [
        {"id": "c0", "specific": {"tables": [{"name": "t"}]}},
        {"id": "c1", "specific": {"viewName": "v"}},
    ]},
    "development",
    sources={("name",): SourcePosition("catalog-info.yaml", 4, 9),
             ("components", 1): SourcePosition("port/catalog-info.yaml", 8, 5),
             ("components", 0, "specific", "tables"): SourcePosition("storage/catalog-info.yaml", 12, 7)},
)


@pytest.mark.parametrize(("text", "path"), [
    ("loc: ('components', 0, 'semanticLinking')", ("components", 0, "semanticLinking")),
    ('{"loc": ["body", "descriptor"], "msg": "x"}', None),  # the request's own fields are no descriptor path
    ("components[0].specific.tables[1].name: too long", ("components", 0, "specific", "tables", 1, "name")),
    ("specific.tables[0].name is empty", ("specific", "tables", 0, "name")),
    ("/components/0/specific/viewName must be lower case", ("components", 0, "specific", "viewName")),
    ("components.0.specific.viewName must be lower case", ("components", 0, "specific", "viewName")),
    ("dataProduct.components[1].kind unknown", ("components", 1, "kind")),
    ("specific: required", ("specific",)),
    ("nothing here", None),
])
def test_every_spelling_of_a_path_is_parsed(text, path):
    found = candidate_paths(text)
    assert (found[0] if found else None) == path


def test_the_scaffold_s_python_reprs_are_split_into_one_error_each():
    assert [(error.message, error.paths) for error in split_errors([SCAFFOLD])] == [
        ("components[1].semanticLinking: Field required (missing)", (("components", 1, "semanticLinking"),)),
        ("name: Input should be a valid string (string_type)", (("name",),)),
    ]


def test_pydantic_s_own_text_is_split_too():
    text = ("2 validation errors for DataProduct\ncomponents.0.specific\n  Field required [type=missing, "
            "input_value={'a': 1}, input_type=dict]\nname\n  Input should be a valid string [type=string_type]")
    assert [error.message for error in split_errors([text])] == [
        "components[0].specific: Field required (missing)", "name: Input should be a valid string (string_type)"]


def test_errors_are_filed_under_the_component_they_name_at_its_position():
    placed = locate(DESCRIPTOR, "c0", [SCAFFOLD, "specific.tables[0].name: too long", "e.g. see the docs",
                                       "/components/1/specific/viewName: bad"], tasks=["c0", "c1"])
    assert [(error.task, error.where, error.position) for error in placed] == [
        ("c1", "components[1].semanticLinking", SourcePosition("port/catalog-info.yaml", 8, 5)),
        ("c0", "name", SourcePosition("catalog-info.yaml", 4, 9)),  # c0 has no `name`: the data product's
        ("c0", "components[0].specific.tables[0].name", SourcePosition("storage/catalog-info.yaml", 12, 7)),
        ("c0", "", None),  # `e.g` is no path of this descriptor
        ("c1", "components[1].specific.viewName", SourcePosition("port/catalog-info.yaml", 8, 5)),
    ]


def test_a_component_that_is_no_task_leaves_the_error_with_the_task_that_asked():
    placed = locate(DESCRIPTOR, "c0", ["components[1].kind: unknown"], tasks=["c0"])
    assert placed[0].task == "c0" and placed[0].where == "components[1].kind"
