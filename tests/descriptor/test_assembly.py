"""Descriptor assembly (domain.md section 2): realistic repositories, every derivation rule, every input error."""

from __future__ import annotations

import time

import pytest
from ruamel.yaml import YAML

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES, DirectoryReader, FileReader, MemoryReader
from tests.paths import SHARED_REFERENCE

REFERENCE_EXAMPLE = SHARED_REFERENCE / "witboost" / "dps-example.yaml"
DP = "urn:dmb:dp:finance:cashflow:1"
PRODUCTION = "environments/production/configurations.yaml"


def cmp(local: str, prefix: str = "urn:dmb:cmp:finance:cashflow:1") -> str:
    return f"{prefix}:{local}"


def where(descriptor, *path) -> str:
    return str(descriptor.position(tuple(path)))


# --- 1. the Data Product Specification example as a repository ------------------------------------


@pytest.fixture
def reference_example() -> dict:
    if not REFERENCE_EXAMPLE.exists():
        pytest.skip(f"the Data Product Specification example is not at {REFERENCE_EXAMPLE} (the shared reference "
                    "folder beside the repository is absent)")
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = True  # the example repeats ownerGroup and devGroup (with equal values)
    return yaml.load(REFERENCE_EXAMPLE.read_text())


def test_dps_example_assembles_to_the_specification_example(repos, reference_example):
    descriptor = assemble(DirectoryReader(repos / "dps-example"))
    got = dict(descriptor.data)
    expected = dict(reference_example)

    # Derived fields meshbot documents (domain.md section 2) that the example does not carry.
    assert got.pop("domainId") == "urn:dmb:dmn:my_domain"
    assert got.pop("projectOwner") == "dataproduct1_corp.com"

    got_components = got.pop("components")
    expected_components = expected.pop("components")
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == expected[key], key

    # meshbot orders components by file (root first, then by path); the example lists them by hand.
    assert [c["id"] for c in got_components] == sorted(c["id"] for c in expected_components)
    by_id = {c["id"]: c for c in got_components}
    for wanted in expected_components:
        component = dict(by_id[wanted["id"]])
        wanted = dict(wanted)
        # meshbot reports a component's kind as its spec.type; the example spells one `outputPort`.
        assert component.pop("kind") == wanted.pop("kind").lower()
        assert set(component) == set(wanted), wanted["id"]
        for key in wanted:
            assert component[key] == wanted[key], (wanted["id"], key)


def test_dps_example_derivations_and_positions(repos):
    descriptor = assemble(DirectoryReader(repos / "dps-example"))
    data = descriptor.data
    assert list(data)[:9] == [
        "id", "name", "fullyQualifiedName", "description", "kind", "domain", "domainId", "version", "environment"
    ]
    assert where(descriptor, "id") == "catalog-info.yaml:5:9"  # metadata.name
    assert where(descriptor, "description") == "catalog-info.yaml:6:16"  # metadata.description
    assert where(descriptor, "domain") == "catalog-info.yaml:13:11"  # spec.domain
    assert where(descriptor, "devGroup") == "catalog-info.yaml:12:10"  # spec.owner
    assert where(descriptor, "ownerGroup") == "catalog-info.yaml:20:19"  # spec.mesh.projectOwner
    assert where(descriptor, "securityInfo", "gdpr") == "catalog-info.yaml:41:13"
    impala = cmp("my_view_impala_port", "urn:dmb:cmp:my_domain:my_data_product:1")
    index = [c["id"] for c in data["components"]].index(impala)
    assert where(descriptor, "components", index, "id") == "my_view_impala_port/catalog-info.yaml:4:9"
    assert where(descriptor, "components", index, "dependsOn", 0) == "my_view_impala_port/catalog-info.yaml:19:17"
    assert where(descriptor, "components", index, "dataContract", "schema", 3, "name") == (
        "my_view_impala_port/catalog-info.yaml:56:17"
    )
    assert descriptor.component_files == {
        "urn:dmb:cmp:my_domain:my_data_product:1:my_observability": "my_observability/catalog-info.yaml",
        "urn:dmb:cmp:my_domain:my_data_product:1:my_raw_s3_port": "my_raw_s3_port/catalog-info.yaml",
        "urn:dmb:cmp:my_domain:my_data_product:1:my_spark_workload": "my_spark_workload/catalog-info.yaml",
        "urn:dmb:cmp:my_domain:my_data_product:1:my_view_impala_port": "my_view_impala_port/catalog-info.yaml",
    }


# --- 2. a second realistic repository, in two environments ----------------------------------------

