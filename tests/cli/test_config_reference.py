"""docs/configuration.md is generated from the configuration's JSON Schema, and every key there is described."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.cli.config_reference import REGENERATE, configuration_markdown
from bot.config import CONFIG_SCHEMA, ENVIRONMENT_SETTINGS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def properties(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property below schema, by dotted path, through items, oneOf branches and mapping values."""
    if not isinstance(schema, dict):
        return
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from properties(child, f"{path}.{name}")
    yield from properties(schema.get("items"), f"{path}[]")
    yield from properties(schema.get("additionalProperties"), f"{path}.<name>")
    for branch in schema.get("oneOf", []):
        yield from properties(branch, path)


def test_docs_configuration_md_is_up_to_date():
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == configuration_markdown(CONFIG_SCHEMA), (
        f"docs/configuration.md is out of date: regenerate it with `{REGENERATE}`")


def test_every_property_has_a_description():
    found = dict(properties(CONFIG_SCHEMA))
    assert {".adapters[].timeout", ".environments.<name>.approval_required", ".marketplace.notify",
            ".deployments.history", ".releases.tag", ".public_url"} <= set(found)
    assert [path for path, schema in found.items() if not schema.get("description")] == []
    assert all(schema.get("description") for schema in ENVIRONMENT_SETTINGS_SCHEMA["properties"].values())


def test_each_key_is_documented_with_its_default():
    page = configuration_markdown(CONFIG_SCHEMA)
    for name in CONFIG_SCHEMA["properties"]:
        assert f"\n### {name}\n" in page
    assert "- `adapters[].timeout` (number, > 0, ≤ 86400; default `600`): " in page
    assert "- `releases.tag` (string, matching `^[^{}]*\\{version\\}[^{}]*$`; default `v{version}`): " in page
    assert "- `environments.<name>.undeploy_permission` (one of `read`, `write`, `maintain`, `admin`; " \
           "default `admin`): " in page
