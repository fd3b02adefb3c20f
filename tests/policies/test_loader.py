"""Policy files: loading, and invalid files reported with file, field and line."""

from datetime import date
from pathlib import Path

import pytest

from bot.config import PolicyEngineSettings, ServerConfig
from bot.descriptor.errors import InputErrors
from policies.loader import BUILTIN_DIRECTORY, load_policies, load_policy_file, policies_for
from policies.model import Selector, Severity, Status, Target

VALID = """\
id: needs-specific
description: Components carry a specific section
target: component
selector:
  kind: outputport
  infrastructureTemplateId: [urn:dmb:itm:a:*, urn:dmb:itm:b:1]
severity: error
status: grace
schema:
  type: object
  required: [specific]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(InputErrors) as raised:
        load_policy_file(path)
    return [str(error) for error in raised.value.errors]


def test_valid_policy_file_is_loaded_with_its_selector_and_compiled_schema(tmp_path):
    policy = load_policy_file(write(tmp_path, "p.yaml", VALID))
    assert policy.id == "needs-specific"
    assert policy.target is Target.COMPONENT
    assert policy.severity is Severity.ERROR
    assert policy.status is Status.GRACE
    assert policy.selector == Selector(kind=("outputport",),
                                       infrastructureTemplateId=("urn:dmb:itm:a:*", "urn:dmb:itm:b:1"))
    assert policy.validator.is_valid({"specific": {}})
    assert not policy.validator.is_valid({})


def test_unknown_severity_names_file_field_and_line(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.replace("severity: error", "severity: fatal"))
    assert errors_of(path) == [f"{path}:7:11: field 'severity': 'fatal' is not one of info, warning, error"]


def test_missing_field_is_named(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.replace("description: Components carry a specific section\n", ""))
    assert errors_of(path) == [f"{path}:1:1: field 'description' is required"]


def test_unknown_field_is_named(tmp_path):
    path = write(tmp_path, "p.yaml", VALID + "sevrity: error\n")
    assert errors_of(path) == [
        f"{path}:1:1: policy: Additional properties are not allowed ('sevrity' was unexpected)"
    ]


def test_bad_id_pattern(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.replace("id: needs-specific", "id: Needs Specific"))
    assert errors_of(path) == [f"{path}:1:5: field 'id': 'Needs Specific' must match ^[a-z0-9][a-z0-9._-]*$"]


def test_schema_and_builtin_together_are_refused(tmp_path):
    path = write(tmp_path, "p.yaml", VALID + "builtin: urn-ids\n")
    assert errors_of(path) == [
        f"{path}:12:10: a policy needs exactly one check: 'schema' (JSON Schema), 'builtin' (a built-in check name) "
        "or 'remote' (a policy engine of the server configuration); this one has 'schema', 'builtin'"
    ]


def test_neither_schema_nor_builtin_is_refused(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.split("schema:")[0])
    assert "needs exactly one check" in errors_of(path)[0]


def test_unknown_builtin(tmp_path):
    text = VALID.split("schema:")[0] + "builtin: urn-idz\n"
    path = write(tmp_path, "p.yaml", text)
    assert errors_of(path) == [
        f"{path}:9:10: field 'builtin': unknown built-in check 'urn-idz' (known: no-breaking-changes, urn-ids)"
    ]


def test_invalid_json_schema_points_inside_the_schema(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.replace("required: [specific]", "required: specific"))
    assert errors_of(path) == [
        f"{path}:11:13: field 'schema.required': not valid JSON Schema: 'specific' is not of type 'array'"
    ]


def test_regex_that_does_not_compile_is_reported(tmp_path):
    path = write(tmp_path, "p.yaml", VALID + "  properties:\n    id: {pattern: '(unclosed'}\n")
    errors = errors_of(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:")
    assert errors[0].endswith("field 'schema': cannot be compiled: \"(unclosed\" is not a \"regex\"")


def test_remote_ref_is_never_fetched(tmp_path):
    path = write(tmp_path, "p.yaml", VALID + "  $ref: https://example.invalid/schema.json\n")
    errors = errors_of(path)
    assert errors[0].startswith(f"{path}:9:1: field 'schema': cannot be compiled:")
    assert "remote $ref 'https://example.invalid/schema.json' is not allowed" in errors[0]


def test_kind_selector_on_a_data_product_policy_is_refused(tmp_path):
    path = write(tmp_path, "p.yaml", VALID.replace("target: component", "target: dataproduct"))
    assert errors_of(path) == [f"{path}:5:9: field 'selector.kind': only component policies select by kind"]


def test_malformed_yaml_policy(tmp_path):
    path = write(tmp_path, "p.yaml", "id: [unclosed\n")
    assert errors_of(path)[0].startswith(f"{path}:2:1: malformed YAML")


def test_not_a_mapping(tmp_path):
    path = write(tmp_path, "p.yaml", "- a\n- b\n")
    assert errors_of(path) == [f"{path}:1:1: a policy file must be a mapping (id, description, target, ...)"]


def test_builtin_folder_loads_and_every_builtin_compiles():
    policies = load_policies()
    ids = {policy.id for policy in policies}
    assert {"data-product-specification", "data-product-id", "component-ids", "no-breaking-changes"} <= ids
    assert all(policy.file.startswith(str(BUILTIN_DIRECTORY)) for policy in policies)


def test_extra_folders_are_added_and_errors_from_all_files_are_collected(tmp_path):
    write(tmp_path, "a.yaml", VALID)
    write(tmp_path, "b.yaml", VALID.replace("severity: error", "severity: loud"))
    write(tmp_path, "c.yaml", VALID.replace("status: grace", "status: on"))
    write(tmp_path, "notes.md", "not a policy")
    with pytest.raises(InputErrors) as raised:
        load_policies([tmp_path])
    messages = [error.message for error in raised.value.errors]
    assert messages == [
        "field 'severity': 'loud' is not one of info, warning, error",
        "field 'status': 'on' is not one of draft, grace, enabled",
    ]


def test_duplicate_policy_ids_across_files(tmp_path):
    write(tmp_path, "a.yaml", VALID)
    write(tmp_path, "b.yaml", VALID)
    with pytest.raises(InputErrors) as raised:
        load_policies([tmp_path], include_builtin=False)
    assert [str(e) for e in raised.value.errors] == [
        f"{tmp_path / 'b.yaml'}: field 'id': policy id 'needs-specific' is already used by {tmp_path / 'a.yaml'}"
    ]


def test_missing_policy_folder(tmp_path):
    with pytest.raises(InputErrors) as raised:
        load_policies([tmp_path / "nope"], include_builtin=False)
    assert str(raised.value.errors[0]) == f"{tmp_path / 'nope'}: policy folder not found"


def test_policy_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    path = write(tmp_path, "p.yaml", "\n".join(lines) + "\n")
    assert "alias bomb" in errors_of(path)[0]


def test_grace_until_as_a_yaml_date(tmp_path):
    policy = load_policy_file(write(tmp_path, "p.yaml", VALID + "grace_until: 2027-03-01\n"))
    assert policy.grace_until == date(2027, 3, 1)


def test_grace_until_as_an_iso_string(tmp_path):
    policy = load_policy_file(write(tmp_path, "p.yaml", VALID + "grace_until: '2027-03-01'\n"))
    assert policy.grace_until == date(2027, 3, 1)


def test_no_grace_until_by_default(tmp_path):
    assert load_policy_file(write(tmp_path, "p.yaml", VALID)).grace_until is None


def test_bad_grace_until_date_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "p.yaml", VALID + "grace_until: 2027-13-01\n")
    assert errors_of(path) == [f"{path}:12:14: field 'grace_until': 2027-13-01 is not a valid date; "
                               "write it as YYYY-MM-DD, e.g. 2027-03-01"]


@pytest.mark.parametrize("text", ["'next spring'", "2027-3-1", "20270301"])
def test_grace_until_that_is_no_iso_date_is_refused(tmp_path, text):
    path = write(tmp_path, "p.yaml", VALID + f"grace_until: {text}\n")
    assert len(errors := errors_of(path)) == 1
    assert errors[0].startswith(f"{path}:12:14: field 'grace_until': ")


@pytest.mark.parametrize("status", ["enabled", "draft"])
def test_grace_until_on_a_policy_not_in_grace_is_an_error(tmp_path, status):
    path = write(tmp_path, "p.yaml", VALID.replace("status: grace", f"status: {status}") + "grace_until: 2027-03-01\n")
    assert errors_of(path) == [f"{path}:12:14: field 'grace_until': only a policy with status grace has a grace "
                               f"date (this one is {status}); remove grace_until or set status: grace"]


def test_builtin_policies_carry_no_grace_date():
    assert all(policy.grace_until is None for policy in load_policies())


# ---------------------------------------------------------------------- remote policies (policy engines)

REMOTE = """\
id: cue-check
description: Checked by the CUE engine
target: component
severity: error
status: enabled
remote: cue
"""
ENGINES = {"cue": PolicyEngineSettings("cue", "http://127.0.0.1:9/evaluate", 5.0),
           "opa": PolicyEngineSettings("opa", "http://127.0.0.1:9/opa", 5.0)}


def test_a_remote_policy_names_a_configured_engine(tmp_path):
    write(tmp_path, "p.yaml", REMOTE)
    [policy] = load_policies([tmp_path], include_builtin=False, engines=ENGINES)
    assert (policy.remote, policy.schema, policy.builtin, policy.validator) == ("cue", None, None, None)
    assert policy.engine is not None and policy.engine.settings == ENGINES["cue"]


def test_an_engine_not_in_the_server_configuration_is_refused_at_remote(tmp_path):
    path = write(tmp_path, "p.yaml", REMOTE.replace("remote: cue", "remote: cuee"))
    with pytest.raises(InputErrors) as raised:
        load_policies([tmp_path], include_builtin=False, engines=ENGINES)
    assert [str(error) for error in raised.value.errors] == [
        f"{path}:6:9: field 'remote': policy engine 'cuee' is not in the server configuration (known: cue, opa)"
    ]


def test_without_engines_a_remote_policy_is_refused_naming_none(tmp_path):
    path = write(tmp_path, "p.yaml", REMOTE)
    assert errors_of(path) == [
        f"{path}:6:9: field 'remote': policy engine 'cue' is not in the server configuration (known: none)"
    ]


@pytest.mark.parametrize(("extra", "second", "line"), [
    ("builtin: urn-ids\n", "'builtin'", 7), ("schema: {type: object}\n", "'schema'", 7),
])
def test_remote_and_another_check_are_refused(tmp_path, extra, second, line):
    path = write(tmp_path, "p.yaml", REMOTE + extra)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:{line}:")
    assert error.endswith(f"a policy needs exactly one check: 'schema' (JSON Schema), 'builtin' (a built-in check "
                          f"name) or 'remote' (a policy engine of the server configuration); this one has 'remote', "
                          f"{second}")


def test_remote_must_be_an_engine_name(tmp_path):
    path = write(tmp_path, "p.yaml", REMOTE.replace("remote: cue", "remote: [cue]"))
    assert errors_of(path) == [f"{path}:6:1: field 'remote': ['cue'] is not of type 'string'"]


def test_policies_for_passes_the_configured_engines(tmp_path):
    write(tmp_path, "p.yaml", REMOTE)
    config = ServerConfig(policy_folders=[str(tmp_path)], policy_engines=ENGINES)
    assert [policy.id for policy in policies_for(config) if policy.remote] == ["cue-check"]
    with pytest.raises(InputErrors):
        policies_for(ServerConfig(policy_folders=[str(tmp_path)]))


def test_a_value_json_has_no_type_for_is_explained_by_the_python_validator():
    # policy files load as JSON types only; a value of another type is not refused by jsonschema_rs's ValueError
    from policies.loader import _file_problems

    value = {"id": "a", "description": b"bytes", "target": "component", "severity": "error", "status": "enabled",
             "builtin": "urn-ids"}
    assert [error.message for error in _file_problems(value)] == ["b'bytes' is not of type 'string'"]


def test_a_file_the_rust_check_accepts_has_no_error_in_the_python_validator():
    # jsonschema_rs decides that a file is valid; Python's jsonschema only explains a refusal, so what the first
    # accepts the second must accept too (it may accept more: `$` matches before a final newline in Python)
    import random

    from policies.loader import _file_checker, _file_validator

    rng = random.Random(20261206)
    base = {"id": "needs-specific", "description": "d", "target": "component", "severity": "error",
            "status": "grace", "schema": {"type": "object"}}
    values: list[object] = ["", "a", "abc\n", "A-b", "x y", "component", "dataproduct", "info", "grace", "2027-03-01",
                            "no date", 0, 1, True, None, 1.5, [], ["a"], [""], ["a", 1], {}, {"type": "object"}]
    fields = [*base, "selector", "grace_until", "builtin", "remote", "extra"]
    accepted = 0
    for _ in range(3000):
        value = dict(base)
        for field in rng.sample(fields, rng.randint(1, 3)):
            if rng.random() < 0.15:
                value.pop(field, None)
            elif field == "selector":
                value[field] = {rng.choice(["kind", "environment", "other"]): rng.choice(values)}
            else:
                value[field] = rng.choice(values)
        if _file_checker().is_valid(value):
            accepted += 1
            assert [error.message for error in _file_validator().iter_errors(value)] == [], value
    assert accepted > 200