FINANCE_DEVELOPMENT = {
    "id": DP,
    "name": "Cash flow",
    "fullyQualifiedName": "Finance - Cash flow - version 1",
    "description": "Daily cash positions and forecasts per legal entity",
    "kind": "dataproduct",
    "domain": "finance",
    "domainId": "urn:dmb:dmn:finance",
    "version": "1.2.0",
    "environment": "development",
    "dataProductOwner": "user:jane.doe",
    "developmentGroup": "group:cashflow-devs",
    "email": "cashflow-team@example.com",
    "infrastructureTemplateId": "urn:dmb:itm:snowflake-database:1",
    "useCaseTemplateId": "urn:dmb:utm:data-product-template:1",
    "billing": {},
    "tags": [{"tagFQN": "finance", "source": "Tag", "labelType": "Manual", "state": "Confirmed"}],
    "specific": {"database": "CASHFLOW_DEV", "warehouse": "COMPUTE_XS"},
    "devGroup": "group:cashflow-devs",
    "ownerGroup": "user:jane.doe",
    "projectOwner": "user:jane.doe",
    "components": [
        {
            "id": cmp("cashflow_view"),
            "kind": "outputport",
            "name": "Cash flow view",
            "description": "SQL view over the daily cash positions",
            "version": "1.2.0",
            "infrastructureTemplateId": "urn:dmb:itm:snowflake-view:1",
            "useCaseTemplateId": "urn:dmb:utm:snowflake-outputport-template:1",
            "dependsOn": [cmp("raw_storage")],
            "outputPortType": "SQL",
            "dataContract": {
                "schema": [
                    {"name": "legal_entity", "dataType": "TEXT", "constraint": "PRIMARY_KEY"},
                    {"name": "position_date", "dataType": "DATE"},
                    {"name": "amount", "dataType": "DECIMAL", "precision": 18, "scale": 2},
                ]
            },
            "specific": {"viewName": "CASH_POSITIONS"},
        },
        {
            "id": cmp("quality"),
            "kind": "observability",
            "name": "quality",
            "description": "Freshness and completeness checks on the output port",
            "version": "1.2.0",
            "infrastructureTemplateId": "urn:dmb:itm:quality-checks:1",
            "dependsOn": [cmp("cashflow_view")],
            "specific": {"checks": ["freshness", "completeness"]},
        },
        {
            "id": cmp("raw_storage"),
            "kind": "storage",
            "description": "Landing zone for the ledger extracts",
            "name": "raw storage",
            "version": "1.2.0",
            "infrastructureTemplateId": "urn:dmb:itm:s3-bucket:2",
            "useCaseTemplateId": "urn:dmb:utm:s3-storage-template:1",
            "specific": {"bucket": "cashflow-dev", "prefix": "raw/", "retentionDays": 30},
        },
        {
            "id": cmp("ingestion"),
            "kind": "workload",
            "name": "ingestion",
            "description": "Loads the ledger extracts every night",
            "version": "1.2.0",
            "infrastructureTemplateId": "urn:dmb:itm:airflow-dag:1",
            "useCaseTemplateId": "urn:dmb:utm:airflow-workload-template:1",
            "dependsOn": [cmp("raw_storage")],
            "workloadType": "batch",
            "specific": {"schedule": "0 2 * * *"},
        },
    ],
}


def test_finance_cashflow_development(repos):
    descriptor = assemble(DirectoryReader(repos / "finance-cashflow"), "development")
    assert descriptor.data == FINANCE_DEVELOPMENT
    assert list(descriptor.data) == list(FINANCE_DEVELOPMENT)
    assert descriptor.environment == "development"
    assert descriptor.id == DP
    assert descriptor.component_files == {
        cmp("cashflow_view"): "outputport/catalog-info.yaml",
        cmp("quality"): "quality/checks.yaml",
        cmp("raw_storage"): "storage/catalog-info.yaml",
        cmp("ingestion"): "workload/catalog-info.yaml",
    }
    assert where(descriptor, "specific", "database") == "catalog-info.yaml:30:17"
    assert where(descriptor, "tags", 0, "tagFQN") == "catalog-info.yaml:25:17"
    assert where(descriptor, "components", 2, "specific", "bucket") == "storage/catalog-info.yaml:17:15"
    # The component reached through the Location points into its own file.
    assert where(descriptor, "components", 1, "dependsOn", 0) == "quality/checks.yaml:16:9"
    assert where(descriptor, "components", 1, "id") == "quality/checks.yaml:5:9"


def test_finance_cashflow_production(repos):
    descriptor = assemble(DirectoryReader(repos / "finance-cashflow"), "production")
    expected = {**FINANCE_DEVELOPMENT, "environment": "production"}
    expected["specific"] = {"database": "CASHFLOW_PROD", "warehouse": "COMPUTE_XS"}
    expected["tags"] = [{"tagFQN": "production", "source": "Tag", "labelType": "Manual", "state": "Confirmed"}]
    expected["components"] = [dict(c) for c in FINANCE_DEVELOPMENT["components"]]
    expected["components"][2]["specific"] = {"bucket": "cashflow-prod", "prefix": "raw/", "retentionDays": 3650}
    assert descriptor.data == expected

    # Overridden values point into the override file; the rest still points at catalog-info.yaml.
    assert where(descriptor, "specific", "database") == f"{PRODUCTION}:3:13"
    assert where(descriptor, "specific", "warehouse") == "catalog-info.yaml:31:18"
    assert where(descriptor, "specific") == "catalog-info.yaml:29:5"
    assert where(descriptor, "tags") == f"{PRODUCTION}:4:1"
    assert where(descriptor, "tags", 0, "tagFQN") == f"{PRODUCTION}:5:13"
    assert where(descriptor, "version") == "catalog-info.yaml:17:14"
    assert where(descriptor, "components", 2, "specific", "bucket") == f"storage/{PRODUCTION}:2:11"
    assert where(descriptor, "components", 2, "specific", "retentionDays") == f"storage/{PRODUCTION}:3:18"
    assert where(descriptor, "components", 2, "specific", "prefix") == "storage/catalog-info.yaml:18:15"
    assert where(descriptor, "components", 0, "specific", "viewName") == "outputport/catalog-info.yaml:31:17"


