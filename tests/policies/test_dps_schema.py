"""The builtin Data Product Specification policy: the open DPS v0.0.1 (CUE) as JSON Schema."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from policies.engine import evaluate
from policies.loader import BUILTIN_DIRECTORY, load_policy_file
from policies.model import PolicyResult, Severity, Status, Target
from tests.descriptor_fixtures import FIXTURES, load_descriptor

POLICY = load_policy_file(BUILTIN_DIRECTORY / "data-product-specification.yaml")

# Component indexes in snowflake-valid.yaml.
STORAGE, AIRBYTE, OUTPUT_PORT, OBSERVABILITY = 0, 1, 3, 5

Change = Callable[[dict[str, Any]], Any]


def check(descriptor: Descriptor) -> PolicyResult:
    [result] = evaluate(descriptor, [POLICY])
    return result


def failures(result: PolicyResult) -> dict[str, str]:
    found = {failure.path: failure.message for failure in result.errors}
    assert len(found) == len(result.errors), result.errors
    return found


def changed(change: Change, name: str = "snowflake-valid.yaml") -> PolicyResult:
    """The policy's result on a fixture after change(data)."""
    descriptor = load_descriptor(name)
    data = copy.deepcopy(descriptor.data)
    change(data)
    return check(Descriptor(data=data, environment=descriptor.environment, sources=descriptor.sources))


def output_port_column(data: dict[str, Any], number: int = 0) -> dict[str, Any]:
    return data["components"][OUTPUT_PORT]["dataContract"]["schema"][number]


def test_policy_header():
    assert POLICY.id == "data-product-specification"
    assert (POLICY.target, POLICY.severity, POLICY.status) == (Target.DATA_PRODUCT, Severity.WARNING, Status.ENABLED)
    assert POLICY.schema is not None and "$defs" in POLICY.schema


@pytest.mark.parametrize("name", ["snowflake-valid.yaml", "minimal-valid.yaml"])
def test_valid_descriptors_pass(name):
    result = check(load_descriptor(name))
    assert result.outcome == "passed", result.errors
    assert result.resource.startswith("urn:dmb:dp:")


def test_every_violation_of_the_invalid_descriptor_is_reported_where_it_is():
    result = check(load_descriptor("dps-invalid.yaml"))
    assert result.outcome == "failed"
    assert not result.blocking  # a warning never blocks
    port = "components[1].dataContract.schema"
    expected = {
        "id": "a data product id must be a URN urn:dmb:dp:<domain>:<name>:<major version>",
        "version": "version must be major.minor.patch",
        "contacts": "missing required field 'contacts'",
        "maturity": "maturity must be Tactical or Strategic",
        "securityInfo.GDPR": "GDPR must be Yes or No",
        "tags[0].source": "a tag's source must be Classification (OpenMetadata's name, Tag in the specification) "
                          "or Glossary",
        "components[0].kind": "a component's kind must be outputport, workload, storage or observability",
        "components[1].dependsOn[0]": "a component id must be a URN urn:dmb:cmp:",
        f"{port}[0].arrayDataType": "a column of dataType ARRAY needs arrayDataType",
        f"{port}[1].dataLength": "a column of dataType CHAR, VARCHAR, BINARY or VARBINARY needs dataLength",
        f"{port}[2].children[1].dataType": "missing required field 'dataType'",
        f"{port}[3].jsonSchema": "a column of dataType JSON needs jsonSchema",
        f"{port}[4].dataType": "must be an OpenMetadata data type",
        "components[2].endpoint": "missing required field 'endpoint'",
        "components[3].specific": "missing required field 'specific'",
        "components[3].connectionType": "connectionType must be HouseKeeping or DataPipeline",
    }
    found = failures(result)
    assert set(found) == set(expected)
    for path, fragment in expected.items():
        assert fragment in found[path], (path, found[path])


