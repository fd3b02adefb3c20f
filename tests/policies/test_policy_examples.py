"""The example policies (re-expressions of the witboost policies gallery) and every shipped policy file."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from policies.engine import evaluate
from policies.loader import BUILTIN_DIRECTORY, EXAMPLES_DIRECTORY, load_policies, load_policy_file
from policies.model import Policy, PolicyResult, Severity, Status, Target
from tests.descriptor_fixtures import FIXTURES, load_descriptor

POLICY_FILES = sorted([*BUILTIN_DIRECTORY.glob("*.yaml"), *EXAMPLES_DIRECTORY.glob("*.yaml")])
EXAMPLE_FILES = sorted(EXAMPLES_DIRECTORY.glob("*.yaml"))

# Component indexes in snowflake-valid.yaml and technology-invalid.yaml.
STORAGE, AIRBYTE, DBT, OUTPUT_PORT, AIRFLOW = 0, 1, 2, 3, 4


def with_data(descriptor: Descriptor, data: dict[str, Any]) -> Descriptor:
    return Descriptor(data=data, environment=descriptor.environment, sources=descriptor.sources)


@cache
def example(policy_id: str) -> Policy:
    """An example policy, loaded once (checking a schema takes a tenth of a second)."""
    return load_policy_file(EXAMPLES_DIRECTORY / f"{policy_id}.yaml")


def only_result(policy: Policy, descriptor: Descriptor) -> PolicyResult:
    results = evaluate(descriptor, [policy])
    assert len(results) == 1, [result.resource for result in results]
    return results[0]


def failures(result: PolicyResult) -> dict[str, str]:
    """path -> message of each failure (each path fails once in these tests)."""
    found = {failure.path: failure.message for failure in result.errors}
    assert len(found) == len(result.errors), result.errors
    return found


def schemas_in(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from schemas_in(value)


# --- every policy file ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_policy_file_loads_and_its_schema_compiles_with_both_validators(path):
    policy = load_policy_file(path)
    assert policy.id == path.stem
    if policy.schema is None:
        assert policy.builtin
        return
    jsonschema.Draft202012Validator.check_schema(policy.schema)
    jsonschema_rs.Draft202012Validator(policy.schema)
    assert policy.validator is not None


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_x_messages_are_text_and_never_beside_a_ref(path):
    # The engine looks for x-message along the resolved location of the failing keyword, so an
    # x-message in a subschema that only holds a $ref would never be shown.
    policy = load_policy_file(path)
    for schema in schemas_in(policy.schema):
        if "x-message" in schema:
            assert isinstance(schema["x-message"], str) and schema["x-message"].strip()
            assert "$ref" not in schema, schema


def test_the_examples_load_together_with_the_builtins_without_clashing_ids():
    policies = load_policies([EXAMPLES_DIRECTORY])
    ids = [policy.id for policy in policies]
    assert len(ids) == len(set(ids))
    assert {path.stem for path in EXAMPLE_FILES} <= set(ids)
    assert "data-product-specification" in ids


def test_there_are_the_seven_gallery_examples_and_the_readme_lists_each():
    assert {path.stem for path in EXAMPLE_FILES} == {
        "snowflake-storage",
        "snowflake-output-port",
        "dbt-workload",
        "airbyte-workload",
        "airflow-workload",
        "gdpr-pii",
        "sample-data-presence",
    }
    readme = (EXAMPLES_DIRECTORY / "README.md").read_text()
    for path in EXAMPLE_FILES:
        assert f"`{path.name}`" in readme
    assert "meshbot check PATH --policies policies/examples" in readme


@pytest.mark.parametrize(
    ("policy_id", "target", "severity"),
    [
        ("snowflake-storage", Target.COMPONENT, Severity.ERROR),
        ("snowflake-output-port", Target.COMPONENT, Severity.ERROR),
        ("dbt-workload", Target.COMPONENT, Severity.ERROR),
        ("airbyte-workload", Target.COMPONENT, Severity.ERROR),
        ("airflow-workload", Target.COMPONENT, Severity.ERROR),
        ("gdpr-pii", Target.DATA_PRODUCT, Severity.ERROR),
        ("sample-data-presence", Target.COMPONENT, Severity.WARNING),
    ],
)
def test_example_target_severity_and_status(policy_id, target, severity):
    policy = example(policy_id)
    assert (policy.target, policy.severity, policy.status) == (target, severity, Status.ENABLED)
    if target is Target.COMPONENT:
        assert policy.selector.kind and policy.selector.infrastructureTemplateId


# --- the whole set on the two Snowflake data products ------------------------------------------------


def test_the_valid_snowflake_data_product_passes_every_example_and_each_selects_its_component():
    descriptor = load_descriptor("snowflake-valid.yaml")
    results = evaluate(descriptor, [load_policy_file(path) for path in EXAMPLE_FILES])
    assert [(r.policy, r.outcome) for r in results if r.outcome != "passed"] == []
    selected = {(result.policy, result.resource) for result in results}
    component = "urn:dmb:cmp:finance:cashflow:1:"
    assert selected == {
        ("airbyte-workload", component + "airbyte-ingestion"),
        ("airflow-workload", component + "airflow-schedule"),
        ("dbt-workload", component + "dbt-positions"),
        ("gdpr-pii", "urn:dmb:dp:finance:cashflow:1"),
        ("sample-data-presence", component + "snowflake-output-port"),
        ("snowflake-output-port", component + "snowflake-output-port"),
        ("snowflake-storage", component + "snowflake-storage"),
    }


def test_no_component_policy_selects_components_of_other_technologies():
    descriptor = load_descriptor("minimal-valid.yaml")
    results = evaluate(descriptor, [load_policy_file(path) for path in EXAMPLE_FILES])
    assert [(result.policy, result.outcome) for result in results] == [("gdpr-pii", "passed")]


@pytest.mark.parametrize(
    ("policy_id", "resource", "expected"),
    [
        (
            "snowflake-storage",
            "snowflake-storage",
            {
                "components[0].storageType": "missing required field 'storageType'",
                "components[0].specific.tables[0].schema[1].scale": "scale must be lower than its precision",
                "components[0].specific.tables[0].schema[2].dataLength": "a TEXT column needs dataLength",
                "components[0].specific.tables[0].schema[3].dataType": "must be TEXT, NUMBER, DATE or BOOLEAN",
            },
        ),
        (
            "airbyte-workload",
            "airbyte-ingestion",
            {"components[1].specific.source.connectionConfiguration.format": "must be csv, json, jsonl"},
        ),
        (
            "dbt-workload",
            "dbt-positions",
            {
                "components[2].specific.dbtProjectName": "lowercase letters and underscores",
                "components[2].specific.secrets.secretsProvider": "must be AWS, GCP or Azure",
            },
        ),
        (
            "snowflake-output-port",
            "snowflake-output-port",
            {
                "components[3].dataContract.schema[0].dataType": "must be TEXT, NUMBER, DATE or BOOLEAN",
                "components[3].specific.tableName": "missing required field 'tableName'",
            },
        ),
        (
            "sample-data-presence",
            "snowflake-output-port",
            {"components[3].sampleData.rows": "at least 5 rows"},
        ),
        (
            "airflow-workload",
            "airflow-schedule",
            {"components[4].specific.sourcePath": "sourcePath must be source/"},
        ),
        (
            "gdpr-pii",
            None,
            {"components": "tagged GDPR, so at least one column in the data contract of an output port"},
        ),
    ],
)
def test_each_example_reports_the_mistakes_of_the_invalid_snowflake_data_product(policy_id, resource, expected):
    result = only_result(example(policy_id), load_descriptor("technology-invalid.yaml"))
    expected_resource = f"urn:dmb:cmp:finance:cashflow:1:{resource}" if resource else "urn:dmb:dp:finance:cashflow:1"
    assert result.resource == expected_resource
    assert result.outcome == "failed"
    found = failures(result)
    assert set(found) == set(expected)
    for path, fragment in expected.items():
        assert fragment in found[path], (path, found[path])


def test_failures_point_at_the_line_where_the_value_was_written():
    result = only_result(example("airflow-workload"), load_descriptor("technology-invalid.yaml"))
    [failure] = result.errors
    lines = (FIXTURES / "technology-invalid.yaml").read_text().splitlines()
    line = next(number for number, text in enumerate(lines, 1) if "sourcePath: src/" in text)
    assert failure.position == SourcePosition("technology-invalid.yaml", line, lines[line - 1].index("src/") + 1)


def test_technology_failures_block_but_missing_sample_data_only_warns():
    descriptor = load_descriptor("technology-invalid.yaml")
    assert only_result(example("snowflake-output-port"), descriptor).blocking
    sample = only_result(example("sample-data-presence"), descriptor)
    assert sample.outcome == "failed" and not sample.blocking


# --- each example, one rule at a time --------------------------------------------------------------


def valid_with(index: int | None, change: Any) -> Descriptor:
    """snowflake-valid.yaml with change applied to component index (or to the root when None)."""
    descriptor = load_descriptor("snowflake-valid.yaml")
    data = copy.deepcopy(descriptor.data)
    change(data if index is None else data["components"][index])
    return with_data(descriptor, data)


def column(component: dict[str, Any], number: int) -> dict[str, Any]:
    return component["specific"]["tables"][0]["schema"][number]


def set_number(precision: Any, scale: Any) -> Any:
    def change(component: dict[str, Any]) -> None:
        column(component, 2).update(precision=precision, scale=scale)
    return change


@pytest.mark.parametrize(("precision", "scale"), [(1, 0), (10, 9), (38, 37), (38, 0), (18, 2)])
def test_snowflake_number_scale_up_to_precision_minus_one_passes(precision, scale):
    result = only_result(example("snowflake-storage"), valid_with(STORAGE, set_number(precision, scale)))
    assert result.outcome == "passed", result.errors


@pytest.mark.parametrize(
    ("precision", "scale", "failing", "fragment"),
    [
        (1, 1, "scale", "lower than its precision"),
        (38, 38, "scale", "lower than its precision"),
        (10, -1, "scale", "scale must be an integer from 0"),
        (39, 2, "precision", "precision must be an integer from 1 to 38"),
        (0, 0, "precision", "precision must be an integer from 1 to 38"),
        (18.5, 2, "precision", "precision must be an integer from 1 to 38"),
    ],
)
def test_snowflake_number_precision_and_scale_out_of_bounds_fail(precision, scale, failing, fragment):
    result = only_result(example("snowflake-storage"), valid_with(STORAGE, set_number(precision, scale)))
    found = failures(result)
    path = f"components[0].specific.tables[0].schema[2].{failing}"
    assert list(found) == [path]
    assert fragment in found[path]


def test_snowflake_number_without_precision_and_scale_fails_on_both():
    def change(component: dict[str, Any]) -> None:
        del column(component, 2)["precision"], column(component, 2)["scale"]

    found = failures(only_result(example("snowflake-storage"), valid_with(STORAGE, change)))
    prefix = "components[0].specific.tables[0].schema[2]"
    assert found == {
        f"{prefix}.precision": "a NUMBER column needs precision and scale",
        f"{prefix}.scale": "a NUMBER column needs precision and scale",
    }


@pytest.mark.parametrize(("length", "passes"), [(1, True), (16777216, True), (0, False), (16777217, False)])
def test_snowflake_text_length_bounds(length, passes):
    def change(component: dict[str, Any]) -> None:
        column(component, 0)["dataLength"] = length

    result = only_result(example("snowflake-storage"), valid_with(STORAGE, change))
    assert result.outcome == ("passed" if passes else "failed")
    if not passes:
        path = "components[0].specific.tables[0].schema[0].dataLength"
        assert "from 1 to 16777216" in failures(result)[path]


def test_snowflake_data_types_are_case_insensitive_and_their_conditions_still_apply():
    def change(component: dict[str, Any]) -> None:
        column(component, 0).update(dataType="text")
        del column(component, 0)["dataLength"]

    found = failures(only_result(example("snowflake-storage"), valid_with(STORAGE, change)))
    assert found == {"components[0].specific.tables[0].schema[0].dataLength": "a TEXT column needs dataLength"}


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c["specific"].update(tables=[]), "components[0].specific.tables", "at least one table"),
        (lambda c: c["specific"]["tables"][0].update(schema=[]), "components[0].specific.tables[0].schema",
         "at least one column"),
        (lambda c: c.update(platform="snowflake"), "components[0].platform", "platform must be Snowflake"),
        (lambda c: c.pop("useCaseTemplateId"), "components[0].useCaseTemplateId", "missing required field"),
    ],
)
def test_snowflake_storage_rules(change, path, fragment):
    found = failures(only_result(example("snowflake-storage"), valid_with(STORAGE, change)))
    assert list(found) == [path]
    assert fragment in found[path]


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c.update(dependsOn=[]), "components[3].dependsOn", "depend on at least one component"),
        (lambda c: c.pop("dependsOn"), "components[3].dependsOn", "missing required field"),
        (lambda c: c["dataContract"].update(schema=[]), "components[3].dataContract.schema", "at least one column"),
        (lambda c: c.update(outputPortType="Files"), "components[3].outputPortType", "must be SQL"),
        (lambda c: c["dataContract"].update(endpoint="ftp://files.example.com"),
         "components[3].dataContract.endpoint", "http:// or https:// URL"),
        (lambda c: c["dataSharingAgreement"].update(purpose=["reporting"]),
         "components[3].dataSharingAgreement.purpose", "not of types"),
        (lambda c: c["dataContract"]["schema"][0]["tags"][0].update(source="Classification"),
         "components[3].dataContract.schema[0].tags[0].source", "source must be Tag or Glossary"),
    ],
)
def test_snowflake_output_port_rules(change, path, fragment):
    found = failures(only_result(example("snowflake-output-port"), valid_with(OUTPUT_PORT, change)))
    assert list(found) == [path]
    assert fragment in found[path]


def test_snowflake_output_port_accepts_null_optional_fields_and_extra_fields():
    def change(component: dict[str, Any]) -> None:
        component.update(fullyQualifiedName=None, customLabel="kept")
        component["dataContract"].update(endpoint=None, termsAndConditions=None)
        component.pop("dataSharingAgreement")

    assert only_result(example("snowflake-output-port"), valid_with(OUTPUT_PORT, change)).outcome == "passed"


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c["specific"]["source"]["connectionConfiguration"]["provider"].update(user_agent="yes"),
         "components[1].specific.source.connectionConfiguration.provider.user_agent", "not of type \"boolean\""),
        (lambda c: c["specific"]["source"]["connectionConfiguration"]["provider"].update(storage="https"),
         "components[1].specific.source.connectionConfiguration.provider.storage", "HTTPS, GCS, S3"),
        (lambda c: c["specific"].pop("destination"), "components[1].specific.destination", "missing required"),
        (lambda c: c.update(version="1.0.0-rc1"), "components[1].version", "numbers only"),
    ],
)
def test_airbyte_rules(change, path, fragment):
    found = failures(only_result(example("airbyte-workload"), valid_with(AIRBYTE, change)))
    assert list(found) == [path]
    assert fragment in found[path]


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c["specific"]["secrets"].update(region="eu-west-1"), "components[2].specific.secrets.region",
         "capitals, digits and underscores"),
        (lambda c: c["specific"]["cloudStorage"].update(storageProvider="S3"),
         "components[2].specific.cloudStorage.storageProvider", "must be AWS, GCP or Azure"),
        (lambda c: c["specific"].pop("database"), "components[2].specific.database", "missing required"),
    ],
)
def test_dbt_rules(change, path, fragment):
    found = failures(only_result(example("dbt-workload"), valid_with(DBT, change)))
    assert list(found) == [path]
    assert fragment in found[path]


def test_dbt_secrets_and_cloud_storage_are_optional():
    def change(component: dict[str, Any]) -> None:
        del component["specific"]["secrets"], component["specific"]["cloudStorage"]

    assert only_result(example("dbt-workload"), valid_with(DBT, change)).outcome == "passed"


def test_dbt_policy_selects_both_dbt_provisioners():
    def change(component: dict[str, Any]) -> None:
        component["infrastructureTemplateId"] = "urn:dmb:itm:dbt-provisioner:1"

    assert only_result(example("dbt-workload"), valid_with(DBT, change)).resource.endswith(":dbt-positions")


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c["specific"].update(bucketName="aws-mwaa-dags"), "components[4].specific.bucketName",
         "the platform's Airflow DAG bucket"),
        (lambda c: c["specific"].update(destinationPath="dags"), "components[4].specific.destinationPath",
         "must be dags/"),
        (lambda c: c.update(name="Nightly/Schedule"), "components[4].name", "letters, digits, spaces"),
        (lambda c: c.pop("fullyQualifiedName"), "components[4].fullyQualifiedName", "missing required"),
        (lambda c: c["specific"].pop("scheduleCron"), "components[4].specific.scheduleCron", "missing required"),
    ],
)
def test_airflow_rules(change, path, fragment):
    found = failures(only_result(example("airflow-workload"), valid_with(AIRFLOW, change)))
    assert list(found) == [path]
    assert fragment in found[path]


def test_gdpr_without_the_gdpr_tag_needs_no_pii_column():
    def change(data: dict[str, Any]) -> None:
        data["tags"] = []
        for entry in data["components"][OUTPUT_PORT]["dataContract"]["schema"]:
            entry["tags"] = []

    assert only_result(example("gdpr-pii"), valid_with(None, change)).outcome == "passed"


def test_gdpr_tags_match_in_any_case():
    def change(data: dict[str, Any]) -> None:
        data["tags"][0]["tagFQN"] = "Gdpr"
        data["components"][OUTPUT_PORT]["dataContract"]["schema"][0]["tags"][0]["tagFQN"] = "pii"

    assert only_result(example("gdpr-pii"), valid_with(None, change)).outcome == "passed"


def test_gdpr_only_output_port_columns_count():
    def change(data: dict[str, Any]) -> None:
        data["components"][OUTPUT_PORT]["dataContract"]["schema"][0]["tags"] = []
        column(data["components"][STORAGE], 0)["tags"] = [
            {"tagFQN": "PII", "source": "Tag", "labelType": "Manual", "state": "Confirmed"}
        ]

    found = failures(only_result(example("gdpr-pii"), valid_with(None, change)))
    assert list(found) == ["components"]
    assert "must be tagged PII" in found["components"]


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda c: c.pop("sampleData"), "components[3].sampleData", "needs sampleData"),
        (lambda c: c.update(sampleData=None), "components[3].sampleData", "must be an object with columns"),
        (lambda c: c["sampleData"].pop("columns"), "components[3].sampleData.columns", "needs columns"),
        (lambda c: c["sampleData"].update(columns=[]), "components[3].sampleData.columns", "must name the"),
        (lambda c: c["sampleData"]["rows"].pop(), "components[3].sampleData.rows", "at least 5 rows"),
        (lambda c: c["sampleData"]["rows"].__setitem__(2, []), "components[3].sampleData.rows[2]",
         "one per column"),
        (lambda c: c["dataContract"].update(schema=[]), "components[3].dataContract.schema", "at least one column"),
    ],
)
def test_sample_data_rules(change, path, fragment):
    found = failures(only_result(example("sample-data-presence"), valid_with(OUTPUT_PORT, change)))
    assert list(found) == [path]
    assert fragment in found[path]


def test_sample_data_columns_are_not_compared_with_the_schema():
    # JSON Schema cannot compare two values: a sample whose columns differ from the data contract's,
    # or whose rows are shorter than its columns, passes (the policy description says so).
    def change(component: dict[str, Any]) -> None:
        component["sampleData"]["columns"] = ["something", "else"]
        component["sampleData"]["rows"] = [["x"]] * 6

    assert only_result(example("sample-data-presence"), valid_with(OUTPUT_PORT, change)).outcome == "passed"
    assert "cannot compare" in example("sample-data-presence").description