def test_finance_cashflow_other_environments_get_no_override(repos):
    staging = assemble(DirectoryReader(repos / "finance-cashflow"), "staging")
    assert staging.data == {**FINANCE_DEVELOPMENT, "environment": "staging"}


# --- 3. assembly rules ----------------------------------------------------------------------------


def single(system: str, *components: tuple[str, str], environment: str = "development", **files: str):
    reader = MemoryReader({"catalog-info.yaml": system, **dict(components), **files})
    return assemble(reader, environment)


def test_minimal_data_product(system_yaml):
    descriptor = single(system_yaml)
    assert descriptor.data == {
        "id": DP,
        "name": "cashflow",
        "kind": "dataproduct",
        "domain": "finance",
        "domainId": "urn:dmb:dmn:finance",
        "version": "1.0.0",
        "environment": "development",
        "devGroup": "group:finance",
        "components": [],
    }
    assert {path: str(position) for path, position in descriptor.sources.items()} == {
        (): "catalog-info.yaml:9:3",
        ("version",): "catalog-info.yaml:10:14",
        ("id",): "catalog-info.yaml:4:9",
        ("name",): "catalog-info.yaml:4:9",
        ("kind",): "catalog-info.yaml:9:3",
        ("domain",): "catalog-info.yaml:8:11",
        ("domainId",): "catalog-info.yaml:8:11",
        ("environment",): "catalog-info.yaml:9:3",
        ("devGroup",): "catalog-info.yaml:7:10",
        ("components",): "catalog-info.yaml:1:1",
    }


def test_ids_from_metadata_name(system_yaml, component):
    descriptor = single(system_yaml, ("a/catalog-info.yaml", component("raw_storage", "storage")))
    assert descriptor.id == DP
    assert descriptor.components[0]["id"] == cmp("raw_storage")
    assert where(descriptor, "components", 0, "id") == "a/catalog-info.yaml:4:9"


def test_ids_from_spec_mesh_id(system_yaml, component):
    system = system_yaml + "    id: urn:dmb:dp:treasury:liquidity:3\n"
    descriptor = single(
        system,
        ("a/catalog-info.yaml", component("derived")),
        ("b/catalog-info.yaml", component("given", mesh="    id: urn:dmb:cmp:treasury:liquidity:3:explicit\n")),
    )
    assert descriptor.id == "urn:dmb:dp:treasury:liquidity:3"
    assert where(descriptor, "id") == "catalog-info.yaml:11:9"
    # Component ids derive from the data product id, whichever way that was given.
    assert [c["id"] for c in descriptor.components] == [
        "urn:dmb:cmp:treasury:liquidity:3:derived",
        "urn:dmb:cmp:treasury:liquidity:3:explicit",
    ]
    assert where(descriptor, "components", 1, "id") == "b/catalog-info.yaml:9:9"
    assert "id" not in [key for key in list(descriptor.components[1])[1:]]


def test_id_of_a_name_without_domain_and_major(system_yaml, component):
    system = system_yaml.replace("name: finance.cashflow.1", "name: cashflow").replace("1.0.0", "2.3.0")
    descriptor = single(system, ("a/catalog-info.yaml", component("x", system="cashflow").replace(
        "finance.cashflow.1.x", "cashflow.x")))
    assert descriptor.id == "urn:dmb:dp:finance:cashflow:2"
    assert descriptor.data["name"] == "cashflow"
    assert descriptor.components[0]["id"] == "urn:dmb:cmp:finance:cashflow:2:x"


@pytest.mark.parametrize(
    "reference", ["finance.cashflow.1", "system:finance.cashflow.1", "system:default/finance.cashflow.1",
                  "System:finance.cashflow.1"]
)
def test_system_references(system_yaml, component, reference):
    descriptor = single(system_yaml, ("a/catalog-info.yaml", component("a", system=reference)))
    assert [c["id"] for c in descriptor.components] == [cmp("a")]


@pytest.mark.parametrize(
    ("domain_line", "expected_position"),
    [
        ("  domain: finance\n", "catalog-info.yaml:8:11"),
        ("  domain: domain:finance\n", "catalog-info.yaml:8:11"),
        ("  domain: domain:default/finance\n", "catalog-info.yaml:8:11"),
        ("", "catalog-info.yaml:5:1"),  # absent: taken from metadata.name, reported at spec
    ],
)
def test_domain_references(system_yaml, domain_line, expected_position):
    descriptor = single(system_yaml.replace("  domain: finance\n", domain_line))
    assert (descriptor.data["domain"], descriptor.data["domainId"]) == ("finance", "urn:dmb:dmn:finance")
    assert where(descriptor, "domain") == expected_position
    assert where(descriptor, "domainId") == expected_position