def test_failure_positions_point_into_the_descriptor_file():
    result = check(load_descriptor("dps-invalid.yaml"))
    positions = {failure.path: failure.position for failure in result.errors}
    lines = (FIXTURES / "dps-invalid.yaml").read_text().splitlines()
    line = next(number for number, text in enumerate(lines, 1) if text.startswith("version:"))
    assert positions["version"] == SourcePosition("dps-invalid.yaml", line, len("version: ") + 1)
    # a missing field is reported at the mapping that lacks it
    assert positions["components[2].endpoint"].line == next(
        number for number, text in enumerate(lines, 1) if text.endswith(":monitor")
    )


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda d: d.update(components=[]), "components", "a data product needs at least one component"),
        (lambda d: d.pop("components"), "components", "missing required field 'components'"),
        (lambda d: d.update(kind="system"), "kind", "a data product's kind must be dataproduct"),
        (lambda d: d.update(status="Archived"), "status", "status must be Draft, Published or Retired"),
        (lambda d: d.update(email=42), "email", 'not of types "null", "string"'),
        (lambda d: d["supportSLA"].pop("endOfSupport"), "supportSLA.endOfSupport", "missing required field"),
        (lambda d: d["businessInfo"].update(pricingType="Free"), "businessInfo.pricingType",
         "pricingType must be PayPerUse or Subscription"),
        (lambda d: d["businessInfo"].update(valueGeneration="Profit"), "businessInfo.valueGeneration",
         "Foundation, RevenueGeneration or OperationMonitoring"),
        (lambda d: d["securityInfo"].update(visibility="Everyone"), "securityInfo.visibility",
         "visibility must be Global or Department"),
        (lambda d: d["securityInfo"].update(confidentiality="TopSecret"), "securityInfo.confidentiality",
         "Public, Internal, Confidential, Restricted or Secret"),
        (lambda d: d["contacts"].pop("suportContact"), "contacts.suportContact", "missing required field"),
        (lambda d: d.update(targetConsumption="Analytics"), "targetConsumption", "not of types"),
        (lambda d: d["businessConcepts"][0].update(labelType="Imported"), "businessConcepts[0].labelType",
         "labelType must be Manual, Propagated, Automated or Derived"),
        (lambda d: d["tags"][0].update(state="Rejected"), "tags[0].state", "state must be Suggested or Confirmed"),
        (lambda d: d["tags"][0].pop("tagFQN"), "tags[0].tagFQN", "missing required field"),
        (lambda d: d.update(specific=None), "specific", 'not of type "object"'),
    ],
)
def test_data_product_rules(change, path, fragment):
    found = failures(changed(change))
    assert list(found) == [path]
    assert fragment in found[path]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(kind="DataProduct", status="draft", maturity="TACTICAL"),
        lambda d: d.update(version="0.2.0-SNAPSHOT-2"),
        lambda d: d.update(email=None, fullyQualifiedName=None, billing=None, targetConsumption=None),
        lambda d: d["securityInfo"].update(GDPR="no", confidentiality=None, visibility=None),
        lambda d: d.update(domainId="urn:dmb:dmn:finance", projectOwner="user:someone", anything={"else": 1}),
        lambda d: [d.pop(key) for key in ("tags", "businessConcepts", "specific")],
    ],
    ids=["case-insensitive-enums", "snapshot-version", "nulls", "gdpr-no", "extra-fields", "defaulted-lists"],
)
def test_data_product_variations_that_pass(change):
    result = changed(change)
    assert result.outcome == "passed", result.errors


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda d: output_port_column(d).update(dataType="ARRAY", arrayDataType="LIST"),
         "components[3].dataContract.schema[0].arrayDataType", "must be an OpenMetadata data type"),
        (lambda d: output_port_column(d).update(dataType="char", dataLength="16"),
         "components[3].dataContract.schema[0].dataLength", 'not of type "number"'),
        (lambda d: output_port_column(d).update(constraint="FOREIGN_KEY"),
         "components[3].dataContract.schema[0].constraint", "NULL, NOT_NULL, UNIQUE or PRIMARY_KEY"),
        (lambda d: output_port_column(d).update(dataType="STRUCT", children=[{"name": "x", "dataType": "JSON"}]),
         "components[3].dataContract.schema[0].children[0].jsonSchema", "a column of dataType JSON needs jsonSchema"),
        (lambda d: output_port_column(d).update(
            dataType="map", children=[{"name": "x", "dataType": "struct", "children": [{"name": "y"}]}]),
         "components[3].dataContract.schema[0].children[0].children[0].dataType", "missing required field"),
        (lambda d: output_port_column(d).pop("name"), "components[3].dataContract.schema[0].name",
         "missing required field 'name'"),
        (lambda d: output_port_column(d).update(ordinalPosition="first"),
         "components[3].dataContract.schema[0].ordinalPosition", "not of types"),
        (lambda d: d["components"][OUTPUT_PORT]["dataContract"].update(endpoint="https://my-host.example.com"),
         "components[3].dataContract.endpoint", "endpoint must be an http:// or https:// URL"),
        (lambda d: d["components"][OUTPUT_PORT]["dataContract"].update(dataSharingAgreement={"billing": 5}),
         "components[3].dataContract.dataSharingAgreement.billing", "not of types"),
        (lambda d: d["components"][OUTPUT_PORT].update(sampleData={"columns": "a", "rows": []}),
         "components[3].sampleData.columns", 'not of type "array"'),
        (lambda d: d["components"][OUTPUT_PORT].update(semanticLinking="customerId"),
         "components[3].semanticLinking", "semanticLinking is text; write a list of mappings (Witboost's output port "
         "shape, what scaffold-based tech adapters parse, e.g. []) or a mapping (the Data Product Specification's "
         "shape), or null"),
        (lambda d: d["components"][OUTPUT_PORT].update(semanticLinking=1), "components[3].semanticLinking",
         "semanticLinking is a number; write a list of mappings"),
        (lambda d: d["components"][OUTPUT_PORT].update(semanticLinking=False), "components[3].semanticLinking",
         "semanticLinking is a boolean; write a list of mappings"),
        (lambda d: d["components"][OUTPUT_PORT].update(semanticLinking=[{"customerId": "x"}, "customer.id"]),
         "components[3].semanticLinking[1]",
         "semanticLinking is a list (Witboost's output port shape): each link in it must be a mapping"),
        (lambda d: d["components"][OUTPUT_PORT].update(dataSharingAgreement={"purpose": ["reporting"]}),
         "components[3].dataSharingAgreement.purpose", "not of types"),
        (lambda d: d["components"][OUTPUT_PORT]["tags"].append(
            {"tagFQN": "PII", "source": "Label", "labelType": "Manual", "state": "Confirmed"}),
         "components[3].tags[0].source", "a tag's source must be Classification (OpenMetadata's name, Tag in the "
         "specification) or Glossary"),
        (lambda d: d["components"][OUTPUT_PORT].pop("outputPortType"),
         "components[3].outputPortType", "missing required field"),
        (lambda d: d["components"][OUTPUT_PORT].update(version="1"), "components[3].version",
         "version must be major.minor.patch"),
        (lambda d: d["components"][OUTPUT_PORT].update(id="snowflake-output-port"), "components[3].id",
         "a component id must be a URN"),
    ],
)
def test_output_port_and_column_rules(change, path, fragment):
    found = failures(changed(change))
    assert list(found) == [path]
    assert fragment in found[path]


