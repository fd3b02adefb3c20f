"""Use-case templates: scaffolds that start a data product or one of its components.

A template is a folder `<name>/` holding a manifest `template.yaml` (id, description, kind,
infrastructureTemplateId, parameters as a JSON Schema 2020-12 object schema, and a complete example
parameter set) and a `skeleton/` folder of Jinja2 files; file and folder names may be templated too.
This module discovers and validates templates, resolves and validates parameters, renders skeletons
and checks a destination folder before anything is written. No web framework, no git: the command
line (bot.cli.usecases) does the talking.

In YAML files of a skeleton every `{{ ... }}` must go through the `yaml` filter (or be an integer), so
a value can never break out of its scalar; rendering refuses raw interpolation there.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import jsonschema
from jinja2.sandbox import ImmutableSandboxedEnvironment
from referencing import Registry
from referencing.exceptions import Unresolvable

from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.yamlsafe import YamlDocument, load_documents, load_single

BUILTIN_DIRECTORY = Path(__file__).resolve().parent / "usecases"
MANIFEST = "template.yaml"
SKELETON = "skeleton"
KINDS = ("dataproduct", "storage", "outputport", "workload", "observability")
YAML_SUFFIXES = (".yaml", ".yml")
# The data product a component template links to comes from these parameters.
LINK_PARAMETERS = ("domain", "name", "majorVersion")
# What an output port over a storage table copies of each column (the column parameters of the templates).
COLUMN_KEYS = ("name", "dataType", "dataLength", "precision", "scale", "jsonSchema", "constraint", "description")
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PARAMETER_NAME = r"^[a-z][A-Za-z0-9]*$"

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "description", "kind", "infrastructureTemplateId", "parameters", "example"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": r"^urn:dmb:utm:[A-Za-z0-9_.-]+:[0-9]+\.[0-9]+\.[0-9]+$"},
        "description": {"type": "string", "minLength": 1},
        "kind": {"enum": list(KINDS)},
        "infrastructureTemplateId": {"type": ["string", "null"], "pattern": r"^urn:dmb:itm:[A-Za-z0-9_.-]+:[0-9]+$"},
        "parameters": {
            "type": "object",
            "required": ["type", "properties"],
            "properties": {
                "type": {"const": "object"},
                "properties": {
                    "type": "object",
                    "propertyNames": {"pattern": _PARAMETER_NAME, "not": {"const": "template"}},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["title", "description"],
                        "properties": {
                            "title": {"type": "string", "minLength": 1},
                            "description": {"type": "string", "minLength": 1},
                        },
                    },
                },
                "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            },
        },
        "example": {"type": "object"},
    },
    "allOf": [{
        "if": {"required": ["kind"], "properties": {"kind": {"not": {"const": "dataproduct"}}}},
        "then": {"properties": {"infrastructureTemplateId": {"type": "string"}}},
    }],
}


@dataclass(slots=True)
class UseCaseTemplate:
    """One use-case template, its manifest checked."""

    name: str
    folder: Path
    id: str
    description: str
    kind: str
    infrastructure_template_id: str | None
    parameters: dict[str, Any]
    example: dict[str, Any]
    manifest_file: str

    @property
    def skeleton(self) -> Path:
        """The folder of files to render."""
        return self.folder / SKELETON

    @property
    def properties(self) -> dict[str, Any]:
        """The parameters' JSON Schemas by name."""
        properties = self.parameters.get("properties")
        return properties if isinstance(properties, dict) else {}

    @property
    def required(self) -> list[str]:
        """The names of the required parameters."""
        required = self.parameters.get("required")
        return list(required) if isinstance(required, list) else []

    def as_json(self) -> dict[str, Any]:
        """What `meshbot templates --format json` shows of the template."""
        return {
            "id": self.id,
            "description": self.description,
            "kind": self.kind,
            "infrastructureTemplateId": self.infrastructure_template_id,
            "parameters": self.parameters,
        }


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """One rendered file: its POSIX path relative to the destination folder and its text."""

    path: str
    content: str
    source: str
    executable: bool = False