def test_description_name_dev_group_and_owner_groups(system_yaml):
    system = system_yaml.replace(
        "  name: finance.cashflow.1\n",
        "  name: finance.cashflow.1\n  title: Cash flow\n  description: Daily cash positions\n",
    ) + "    developmentGroup: group:cashflow-devs\n    dataProductOwner: user:jane\n    projectOwner: user:john\n"
    descriptor = single(system)
    data = descriptor.data
    assert data["name"] == "Cash flow"
    assert data["description"] == "Daily cash positions"
    assert data["devGroup"] == "group:cashflow-devs"
    assert data["ownerGroup"] == data["projectOwner"] == "user:john"
    assert data["dataProductOwner"] == "user:jane"
    assert where(descriptor, "name") == "catalog-info.yaml:5:10"
    assert where(descriptor, "description") == "catalog-info.yaml:6:16"
    assert where(descriptor, "devGroup") == "catalog-info.yaml:13:23"
    assert where(descriptor, "ownerGroup") == "catalog-info.yaml:15:19"
    assert where(descriptor, "projectOwner") == "catalog-info.yaml:15:19"


def test_owner_groups_fall_back_to_data_product_owner_and_dev_group_to_spec_owner(system_yaml):
    descriptor = single(system_yaml + "    dataProductOwner: user:jane\n")
    assert descriptor.data["devGroup"] == "group:finance"
    assert descriptor.data["ownerGroup"] == descriptor.data["projectOwner"] == "user:jane"
    assert where(descriptor, "devGroup") == "catalog-info.yaml:7:10"
    assert where(descriptor, "ownerGroup") == "catalog-info.yaml:11:23"


def test_no_owner_information_derives_nothing(system_yaml):
    descriptor = single(system_yaml.replace("  owner: group:finance\n", ""))
    assert not {"devGroup", "ownerGroup", "projectOwner", "description"} & set(descriptor.data)


def test_values_written_in_spec_mesh_win_over_derived_ones(system_yaml):
    system = system_yaml.replace("  name: finance.cashflow.1\n", "  name: finance.cashflow.1\n  description: meta\n")
    system += ("    name: Cash flow\n    description: mesh\n    domain: treasury\n    devGroup: group:explicit\n"
               "    ownerGroup: group:owners\n    dataProductOwner: user:jane\n")
    data = single(system).data
    assert (data["name"], data["description"], data["domain"]) == ("Cash flow", "mesh", "treasury")
    assert (data["devGroup"], data["ownerGroup"], data["projectOwner"]) == (
        "group:explicit", "group:owners", "user:jane"
    )
    # The id and domainId still follow metadata.name and spec.domain.
    assert (data["id"], data["domainId"]) == (DP, "urn:dmb:dmn:finance")


def test_kind_and_environment_are_always_meshbots(system_yaml):
    descriptor = single(system_yaml + "    kind: system\n    environment: mine\n", environment="qa-1")
    assert (descriptor.data["kind"], descriptor.data["environment"]) == ("dataproduct", "qa-1")
    assert descriptor.environment == "qa-1"


def test_components_key_in_spec_mesh_is_ignored(system_yaml):
    assert single(system_yaml + "    components: [x]\n").data["components"] == []


def test_component_kind_name_and_description(system_yaml):
    component = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: finance.cashflow.1.view\n"
        "  title: Cash view\n  description: A view\nspec:\n  type: OutputPort\n  system: finance.cashflow.1\n"
        "  mesh:\n    kind: outputport\n    version: 1.0.0\n"
    )
    descriptor = single(system_yaml, ("view/catalog-info.yaml", component))
    assert descriptor.components == [
        {"id": cmp("view"), "kind": "outputport", "name": "Cash view", "description": "A view", "version": "1.0.0"}
    ]
    assert where(descriptor, "components", 0, "kind") == "view/catalog-info.yaml:8:9"
    assert where(descriptor, "components", 0, "name") == "view/catalog-info.yaml:5:10"
    assert where(descriptor, "components", 0, "description") == "view/catalog-info.yaml:6:16"
    assert where(descriptor, "components", 0) == "view/catalog-info.yaml:10:3"


def test_component_without_mesh(system_yaml):
    component = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: finance.cashflow.1.bare\n"
        "spec:\n  type: workload\n  system: finance.cashflow.1\n"
    )
    descriptor = single(system_yaml, ("bare/catalog-info.yaml", component))
    assert descriptor.components == [{"id": cmp("bare"), "kind": "workload", "name": "bare"}]
    assert where(descriptor, "components", 0) == "bare/catalog-info.yaml:1:1"


def test_components_are_ordered_by_file_root_first(system_yaml, component):
    descriptor = single(
        system_yaml + "---\n" + component("in_root"),
        ("z/catalog-info.yaml", component("z")),
        ("a/b/catalog-info.yaml", component("deep")),
        ("a/catalog-info.yaml", component("a")),
    )
    assert [c["name"] for c in descriptor.components] == ["in_root", "a", "z", "deep"]


