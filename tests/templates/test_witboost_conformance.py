"""What the use-case templates and the bundled example render is what a Witboost platform reads the same way and
what a tech adapter built on the public Witboost Python scaffold accepts; every column type and attribute the
reference adapter documents renders, passes governance and provisions over HTTP."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from adapters.payloads import component_request, data_product_request, reverse_provisioning_request
from bot.cli.main import EXAMPLE_DATA_PRODUCT, main
from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import DirectoryReader
from bot.descriptor.model import Descriptor
from bot.engine.plan import build_plan
from policies.engine import evaluate
from policies.loader import load_policies
from templates.usecases import find_template, load_templates, resolve_parameters
from tests.servers.reference_adapter import running_adapter
from tests.witboost_scaffold import data_product_problems, request_problems

# Only what each template requires (no example): the defaults fill the rest.
REQUIRED_ONLY: dict[str, dict[str, Any]] = {
    "dataproduct": {"domain": "finance", "name": "ledger", "description": "The general ledger",
                    "owner": "group:finance", "dataProductOwner": "user:ann", "dataProductOwnerDisplayName": "Ann",
                    "email": "finance@example.com"},
    "sqlite-storage": {"component": "raw", "description": "Raw entries", "tableName": "entries",
                       "columns": [{"name": "id", "dataType": "TEXT"}]},
    "sqlite-outputport": {"component": "entries", "description": "Entries"},
}
# Every column type the reference SQLite adapter stores that is an OpenMetadata type, with every attribute.
ALL_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "dataType": "VARCHAR", "dataLength": 36, "constraint": "PRIMARY_KEY",
     "description": "The entry's id"},
    {"name": "code", "dataType": "CHAR", "dataLength": 3, "constraint": "NOT_NULL"},
    {"name": "reference", "dataType": "TEXT", "constraint": "UNIQUE"},
    {"name": "memo", "dataType": "STRING", "constraint": "NULL"},
    {"name": "notes", "dataType": "MEDIUMTEXT"},
    {"name": "payload", "dataType": "JSON", "jsonSchema": '{"type": "object"}'},
    {"name": "state", "dataType": "ENUM"},
    {"name": "quantity", "dataType": "INT"},
    {"name": "big", "dataType": "BIGINT"},
    {"name": "small", "dataType": "SMALLINT"},
    {"name": "tiny", "dataType": "TINYINT"},
    {"name": "byte", "dataType": "BYTEINT"},
    {"name": "flag", "dataType": "BOOLEAN"},
    {"name": "amount", "dataType": "DECIMAL", "precision": 12, "scale": 2, "constraint": "NOT_NULL"},
    {"name": "ratio", "dataType": "NUMERIC", "precision": 5},
    {"name": "total", "dataType": "NUMBER", "precision": 38, "scale": 0},
    {"name": "share", "dataType": "FLOAT"},
    {"name": "rate", "dataType": "DOUBLE"},
    {"name": "booked_on", "dataType": "DATE"},
    {"name": "booked_at", "dataType": "TIME"},
    {"name": "created", "dataType": "TIMESTAMP"},
    {"name": "updated", "dataType": "DATETIME"},
    {"name": "digest", "dataType": "BINARY", "dataLength": 32},
    {"name": "signature", "dataType": "VARBINARY", "dataLength": 256},
    {"name": "raw", "dataType": "BYTES"},
    {"name": "document", "dataType": "BLOB"},
    {"name": "scan", "dataType": "MEDIUMBLOB"},
    {"name": "archive", "dataType": "LONGBLOB"},
]
PARAMETER_SETS = {
    "example": ({}, {}, {}),
    "required-only": tuple(REQUIRED_ONLY[name] for name in ("dataproduct", "sqlite-storage", "sqlite-outputport")),
    "every-column-and-tags": ({"tags": ["Finance.Ledger", "PII"]}, {"columns": ALL_COLUMNS}, {}),
}


def new(folder: Path, template: str, given: dict[str, Any], use_example: bool) -> None:
    """`meshbot new TEMPLATE FOLDER [--example] --set key=value ...`, every value as a YAML flow value."""
    sets = [argument for key, value in given.items() for argument in ("--set", f"{key}={to_yaml(value)}")]
    assert main(["new", template, str(folder), *(["--example"] if use_example else []), *sets]) == 0, template


def to_yaml(value: Any) -> str:
    """A YAML flow value (JSON) for --set."""
    return value if isinstance(value, str) else json.dumps(value)


def render_product(folder: Path, parameter_set: str) -> Path:
    """The data product, a storage and an output port over it, rendered as `meshbot new` does."""
    product, storage, port = PARAMETER_SETS[parameter_set]
    use_example = parameter_set != "required-only"
    new(folder, "dataproduct", product, use_example)
    new(folder, "sqlite-storage", storage, use_example)
    new(folder, "sqlite-outputport", port, use_example)
    return folder


def requests_of(descriptor: Descriptor) -> list[dict[str, Any]]:
    """The DATAPRODUCT_DESCRIPTOR request and one COMPONENT_DESCRIPTOR request per component."""
    return [data_product_request(descriptor.data),
            *(component_request(descriptor.data, component["id"]) for component in descriptor.components)]


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module", params=list(PARAMETER_SETS))
def rendered(request, tmp_path_factory) -> Path:
    return render_product(tmp_path_factory.mktemp(request.param) / "product", request.param)


# --- the scaffold parser itself ----------------------------------------------------------------------


def scaffold_descriptor() -> dict[str, Any]:
    """A data product a scaffold adapter accepts: one storage and one output port over it."""
    storage = {
        "kind": "storage", "id": "urn:dmb:cmp:health:vax:0:store", "name": "Store", "description": "Raw",
        "version": "0.0.0", "infrastructureTemplateId": "urn:dmb:itm:store:0", "dependsOn": [], "tags": [],
        "specific": {"tables": []},
    }
    port = {
        "kind": "outputport", "id": "urn:dmb:cmp:health:vax:0:port", "name": "Port", "description": "View",
        "version": "0.0.0", "infrastructureTemplateId": "urn:dmb:itm:port:0", "dependsOn": [storage["id"]],
        "outputPortType": "SQL", "creationDate": "2024-05-01T10:00:00.000Z",
        "dataContract": {"schema": [{"name": "code", "dataType": "varchar", "dataLength": 3,
                                     "tags": [{"tagFQN": "PII", "source": "Classification"}]}]},
        "tags": [], "sampleData": {}, "semanticLinking": [], "specific": {"viewName": "v"},
        "dataSharingAgreement": {"purpose": "Reporting"},
    }
    return {
        "id": "urn:dmb:dp:health:vax:0", "name": "Vax", "description": "Vaccinations", "kind": "dataproduct",
        "domain": "health", "version": "0.1.0", "environment": "development", "dataProductOwner": "user:ann",
        "ownerGroup": "ann", "devGroup": "group:dev", "tags": [], "specific": {}, "billing": {},
        "components": [storage, port],
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["components"][1].update(semanticLinking={}),
         "components[1].semanticLinking: expected a list, found a mapping"),
        (lambda d: d["components"][1].pop("semanticLinking"), "components[1].semanticLinking: field required"),
        (lambda d: d["components"][1].update(semanticLinking=None), "components[1].semanticLinking: may not be null"),
        (lambda d: d["components"][1]["dataContract"]["schema"][0].update(dataLength="long"),
         "components[1].dataContract.schema[0].dataLength: expected an integer, found a string"),
        (lambda d: d["components"][1]["dataContract"]["schema"][0].update(dataType="INTEGER"),
         "components[1].dataContract.schema[0].dataType: 'INTEGER' is not a valid OpenMetadata data type"),
        (lambda d: d["components"][1]["dataContract"].pop("schema"),
         "components[1].dataContract.schema: field required"),
        (lambda d: d["tags"].append({"tagFQN": "PII", "source": "Tag"}),
         "tags[0].source: expected one of Classification, Glossary, found 'Tag'"),
        (lambda d: d["components"][0].pop("specific"), "components[0].specific: field required"),
        (lambda d: d["components"][0].pop("tags"), "components[0].tags: field required"),
        (lambda d: d["components"][0].update(kind="Storage"), "components[0].kind: unknown component kind 'Storage'"),
        (lambda d: d["components"][1].update(creationDate="yesterday"),
         "components[1].creationDate: expected a date-time, found 'yesterday'"),
        (lambda d: d.pop("devGroup"), "devGroup: field required"),
        (lambda d: d.update(version=1), "version: expected a string, found an integer"),
        (lambda d: d.update(kind="DataProduct"), "kind: expected 'dataproduct', found 'DataProduct'"),
    ],
)
def test_the_scaffold_parser_refuses_what_the_scaffold_models_refuse(change, problem):
    assert data_product_problems(scaffold_descriptor()) == []
    descriptor = scaffold_descriptor()
    change(descriptor)
    assert problem in data_product_problems(descriptor)


def test_the_scaffold_parser_reads_both_request_shapes():
    descriptor = scaffold_descriptor()
    port = "urn:dmb:cmp:health:vax:0:port"
    assert request_problems(component_request(descriptor, port)) == []
    assert request_problems(data_product_request(descriptor, remove_data=True)) == []
    assert request_problems(component_request(descriptor, "urn:dmb:cmp:health:vax:0:gone")) == [
        "descriptor.componentIdToProvision: no component has id 'urn:dmb:cmp:health:vax:0:gone'"]
    assert request_problems({"descriptorKind": "COMPONENT", "descriptor": "{}"}) == [
        "descriptorKind: expected one of DATAPRODUCT_DESCRIPTOR, COMPONENT_DESCRIPTOR, "
        "DATAPRODUCT_DESCRIPTOR_WITH_RESULTS, found 'COMPONENT'"]
    broken = copy.deepcopy(descriptor)
    broken["components"][1]["semanticLinking"] = {}
    assert request_problems(component_request(broken, port)) == [
        "descriptor.dataProduct.components[1].semanticLinking: expected a list, found a mapping"]


# --- what the templates and the example render -------------------------------------------------------


def test_every_rendered_descriptor_passes_the_scaffold_parser_in_both_request_shapes(rendered):
    for environment in ("development", "production"):
        descriptor = assemble(DirectoryReader(rendered), environment)
        assert len(descriptor.components) == 2
        for body in requests_of(descriptor):
            assert request_problems(body) == [], body["descriptorKind"]


@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_bundled_example_passes_the_scaffold_parser_in_both_request_shapes(environment):
    descriptor = assemble(DirectoryReader(EXAMPLE_DATA_PRODUCT), environment)
    for body in requests_of(descriptor):
        assert request_problems(body) == [], body["descriptorKind"]


def entities_of(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The System and the Components of a data product folder."""
    system = load_yaml(folder / "catalog-info.yaml")
    components = [load_yaml(path) for path in sorted(folder.glob("components/*/catalog-info.yaml"))]
    return system, components


