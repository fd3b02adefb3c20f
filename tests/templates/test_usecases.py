"""Use-case templates: manifests, parameters, YAML-safe rendering, destination checks, and what the shipped
templates produce (it must pass the built-in policies and plan storage before output port)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml as pyyaml

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import DirectoryReader
from bot.descriptor.yamlsafe import load_single
from bot.engine.plan import build_plan
from policies.engine import evaluate
from policies.loader import load_policies
from templates.usecases import (
    BUILTIN_DIRECTORY,
    derive_parameters,
    destination_problems,
    find_template,
    load_template,
    load_templates,
    parameter_errors,
    parse_assignments,
    read_data_product,
    render,
    resolve_parameters,
    write_files,
    yaml_value,
)

IDS = {
    "dataproduct": ("urn:dmb:utm:dataproduct-template:0.0.0", "dataproduct", None),
    "sqlite-storage": ("urn:dmb:utm:sqlite-storage-template:0.0.0", "storage",
                       "urn:dmb:itm:sqlite-storage-provisioner:0"),
    "sqlite-outputport": ("urn:dmb:utm:sqlite-outputport-template:0.0.0", "outputport",
                          "urn:dmb:itm:sqlite-outputport-provisioner:0"),
}


def errors_of(call, *arguments) -> list[str]:
    with pytest.raises(InputErrors) as raised:
        call(*arguments)
    return [str(error) for error in raised.value.errors]


def write_template(root: Path, name: str, manifest: str, files: dict[str, str]) -> Path:
    folder = root / name
    (folder / "skeleton").mkdir(parents=True)
    (folder / "template.yaml").write_text(textwrap.dedent(manifest))
    for path, text in files.items():
        target = folder / "skeleton" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder


MINIMAL_MANIFEST = """\
    id: urn:dmb:utm:test-template:0.0.0
    description: A test template
    kind: storage
    infrastructureTemplateId: urn:dmb:itm:test-provisioner:0
    parameters:
      type: object
      additionalProperties: false
      properties:
        target:
          title: Target
          description: Where the file goes
          type: string
          default: out.txt
        text:
          title: Text
          description: Any text
          type: [string, "null"]
          default: hello
    example: {}