def test_overrides_deep_merge_for_their_environment_only(system_yaml, component):
    files = {
        "a/catalog-info.yaml": component("a", mesh="    version: 1.0.0\n    tags: [x, y]\n    specific:\n"
                                                   "      size: small\n      keep: true\n"),
        "a/environments/production/configurations.yaml": "tags: [z]\nspecific:\n  size: large\n",
        "a/environments/qa/configurations.yaml": "version: 9.9.9\n",
        "environments/production/configurations.yaml": "version: 1.0.1\nnewField: {a: 1}\n",
    }
    production = single(system_yaml, *files.items(), environment="production")
    assert production.data["version"] == "1.0.1"
    assert production.data["newField"] == {"a": 1}
    assert production.components[0] == {
        "id": cmp("a"), "kind": "outputport", "name": "a", "version": "1.0.0", "tags": ["z"],
        "specific": {"size": "large", "keep": True},
    }
    assert where(production, "version") == f"{PRODUCTION}:1:10"
    assert where(production, "newField", "a") == f"{PRODUCTION}:2:15"
    assert where(production, "components", 0, "tags", 0) == f"a/{PRODUCTION}:1:8"
    assert where(production, "components", 0, "specific", "size") == f"a/{PRODUCTION}:3:9"
    assert where(production, "components", 0, "specific", "keep") == "a/catalog-info.yaml:13:13"
    assert where(production, "components", 0, "version") == "a/catalog-info.yaml:9:14"

    development = single(system_yaml, *files.items())
    assert development.data["version"] == "1.0.0"
    assert "newField" not in development.data
    assert development.components[0]["tags"] == ["x", "y"]
    assert where(development, "components", 0, "tags", 0) == "a/catalog-info.yaml:10:12"

    qa = single(system_yaml, *files.items(), environment="qa")
    assert (qa.data["version"], qa.components[0]["version"]) == ("1.0.0", "9.9.9")


def test_overrides_of_entities_sharing_a_file_are_keyed_by_name(system_yaml, component):
    descriptor = single(
        system_yaml + "---\n" + component("a") + "---\n" + component("b"),
        environment="production",
        **{PRODUCTION: "finance.cashflow.1:\n  version: 2.0.0\nfinance.cashflow.1.a:\n  specific: {x: 1}\n"},
    )
    assert descriptor.data["version"] == "2.0.0"
    assert descriptor.components[0]["specific"] == {"x": 1}
    assert "specific" not in descriptor.components[1]
    assert where(descriptor, "version") == f"{PRODUCTION}:2:12"
    assert where(descriptor, "components", 0, "specific", "x") == f"{PRODUCTION}:4:17"


def test_overrides_of_entities_sharing_a_folder_are_keyed_by_name(system_yaml, component):
    # The System's own override file must not leak into a component written in another file of the same folder.
    location = (
        "---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\n"
        "spec:\n  targets: [./quality.yaml]\n"
    )
    unkeyed = single(
        system_yaml + location,
        ("quality.yaml", component("quality", "observability")),
        environment="production",
        **{PRODUCTION: "version: 2.0.0\n"},
    )
    assert unkeyed.data["version"] == "1.0.0"
    assert unkeyed.components[0]["version"] == "1.0.0"

    keyed = single(
        system_yaml + location,
        ("quality.yaml", component("quality", "observability")),
        environment="production",
        **{PRODUCTION: "finance.cashflow.1.quality:\n  version: 2.0.0\n"},
    )
    assert keyed.data["version"] == "1.0.0"
    assert keyed.components[0]["version"] == "2.0.0"
    assert where(keyed, "components", 0, "version") == f"{PRODUCTION}:2:12"


def test_empty_override_file_changes_nothing(system_yaml):
    assert single(system_yaml, environment="production", **{PRODUCTION: "# nothing yet\n"}).data["version"] == "1.0.0"


class PinnedRepository:
    """Location targets in another repository, at a pinned tag."""

    def open(self, target: str) -> tuple[FileReader, str, str]:
        reader = MemoryReader({
            "parts/checks.yaml": (
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: finance.cashflow.1.checks\n"
                "spec:\n  type: observability\n  system: system:finance.cashflow.1\n  mesh:\n"
                "    specific: {a: 1, b: 2}\n"
            ),
            f"parts/{PRODUCTION}": "specific:\n  b: 3\n",
        })
        return reader, "parts/checks.yaml", "gitlab.example.com/acme/parts@v1.0.0:parts/checks.yaml"