@pytest.mark.parametrize(
    "change",
    [
        # CUE's `children: [... #OM_Column]` stands for [] when missing.
        lambda d: output_port_column(d).update(dataType="STRUCT"),
        lambda d: output_port_column(d).update(dataType="Array", arrayDataType="string"),
        lambda d: output_port_column(d).update(dataType="json", jsonSchema="{}", constraint=None),
        # Columns and tags stay open: technology attributes such as precision are allowed.
        lambda d: output_port_column(d).update(precision=10, scale=2, businessTerms=[]),
        lambda d: [d["components"][OUTPUT_PORT].pop(key) for key in ("dataContract", "tags", "dependsOn", "specific")],
        lambda d: d["components"][OUTPUT_PORT].update(sampleData=None, semanticLinking={"sameAs": "x"}),
        lambda d: d["components"][OUTPUT_PORT].update(kind="OutputPort"),
        # semanticLinking: Witboost's list of mappings, the specification's mapping, or nothing.
        lambda d: d["components"][OUTPUT_PORT].update(semanticLinking=[]),
        lambda d: d["components"][OUTPUT_PORT].update(
            semanticLinking=[{"column": "customerId", "references": "urn:dmb:cmp:crm:customer:1:op"}]),
        lambda d: d["components"][OUTPUT_PORT].update(semanticLinking={}),
        lambda d: d["components"][OUTPUT_PORT].pop("semanticLinking"),
        # Witboost writes dataSharingAgreement beside dataContract; OpenMetadata calls the Tag source Classification.
        lambda d: d["components"][OUTPUT_PORT].update(dataSharingAgreement={"purpose": "Reporting", "billing": None}),
        lambda d: d["components"][OUTPUT_PORT]["tags"].append(
            {"tagFQN": "PII", "source": "Classification", "labelType": "Manual", "state": "Confirmed"}),
    ],
    ids=["struct-without-children", "array", "json", "open-column", "defaulted-fields", "nulls", "kind-case",
         "semantic-linking-empty-list", "semantic-linking-list", "semantic-linking-mapping", "semantic-linking-missing",
         "data-sharing-agreement-beside-the-contract", "classification-tag"],
)
def test_output_port_variations_that_pass(change):
    result = changed(change)
    assert result.outcome == "passed", result.errors


