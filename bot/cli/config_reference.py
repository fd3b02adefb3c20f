"""docs/configuration.md, generated from the server configuration's JSON Schema (`meshbot config schema --markdown`)."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.descriptor.yamldump import dump_yaml

REGENERATE = "python -m bot.cli config schema --markdown > docs/configuration.md"

INTRO = f"""\
<!-- Generated from bot/config.py (CONFIG_SCHEMA) by `{REGENERATE}`: edit the schema's
descriptions there, then run that command. -->

# Server configuration

The platform team owns one YAML file, given with `--config FILE` or the `MESHBOT_CONFIG` environment variable,
and read by `meshbot check`, `diff`, `deploy`, `undeploy`, `status`, `worker` and `serve` (whose web and RQ
workers read the same file, webhook jobs each time they run). It is checked against a JSON Schema when it is read:
every mistake is reported with its file, line and key. A repository can never choose adapter URLs or switch
policies off: those live here. Secrets never do: they come from environment variables only (see
[the webhook service](webhooks.md#secrets-and-tokens) and [operations](operations.md)). Without a file, or with an
empty one, every key has its default.

```sh
meshbot config check meshbot.yaml           # "meshbot.yaml: ok" (exit 0), or each mistake on stderr (exit 1)
meshbot config schema > meshbot.schema.json # the JSON Schema (Draft 2020-12) this page is generated from
```

`meshbot config check` reads the file exactly as `meshbot serve` does and prints each mistake as
`FILE:LINE:COLUMN: message`, so your terminal or editor can jump to it:

```
meshbot.yaml:4:14: adapters.0.timeout: -1 is less than or equal to the minimum of 0
```

Editors that use the YAML language server (VS Code's YAML extension, among others) complete keys and show these
descriptions as you type when the file's first line points at the schema:
`# yaml-language-server: $schema=meshbot.schema.json`.

Beyond the schema, reading the file also refuses two adapters for the same infrastructure template that share an
environment, a `redis_url` with credentials in it, a reviewed environment (`merge_requests.environments`) that
`environments` does not list, and a gating environment that is not reviewed.

A worked example, for the bundled example data product and the reference SQLite tech adapter:
[`examples/meshbot.yaml`](../examples/meshbot.yaml).

## Keys
"""


def configuration_markdown(schema: dict[str, Any]) -> str:
    """The reference page of the configuration: the intro, then each key with its type, default and description."""
    lines = [INTRO]
    definitions = schema.get("$defs", {})
    lines.append("| key | what |")
    lines.append("|---|---|")
    for name, prop in schema["properties"].items():
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {_first_sentence(prop.get('description', ''))} |")
    for name, prop in schema["properties"].items():
        lines += ["", f"### {name}", "", f"Type: {_summary(prop, definitions, required=False)}.", ""]
        lines.append(prop["description"])
        examples = prop.get("examples", [])
        if examples:
            lines += ["", "Example:" if len(examples) == 1 else "Examples:"]
        for example in examples:
            lines += ["", "```yaml", dump_yaml({name: example}).rstrip("\n"), "```"]
        nested = _nested(prop, name, definitions)
        if nested:
            lines += [""] + nested
    return "\n".join(lines) + "\n"


def _nested(schema: dict[str, Any], path: str, definitions: dict[str, Any]) -> list[str]:
    """A bullet for every key below schema, each named by its dotted path from the top."""
    lines: list[str] = []
    for child_path, child, required in _children(schema, path):
        entry = f"- `{child_path}` ({_summary(child, definitions, required)}): {child.get('description', '')}"
        examples = [f"`{child_path.rsplit('.', 1)[-1]}: {_flow(example)}`" for example in child.get("examples", [])]
        if examples:
            entry += f" Example: {', '.join(examples)}."
        lines.append(entry)
        lines += _nested(child, child_path, definitions)
    return lines


def _children(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any], bool]]:
    """The keys directly below schema: its properties, its items' properties, its mapping values' properties."""
    children = []
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        children.append((f"{path}.{name}", child, name in required))
    items = schema.get("items")
    if isinstance(items, dict) and "properties" in items:
        children += _children(items, f"{path}[]")
    for branch in schema.get("oneOf", []):
        values = branch.get("additionalProperties")
        if isinstance(values, dict) and "properties" in values:
            children += _children(values, f"{path}.<name>")
    return children


def _summary(schema: dict[str, Any], definitions: dict[str, Any], required: bool) -> str:
    """The type, constraints, whether it is required and its default, in a few words."""
    parts = [_kind(schema, definitions)]
    if required:
        parts.append("required")
    if "default" in schema:
        parts.append(f"default `{_flow(schema['default'])}`")
    return "; ".join(parts)


def _kind(schema: dict[str, Any], definitions: dict[str, Any]) -> str:
    """What a value must be: "list of environment names", "number, > 0, ≤ 86400", "one of `read`, `write`"."""
    reference = schema.get("$ref", "")
    if reference.startswith("#/$defs/"):
        target = definitions[reference.removeprefix("#/$defs/")]
        return str(target.get("title") or _kind(target, definitions))
    if "title" in schema:
        return str(schema["title"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "oneOf" in schema:
        return ", or ".join(_kind(branch, definitions) for branch in schema["oneOf"])
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "array" in types:
        items = _kind(schema.get("items", {}), definitions) if schema.get("items") else "values"
        words = ["non-empty list" if schema.get("minItems") else "list", f"of {_plural(items)}"]
        if schema.get("uniqueItems"):
            words.append("without repeats")
        return " ".join(words)
    if "object" in types:
        names = schema.get("propertyNames")
        values = schema.get("additionalProperties")
        if isinstance(names, dict) and isinstance(values, dict):
            word = "mapping of " + _kind(names, definitions) + " to " + (
                "its settings" if "properties" in values else _kind(values, definitions))
        else:
            word = "mapping"
        return word + (" (or empty)" if "null" in types else "")
    constraints = []
    if "pattern" in schema:
        constraints.append(f"matching `{schema['pattern']}`")
    if schema.get("minLength") == 1:
        constraints.append("not empty")
    for keyword, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("maximum", "≤")):
        if keyword in schema:
            constraints.append(f"{sign} {_flow(schema[keyword])}")
    return ", ".join([" or ".join(types) or "any value", *constraints])


def _plural(kind: str) -> str:
    """"environment name" -> "environment names"; longer phrases are left as they are."""
    if re.fullmatch(r"[\w() -]+", kind) and not kind.endswith("s") and "," not in kind:
        return kind + "s"
    return kind


def _flow(value: Any) -> str:
    """A value as one line of YAML (flow style)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    return str(value)


def _first_sentence(text: str) -> str:
    sentence = text.split(". ")[0].rstrip(".")
    return sentence + "."


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces to dashes, punctuation but '-' and '_' dropped."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