@dataclass(frozen=True, slots=True)
class DataProductFolder:
    """What a component template needs to know of the data product in its destination folder."""

    file: str
    system: str
    domain: str | None
    name: str | None
    major_version: int | None
    owner: str | None


# ---------------------------------------------------------------------------------------------------
# Discovery and manifests


def load_templates(extra_directories: Sequence[str | Path] = (), include_builtin: bool = True) -> list[UseCaseTemplate]:
    """The built-in templates and those in extra directories (folders of templates, or template folders).

    InputErrors lists every broken manifest, missing folder and duplicate id or name.
    """
    directories = ([BUILTIN_DIRECTORY] if include_builtin else []) + [Path(d) for d in extra_directories]
    errors: list[InputError] = []
    templates: list[UseCaseTemplate] = []
    for directory in directories:
        if not directory.is_dir():
            errors.append(InputError("use-case template folder not found", SourcePosition(str(directory))))
            continue
        folders = [directory] if (directory / MANIFEST).is_file() else sorted(
            child for child in directory.iterdir() if child.is_dir() and (child / MANIFEST).is_file()
        )
        for folder in folders:
            try:
                templates.append(load_template(folder))
            except InputErrors as invalid:
                errors.extend(invalid.errors)
    seen_ids: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    for template in templates:
        for key, seen, label in ((template.id, seen_ids, "id"), (template.name, seen_names, "folder name")):
            if key in seen:
                errors.append(InputError(f"template {label} '{key}' is already used by {seen[key]}",
                                         SourcePosition(template.manifest_file)))
            seen.setdefault(key, template.manifest_file)
    if errors:
        raise InputErrors(errors)
    return sorted(templates, key=lambda template: (KINDS.index(template.kind), template.name))


def load_template(folder: Path) -> UseCaseTemplate:
    """One template folder; InputErrors naming the manifest, the field and its line when it is broken."""
    manifest = folder / MANIFEST
    label = str(manifest)
    if not _FOLDER_NAME.match(folder.name):
        raise InputErrors([InputError(
            f"template folder name '{folder.name}' may only hold letters, digits, '.', '_' and '-'",
            SourcePosition(label),
        )])
    size = manifest.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputErrors([InputError(f"file is {size} bytes, over the 1 MiB limit", SourcePosition(label))])
    document = load_single(manifest.read_bytes(), label)
    if document is None or not isinstance(document.value, dict):
        raise InputErrors([InputError(
            "a template manifest must be a mapping (id, description, kind, infrastructureTemplateId, parameters, "
            "example)", SourcePosition(label, 1, 1),
        )])
    errors = _manifest_errors(document)
    if not errors and not (folder / SKELETON).is_dir():
        errors.append(InputError(f"the template has no {SKELETON}/ folder of files to render", SourcePosition(label)))
    if errors:
        raise InputErrors(errors)
    value = document.value
    return UseCaseTemplate(
        name=folder.name,
        folder=folder,
        id=value["id"],
        description=value["description"],
        kind=value["kind"],
        infrastructure_template_id=value["infrastructureTemplateId"],
        parameters=value["parameters"],
        example=value["example"],
        manifest_file=label,
    )


def _manifest_errors(document: YamlDocument) -> list[InputError]:
    value = document.value
    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    problems = sorted(validator.iter_errors(value), key=lambda error: [str(part) for part in error.absolute_path])
    errors = [_manifest_field_error(document, error) for error in problems]
    if errors:
        return errors
    parameters = value["parameters"]
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as error:
        path = ("parameters", *error.absolute_path)
        return [InputError(f"{_field(path)}: not valid JSON Schema: {error.message}", document.position(path))]
    for index, name in enumerate(parameters.get("required", [])):
        if name not in parameters["properties"]:
            errors.append(InputError(f"field 'parameters.required[{index}]': '{name}' is not among the parameters",
                                     document.position(("parameters", "required", index))))
    if errors:
        return errors
    try:
        problems = parameter_problems(parameters, with_defaults(parameters, value["example"]))
    except Unresolvable as error:
        return [InputError(f"field 'parameters': cannot resolve a $ref ({error}); put definitions in $defs",
                           document.position(("parameters",)))]
    return [InputError(f"field 'example': {message}", document.position(("example", *path)))
            for path, message in problems]


