"""Issue 15: mistakes that used to pass silently (kind typos, override shapes, dependsOn typos, YAML hints)."""

from __future__ import annotations

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import MemoryReader
from bot.descriptor.yamlsafe import load_documents
from policies.engine import evaluate
from policies.model import Severity, Status
from policies.report import CheckReport, to_text

PRODUCTION = "environments/production/configurations.yaml"
CMP = "urn:dmb:cmp:finance:cashflow:1"


# --- kinds ----------------------------------------------------------------------------------------


def test_a_component_whose_kind_is_misspelt_is_an_error_not_a_dropped_component(system_yaml, component,
                                                                              assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a"),
        "b/catalog-info.yaml": component("b").replace("kind: Component", "kind: Componet"),
    })
    assert assembly_errors(reader) == [
        "b/catalog-info.yaml:2:7: kind 'Componet' is not a Backstage kind (did you mean 'Component'?): "
        "'finance.cashflow.1.b' names this data product in spec.system, and only kind: Component entities are "
        "its components"
    ]


def test_a_known_kind_other_than_component_that_names_the_data_product_is_an_error(system_yaml, component,
                                                                                   assembly_errors):
    api = component("api").replace("kind: Component", "kind: API")
    reader = MemoryReader({"catalog-info.yaml": system_yaml, "a/catalog-info.yaml": component("a"),
                           "api/catalog-info.yaml": api})
    assert assembly_errors(reader) == [
        "api/catalog-info.yaml:2:7: API 'finance.cashflow.1.api' names this data product in spec.system, but only "
        "kind: Component entities are its components (meshbot would ignore it)"
    ]


def test_an_unknown_kind_elsewhere_is_a_warning_with_did_you_mean(system_yaml, component):
    location = "apiVersion: backstage.io/v1alpha1\nkind: Locaton\nmetadata:\n  name: more\nspec:\n  targets: [x.yaml]\n"
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "---\n" + location,
                           "a/catalog-info.yaml": component("a")})
    descriptor = assemble(reader)
    assert [c["id"] for c in descriptor.components] == [f"{CMP}:a"]
    assert [str(warning) for warning in descriptor.warnings] == [
        "catalog-info.yaml:13:7: kind 'Locaton' is not a Backstage kind (did you mean 'Location'?); meshbot "
        "ignores 'more'"
    ]


def test_an_unknown_kind_far_from_every_kind_lists_the_backstage_kinds(system_yaml):
    other = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    descriptor = assemble(MemoryReader({"catalog-info.yaml": system_yaml, "w/catalog-info.yaml": other}))
    assert [str(warning) for warning in descriptor.warnings] == [
        "w/catalog-info.yaml:2:7: kind 'Widget' is not a Backstage kind (Component, System, Domain, Resource, API, "
        "Group, User, Location, Template); meshbot ignores 'w'"
    ]


def test_backstage_kinds_that_do_not_name_the_data_product_pass_silently(system_yaml, component):
    group = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: finance\nspec:\n  type: team\n"
    resource = ("apiVersion: backstage.io/v1alpha1\nkind: resource\nmetadata:\n  name: bucket\n"
                "spec:\n  type: s3\n  system: finance.other.1\n")
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "---\n" + group + "---\n" + resource,
                           "a/catalog-info.yaml": component("a")})
    assert assemble(reader).warnings == []


def test_a_misspelt_system_kind_is_named_beside_no_data_product_found(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml.replace("kind: System", "kind: Sytem")})
    assert assembly_errors(reader) == [
        "catalog-info.yaml: no data product found: expected a 'kind: System' entity with 'spec.type: dataproduct' "
        "in catalog-info.yaml at the repository root",
        "catalog-info.yaml:2:7: kind 'Sytem' is not a Backstage kind (did you mean 'System'?); meshbot ignores "
        "'finance.cashflow.1'",
    ]