def test_spec_mesh_holds_what_meshbot_derives_so_witboost_reads_the_same_descriptor(rendered):
    """Witboost builds the descriptor from spec.mesh alone; meshbot derives name, description, kind and devGroup
    from metadata and spec when spec.mesh lacks them. The entities write them, so the two agree."""
    assert_spec_mesh_is_the_descriptor(rendered)


def test_the_bundled_example_holds_in_spec_mesh_what_meshbot_derives():
    assert_spec_mesh_is_the_descriptor(EXAMPLE_DATA_PRODUCT)


def assert_spec_mesh_is_the_descriptor(folder: Path) -> None:
    """The System's and the Components' spec.mesh name, description, kind, devGroup and domain as assembled."""
    system, components = entities_of(folder)
    descriptor = assemble(DirectoryReader(folder))
    mesh = system["spec"]["mesh"]
    assert {key: mesh.get(key) for key in ("name", "description", "devGroup")} == {
        key: descriptor.data[key] for key in ("name", "description", "devGroup")}
    assert mesh["description"] == system["metadata"]["description"]
    assert system["spec"]["domain"] == f"domain:{descriptor.data['domain']}"
    by_id = {component["id"]: component for component in descriptor.components}
    for entity in components:
        mesh = entity["spec"]["mesh"]
        [assembled] = [c for c in by_id.values() if c["id"].endswith(":" + entity["metadata"]["name"].split(".")[-1])]
        assert mesh["kind"] == entity["spec"]["type"] == assembled["kind"]
        assert (mesh["name"], mesh["description"]) == (assembled["name"], assembled["description"])
        assert mesh["description"] == entity["metadata"]["description"]
        assert entity["spec"]["domain"] == system["spec"]["domain"]
        assert mesh["fullyQualifiedName"].endswith(" - " + mesh["name"])
        if mesh["kind"] == "outputport":
            assert mesh["semanticLinking"] == [] and isinstance(mesh["dataSharingAgreement"], dict)


