"""End to end: rendered use-case templates pass governance, provision through the reference adapter,
and reverse provisioning proposes no change to what the templates wrote."""

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from adapters.payloads import component_request, reverse_provisioning_request
from bot.cli.main import main
from bot.descriptor.assembly import assemble
from bot.descriptor.files import DirectoryReader
from bot.engine.plan import build_plan
from policies.engine import evaluate
from policies.loader import load_policies
from tests.servers.reference_adapter import running_adapter
from tests.tech_adapter_api import api_or_none, assert_conform


def render_example_data_product(folder: Path) -> None:
    for template in ("dataproduct", "sqlite-storage", "sqlite-outputport"):
        assert main(["new", template, str(folder), "--example"]) == 0, template


def value_at(document: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        document = document[key]
    return document


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("product") / "orders"
    render_example_data_product(folder)
    return folder


def test_rendered_data_product_passes_every_builtin_policy(product):
    for environment in ("development", "production"):
        descriptor = assemble(DirectoryReader(product), environment)
        results = evaluate(descriptor, load_policies(), descriptor.data)  # as deployed: breaking changes evaluated
        assert [r.as_json() for r in results if r.outcome != "passed"] == []
        assert [stage for stage in build_plan(descriptor).stages] == [
            [c["id"] for c in descriptor.components if c["kind"] == "storage"],
            [c["id"] for c in descriptor.components if c["kind"] == "outputport"],
        ]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_rendered_components_provision_and_reverse_provision_without_spurious_changes(product, tmp_path, asynchronous):
    descriptor = assemble(DirectoryReader(product), "development")
    api = api_or_none()
    with running_adapter(tmp_path / "mesh.db", asynchronous=asynchronous) as adapter:
        client = adapter.client()
        for stage in build_plan(descriptor).stages:
            for component_id in stage:
                validation = client.validate(component_request(descriptor.data, component_id))
                assert validation.valid, validation.errors
                result = client.provision(component_request(descriptor.data, component_id))
                assert result.ok, (result.message, result.details)
        for component in descriptor.components:
            file = product / descriptor.component_files[component["id"]]
            catalog_info = YAML(typ="safe").load(file.read_text())
            reverse = client.reverse_provision(reverse_provisioning_request(
                component["useCaseTemplateId"], "development", {}, catalog_info))
            assert reverse.ok, reverse.message
            assert reverse.updates, "reverse provisioning proposed nothing to compare"
            for dotted, proposed in reverse.updates.items():
                assert proposed == value_at(catalog_info, dotted), (component["id"], dotted)
    assert_conform(adapter.recorder, api)
