"""`meshbot templates` and `meshbot new`: listing, parameters, refusals, git, components of a data product."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from bot.cli.main import EXAMPLE_DATA_PRODUCT, main
from bot.descriptor.yamlsafe import load_single

TABLE_PATTERN_ERROR = "meshbot: parameter 'tableName': 'x y' does not match ^[A-Za-z_][A-Za-z0-9_]*$\n"


@pytest.fixture(autouse=True)
def isolated_git(tmp_path, monkeypatch):
    """git sees no user configuration and no repository above tmp_path."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{part}", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    return config


def git(folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *arguments], cwd=folder, capture_output=True, text=True, timeout=60)


def read_yaml(path: Path) -> dict:
    document = load_single(path.read_text(), str(path))
    assert document is not None
    return document.value


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)


# --- meshbot templates -------------------------------------------------------------------------------


def test_templates_lists_names_ids_kinds_and_parameters(capsys):
    assert main(["templates"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("dataproduct  urn:dmb:utm:dataproduct-template:0.0.0\n"
                             "  kind: dataproduct; infrastructure template: none\n")
    assert ("sqlite-storage  urn:dmb:utm:sqlite-storage-template:0.0.0\n"
            "  kind: storage; infrastructure template: urn:dmb:itm:sqlite-storage-provisioner:0\n") in output
    assert ("sqlite-outputport  urn:dmb:utm:sqlite-outputport-template:0.0.0\n"
            "  kind: outputport; infrastructure template: urn:dmb:itm:sqlite-outputport-provisioner:0\n") in output
    assert "    tableName *       Table name\n" in output
    assert "    majorVersion = 0  Major version\n" in output
    assert "  try: meshbot new sqlite-outputport DIR --example\n" in output


def test_templates_json_is_a_list_of_ids_descriptions_kinds_and_parameter_schemas(capsys):
    assert main(["templates", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in listed] == [
        "urn:dmb:utm:dataproduct-template:0.0.0",
        "urn:dmb:utm:sqlite-storage-template:0.0.0",
        "urn:dmb:utm:sqlite-outputport-template:0.0.0",
    ]
    for entry in listed:
        assert set(entry) == {"id", "description", "kind", "infrastructureTemplateId", "parameters"}
        assert entry["parameters"]["type"] == "object" and entry["parameters"]["properties"]
    assert [entry["infrastructureTemplateId"] for entry in listed] == [
        None, "urn:dmb:itm:sqlite-storage-provisioner:0", "urn:dmb:itm:sqlite-outputport-provisioner:0"]
    assert listed[2]["parameters"]["properties"]["columns"]["items"] == {"$ref": "#/$defs/column"}


def test_a_broken_template_in_an_extra_folder_is_reported_with_its_file(tmp_path, capsys):
    folder = tmp_path / "templates" / "broken"
    (folder / "skeleton").mkdir(parents=True)
    (folder / "template.yaml").write_text("id: nope\n")
    assert main(["templates", "--templates", str(tmp_path / "templates")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert f"{folder / 'template.yaml'}:1:1: field 'description' is required" in errors
    assert any(error.startswith(f"{folder / 'template.yaml'}:1:5: field 'id': 'nope' must match ") for error in errors)


# --- meshbot new -------------------------------------------------------------------------------------


def test_new_data_product_from_the_example_writes_commits_and_says_what_next(tmp_path, capsys):
    product = tmp_path / "orders"
    assert main(["new", "dataproduct", str(product), "--example"]) == 0
    output = capsys.readouterr().out
    assert files_under(product) == ["README.md", "catalog-info.yaml", "environments/production/configurations.yaml"]
    assert f"  wrote {product / 'catalog-info.yaml'}\n" in output
    assert f"git: initialised a repository in {product} with a first commit\n" in output
    assert f"then `meshbot check {product}`" in output
    log = git(product, "log", "--format=%an <%ae>|%s")
    assert log.stdout == "meshbot <meshbot@localhost>|Start from the use-case template " \
                         "urn:dmb:utm:dataproduct-template:0.0.0\n"
    assert git(product, "status", "--porcelain").stdout == ""
    assert git(product, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == "main"
    system = read_yaml(product / "catalog-info.yaml")
    assert system["metadata"]["name"] == "sales.orders.0" and system["spec"]["domain"] == "domain:sales"
    assert "# Orders\n" in (product / "README.md").read_text()


def test_the_first_commit_uses_the_configured_identity(tmp_path, isolated_git):
    isolated_git.write_text("[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n")
    assert main(["new", "urn:dmb:utm:dataproduct-template:0.0.0", str(tmp_path / "dp"), "--example"]) == 0
    assert git(tmp_path / "dp", "log", "--format=%an <%ae>").stdout == "Ada Lovelace <ada@example.com>\n"


def test_the_three_examples_pass_meshbot_check_and_plan_storage_before_the_output_port(tmp_path, capsys):
    product = str(tmp_path / "orders")
    for template in ("dataproduct", "sqlite-storage", "sqlite-outputport"):
        assert main(["new", template, product, "--example"]) == 0
    capsys.readouterr()
    assert main(["check", product, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and len(report["results"]) == 5
    assert all(result["errors"] == [] for result in report["results"])
    # Nothing deployed was given: the breaking-change check alone is not evaluated, everything else passed.
    assert {(result["policy"], result["outcome"]) for result in report["results"] if result["outcome"] != "passed"} \
        == {("no-breaking-changes", "not_evaluated")}
    assert main(["plan", product, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["stages"] == [
        ["urn:dmb:cmp:sales:orders:0:raw-orders"], ["urn:dmb:cmp:sales:orders:0:orders"]]
    # Components added to a data product are not committed for the team: one commit, two new folders.
    assert git(Path(product), "rev-list", "--count", "HEAD").stdout == "1\n"
    assert git(Path(product), "status", "--porcelain").stdout == "?? components/\n"


def test_set_values_override_the_example(tmp_path):
    product = tmp_path / "invoices"
    assert main(["new", "dataproduct", str(product), "--example", "--set", "name=invoices", "--set", "majorVersion=2",
                 "--set", "stakeholderRoles=[CFO, Controlling]", "--set", "description=Invoices: every one"]) == 0
    system = read_yaml(product / "catalog-info.yaml")
    assert system["metadata"]["name"] == "sales.invoices.2"
    assert system["metadata"]["description"] == "Invoices: every one"
    assert system["spec"]["mesh"]["version"] == "2.0.0"
    assert system["spec"]["mesh"]["businessInfo"]["stakeholderRoles"] == ["CFO", "Controlling"]


def test_set_columns_as_a_yaml_flow_list(tmp_path):
    folder = tmp_path / "storage"
    assert main(["new", "sqlite-storage", str(folder), "--example", "--set", "columns=[{name: id, dataType: TEXT}]",
                 "--set", "component=ledger"]) == 0
    component = read_yaml(folder / "components" / "ledger" / "catalog-info.yaml")
    assert component["spec"]["mesh"]["specific"]["tables"] == [
        {"tableName": "orders", "schema": [{"name": "id", "dataType": "TEXT"}]}]


def test_a_bad_parameter_is_one_line_exit_two_and_nothing_is_written(tmp_path, capsys):
    folder = tmp_path / "storage"
    assert main(["new", "sqlite-storage", str(folder), "--example", "--set", "tableName=x y"]) == 2
    captured = capsys.readouterr()
    assert captured.err == TABLE_PATTERN_ERROR and captured.out == ""
    assert not folder.exists()


def test_missing_parameters_are_listed_without_the_example(tmp_path, capsys):
    assert main(["new", "dataproduct", str(tmp_path / "dp"), "--set", "domain=sales", "--set", "name=orders"]) == 2
    assert capsys.readouterr().err == (
        "meshbot: parameter 'description' is required (Description)\n"
        "meshbot: parameter 'owner' is required (Owning team)\n"
        "meshbot: parameter 'dataProductOwner' is required (Data product owner)\n"
        "meshbot: parameter 'dataProductOwnerDisplayName' is required (Data product owner's name)\n"
        "meshbot: parameter 'email' is required (Team e-mail)\n"
    )
    assert not (tmp_path / "dp").exists()


def test_unknown_templates_and_malformed_set_exit_two(tmp_path, capsys):
    assert main(["new", "snowflake", str(tmp_path / "x")]) == 2
    assert "meshbot: unknown use-case template 'snowflake' (known: dataproduct, sqlite-storage" in \
        capsys.readouterr().err
    assert main(["new", "sqlite-storage", str(tmp_path / "x"), "--set", "tableName"]) == 2
    assert capsys.readouterr().err == "meshbot: --set 'tableName': expected KEY=VALUE\n"


def test_existing_files_are_never_overwritten_and_nothing_is_written(tmp_path, capsys):
    product = tmp_path / "orders"
    (product / "environments" / "production").mkdir(parents=True)
    (product / "README.md").write_text("ours\n")
    (product / "environments" / "production" / "configurations.yaml").write_text("ours: true\n")
    assert main(["new", "dataproduct", str(product), "--example"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "meshbot: refusing to overwrite 2 existing files; nothing was written:\n"
        f"  {product / 'README.md'}\n"
        f"  {product / 'environments/production/configurations.yaml'}\n"
    )
    assert captured.out == ""
    assert files_under(product) == ["README.md", "environments/production/configurations.yaml"]
    assert (product / "README.md").read_text() == "ours\n" and not (product / ".git").exists()


def test_rendered_paths_that_escape_the_folder_are_refused_and_nothing_is_written(tmp_path, capsys):
    template = tmp_path / "templates" / "escape"
    (template / "skeleton" / "{{ '..' }}").mkdir(parents=True)
    (template / "skeleton" / "ok.txt").write_text("fine\n")
    (template / "skeleton" / "{{ '..' }}" / "evil.txt").write_text("evil\n")
    (template / "skeleton" / "{{ target }}").write_text("evil\n")
    (template / "template.yaml").write_text(textwrap.dedent("""\
        id: urn:dmb:utm:escape:0.0.0
        description: Tries to write outside its folder
        kind: workload
        infrastructureTemplateId: urn:dmb:itm:escape:0
        parameters:
          type: object
          properties:
            target: {title: Target, description: A file name, type: string, default: ok2.txt}
        example: {}
    """))
    destination = tmp_path / "out" / "dp"
    arguments = ["new", "escape", str(destination), "--templates", str(tmp_path / "templates")]
    assert main([*arguments, "--set", "target=/tmp/evil"]) == 2
    by_target, by_folder = template / "skeleton" / "{{ target }}", template / "skeleton" / "{{ '..' }}" / "evil.txt"
    assert capsys.readouterr().err == (
        f"{by_target}: renders to '/tmp/evil', an absolute or invalid path; files must stay inside the destination "
        "folder\n"
        f"{by_folder}: renders to '../evil.txt', which leaves the destination folder\n"
    )
    assert not (tmp_path / "out").exists()
    (template / "skeleton" / "{{ '..' }}" / "evil.txt").unlink()
    assert main([*arguments, "--set", "target=../../evil"]) == 2
    assert "renders to '../../evil', which leaves the destination folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()
    assert main(arguments) == 0
    assert files_under(destination) == ["ok.txt", "ok2.txt"]


def test_inside_an_existing_repository_nothing_is_initialised_or_committed(tmp_path, capsys):
    repository = tmp_path / "monorepo"
    repository.mkdir()
    assert git(repository, "init", "-q").returncode == 0
    product = repository / "products" / "orders"
    assert main(["new", "dataproduct", str(product), "--example"]) == 0
    assert f"git: {product} is inside a git repository; commit the new files there\n" in capsys.readouterr().out
    assert not (product / ".git").exists()
    assert git(repository, "rev-parse", "--verify", "HEAD").returncode != 0  # still no commit
    assert git(repository, "status", "--porcelain").stdout == "?? products/\n"


def test_without_git_the_files_are_still_rendered(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bot.cli.usecases.shutil.which", lambda name: None)
    product = tmp_path / "orders"
    assert main(["new", "dataproduct", str(product), "--example"]) == 0
    assert f"git: not found, so {product} is not under version control" in capsys.readouterr().out
    assert (product / "catalog-info.yaml").is_file() and not (product / ".git").exists()


def test_a_component_is_added_to_an_existing_data_product_and_linked_to_it(tmp_path, capsys):
    product = tmp_path / "cashflow"
    product.mkdir()
    shutil.copy(EXAMPLE_DATA_PRODUCT / "catalog-info.yaml", product / "catalog-info.yaml")
    assert main(["new", "sqlite-storage", str(product), "--example", "--set", "component=ledger"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("Rendered sqlite-storage (urn:dmb:utm:sqlite-storage-template:0.0.0) into "
                             f"{product} to the data product finance.cashflow.1:\n")
    assert output.endswith(f"Next: meshbot check {product}\n") and "git:" not in output
    assert not (product / ".git").exists()
    storage = read_yaml(product / "components" / "ledger" / "catalog-info.yaml")
    assert storage["metadata"]["name"] == "finance.cashflow.1.ledger"
    assert storage["spec"]["system"] == "system:finance.cashflow.1"
    assert storage["spec"]["owner"] == "group:finance-data"
    assert storage["spec"]["mesh"]["version"] == "1.0.0"
    # The output port takes the only storage, its only table and that table's columns.
    assert main(["new", "sqlite-outputport", str(product), "--set", "component=daily",
                 "--set", "description=Every order, every day"]) == 0
    port = read_yaml(product / "components" / "daily" / "catalog-info.yaml")
    assert port["spec"]["mesh"]["dependsOn"] == ["urn:dmb:cmp:finance:cashflow:1:ledger"]
    assert port["spec"]["mesh"]["specific"] == {"viewName": "orders_v", "sourceTable": "orders"}
    assert port["spec"]["mesh"]["dataContract"]["schema"] == storage["spec"]["mesh"]["specific"]["tables"][0]["schema"]
    capsys.readouterr()
    assert main(["check", str(product)]) == 0
    assert "0 warnings" in capsys.readouterr().out


def test_a_component_in_an_empty_folder_says_it_needs_a_data_product(tmp_path, capsys):
    folder = tmp_path / "shared-storage"
    assert main(["new", "sqlite-storage", str(folder), "--example"]) == 0
    output = capsys.readouterr().out
    assert f"Next: {folder} holds no data product" in output
    assert files_under(folder) == ["components/raw-orders/catalog-info.yaml"]
    assert git(folder, "rev-list", "--count", "HEAD").stdout == "1\n"