def test_catalog_warnings_reach_the_check_report_as_a_warning_result(system_yaml, component):
    other = "apiVersion: example.com/v1\nkind: Componnt\nmetadata:\n  name: w\n"
    descriptor = assemble(MemoryReader({"catalog-info.yaml": system_yaml, "a/catalog-info.yaml": component("a"),
                                        "w/catalog-info.yaml": other}))
    results = evaluate(descriptor, [])
    assert [(r.policy, r.severity, r.status, r.resource) for r in results] == [
        ("catalog-entities", Severity.WARNING, Status.ENABLED, "urn:dmb:dp:finance:cashflow:1")
    ]
    text = to_text(CheckReport(descriptor=descriptor, results=results, policy_count=0))
    assert ("    w/catalog-info.yaml:2:7: kind: kind 'Componnt' is not a Backstage kind (did you mean 'Component'?); "
            "meshbot ignores 'w'") in text
    assert "Result: PASSED" in text
    assert evaluate(assemble(MemoryReader({"catalog-info.yaml": system_yaml})), []) == []


# --- environments/<env>/configurations.yaml shapes -------------------------------------------------


def test_overrides_in_the_entity_shape_merge_into_spec_mesh(system_yaml, component):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh="    version: 1.0.0\n    specific: {size: 1}\n"),
        f"a/{PRODUCTION}": "spec:\n  mesh:\n    specific:\n      size: 3\n",
    })
    descriptor = assemble(reader, "production")
    (only,) = descriptor.components
    assert "spec" not in only
    assert only["specific"] == {"size": 3}
    assert str(descriptor.position(("components", 0, "specific", "size"))) == f"a/{PRODUCTION}:4:13"


def test_overrides_in_the_bare_shape_still_merge(system_yaml, component):
    reader = MemoryReader({"catalog-info.yaml": system_yaml, "a/catalog-info.yaml": component("a"),
                           f"a/{PRODUCTION}": "version: 1.0.1\n"})
    assert assemble(reader, "production").components[0]["version"] == "1.0.1"


def test_overrides_in_the_entity_shape_keyed_by_name_when_entities_share_a_folder(system_yaml, component):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml + "---\n" + component("a"),
        PRODUCTION: "finance.cashflow.1.a:\n  spec:\n    mesh:\n      version: 1.0.7\n",
    })
    assert assemble(reader, "production").components[0]["version"] == "1.0.7"


def test_other_keys_beside_spec_mesh_in_an_override_are_errors_at_their_position(system_yaml, component,
                                                                               assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a"),
        f"a/{PRODUCTION}": ("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n"
                            "spec:\n  type: workload\n  mesh:\n    version: 1.0.1\n"),
    })
    reason = "environment overrides hold spec.mesh fields, bare or under 'spec: mesh:'"
    assert assembly_errors(reader, "production") == [
        f"a/{PRODUCTION}:1:13: 'apiVersion' cannot be overridden: {reason}",
        f"a/{PRODUCTION}:2:7: 'kind' cannot be overridden: {reason}",
        f"a/{PRODUCTION}:3:1: 'metadata' cannot be overridden: {reason}",
        f"a/{PRODUCTION}:6:9: 'spec.type' cannot be overridden: {reason}",
    ]


def test_spec_mesh_in_an_override_must_be_a_mapping(system_yaml, component, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml, "a/catalog-info.yaml": component("a"),
                           f"a/{PRODUCTION}": "spec:\n  mesh: [1]\n"})
    assert assembly_errors(reader, "production") == [f"a/{PRODUCTION}:2:3: spec.mesh must be a mapping"]


# --- dependsOn ------------------------------------------------------------------------------------


def test_a_misspelt_depends_on_names_the_closest_component_and_its_position(system_yaml, component, depends_on,
                                                                             assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "raw-data/catalog-info.yaml": component("raw-data"),
        "report/catalog-info.yaml": component("report", mesh=depends_on("raw-dta")),
    })
    assert assembly_errors(reader) == [
        f"report/catalog-info.yaml:11:9: dependsOn '{CMP}:raw-dta' is not a component of this data product "
        f"(did you mean '{CMP}:raw-data'?)"
    ]


