"""Load policy files, check them, and compile each policy's schema once."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

from bot.config import ServerConfig
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.yamlsafe import YamlDocument, load_single
from policies.builtins import BUILTINS
from policies.model import SELECTOR_FIELDS, Policy, Selector, Severity, Status, Target

PACKAGE_DIRECTORY = Path(__file__).resolve().parent
BUILTIN_DIRECTORY = PACKAGE_DIRECTORY / "builtin"
EXAMPLES_DIRECTORY = PACKAGE_DIRECTORY / "examples"
POLICY_SUFFIXES = (".yaml", ".yml")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@cache
def _file_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((PACKAGE_DIRECTORY / "policy-file.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def load_policies(folders: Sequence[str | Path] = (), include_builtin: bool = True) -> list[Policy]:
    """The built-in policies (unless excluded) and every policy file in the folders, in a stable order."""
    directories = ([BUILTIN_DIRECTORY] if include_builtin else []) + [Path(folder) for folder in folders]
    errors: list[InputError] = []
    policies: list[Policy] = []
    for directory in directories:
        if not directory.is_dir():
            errors.append(InputError("policy folder not found", SourcePosition(str(directory))))
            continue
        for path in sorted(p for p in directory.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file()):
            try:
                policies.append(load_policy_file(path))
            except InputErrors as invalid:
                errors.extend(invalid.errors)
    first_file: dict[str, str] = {}
    for policy in policies:
        if policy.id in first_file:
            errors.append(InputError(
                f"field 'id': policy id '{policy.id}' is already used by {first_file[policy.id]}",
                SourcePosition(policy.file),
            ))
        first_file.setdefault(policy.id, policy.file)
    if errors:
        raise InputErrors(errors)
    return policies


def policies_for(config: ServerConfig) -> list[Policy]:
    """The built-in policies and those of the configuration's policy folders (what every review and deploy runs)."""
    return load_policies(config.policy_folders)


def load_policy_file(path: Path) -> Policy:
    """One policy; InputErrors naming the file, the field and its line when the file is invalid."""
    label = str(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputErrors([InputError(f"file is {size} bytes, over the 1 MiB limit", SourcePosition(label))])
    document = load_single(path.read_bytes(), label)
    if document is None or not isinstance(document.value, dict):
        raise InputErrors([InputError("a policy file must be a mapping (id, description, target, ...)",
                                      SourcePosition(label, 1, 1))])
    _check_fields(document)
    return _build(document)


def _check_fields(document: YamlDocument) -> None:
    value: dict[str, Any] = document.value
    has_schema, has_builtin = "schema" in value, "builtin" in value
    if has_schema == has_builtin:
        raise InputErrors([InputError(
            "a policy needs exactly one check: 'schema' (JSON Schema) or 'builtin' (a built-in check name)",
            document.position(("builtin",) if has_builtin else ()),
        )])
    problems = sorted(
        (error for error in _file_validator().iter_errors(value) if error.validator != "oneOf"),
        key=lambda error: list(map(str, error.absolute_path)),
    )
    errors = [_field_error(document, error) for error in problems]
    if not errors and value.get("target") == Target.DATA_PRODUCT and "kind" in (value.get("selector") or {}):
        errors.append(InputError(
            "field 'selector.kind': only component policies select by kind", document.position(("selector", "kind"))
        ))
    if not errors and "grace_until" in value:
        errors.extend(_grace_until_errors(document))
    if not errors and has_builtin and value["builtin"] not in BUILTINS:
        known = ", ".join(sorted(BUILTINS))
        errors.append(InputError(f"field 'builtin': unknown built-in check '{value['builtin']}' (known: {known})",
                                 document.position(("builtin",))))
    if not errors and has_schema:
        errors.extend(_schema_errors(document))
    if errors:
        raise InputErrors(errors)


def _grace_until_errors(document: YamlDocument) -> list[InputError]:
    """A grace_until that is no date, or that is on a policy not in grace, with its position."""
    value, position = document.value, document.position(("grace_until",))
    if parse_grace_until(value["grace_until"]) is None:
        return [InputError(f"field 'grace_until': {value['grace_until']} is not a valid date; "
                           "write it as YYYY-MM-DD, e.g. 2027-03-01", position)]
    if value["status"] != Status.GRACE:
        return [InputError(f"field 'grace_until': only a policy with status grace has a grace date "
                           f"(this one is {value['status']}); remove grace_until or set status: grace", position)]
    return []


def parse_grace_until(text: str) -> date | None:
    """The date of an ISO `YYYY-MM-DD` text (YAML dates load as their text); None when it is no such date."""
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _field_error(document: YamlDocument, error: jsonschema.ValidationError) -> InputError:
    path = tuple(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return InputError(f"field '{missing}' is required", document.position(path))
    if error.validator == "additionalProperties":
        return InputError(f"{_field_name(path)}: {error.message}", document.position(path))
    field_name = _field_name(path)
    if error.validator == "enum":
        allowed = ", ".join(str(option) for option in error.validator_value)
        return InputError(f"{field_name}: {error.instance!r} is not one of {allowed}", document.position(path))
    if error.validator == "pattern":
        return InputError(
            f"{field_name}: {error.instance!r} must match {error.validator_value}", document.position(path)
        )
    return InputError(f"{field_name}: {error.message}", document.position(path))


def _field_name(path: tuple[Any, ...]) -> str:
    return "field '" + ".".join(str(part) for part in path) + "'" if path else "policy"


def _schema_errors(document: YamlDocument) -> list[InputError]:
    schema = document.value["schema"]
    try:
        # The Rust meta-check is ~100x faster; the Python one only runs to explain a failure precisely.
        if not jsonschema_rs.meta.is_valid(schema):
            jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        path = ("schema", *error.absolute_path)
        return [InputError(f"field '{'.'.join(map(str, path))}': not valid JSON Schema: {error.message}",
                           document.position(path))]
    try:
        compile_schema(schema)
    except (ValueError, jsonschema_rs.ReferencingError) as error:
        first_line = str(error).splitlines()[0]
        return [InputError(f"field 'schema': cannot be compiled: {first_line}", document.position(("schema",)))]
    return []


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref '{uri}' is not allowed; put the definition in $defs")


def compile_schema(schema: dict[str, Any] | bool) -> jsonschema_rs.Draft202012Validator:
    """A validator for schema that never fetches anything over the network."""
    return jsonschema_rs.Draft202012Validator(schema, retriever=_refuse_remote)


def _build(document: YamlDocument) -> Policy:
    value = document.value
    raw_selector = value.get("selector") or {}
    selector = Selector(**{
        name: (raw_selector[name],) if isinstance(raw_selector[name], str) else tuple(raw_selector[name])
        for name in SELECTOR_FIELDS
        if name in raw_selector
    })
    schema = value.get("schema")
    return Policy(
        id=value["id"],
        description=value["description"],
        target=Target(value["target"]),
        severity=Severity(value["severity"]),
        status=Status(value["status"]),
        file=document.file,
        selector=selector,
        schema=schema,
        builtin=value.get("builtin"),
        validator=compile_schema(schema) if schema is not None else None,
        grace_until=parse_grace_until(value["grace_until"]) if "grace_until" in value else None,
    )
