"""The adapter registry: resolution by template and environment, and errors before anything runs."""

from adapters.registry import AdapterRegistry
from bot.config import AdapterSettings
from bot.descriptor.errors import SourcePosition
from tests.builders import component, descriptor_of

STORAGE = "urn:dmb:itm:sqlite-storage-provisioner:0"
PORT = "urn:dmb:itm:sqlite-outputport-provisioner:0"
CATCH_ALL = AdapterSettings(STORAGE, "http://127.0.0.1:1/a")
PRODUCTION = AdapterSettings(STORAGE, "http://127.0.0.1:1/b", ("production",))


def test_environment_specific_adapter_wins_over_catch_all():
    registry = AdapterRegistry([CATCH_ALL, PRODUCTION])
    assert registry.find(STORAGE, "production") is PRODUCTION
    assert registry.find(STORAGE, "development") is CATCH_ALL
    assert registry.find(PORT, "development") is None


def test_adapter_limited_to_environments():
    registry = AdapterRegistry([PRODUCTION])
    assert registry.find(STORAGE, "development") is None


def test_one_client_per_adapter():
    registry = AdapterRegistry([CATCH_ALL])
    assert registry.client(CATCH_ALL) is registry.client(CATCH_ALL)
    assert registry.client(CATCH_ALL).base_url == "http://127.0.0.1:1/a"
    assert registry.client(CATCH_ALL).timeout == 600.0


def test_unresolved_components_are_reported_with_their_position():
    descriptor = descriptor_of({
        "raw": component("raw", "storage", f"version: 1.0.0\ninfrastructureTemplateId: {STORAGE}\n"),
        "view": component("view", "outputport", f"version: 1.0.0\ninfrastructureTemplateId: {PORT}\n"),
        "bare": component("bare", "workload", "version: 1.0.0\n"),
    })
    errors = AdapterRegistry([PRODUCTION]).unresolved(descriptor)
    assert [str(error) for error in errors] == [
        "components/bare/catalog-info.yaml:8:3: component 'urn:dmb:cmp:finance:cashflow:1:bare' has no "
        "infrastructureTemplateId, so no tech adapter can deploy it",
        f"components/raw/catalog-info.yaml:10:31: no tech adapter serves infrastructureTemplateId '{STORAGE}' in "
        "environment 'development' (of 'urn:dmb:cmp:finance:cashflow:1:raw'); the server configuration names no "
        "adapter for 'development'",
        f"components/view/catalog-info.yaml:10:31: no tech adapter serves infrastructureTemplateId '{PORT}' in "
        "environment 'development' (of 'urn:dmb:cmp:finance:cashflow:1:view'); the server configuration names no "
        "adapter for 'development'",
    ]
    assert errors[1].position == SourcePosition("components/raw/catalog-info.yaml", 10, 31)


def test_all_resolved_means_no_errors():
    mesh = f"version: 1.0.0\ninfrastructureTemplateId: {STORAGE}\n"
    descriptor = descriptor_of({"raw": component("raw", "storage", mesh)})
    assert AdapterRegistry([CATCH_ALL]).unresolved(descriptor) == []