def _manifest_field_error(document: YamlDocument, error: jsonschema.ValidationError) -> InputError:
    path = tuple(error.absolute_path)
    position = document.position(path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return InputError(f"field '{_join(path, missing)}' is required", position)
    if "propertyNames" in error.relative_schema_path:
        return InputError(f"{_field(path)}: parameter name {error.instance!r} must be camelCase letters and digits "
                          "(and not 'template')", document.position((*path, error.instance)))
    if error.validator == "enum":
        allowed = ", ".join(str(option) for option in error.validator_value)
        return InputError(f"{_field(path)}: {error.instance!r} is not one of {allowed}", position)
    if error.validator == "pattern":
        return InputError(f"{_field(path)}: {error.instance!r} must match {error.validator_value}", position)
    return InputError(f"{_field(path)}: {error.message}", position)


def _field(path: Sequence[Any]) -> str:
    return f"field '{_join(path)}'" if path else "manifest"


def _join(path: Sequence[Any], last: str | None = None) -> str:
    text = ""
    for part in [*path, *([last] if last is not None else [])]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def find_template(templates: Sequence[UseCaseTemplate], key: str) -> UseCaseTemplate:
    """The template whose id or folder name is key."""
    for template in templates:
        if key in (template.id, template.name):
            return template
    known = ", ".join(template.name for template in templates) or "none"
    raise InputErrors([InputError(
        f"unknown use-case template '{key}' (known: {known}; `meshbot templates` lists them)"
    )])


# ---------------------------------------------------------------------------------------------------
# Parameters


def parse_assignments(template: UseCaseTemplate, assignments: Sequence[str]) -> dict[str, Any]:
    """`--set key=value` pairs as parameter values.

    A value is read as a YAML scalar or flow collection (`[{name: id, dataType: TEXT}]`). For a parameter
    declared a string, unquoted text is taken as it is unless YAML reads it as another type the
    parameter accepts (`null`), so that `--set description=Sales: daily # all stores` keeps its colon and
    hash and `--set title=1.0` stays text; quote the value to have YAML unquote it.
    """
    values: dict[str, Any] = {}
    errors: list[InputError] = []
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        key = key.strip()
        if not separator or not key:
            errors.append(InputError(f"--set {assignment!r}: expected KEY=VALUE"))
            continue
        declared = _declared_types(template.properties.get(key))
        try:
            document = load_single(text, f"--set {key}")
            value = None if document is None else document.value
        except InputErrors as invalid:
            if "string" in declared:
                values[key] = text.strip()
            else:
                reason = invalid.errors[0].message if invalid.errors else "malformed YAML"
                errors.append(InputError(f"parameter '{key}': the --set value is not valid YAML: {reason}"))
            continue
        quoted = text.lstrip().startswith(("'", '"'))
        if "string" in declared and not quoted and (isinstance(value, str) or not _has_type(value, declared)):
            value = text.strip()
        values[key] = value
    if errors:
        raise InputErrors(errors)
    return values


def _declared_types(schema: Any) -> list[str]:
    declared = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(declared, str):
        return [declared]
    return [item for item in declared if isinstance(item, str)] if isinstance(declared, list) else []


def _has_type(value: Any, types: Sequence[str]) -> bool:
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    if isinstance(value, str):
        return "string" in types
    if value is None:
        return "null" in types
    if isinstance(value, list):
        return "array" in types
    return isinstance(value, dict) and "object" in types


def with_defaults(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values with each missing top-level parameter that has a `default` set to (a copy of) it."""
    filled = dict(values)
    properties = schema.get("properties")
    for name, property_schema in (properties.items() if isinstance(properties, dict) else ()):
        if name not in filled and isinstance(property_schema, dict) and "default" in property_schema:
            filled[name] = copy.deepcopy(property_schema["default"])
    return filled


def parameter_errors(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """One line per bad or missing parameter, in parameter order; empty when the values are valid."""
    return [message for _, message in parameter_problems(schema, values)]


def parameter_problems(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[tuple[list[Any], str]]:
    """(the parameter's path, one line) for each bad or missing parameter, in parameter order."""
    # An empty registry: a $ref is resolved inside the schema or not at all (never fetched).
    validator = jsonschema.Draft202012Validator(schema, registry=Registry())
    found = [item for error in validator.iter_errors(dict(values)) for item in _parameter_messages(error)]
    found.extend(_uniqueness_errors(schema, values))
    order = list(schema.get("properties") or {})

    def sort_key(item: tuple[list[Any], str]) -> tuple[Any, ...]:
        path = item[0]
        rank = order.index(path[0]) if path and path[0] in order else len(order)
        return (rank, [f"{part:09d}" if isinstance(part, int) else str(part) for part in path])

    problems: list[tuple[list[Any], str]] = []
    for path, message in sorted(found, key=sort_key):
        if all(message != seen for _, seen in problems):
            problems.append((path, message))
    return problems


def _parameter_messages(error: jsonschema.ValidationError) -> Iterator[tuple[list[Any], str]]:
    """(the parameter's path, a message) for each problem the error reports."""
    path = list(error.absolute_path)
    instance = error.instance
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if isinstance(custom, str):
        # A conditional rule (if/then/else) says in its own words what it wants.
        yield path, f"parameter '{_join(path)}': {custom}" if path else f"parameters: {custom}"
        return
    if error.validator == "required":
        properties = error.schema.get("properties") if isinstance(error.schema, dict) else None
        for missing in _missing(error):
            title = properties.get(missing, {}).get("title") if isinstance(properties, dict) else None
            yield [*path, missing], f"parameter '{_join(path, missing)}' is required" + (f" ({title})" if title else "")
        return
    if error.validator == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties") or {}) if isinstance(error.schema, dict) else ""
        for extra in sorted(_extras(error)):
            what = "is not a parameter of this template" if not path else "is not allowed"
            yield [*path, extra], f"parameter '{_join(path, extra)}' {what} (known: {allowed})"
        return
    name = f"parameter '{_join(path)}'" if path else "parameters"
    if error.validator == "pattern":
        message = f"{name}: {_shown(instance)} does not match {error.validator_value}"
    elif error.validator == "enum":
        allowed = ", ".join(option if isinstance(option, str) else json.dumps(option)
                            for option in error.validator_value)
        message = f"{name}: {_shown(instance)} is not one of {allowed}"
    elif error.validator == "const":
        message = f"{name}: {_shown(instance)} must be {json.dumps(error.validator_value)}"
    elif error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        message = f"{name}: {_shown(instance)} is not of type {' or '.join(map(str, expected))}"
    else:
        message = f"{name}: {_shorten(error.message)}"
    yield path, message


def _missing(error: jsonschema.ValidationError) -> list[str]:
    present = error.instance if isinstance(error.instance, dict) else {}
    return [name for name in error.validator_value if name not in present]


def _extras(error: jsonschema.ValidationError) -> set[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = set(schema.get("properties") or {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties") or {}]
    instance = error.instance if isinstance(error.instance, dict) else {}
    return {key for key in instance if key not in known and not any(p.search(key) for p in patterns)}


def _shown(value: Any) -> str:
    return _shorten(repr(value))


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _uniqueness_errors(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[tuple[list[Any], str]]:
    """`x-uniqueBy: key` on an array parameter: no two items share the value of key (JSON Schema cannot say it)."""
    messages: list[tuple[list[Any], str]] = []
    for name, property_schema in (schema.get("properties") or {}).items():
        key = property_schema.get("x-uniqueBy") if isinstance(property_schema, dict) else None
        items = values.get(name)
        if not isinstance(key, str) or not isinstance(items, list):
            continue
        seen: set[Any] = set()
        for index, item in enumerate(items):
            value = item.get(key) if isinstance(item, dict) else None
            if value is None or not isinstance(value, str | int):
                continue
            if value in seen:
                message = f"parameter '{name}[{index}].{key}': {value!r} is given more than once"
                messages.append(([name, index, key], message))
            seen.add(value)
    return messages


def resolve_parameters(
    template: UseCaseTemplate,
    given: Mapping[str, Any],
    use_example: bool = False,
    derived: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template's parameters: defaults, then the example, then values derived from the destination,
    then the given ones; InputErrors with one line per bad or missing parameter."""
    values: dict[str, Any] = copy.deepcopy(template.example) if use_example else {}
    values.update(copy.deepcopy(dict(derived or {})))
    values.update(given)
    values = with_defaults(template.parameters, values)
    for name, value in values.items():
        # JSON Schema counts 2.0 as an integer; templates must see 2, or "2.0.0" becomes "2.0.0.0".
        declared = _declared_types(template.properties.get(name))
        if isinstance(value, float) and value.is_integer() and "integer" in declared:
            values[name] = int(value)
    try:
        messages = parameter_errors(template.parameters, values)
    except Unresolvable as error:
        raise InputErrors([InputError(f"field 'parameters': cannot resolve a $ref ({error})",
                                      SourcePosition(template.manifest_file))]) from None
    if messages:
        raise InputErrors([InputError(message) for message in messages])
    return values


# ---------------------------------------------------------------------------------------------------
# An existing data product in the destination


def read_data_product(folder: Path) -> DataProductFolder | None:
    """The data product whose System is in folder/catalog-info.yaml, or None when there is none."""
    file = folder / "catalog-info.yaml"
    if not file.is_file():
        return None
    label = str(file)
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputErrors([InputError(f"file is {size} bytes, over the 1 MiB limit", SourcePosition(label))])
    for document in load_documents(file.read_bytes(), label):
        entity = document.value
        if not isinstance(entity, dict) or str(entity.get("kind", "")).lower() != "system":
            continue
        metadata, spec = entity.get("metadata"), entity.get("spec")
        metadata = metadata if isinstance(metadata, dict) else {}
        spec = spec if isinstance(spec, dict) else {}
        system = str(metadata.get("name", ""))
        parts = system.split(".")
        versioned = len(parts) >= 3 and parts[-1].isdigit()
        owner = spec.get("owner")
        return DataProductFolder(
            file=label,
            system=system,
            domain=parts[0] if versioned else None,
            name=".".join(parts[1:-1]) if versioned else None,
            major_version=int(parts[-1]) if versioned else None,
            owner=owner if isinstance(owner, str) else None,
        )
    return None


def derive_parameters(
    template: UseCaseTemplate, destination: Path, data_product: DataProductFolder, given: Mapping[str, Any]
) -> dict[str, Any]:
    """Values a component template takes from the data product it is added to (given values win later).

    domain, name and majorVersion come from the System's `<domain>.<name>.<major>`, owner from its
    spec.owner. A template with `storageComponent`, `sourceTable` and `columns` parameters (an output
    port over a storage table) also takes the storage component when the data product has exactly one,
    its table when it has exactly one, and that table's columns (COLUMN_KEYS), so the data contract matches it.
    """
    properties = template.properties
    derived: dict[str, Any] = {}
    linked = {"domain": data_product.domain, "name": data_product.name, "majorVersion": data_product.major_version,
              "owner": data_product.owner}
    missing = [key for key in LINK_PARAMETERS if key in properties and key not in given and linked[key] is None]
    if missing:
        raise InputErrors([InputError(
            f"the System's metadata.name '{data_product.system}' is not <domain>.<name>.<major>; "
            + " ".join(f"--set {key}=..." for key in missing) + " to link the component to it",
            SourcePosition(data_product.file),
        )])
    for key, value in linked.items():
        if key in properties and value is not None:
            derived[key] = value
    if all(key in properties for key in ("storageComponent", "sourceTable", "columns")):
        derived.update(_storage_values(destination, given))
    return derived


def _storage_values(destination: Path, given: Mapping[str, Any]) -> dict[str, Any]:
    from bot.descriptor.assembly import assemble
    from bot.descriptor.files import DirectoryReader

    try:
        descriptor = assemble(DirectoryReader(destination))
    except InputErrors:
        return {}  # `meshbot check` explains what is wrong with the data product; the example values stand.
    storages = {
        str(component.get("id", "")).rsplit(":", 1)[-1]: component
        for component in descriptor.components
        if str(component.get("kind", "")).lower() == "storage"
    }
    derived: dict[str, Any] = {}
    storage = given.get("storageComponent")
    if storage is None and len(storages) == 1:
        storage = derived["storageComponent"] = next(iter(storages))
    specific = storages[storage].get("specific") if isinstance(storage, str) and storage in storages else None
    raw_tables = specific.get("tables") if isinstance(specific, dict) else None
    tables = {
        table["tableName"]: table for table in (raw_tables if isinstance(raw_tables, list) else [])
        if isinstance(table, dict) and isinstance(table.get("tableName"), str)
    }
    table_name = given.get("sourceTable")
    if table_name is None and len(tables) == 1:
        table_name = derived["sourceTable"] = next(iter(tables))
    schema = tables[table_name].get("schema") if isinstance(table_name, str) and table_name in tables else None
    if "columns" not in given and isinstance(schema, list):
        derived["columns"] = [
            {key: column[key] for key in COLUMN_KEYS if column.get(key) is not None}
            for column in schema if isinstance(column, dict)
        ]
    return derived


# ---------------------------------------------------------------------------------------------------
# Rendering


class YamlText(str):
    """Text that is one safe YAML scalar or flow collection (what the `yaml` filter returns)."""

    __slots__ = ()


# Plain (unquoted) YAML is used only for text that every YAML 1.1 and 1.2 reader takes as this string.
_PLAIN_SAFE = re.compile(r"^[A-Za-z][A-Za-z0-9_./@+-]*(?:[ :][A-Za-z0-9_./@+-]+)*$")
_RESERVED_WORDS = frozenset({"y", "yes", "n", "no", "on", "off", "true", "false", "null"})
# Characters YAML does not allow raw in a document, plus those it reads as line breaks (NEL, LS, PS) and the BOM.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
                            "|[\u2028\u2029]")


def yaml_value(value: Any) -> YamlText:
    """The value as YAML text that cannot break out of its place: a plain scalar when that is unambiguous,
    else JSON (valid YAML) with every non-printable character escaped."""
    if isinstance(value, str) and _PLAIN_SAFE.match(value) and value.lower() not in _RESERVED_WORDS:
        return YamlText(value)
    if isinstance(value, float) and not math.isfinite(value):
        return YamlText(".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf"))
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the yaml filter cannot write {type(value).__name__} values: {error}") from None
    return YamlText(_NOT_PRINTABLE.sub(_escape, text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


class RawInterpolation(Exception):
    """A skeleton YAML file interpolated a value without the yaml filter."""


def _finalize_yaml(value: Any) -> Any:
    if isinstance(value, YamlText) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise RawInterpolation(
        f"{_shorten(repr(value), 60)} is interpolated without the yaml filter; write {{{{ value | yaml }}}} so it "
        "stays one YAML value"
    )


def _environment(skeleton: Path, yaml_file: bool) -> jinja2.Environment:
    options: dict[str, Any] = {"finalize": _finalize_yaml} if yaml_file else {}
    environment = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(skeleton)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        **options,
    )
    environment.filters["yaml"] = yaml_value
    return environment


def render(template: UseCaseTemplate, parameters: Mapping[str, Any]) -> list[RenderedFile]:
    """Every skeleton file rendered with the parameters, by rendered path; InputErrors for a path that
    leaves the destination, two files on one path, or a file that cannot be rendered."""
    context = {
        **copy.deepcopy(dict(parameters)),
        "template": {"id": template.id, "name": template.name, "kind": template.kind,
                     "infrastructureTemplateId": template.infrastructure_template_id},
    }
    skeleton = template.skeleton
    text_environment = _environment(skeleton, yaml_file=False)
    yaml_environment = _environment(skeleton, yaml_file=True)
    errors: list[InputError] = []
    rendered: dict[str, RenderedFile] = {}
    for source in _skeleton_files(skeleton, errors):
        label = str(skeleton / source)
        try:
            path = _render_path(text_environment, source, context)
        except InputErrors as invalid:
            errors.extend(InputError(error.message, SourcePosition(label)) for error in invalid.errors)
            continue
        except Exception as error:  # a template author's mistake, whatever it raises
            errors.append(InputError(f"cannot render the file name: {_describe(error)}", SourcePosition(label)))
            continue
        if path in rendered:
            errors.append(InputError(f"renders to '{path}', as {rendered[path].source} does", SourcePosition(label)))
            continue
        environment = yaml_environment if path.endswith(YAML_SUFFIXES) else text_environment
        try:
            content = environment.get_template(source).render(context)
        except Exception as error:  # a template author's mistake, whatever it raises
            filename = os.path.normpath(os.path.join(str(skeleton), *source.split("/")))
            position = SourcePosition(label, _line(error, filename))
            errors.append(InputError(f"cannot render: {_describe(error)}", position))
            continue
        executable = os.access(skeleton / source, os.X_OK)
        rendered[path] = RenderedFile(path=path, content=content, source=source, executable=executable)
    if errors:
        raise InputErrors(errors)
    return [rendered[path] for path in sorted(rendered)]


def _skeleton_files(skeleton: Path, errors: list[InputError]) -> list[str]:
    found = []
    for directory, subdirectories, names in os.walk(skeleton):
        subdirectories.sort()
        for name in [*sorted(names), *subdirectories]:
            full = Path(directory) / name
            if full.is_symlink():
                errors.append(InputError("symbolic links are not allowed in a skeleton", SourcePosition(str(full))))
            elif name in names and full.is_file():
                found.append(full.relative_to(skeleton).as_posix())
    return found


def _render_path(environment: jinja2.Environment, source: str, context: Mapping[str, Any]) -> str:
    rendered = environment.from_string(source).render(context) if "{" in source else source
    parts = PurePosixPath(rendered).parts
    if rendered.startswith("/") or "\\" in rendered or "\0" in rendered:
        raise InputErrors([InputError(f"renders to '{rendered}', an absolute or invalid path; files must stay "
                                      "inside the destination folder")])
    if ".." in parts:
        raise InputErrors([InputError(f"renders to '{rendered}', which leaves the destination folder")])
    if not parts or any(part.strip() == "" for part in rendered.split("/")) or rendered.endswith("/"):
        raise InputErrors([InputError(f"renders to '{rendered}', which has an empty file or folder name")])
    if ".git" in parts:
        raise InputErrors([InputError(f"renders to '{rendered}', inside the .git folder")])
    return "/".join(part for part in parts if part != ".")


def _describe(error: Exception) -> str:
    if isinstance(error, jinja2.TemplateSyntaxError):
        return f"Jinja syntax error: {error.message}"
    return str(error) or type(error).__name__


def _line(error: BaseException, filename: str) -> int | None:
    if isinstance(error, jinja2.TemplateSyntaxError):
        return error.lineno
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


# ---------------------------------------------------------------------------------------------------
# The destination


def destination_problems(destination: Path, files: Sequence[RenderedFile]) -> tuple[list[str], list[InputError]]:
    """Before writing: the rendered paths that already exist, and what else stops the write."""
    if destination.exists() and not destination.is_dir():
        return [], [InputError("the destination exists and is not a folder", SourcePosition(str(destination)))]
    root = destination.resolve()
    existing: list[str] = []
    errors: list[InputError] = []
    for file in files:
        target = destination / file.path
        blocking_parent = next(
            (parent for parent in reversed(PurePosixPath(file.path).parents)
             if str(parent) != "." and (destination / parent).exists() and not (destination / parent).is_dir()),
            None,
        )
        if blocking_parent is not None:
            errors.append(InputError(f"'{blocking_parent}' exists and is not a folder",
                                     SourcePosition(str(destination / file.path))))
        elif os.path.lexists(target):
            existing.append(file.path)
        elif not target.resolve().is_relative_to(root):
            errors.append(InputError("leaves the destination folder through a symbolic link",
                                     SourcePosition(str(target))))
    return existing, errors


def write_files(destination: Path, files: Sequence[RenderedFile]) -> list[Path]:
    """Write the rendered files (none may exist: check destination_problems first); the paths written."""
    written = []
    for file in files:
        target = destination / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8", newline="\n") as stream:
            stream.write(file.content)
        if file.executable:
            target.chmod(target.stat().st_mode | 0o111)
        written.append(target)
    return written