def test_rendered_data_products_pass_every_builtin_policy(rendered):
    policies = load_policies()
    for environment in ("development", "production"):
        descriptor = assemble(DirectoryReader(rendered), environment)
        results = evaluate(descriptor, policies, descriptor.data)
        assert [(r.policy, [f.message for f in r.errors]) for r in results if r.outcome != "passed"] == []


# --- every column type and attribute, through the reference adapter -----------------------------------


def test_every_column_type_and_attribute_provisions_and_reads_back_through_the_reference_adapter(tmp_path):
    folder = render_product(tmp_path / "ledger", "every-column-and-tags")
    descriptor = assemble(DirectoryReader(folder))
    port, storage = descriptor.components  # ordered by file path
    assert storage["specific"]["tables"][0]["schema"] == ALL_COLUMNS
    assert port["dataContract"]["schema"] == ALL_COLUMNS  # the port took the storage's columns, attributes and all
    with running_adapter(tmp_path / "mesh.db") as adapter:
        client = adapter.client()
        for stage in build_plan(descriptor).stages:
            for component_id in stage:
                validation = client.validate(component_request(descriptor.data, component_id))
                assert validation.valid, validation.errors
                result = client.provision(component_request(descriptor.data, component_id))
                assert result.ok, (result.message, result.details)
        for component in descriptor.components:
            catalog_info = load_yaml(folder / descriptor.component_files[component["id"]])
            reverse = client.reverse_provision(reverse_provisioning_request(
                component["useCaseTemplateId"], "development", {}, catalog_info))
            assert reverse.ok, reverse.message
            for dotted, proposed in reverse.updates.items():
                current = catalog_info
                for key in dotted.split("."):
                    current = current[key]
                assert proposed == current, (component["id"], dotted)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"name": "code", "dataType": "VARCHAR"},
         "parameter 'columns[0]': a CHAR, VARCHAR, BINARY or VARBINARY column needs a dataLength"),
        ({"name": "code", "dataType": "TEXT", "dataLength": 3},
         "parameter 'columns[0]': only CHAR, VARCHAR, BINARY and VARBINARY columns take a dataLength"),
        ({"name": "amount", "dataType": "DECIMAL", "scale": 2}, "parameter 'columns[0]': a scale needs a precision"),
        ({"name": "amount", "dataType": "DOUBLE", "precision": 10},
         "parameter 'columns[0]': only DECIMAL, NUMERIC and NUMBER columns take a precision and a scale"),
        ({"name": "payload", "dataType": "JSON"}, "parameter 'columns[0]': a JSON column needs a jsonSchema"),
        ({"name": "amount", "dataType": "DECIMAL", "precision": 0},
         "parameter 'columns[0].precision': 0 is less than the minimum of 1"),
    ],
)
def test_column_attributes_that_do_not_fit_the_type_are_refused_in_one_line(column, message):
    for name in ("sqlite-storage", "sqlite-outputport"):
        template = find_template(load_templates(), name)
        with pytest.raises(InputErrors) as raised:
            resolve_parameters(template, {"columns": [column]}, use_example=True)
        assert [str(error) for error in raised.value.errors] == [message]