"""


def render_into(folder: Path, key: str, given: dict | None = None, use_example: bool = True) -> list[str]:
    """What `meshbot new KEY FOLDER --example` does, without git: the paths written."""
    template = find_template(load_templates(), key)
    data_product = read_data_product(folder) if folder.is_dir() and template.kind != "dataproduct" else None
    derived = derive_parameters(template, folder, data_product, given or {}) if data_product else {}
    files = render(template, resolve_parameters(template, given or {}, use_example, derived))
    existing, problems = destination_problems(folder, files)
    assert existing == [] and problems == []
    write_files(folder, files)
    return [file.path for file in files]


# --- manifests ---------------------------------------------------------------------------------------


def test_the_shipped_templates_load_with_their_ids_kinds_and_infrastructure_templates():
    templates = load_templates()
    assert [template.name for template in templates] == ["dataproduct", "sqlite-storage", "sqlite-outputport"]
    for template in templates:
        assert (template.id, template.kind, template.infrastructure_template_id) == IDS[template.name]
        assert template.folder == BUILTIN_DIRECTORY / template.name
        assert parameter_errors(template.parameters, resolve_parameters(template, {}, use_example=True)) == []
        for name, schema in template.properties.items():
            assert schema["title"] and schema["description"], name
            assert name[0].islower() and name.isalnum(), name


def test_find_template_by_id_or_folder_name_and_unknown_names_list_the_known_ones():
    templates = load_templates()
    assert find_template(templates, "urn:dmb:utm:sqlite-storage-template:0.0.0").name == "sqlite-storage"
    assert find_template(templates, "sqlite-outputport").kind == "outputport"
    assert errors_of(find_template, templates, "snowflake") == [
        "unknown use-case template 'snowflake' (known: dataproduct, sqlite-storage, sqlite-outputport; "
        "`meshbot templates` lists them)"
    ]


def test_a_broken_manifest_names_the_file_the_field_and_its_line(tmp_path):
    folder = write_template(tmp_path, "broken", """\
        id: urn:dmb:utm:broken:0.0.0
        description: Broken
        kind: lakehouse
        infrastructureTemplateId: urn:dmb:itm:x:0
        parameters:
          type: object
          properties:
            tableName:
              title: Table
              type: string
        example: {}
    """, {"x.txt": ""})
    manifest = folder / "template.yaml"
    assert errors_of(load_template, folder) == [
        f"{manifest}:3:7: field 'kind': 'lakehouse' is not one of dataproduct, storage, outputport, workload, "
        "observability",
        f"{manifest}:8:5: field 'parameters.properties.tableName.description' is required",
    ]


def test_manifest_checks_json_schema_example_required_names_and_skeleton(tmp_path):
    folder = write_template(tmp_path, "bad-schema", """\
        id: urn:dmb:utm:bad:0.0.0
        description: Bad
        kind: dataproduct
        infrastructureTemplateId: null
        parameters:
          type: object
          required: [tableName, missing]
          properties:
            tableName: {title: Table, description: The table, type: text}
        example: {}
    """, {})
    assert errors_of(load_template, folder) == [
        f"{folder / 'template.yaml'}:9:61: field 'parameters.properties.tableName.type': not valid JSON Schema: "
        "'text' is not valid under any of the given schemas"
    ]
    folder = write_template(tmp_path, "bad-example", """\
        id: urn:dmb:utm:bad:0.0.0
        description: Bad
        kind: storage
        infrastructureTemplateId: null
        parameters:
          type: object
          required: [tableName, missing]
          properties:
            Table_name: {title: Table, description: The table, type: string, pattern: "^[a-z]+$"}
            tableName: {title: Table, description: The table, type: string, pattern: "^[a-z]+$"}
        example: {tableName: "x y"}
    """, {})
    manifest = folder / "template.yaml"
    assert errors_of(load_template, folder) == [
        f"{manifest}:4:27: field 'infrastructureTemplateId': None is not of type 'string'",
        f"{manifest}:9:5: field 'parameters.properties': parameter name 'Table_name' must be camelCase letters and "
        "digits (and not 'template')",
    ]
    folder = write_template(tmp_path, "bad-example-2", """\
        id: urn:dmb:utm:bad:0.0.0
        description: Bad
        kind: storage
        infrastructureTemplateId: urn:dmb:itm:x:0
        parameters:
          type: object
          required: [tableName, missing]
          properties:
            tableName: {title: Table, description: The table, type: string, pattern: "^[a-z]+$"}
        example: {tableName: "x y"}
    """, {})
    manifest = folder / "template.yaml"
    assert errors_of(load_template, folder) == [
        f"{manifest}:7:25: field 'parameters.required[1]': 'missing' is not among the parameters",
    ]
    (folder / "template.yaml").write_text((folder / "template.yaml").read_text().replace(", missing", ""))
    assert errors_of(load_template, folder) == [
        f"{manifest}:10:22: field 'example': parameter 'tableName': 'x y' does not match ^[a-z]+$",
    ]
    (folder / "template.yaml").write_text((folder / "template.yaml").read_text().replace("x y", "xy"))
    (folder / "skeleton").rmdir()
    assert errors_of(load_template, folder) == [f"{manifest}: the template has no skeleton/ folder of files to render"]


def test_extra_template_directories_are_discovered_and_duplicates_refused(tmp_path):
    write_template(tmp_path / "more", "test", MINIMAL_MANIFEST, {"{{ target }}": "{{ text }}\n"})
    templates = load_templates([tmp_path / "more"])
    assert [template.name for template in templates] == ["dataproduct", "sqlite-storage", "test", "sqlite-outputport"]
    assert [t.name for t in load_templates([tmp_path / "more" / "test"], include_builtin=False)] == ["test"]
    assert errors_of(load_templates, [tmp_path / "more", tmp_path / "more" / "test"]) == [
        f"{tmp_path / 'more' / 'test' / 'template.yaml'}: template id 'urn:dmb:utm:test-template:0.0.0' is already "
        f"used by {tmp_path / 'more' / 'test' / 'template.yaml'}",
        f"{tmp_path / 'more' / 'test' / 'template.yaml'}: template folder name 'test' is already used by "
        f"{tmp_path / 'more' / 'test' / 'template.yaml'}",
    ]
    assert errors_of(load_templates, [tmp_path / "nowhere"]) == [f"{tmp_path / 'nowhere'}: use-case template folder "
                                                                  "not found"]


# --- parameters --------------------------------------------------------------------------------------


def storage_template():
    return find_template(load_templates(), "sqlite-storage")


def test_parameter_errors_are_one_line_each_in_parameter_order():
    template = storage_template()
    given = {
        "tableName": "x y", "majorVersion": "abc", "foo": 1,
        "columns": [{"name": "id", "dataType": "TEXTY"}, {"name": "id", "dataType": "TEXT"}, {"nam": 1}],
    }
    assert errors_of(resolve_parameters, template, given) == [
        "parameter 'domain' is required (Domain)",
        "parameter 'name' is required (Data product name)",
        "parameter 'majorVersion': 'abc' is not of type integer",
        "parameter 'component' is required (Component name)",
        "parameter 'description' is required (Description)",
        "parameter 'owner' is required (Owning team)",
        "parameter 'tableName': 'x y' does not match ^[A-Za-z_][A-Za-z0-9_]*$",
        "parameter 'columns[0].dataType': 'TEXTY' is not one of TEXT, STRING, MEDIUMTEXT, CHAR, VARCHAR, JSON, ENUM, "
        "INT, BIGINT, SMALLINT, TINYINT, BYTEINT, BOOLEAN, NUMBER, NUMERIC, DECIMAL, FLOAT, DOUBLE, DATE, TIME, "
        "TIMESTAMP, DATETIME, BINARY, VARBINARY, BYTES, BLOB, MEDIUMBLOB, LONGBLOB",
        "parameter 'columns[1].name': 'id' is given more than once",
        "parameter 'columns[2].dataType' is required (Data type)",
        "parameter 'columns[2].nam' is not allowed (known: name, dataType, dataLength, precision, scale, jsonSchema, "
        "constraint, description)",
        "parameter 'columns[2].name' is required (Column name)",
        "parameter 'foo' is not a parameter of this template (known: domain, name, majorVersion, component, title, "
        "description, owner, tableName, columns)",
    ]


def test_example_then_derived_then_given_values_and_defaults_fill_the_rest():
    template = find_template(load_templates(), "sqlite-outputport")
    values = resolve_parameters(template, {"component": "daily"}, use_example=True, derived={"domain": "finance"})
    assert values["component"] == "daily" and values["domain"] == "finance" and values["name"] == "orders"
    values = resolve_parameters(template, {"domain": "hr"}, use_example=True, derived={"domain": "finance"})
    assert values["domain"] == "hr"
    minimal = {"domain": "d", "name": "n", "component": "c", "description": "x", "owner": "group:g",
               "storageComponent": "s", "sourceTable": "t", "columns": [{"name": "a", "dataType": "TEXT"}]}
    values = resolve_parameters(template, minimal)
    assert values["majorVersion"] == 0 and values["viewName"] is None and values["upTime"] == "99%"
    assert resolve_parameters(template, {**minimal, "majorVersion": 2.0})["majorVersion"] == 2


def test_set_values_are_yaml_unless_a_string_parameter_gets_something_else():
    template = storage_template()
    values = parse_assignments(template, [
        "columns=[{name: id, dataType: TEXT, constraint: PRIMARY_KEY}]",
        "majorVersion=3",
        "description=Sales: daily, per store # all of them ",
        "title=yes",
        "tableName='quoted'",
        "component=",
        "owner=  group:sales  ",
    ])
    assert values == {
        "columns": [{"name": "id", "dataType": "TEXT", "constraint": "PRIMARY_KEY"}],
        "majorVersion": 3,
        "description": "Sales: daily, per store # all of them",
        "title": "yes",
        "tableName": "quoted",
        "component": "",
        "owner": "group:sales",
    }
    assert parse_assignments(template, ["title=null", "title=~"]) == {"title": None}
    assert parse_assignments(template, ["title=1.0", "majorVersion=1.0"]) == {"title": "1.0", "majorVersion": 1.0}
    assert errors_of(parse_assignments, template, ["columns=[{name: id", "owner"]) == [
        "parameter 'columns': the --set value is not valid YAML: malformed YAML: the '{' opened on line 1, column 2 "
        "is never closed; the parser says: while parsing a flow mapping expected ',' or '}', but got '<stream end>'",
        "--set 'owner': expected KEY=VALUE",
    ]


# --- rendering ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "plain", "group:sales-data", "Jane Doe", "finance.cashflow.1", "yes", "No", "null", "~", "1.0", "0o17",
    "2024-01-01", "12:30", "x\nkind: evil", "a: b", "- item", "# comment", "{flow}", "[list]", "'single'",
    '"double"', "tab\there", "trailing ", " leading", "emoji 🙂", "bell\x07", "del\x7f", "nel\x85", "ls\u2028",
    "bom\ufeff", "", "@at", "`tick`", "%percent", "!tag", "&anchor", "*alias", "a #b", "a:", "=", "<<",
    "a -", "x:y", "key -x", "Y", "nO",
    3, 0, -7, 2.5, True, False, None, ["a", "b: c"], {"k": "v\n"},
])
def test_the_yaml_filter_writes_every_value_so_both_yaml_versions_read_it_back(value):
    text = f"key: {yaml_value(value)}\n"
    document = load_single(text, "t.yaml")
    assert document is not None and document.value == {"key": value}
    assert pyyaml.safe_load(text) == {"key": value}  # YAML 1.1, as many adapters read it


def test_raw_interpolation_in_a_yaml_skeleton_file_is_refused_with_its_line(tmp_path):
    folder = write_template(tmp_path, "raw", MINIMAL_MANIFEST, {
        "good.md": "{{ text }}\n",
        "bad.yaml": "a: {{ text | yaml }}\nb: {{ 3 }}\nc: {{ text }}\n",
    })
    template = load_template(folder)
    assert errors_of(render, template, resolve_parameters(template, {})) == [
        f"{folder / 'skeleton' / 'bad.yaml'}:3: cannot render: 'hello' is interpolated without the yaml filter; "
        "write {{ value | yaml }} so it stays one YAML value"
    ]


@pytest.mark.parametrize("target", ["../evil", "/tmp/evil", "a/../../evil", "", "a//b", ".git/hooks/pre-commit"])
def test_rendered_paths_that_leave_the_destination_are_refused(tmp_path, target):
    folder = write_template(tmp_path, "escape", MINIMAL_MANIFEST, {"{{ target }}": "x\n"})
    template = load_template(folder)
    [error] = errors_of(render, template, resolve_parameters(template, {"target": target}))
    assert error.startswith(f"{folder / 'skeleton' / '{{ target }}'}: renders to '{target}'")


def test_a_templated_folder_name_that_renders_to_dot_dot_is_refused(tmp_path):
    folder = write_template(tmp_path, "escape", MINIMAL_MANIFEST, {"{{ '..' }}/evil.txt": "x\n"})
    template = load_template(folder)
    source = folder / "skeleton" / "{{ '..' }}" / "evil.txt"
    assert errors_of(render, template, resolve_parameters(template, {})) == [
        f"{source}: renders to '../evil.txt', which leaves the destination folder"
    ]


def test_destination_problems_lists_existing_files_and_symbolic_links_out(tmp_path):
    template = storage_template()
    files = render(template, resolve_parameters(template, {}, use_example=True))
    destination = tmp_path / "dp"
    assert destination_problems(destination, files) == ([], [])
    (destination / "components").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (destination / "components" / "raw-orders").symlink_to(tmp_path / "elsewhere")
    existing, problems = destination_problems(destination, files)
    assert existing == [] and [error.message for error in problems] == [
        "leaves the destination folder through a symbolic link"
    ]
    (destination / "components" / "raw-orders").unlink()
    (destination / "components" / "raw-orders").mkdir()
    (destination / "components" / "raw-orders" / "catalog-info.yaml").write_text("mine\n")
    assert destination_problems(destination, files) == (["components/raw-orders/catalog-info.yaml"], [])


def test_data_product_storage_and_output_port_examples_pass_every_builtin_policy(tmp_path):
    product = tmp_path / "sales-orders"
    written = render_into(product, "dataproduct") + render_into(product, "sqlite-storage") + render_into(
        product, "sqlite-outputport")
    assert written == ["README.md", "catalog-info.yaml", "environments/production/configurations.yaml",
                       "components/raw-orders/catalog-info.yaml", "components/orders/catalog-info.yaml"]
    policies = load_policies()
    for environment in ("development", "production"):
        descriptor = assemble(DirectoryReader(product), environment)
        results = evaluate(descriptor, policies, descriptor.data)  # as if deployed: breaking changes evaluated too
        assert len(results) == 5 and all(result.outcome == "passed" for result in results), [
            (result.policy, [failure.message for failure in result.errors]) for result in results
        ]
    assert descriptor.id == "urn:dmb:dp:sales:orders:0"
    plan = build_plan(descriptor)
    assert plan.stages == [["urn:dmb:cmp:sales:orders:0:raw-orders"], ["urn:dmb:cmp:sales:orders:0:orders"]]
    port, storage = descriptor.components  # ordered by file path
    assert storage["infrastructureTemplateId"] == "urn:dmb:itm:sqlite-storage-provisioner:0"
    assert port["infrastructureTemplateId"] == "urn:dmb:itm:sqlite-outputport-provisioner:0"
    assert port["dependsOn"] == [storage["id"]]
    assert port["specific"] == {"viewName": "orders_v", "sourceTable": "orders"}
    [table] = storage["specific"]["tables"]
    assert table["tableName"] == "orders"
    assert port["dataContract"]["schema"] == table["schema"]
    assert table["schema"][0] == {"name": "order_id", "dataType": "TEXT", "constraint": "PRIMARY_KEY"}
    assert table["schema"][-1] == {"name": "channel", "dataType": "TEXT"}


def test_the_data_product_fills_every_specification_field():
    template = find_template(load_templates(), "dataproduct")
    [_, catalog, _] = render(template, resolve_parameters(template, {}, use_example=True))
    document = load_single(catalog.content, "catalog-info.yaml")
    assert document is not None
    mesh = document.value["spec"]["mesh"]
    assert set(mesh) >= {"fullyQualifiedName", "version", "dataProductOwner", "dataProductOwnerDisplayName", "email",
                         "supportSLA", "status", "maturity", "billing", "businessInfo", "securityInfo", "contacts",
                         "targetConsumption", "tags", "businessConcepts", "specific", "useCaseTemplateId"}
    assert document.value["metadata"] == {"name": "sales.orders.0", "title": "Orders",
                                          "description": "Every customer order, from the web shop and the stores"}
    assert mesh["version"] == "0.0.0" and mesh["securityInfo"]["GDPR"] == "Yes"


def test_hostile_values_stay_inside_their_yaml_scalars():
    template = find_template(load_templates(), "dataproduct")
    hostile = "x\n  type: website\nkind: Location # \"'"
    parameters = resolve_parameters(template, {"description": hostile, "title": "yes"}, use_example=True)
    [_, catalog, _] = render(template, parameters)
    document = load_single(catalog.content, "catalog-info.yaml")
    assert document is not None
    assert document.value["metadata"]["description"] == hostile and document.value["metadata"]["title"] == "yes"
    assert document.value["kind"] == "System" and document.value["spec"]["type"] == "dataproduct"


def test_tags_render_as_catalog_tags():
    template = find_template(load_templates(), "dataproduct")
    parameters = resolve_parameters(template, {"tags": ["Sales.Orders", "PII"]}, use_example=True)
    [_, catalog, _] = render(template, parameters)
    document = load_single(catalog.content, "catalog-info.yaml")
    assert document is not None and document.value["spec"]["mesh"]["tags"] == [
        {"tagFQN": "Sales.Orders", "source": "Classification", "labelType": "Manual", "state": "Confirmed"},
        {"tagFQN": "PII", "source": "Classification", "labelType": "Manual", "state": "Confirmed"},
    ]


# --- components added to an existing data product ----------------------------------------------------


def test_a_component_takes_domain_name_major_and_owner_from_the_data_product(tmp_path):
    product = tmp_path / "cashflow"
    product.mkdir()
    (product / "catalog-info.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: finance.cashflow.2\n"
        "spec:\n  type: dataproduct\n  owner: group:finance-data\n"
    )
    data_product = read_data_product(product)
    assert data_product is not None and (data_product.domain, data_product.name, data_product.major_version) == (
        "finance", "cashflow", 2)
    template = storage_template()
    assert derive_parameters(template, product, data_product, {}) == {
        "domain": "finance", "name": "cashflow", "majorVersion": 2, "owner": "group:finance-data"}
    render_into(product, "sqlite-storage", {"component": "ledger", "tableName": "entries"})
    port = render_into(product, "sqlite-outputport", {"component": "entries-view", "description": "All entries"},
                       use_example=False)
    assert port == ["components/entries-view/catalog-info.yaml"]
    descriptor = assemble(DirectoryReader(product))
    view, storage = descriptor.components  # ordered by file path
    assert storage["id"] == "urn:dmb:cmp:finance:cashflow:2:ledger" and storage["version"] == "2.0.0"
    assert view["dependsOn"] == ["urn:dmb:cmp:finance:cashflow:2:ledger"]
    assert view["specific"] == {"viewName": "entries_v", "sourceTable": "entries"}
    assert view["dataContract"]["schema"] == storage["specific"]["tables"][0]["schema"]


def test_an_unversioned_system_name_needs_the_link_parameters(tmp_path):
    (tmp_path / "catalog-info.yaml").write_text("kind: System\nmetadata:\n  name: cashflow\n")
    data_product = read_data_product(tmp_path)
    assert data_product is not None
    assert errors_of(derive_parameters, storage_template(), tmp_path, data_product, {"name": "cashflow"}) == [
        f"{tmp_path / 'catalog-info.yaml'}: the System's metadata.name 'cashflow' is not <domain>.<name>.<major>; "
        "--set domain=... --set majorVersion=... to link the component to it"
    ]
    assert derive_parameters(storage_template(), tmp_path, data_product,
                             {"domain": "finance", "name": "cashflow", "majorVersion": 1}) == {}


def test_json_listing_shape_is_the_manifest():
    template = storage_template()
    shown = template.as_json()
    assert list(shown) == ["id", "description", "kind", "infrastructureTemplateId", "parameters"]
    assert json.loads(json.dumps(shown))["parameters"]["properties"]["tableName"]["pattern"] == (
        "^[A-Za-z_][A-Za-z0-9_]*$")