def test_component_kind_is_matched_in_any_case_before_its_rules_apply():
    found = failures(changed(lambda d: d["components"][OUTPUT_PORT].update(kind="OUTPUTPORT", outputPortType=None)))
    assert list(found) == ["components[3].outputPortType"]


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda d: d["components"][AIRBYTE].pop("specific"), "components[1].specific", "missing required field"),
        (lambda d: d["components"][AIRBYTE].update(readsFrom=[1]), "components[1].readsFrom[0]", "not of type"),
        (lambda d: d["components"][STORAGE].update(owners="someone"), "components[0].owners", "not of type"),
        (lambda d: d["components"][STORAGE].pop("infrastructureTemplateId"),
         "components[0].infrastructureTemplateId", "missing required field"),
        (lambda d: d["components"][OBSERVABILITY].update(fullyQualifiedName=None),
         "components[5].fullyQualifiedName", 'not of type "string"'),
        (lambda d: d["components"][OBSERVABILITY].pop("dataQuality"), "components[5].dataQuality",
         "missing required field"),
        (lambda d: d["components"][OBSERVABILITY].update(endpoint="observability.example.com"),
         "components[5].endpoint", "endpoint must be an http:// or https:// URL"),
    ],
)
def test_workload_storage_and_observability_rules(change, path, fragment):
    found = failures(changed(change))
    assert list(found) == [path]
    assert fragment in found[path]


def test_a_component_of_unknown_kind_gets_only_the_kind_error():
    def change(data: dict[str, Any]) -> None:
        data["components"][STORAGE] = {"kind": "dashboard"}

    assert list(failures(changed(change))) == ["components[0].kind"]


def test_a_component_without_kind_is_reported():
    def change(data: dict[str, Any]) -> None:
        data["components"][STORAGE].pop("kind")

    assert failures(changed(change)) == {"components[0].kind": "missing required field 'kind'"}
