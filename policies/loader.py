"""Load policy files, check them, and compile each policy's schema once."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from bot.config import PolicyEngineSettings, ServerConfig
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.yamlsafe import YamlDocument, load_single
from policies.builtins import BUILTINS
from policies.model import SELECTOR_FIELDS, Policy, Selector, Severity, Status, Target
from policies.remote import RemoteEngine, VerdictCache, cache_for, engines_for

if TYPE_CHECKING:
    import jsonschema
    import redis

PACKAGE_DIRECTORY = Path(__file__).resolve().parent
BUILTIN_DIRECTORY = PACKAGE_DIRECTORY / "builtin"
EXAMPLES_DIRECTORY = PACKAGE_DIRECTORY / "examples"
POLICY_SUFFIXES = (".yaml", ".yml")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@cache
def _file_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((PACKAGE_DIRECTORY / "policy-file.schema.json").read_text())
    return schema


@cache
def _file_checker() -> jsonschema_rs.Draft202012Validator:
    """The policy-file schema in jsonschema_rs: it says whether a file is valid (no Python jsonschema import)."""
    return jsonschema_rs.Draft202012Validator(_file_schema())


@cache
def _file_validator() -> jsonschema.Draft202012Validator:
    """The policy-file schema in Python's jsonschema: it explains what makes a file invalid."""
    import jsonschema

    return jsonschema.Draft202012Validator(_file_schema())


def _file_problems(value: dict[str, Any]) -> list[jsonschema.ValidationError]:
    """The policy-file schema's errors in value, but oneOf's (a policy's one check is told apart before), by field."""
    try:
        if _file_checker().is_valid(value):
            return []  # what jsonschema_rs accepts, Python's jsonschema accepts: it only explains a refusal
    except ValueError:  # a value JSON has no type for (a YAML binary, a non-string key): Python's says what
        pass
    return sorted(
        (error for error in _file_validator().iter_errors(value) if error.validator != "oneOf"),
        key=lambda error: list(map(str, error.absolute_path)),
    )


def load_policies(folders: Sequence[str | Path] = (), include_builtin: bool = True,
                  engines: Mapping[str, PolicyEngineSettings] | None = None,
                  cache: VerdictCache | None = None) -> list[Policy]:
    """The built-in policies (unless excluded) and every policy file in the folders, in a stable order.

    `engines` are the server configuration's remote policy engines (none by default: a `remote:` policy is then
    refused); their definite answers are kept in cache (default: this process's LRU).
    """
    clients = engines_for(engines or {}, cache)
    directories = ([BUILTIN_DIRECTORY] if include_builtin else []) + [Path(folder) for folder in folders]
    errors: list[InputError] = []
    policies: list[Policy] = []
    for directory in directories:
        if not directory.is_dir():
            errors.append(InputError("policy folder not found", SourcePosition(str(directory))))
            continue
        for path in sorted(p for p in directory.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file()):
            try:
                policies.append(load_policy_file(path, clients))
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


def policies_for(config: ServerConfig, connection: redis.Redis | None = None) -> list[Policy]:
    """The built-in policies and those of the configuration's policy folders (what every review and deploy runs).

    Remote verdicts are cached in Redis too when a connection is given, or when this runs in an RQ job (its
    connection), so that every worker process shares them.
    """
    connection = connection if connection is not None else _job_connection()
    return load_policies(config.policy_folders, engines=config.policy_engines, cache=cache_for(connection))


def _job_connection() -> redis.Redis | None:
    """The Redis connection of the RQ job this process is running, if any."""
    from rq import get_current_job

    job = get_current_job()
    return job.connection if job is not None else None


def load_policy_file(path: Path, engines: Mapping[str, RemoteEngine] | None = None) -> Policy:
    """One policy; InputErrors naming the file, the field and its line when the file is invalid.

    `engines` are the clients of the configured remote engines a `remote:` policy may name.
    """
    label = str(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputErrors([InputError(f"file is {size} bytes, over the 1 MiB limit", SourcePosition(label))])
    content = path.read_bytes()
    document = load_single(content, label)
    if document is None or not isinstance(document.value, dict):
        raise InputErrors([InputError("a policy file must be a mapping (id, description, target, ...)",
                                      SourcePosition(label, 1, 1))])
    engines = engines or {}
    _check_fields(document, engines)
    policy = _build(document)
    policy.version = hashlib.sha256(content).hexdigest()
    policy.engine = engines.get(policy.remote) if policy.remote is not None else None
    return policy


CHECKS = ("schema", "builtin", "remote")


def _check_fields(document: YamlDocument, engines: Mapping[str, RemoteEngine]) -> None:
    value: dict[str, Any] = document.value
    checks = [key for key in value if key in CHECKS]
    has_schema, has_builtin, has_remote = ("schema" in checks), ("builtin" in checks), ("remote" in checks)
    if len(checks) != 1:
        raise InputErrors([InputError(
            "a policy needs exactly one check: 'schema' (JSON Schema), 'builtin' (a built-in check name) or "
            "'remote' (a policy engine of the server configuration)"
            + (f"; this one has {', '.join(map(repr, checks))}" if checks else ""),
            document.position((checks[1],) if len(checks) > 1 else ()),
        )])
    errors = [_field_error(document, error) for error in _file_problems(value)]
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
    if not errors and has_remote and value["remote"] not in engines:
        known = ", ".join(sorted(engines)) or "none"
        errors.append(InputError(f"field 'remote': policy engine '{value['remote']}' is not in the server "
                                 f"configuration (known: {known})", document.position(("remote",))))
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
    # The Rust meta-check is ~100x faster; the Python one only runs to explain a failure precisely.
    if not jsonschema_rs.meta.is_valid(schema):
        import jsonschema

        try:
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
        remote=value.get("remote"),
        validator=compile_schema(schema) if schema is not None else None,
        grace_until=parse_grace_until(value["grace_until"]) if "grace_until" in value else None,
    )