def test_components_from_another_repository_with_their_overrides(system_yaml):
    location = (
        "---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\nspec:\n"
        "  targets: ['https://gitlab.example.com/acme/parts/-/blob/v1.0.0/parts/checks.yaml']\n"
    )
    reader = MemoryReader({"catalog-info.yaml": system_yaml + location})
    descriptor = assemble(reader, "production", PinnedRepository())
    assert descriptor.components == [
        {"id": cmp("checks"), "kind": "observability", "name": "checks", "specific": {"a": 1, "b": 3}}
    ]
    label = "gitlab.example.com/acme/parts@v1.0.0:parts"
    assert where(descriptor, "components", 0, "specific", "a") == f"{label}/checks.yaml:9:19"
    assert where(descriptor, "components", 0, "specific", "b") == f"{label}/{PRODUCTION}:2:6"
    assert descriptor.component_files == {cmp("checks"): f"{label}/checks.yaml"}


# --- 4. input errors ------------------------------------------------------------------------------


def test_invalid_environment_name(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml})
    assert assembly_errors(reader, "../production") == ["invalid environment name '../production'"]
    assert assembly_errors(reader, "") == ["invalid environment name ''"]


def test_malformed_yaml(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml.replace("  type: dataproduct", "  type: [dataproduct")})
    assert assembly_errors(reader) == [
        "catalog-info.yaml:7:8: malformed YAML: the '[' opened on line 6, column 9 is never closed (or a ',' is "
        "missing); the parser says: while parsing a flow sequence expected ',' or ']', but got ':'"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- kind: System\n",
         "catalog-info.yaml:1:1: not a Backstage entity: expected a mapping with apiVersion, kind and metadata"),
        ("apiVersion: backstage.io/v1alpha1\nmetadata:\n  name: x\n",
         "catalog-info.yaml:1:1: not a Backstage entity: missing 'kind'"),
        ("apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  title: x\n",
         "catalog-info.yaml:3:1: not a Backstage entity: 'metadata.name' must be a non-empty string"),
    ],
)
def test_not_an_entity(text, expected, assembly_errors):
    assert assembly_errors(MemoryReader({"catalog-info.yaml": text})) == [expected]


NO_DATA_PRODUCT = (
    "catalog-info.yaml: no data product found: expected a 'kind: System' entity with 'spec.type: dataproduct' "
    "in catalog-info.yaml at the repository root"
)


def test_no_system(component, assembly_errors):
    assert assembly_errors(MemoryReader({})) == [NO_DATA_PRODUCT]
    assert assembly_errors(MemoryReader({"a/catalog-info.yaml": component("a")})) == [NO_DATA_PRODUCT]


def test_two_systems(system_yaml, assembly_errors):
    other = system_yaml.replace("finance.cashflow.1", "finance.forecast.1")
    assert assembly_errors(MemoryReader({"catalog-info.yaml": system_yaml, "forecast/catalog-info.yaml": other})) == [
        "forecast/catalog-info.yaml:1:1: two Systems in one repository: 'finance.cashflow.1' and "
        "'finance.forecast.1' at forecast/catalog-info.yaml:1:1; a repository holds one data product"
    ]


def test_system_that_is_not_a_data_product(system_yaml, assembly_errors):
    assert assembly_errors(MemoryReader({"catalog-info.yaml": system_yaml.replace("dataproduct", "service")})) == [
        "catalog-info.yaml:6:9: System 'finance.cashflow.1' has spec.type 'service'; meshbot handles data products "
        "(spec.type: dataproduct)"
    ]
    without_type = system_yaml.replace("  type: dataproduct\n", "")
    assert assembly_errors(MemoryReader({"catalog-info.yaml": without_type})) == [
        "catalog-info.yaml:5:1: System 'finance.cashflow.1' has no spec.type; meshbot handles data products "
        "(spec.type: dataproduct)"
    ]


def test_component_errors(system_yaml, component, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", system="system:default/finance.forecast.1"),
        "b/catalog-info.yaml": component("b", system="component:finance.cashflow.1"),
        "c/catalog-info.yaml": component("c", system=""),
        "d/catalog-info.yaml": component("d", kind="service"),
        "e/catalog-info.yaml": component("e", mesh="    kind: workload\n"),
        "f/catalog-info.yaml": component("f", mesh="    - not a mapping\n"),
    })
    assert assembly_errors(reader) == [
        "a/catalog-info.yaml:7:11: Component 'finance.cashflow.1.a' points at unknown System "
        "'system:default/finance.forecast.1'; this repository's data product is 'finance.cashflow.1'",
        "b/catalog-info.yaml:7:11: Component 'finance.cashflow.1.b' has no valid spec.system; set it to "
        "'finance.cashflow.1'",
        "c/catalog-info.yaml:7:10: Component 'finance.cashflow.1.c' has no valid spec.system; set it to "
        "'finance.cashflow.1'",
        "d/catalog-info.yaml:6:9: Component 'finance.cashflow.1.d' has spec.type 'service'; expected one of "
        "outputport, workload, storage, observability",
        "e/catalog-info.yaml:9:11: Component 'finance.cashflow.1.e' has spec.mesh.kind 'workload' but spec.type "
        "'outputport'; they must agree",
        "f/catalog-info.yaml:8:3: spec.mesh must be a mapping",
    ]


def test_duplicate_component_ids(system_yaml, component, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a"),
        "copy/catalog-info.yaml": component("a"),
    })
    assert assembly_errors(reader) == [
        f"copy/catalog-info.yaml:4:9: duplicate id '{cmp('a')}' (also used at a/catalog-info.yaml:4:9)"
    ]