def test_a_depends_on_written_as_a_misspelt_name_names_the_closest_component(system_yaml, component,
                                                                               assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "raw-data/catalog-info.yaml": component("raw-data"),
        "report/catalog-info.yaml": component("report", mesh="    version: 1.0.0\n    dependsOn: [rawdata]\n"),
    })
    assert assembly_errors(reader) == [
        "report/catalog-info.yaml:10:17: dependsOn 'rawdata' is not a component of this data product "
        f"(did you mean '{CMP}:raw-data'?)"
    ]


# --- YAML syntax errors: a hint in plain words before the parser's text ----------------------------


def yaml_error(text: str) -> str:
    with pytest.raises(InputErrors) as raised:
        load_documents(text, "f.yaml")
    (error,) = raised.value.errors
    return str(error)


@pytest.mark.parametrize(("text", "expected"), [
    ("metadata:\n  name: x\n\tspec: {}\n",
     "f.yaml:3:1: malformed YAML: a tab in the indentation of line 3: YAML indents with spaces only; the parser "
     "says: while scanning for the next token found character '\\t' that cannot start any token"),
    ("spec:\n  mesh:\n    x: 1\n   y: 2\n",
     "f.yaml:4:4: malformed YAML: line 4 is not indented like the lines above it: keys of one mapping start in "
     "the same column; the parser says: while parsing a block mapping expected <block end>, but found "
     "'<block mapping start>'"),
    ("spec:\n  b: 1\n   c: 2\n",
     "f.yaml:3:5: malformed YAML: line 3 is not indented like the lines above it: keys of one mapping start in "
     "the same column; the parser says: mapping values are not allowed here"),
    ("a: [1, 2\nb: 3\n",
     "f.yaml:2:2: malformed YAML: the '[' opened on line 1, column 4 is never closed (or a ',' is missing); the "
     "parser says: while parsing a flow sequence expected ',' or ']', but got ':'"),
    ("a: {x: 1\nb: 3\n",
     "f.yaml:2:2: malformed YAML: the '{' opened on line 1, column 4 is never closed (or a ',' is missing); the "
     "parser says: while parsing a flow mapping expected ',' or '}', but got ':'"),
    ("kind: Component\nmetadata: {name: [\n",
     "f.yaml:3:1: malformed YAML: the '[' opened on line 2, column 18 is never closed; the parser says: while "
     "parsing a flow node expected the node content, but found '<stream end>'"),
    ('a: "abc\nb: 3\n',
     "f.yaml:3:1: malformed YAML: the quote opened on line 1, column 4 is never closed; the parser says: while "
     "scanning a quoted scalar found unexpected end of stream"),
    ("a: 1\nb:2\nc: 3\n",
     "f.yaml:3:1: malformed YAML: line 2 has no space after the colon in 'b:2' (write 'b: 2'); the parser says: "
     "while scanning a simple key could not find expected ':'"),
    ("spec:\n  type:outputport\n  owner: x\n",
     "f.yaml:3:8: malformed YAML: line 2 has no space after the colon in 'type:outputport' (write "
     "'type: outputport'); the parser says: mapping values are not allowed here"),
    ("kind: a: b\n",
     "f.yaml:1:8: malformed YAML: line 1 has a second ': ' in one value: put the value in quotes; the parser "
     "says: mapping values are not allowed here"),
])
def test_yaml_syntax_errors_keep_their_position_and_start_with_a_hint(text, expected):
    assert yaml_error(text) == expected


def test_a_duplicate_key_names_both_lines():
    assert yaml_error("a: 1\nb: 2\na: 3\n") == "f.yaml:3:1: duplicate key 'a' (first defined on line 1)"