def test_dangling_depends_on(system_yaml, component, depends_on, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh=depends_on("b")),
    })
    assert assembly_errors(reader) == [
        f"a/catalog-info.yaml:11:9: dependsOn '{cmp('b')}' is not a component of this data product"
    ]


def test_cycles(system_yaml, component, depends_on, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh=depends_on("b")),
        "b/catalog-info.yaml": component("b", mesh=depends_on("c")),
        "c/catalog-info.yaml": component("c", mesh=depends_on("a")),
        "d/catalog-info.yaml": component("d", mesh=depends_on("e")),
        "e/catalog-info.yaml": component("e", mesh=depends_on("d")),
        "f/catalog-info.yaml": component("f", mesh=depends_on("f")),
    })
    chain = " (each depends on the next)"
    assert assembly_errors(reader) == [
        f"a/catalog-info.yaml:11:9: dependsOn cycle: {cmp('a')} -> {cmp('b')} -> {cmp('c')} -> {cmp('a')}{chain}",
        f"d/catalog-info.yaml:11:9: dependsOn cycle: {cmp('d')} -> {cmp('e')} -> {cmp('d')}{chain}",
        f"f/catalog-info.yaml:11:9: dependsOn cycle: {cmp('f')} -> {cmp('f')}{chain}",
    ]


def test_cycle_created_by_an_override(system_yaml, component, depends_on, assembly_errors):
    files = {
        "catalog-info.yaml": system_yaml,
        "a/catalog-info.yaml": component("a", mesh=depends_on("b")),
        "b/catalog-info.yaml": component("b"),
        f"b/{PRODUCTION}": f"dependsOn: [{cmp('a')}]\n",
    }
    assemble(MemoryReader(files))
    assert assembly_errors(MemoryReader(files), "production") == [
        f"a/catalog-info.yaml:11:9: dependsOn cycle: {cmp('a')} -> {cmp('b')} -> {cmp('a')} (each depends on the next)"
    ]


def with_location(system_yaml: str, *targets: str) -> str:
    """The System plus a Location whose targets are on lines 18, 19, ... at column 7."""
    lines = "".join(f"    - {target}\n" for target in targets)
    return (system_yaml + "---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\n"
            f"spec:\n  targets:\n{lines}")


def test_location_target_outside_the_repository(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": with_location(system_yaml, "../x/catalog-info.yaml", "/etc/passwd")})
    assert assembly_errors(reader) == [
        "catalog-info.yaml:18:7: Location target '../x/catalog-info.yaml' is outside the repository",
        "catalog-info.yaml:19:7: Location target '/etc/passwd' is outside the repository",
    ]


def test_missing_location_target(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": with_location(system_yaml, "./parts/quality.yaml")})
    assert assembly_errors(reader) == [
        "catalog-info.yaml:18:7: Location target './parts/quality.yaml' not found (looked for 'parts/quality.yaml')"
    ]


def test_remote_location_target_without_a_remote_reader(system_yaml, assembly_errors):
    target = "https://github.com/acme/parts/blob/v1.0.0/catalog-info.yaml"
    reader = MemoryReader({"catalog-info.yaml": with_location(system_yaml, target)})
    assert assembly_errors(reader) == [
        f"catalog-info.yaml:18:7: Location target '{target}' is in another repository; remote targets are read "
        "through the forge connection, which a local check does not have"
    ]


def test_file_over_one_mib(system_yaml, assembly_errors):
    padding = "#" * (MAX_FILE_BYTES - len(system_yaml)) + "\n"
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml,
        "big/catalog-info.yaml": system_yaml + padding,
        f"{PRODUCTION}": b"#" * (MAX_FILE_BYTES + 1),
    })
    assert assembly_errors(reader) == ["big/catalog-info.yaml: file is 1048577 bytes, over the 1 MiB limit"]
    assert assembly_errors(MemoryReader({"catalog-info.yaml": system_yaml, PRODUCTION: b"#" * (MAX_FILE_BYTES + 1)}),
                           "production") == [f"{PRODUCTION}: file is 1048577 bytes, over the 1 MiB limit"]


def test_billion_laughs_fails_fast(system_yaml, assembly_errors):
    bomb = ['    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "\n".join(bomb) + "\n"})
    started = time.perf_counter()
    found = assembly_errors(reader)
    assert time.perf_counter() - started < 0.5
    assert found == [
        "catalog-info.yaml:16:9: YAML aliases expand to more than 500000 values; refusing (alias bomb?)"
    ]


def test_recursive_alias(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "    loop: &loop {again: *loop}\n"})
    assert assembly_errors(reader) == ["catalog-info.yaml:11:11: recursive YAML alias: a value contains itself"]


def test_duplicate_keys(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "    version: 2.0.0\n"})
    assert assembly_errors(reader) == ["catalog-info.yaml:11:5: duplicate key 'version' (first defined on line 10)"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    run: !!python/object/apply:os.system ['id']\n",
         "catalog-info.yaml:11:10: unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system"),
        ("    owner: !vault secret/finance\n", "catalog-info.yaml:11:12: unsupported YAML tag !vault"),
    ],
)
def test_unknown_and_python_tags(system_yaml, assembly_errors, line, expected):
    assert assembly_errors(MemoryReader({"catalog-info.yaml": system_yaml + line})) == [expected]


def test_non_utf8_bytes(system_yaml, assembly_errors):
    content = system_yaml.encode() + b"    name: Caf\xe9\n"
    assert assembly_errors(MemoryReader({"catalog-info.yaml": content})) == [
        "catalog-info.yaml:11:14: file is not valid UTF-8"
    ]


def test_deep_nesting(system_yaml, assembly_errors):
    reader = MemoryReader({"catalog-info.yaml": system_yaml + "    deep: " + "[" * 200 + "]" * 200 + "\n"})
    assert assembly_errors(reader) == ["catalog-info.yaml:11:109: YAML nesting is deeper than 100 levels"]


def test_several_errors_are_reported_together(system_yaml, component, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": with_location(system_yaml, "../outside.yaml"),
        "a/catalog-info.yaml": "kind: [\n",
        "b/catalog-info.yaml": component("b", system="finance.forecast.1"),
        "c/catalog-info.yaml": component("c", mesh="    version: 1.0.0\n    version: 2.0.0\n"),
        "d/catalog-info.yaml": "- not an entity\n",
        "e/catalog-info.yaml": component("e"),
        f"e/{PRODUCTION}": "[1, 2]\n",
    })
    assert assembly_errors(reader, "production") == [
        "catalog-info.yaml:18:7: Location target '../outside.yaml' is outside the repository",
        "a/catalog-info.yaml:2:1: malformed YAML: the '[' opened on line 1, column 7 is never closed; the parser "
        "says: while parsing a flow node expected the node content, but found "
        "'<stream end>'",
        "c/catalog-info.yaml:10:5: duplicate key 'version' (first defined on line 9)",
        "d/catalog-info.yaml:1:1: not a Backstage entity: expected a mapping with apiVersion, kind and metadata",
        "b/catalog-info.yaml:7:11: Component 'finance.cashflow.1.b' points at unknown System 'finance.forecast.1'; "
        "this repository's data product is 'finance.cashflow.1'",
        f"e/{PRODUCTION}:1:1: environment overrides must be a mapping of spec.mesh fields",
    ]


def test_override_errors(system_yaml, component, assembly_errors):
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml + "---\n" + component("a"),
        PRODUCTION: "finance.cashflow.1: [1]\nfinance.cashflow.1.a: {version: [\n",
    })
    assert assembly_errors(reader, "production") == [
        f"{PRODUCTION}:3:1: malformed YAML: the '[' opened on line 2, column 33 is never closed; the parser says: "
        "while parsing a flow node expected the node content, but found "
        "'<stream end>'"
    ]
    reader = MemoryReader({
        "catalog-info.yaml": system_yaml + "---\n" + component("a"),
        PRODUCTION: "finance.cashflow.1: [1]\n",
    })
    assert assembly_errors(reader, "production") == [
        f"{PRODUCTION}:1:1: overrides for 'finance.cashflow.1' must be a mapping"
    ]
    reader = MemoryReader({"catalog-info.yaml": system_yaml, PRODUCTION: "version: 1.0.1\n---\nversion: 1.0.2\n"})
    assert assembly_errors(reader, "production") == [f"{PRODUCTION}:3:1: expected one YAML document, found several"]


def test_source_positions_are_source_positions(repos):
    descriptor = assemble(DirectoryReader(repos / "finance-cashflow"))
    assert all(isinstance(position, SourcePosition) for position in descriptor.sources.values())
    assert all(position.line and position.column for position in descriptor.sources.values())


def test_component_in_another_namespace_is_not_linked():
    from tests.builders import component, repository

    with pytest.raises(InputErrors) as raised:
        assemble(repository({"a": component("a", system="system:other/finance.cashflow.1")}))
    assert [str(error) for error in raised.value.errors] == [
        "components/a/catalog-info.yaml:7:11: Component 'finance.cashflow.1.a' points at unknown System "
        "'system:other/finance.cashflow.1'; this repository's data product is 'finance.cashflow.1'"
    ]


def test_one_discovery_assembles_every_environment_as_a_fresh_assembly_does():
    from bot.cli.main import EXAMPLE_DATA_PRODUCT
    from bot.descriptor.discovery import discover

    reader = DirectoryReader(EXAMPLE_DATA_PRODUCT)
    shared = discover(reader)
    environments = ("development", "production", "qa", "development")
    together = [assemble(reader, environment, discovered=shared) for environment in environments]
    for environment, descriptor in zip(environments, together, strict=True):
        fresh = assemble(DirectoryReader(EXAMPLE_DATA_PRODUCT), environment)
        assert (descriptor.data, descriptor.sources, descriptor.component_files) == (
            fresh.data, fresh.sources, fresh.component_files)
    assert together[0].data != together[1].data  # production's overrides really differ
