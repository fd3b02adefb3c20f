"""Built-in checks for what JSON Schema cannot express: ids tied to the data product, breaking changes."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.descriptor.model import Descriptor, format_path, major_version
from bot.descriptor.yamlsafe import DataPath
from policies.model import Failure

URN_PART = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a built-in check sees: the descriptor, the resource it checks, the previous descriptor."""

    descriptor: Descriptor
    resource_path: DataPath
    previous: dict[str, Any] | None = None
    previous_missing: str = "no previous descriptor to compare with"  # why previous is None, for the result


@dataclass(slots=True)
class CheckOutcome:
    """The failures of a check and, optionally, a note on why nothing was compared."""

    failures: list[Failure]
    note: str | None = None
    evaluated: bool = True


BuiltinCheck = Callable[[CheckContext], CheckOutcome]


def _failure(descriptor: Descriptor, path: DataPath, message: str) -> Failure:
    return Failure(message=message, path=format_path(path), position=descriptor.position(path))


def urn_ids(context: CheckContext) -> CheckOutcome:
    """Ids are URNs of the data product's own domain and major version; component versions share the major."""
    if context.resource_path:
        return CheckOutcome(_component_id_failures(context.descriptor, context.resource_path))
    return CheckOutcome(_data_product_id_failures(context.descriptor))


def _data_product_id_failures(descriptor: Descriptor) -> list[Failure]:
    data = descriptor.data
    domain, major = data.get("domain"), major_version(data.get("version"))
    identifier = data.get("id")
    failures = []
    expected = f"urn:dmb:dp:{domain}:<name>:{major if major is not None else '<major>'}"
    if not isinstance(identifier, str):
        return [_failure(descriptor, ("id",), f"id must be a string of the form {expected}")]
    parts = identifier.split(":")
    if len(parts) != 6 or parts[:3] != ["urn", "dmb", "dp"]:
        failures.append(_failure(descriptor, ("id",), f"id '{identifier}' is not of the form {expected}"))
    else:
        failures.extend(_part_failures(descriptor, ("id",), identifier, parts[3], parts[4], parts[5], domain, major))
    domain_id = data.get("domainId")
    if domain is not None and domain_id is not None and domain_id != f"urn:dmb:dmn:{domain}":
        failures.append(_failure(descriptor, ("domainId",),
                                 f"domainId '{domain_id}' should be 'urn:dmb:dmn:{domain}' for domain '{domain}'"))
    return failures


def _part_failures(
    descriptor: Descriptor,
    path: DataPath,
    identifier: str,
    id_domain: str,
    id_name: str,
    id_major: str,
    domain: Any,
    major: str | None,
    noun: str = "id",
) -> list[Failure]:
    failures = []
    if domain is not None and id_domain != domain:
        failures.append(_failure(descriptor, path,
                                 f"{noun} '{identifier}' names domain '{id_domain}' but the data product's domain "
                                 f"is '{domain}'"))
    for label, part in (("domain", id_domain), ("name", id_name)):
        if not URN_PART.match(part):
            failures.append(_failure(descriptor, path,
                                     f"{noun} '{identifier}': the {label} part '{part}' may only contain letters, "
                                     "digits, '_' and '-'"))
    if major is not None and id_major != major:
        failures.append(_failure(descriptor, path,
                                 f"{noun} '{identifier}' ends with major version '{id_major}' but the data product "
                                 f"version {descriptor.data.get('version')} has major {major}"))
    return failures


# A component id of the URN form whose every part is plain: it needs no further look unless its domain, data
# product name or major differ from the data product's (what _component_urn_failures would say of it).
_PLAIN_COMPONENT_URN = re.compile(r"urn:dmb:cmp:([a-zA-Z0-9_-]+):([a-zA-Z0-9_-]+):([a-zA-Z0-9_-]+):[a-zA-Z0-9_-]+")


def _component_id_failures(descriptor: Descriptor, resource_path: DataPath) -> list[Failure]:
    data = descriptor.data
    component = descriptor.components[int(resource_path[1])]
    domain = data.get("domain")
    major, name = _data_product_terms(data.get("version"), data.get("id", ""))
    identifier = component.get("id")
    plain = _PLAIN_COMPONENT_URN.fullmatch(identifier) if isinstance(identifier, str) else None
    if plain is None or (domain is not None and plain[1] != domain) or (name is not None and plain[2] != name) \
            or (major is not None and plain[3] != major):
        failures = _component_urn_failures(descriptor, resource_path, identifier, domain, major, name)
    else:
        failures = []
    if major is None:
        return failures
    component_major = major_version(component.get("version"))
    if component_major is not None and component_major != major:
        failures.append(_failure(descriptor, (*resource_path, "version"),
                                 f"component version {component.get('version')} has major {component_major} but "
                                 f"the data product version {data.get('version')} has major {major}"))
    return failures


def _data_product_terms(version: Any, identifier: Any) -> tuple[str | None, str | None]:
    """The data product's major version and name (the id's fifth part, None unless the id has six), once per pair."""
    try:
        return _cached_terms(version, identifier)
    except TypeError:  # a version or id YAML wrote as a list or a mapping: unhashable
        return _terms(version, identifier)


def _terms(version: Any, identifier: Any) -> tuple[str | None, str | None]:
    parts = str(identifier).split(":")
    return major_version(version), parts[4] if len(parts) == 6 else None


_cached_terms = functools.lru_cache(maxsize=16, typed=True)(_terms)


def _component_urn_failures(descriptor: Descriptor, resource_path: DataPath, identifier: Any, domain: Any,
                            major: str | None, name: str | None) -> list[Failure]:
    """What is wrong with a component id that is not a plain URN of the data product's domain, name and major."""
    data = descriptor.data
    expected = (f"urn:dmb:cmp:{domain}:{name if name is not None else '<name>'}:"
                f"{major if major is not None else '<major>'}:<component>")
    id_path = (*resource_path, "id")
    failures = []
    parts = identifier.split(":") if isinstance(identifier, str) else []
    if len(parts) != 7 or parts[:3] != ["urn", "dmb", "cmp"]:
        failures.append(_failure(descriptor, id_path, f"component id '{identifier}' is not of the form {expected}"))
    else:
        failures.extend(_part_failures(descriptor, id_path, str(identifier), parts[3], parts[4], parts[5],
                                       domain, major, noun="component id"))
        if name is not None and parts[4] != name:
            failures.append(_failure(descriptor, id_path,
                                     f"component id '{identifier}' names data product '{parts[4]}' but it belongs "
                                     f"to '{name}' ({data.get('id')})"))
        if not URN_PART.match(parts[6]):
            failures.append(_failure(descriptor, id_path,
                                     f"component id '{identifier}': the component part '{parts[6]}' may only "
                                     "contain letters, digits, '_' and '-'"))
    return failures


def no_breaking_changes(context: CheckContext) -> CheckOutcome:
    """Against the previously deployed descriptor: output ports and their columns are neither removed nor retyped."""
    previous, descriptor = context.previous, context.descriptor
    if previous is None:
        return CheckOutcome([], note=context.previous_missing, evaluated=False)
    old_major, new_major = major_version(previous.get("version")), major_version(descriptor.data.get("version"))
    if old_major != new_major:
        return CheckOutcome([], note=f"major version changed ({old_major} -> {new_major}): breaking changes allowed")
    next_major = f"{int(new_major) + 1}.0.0" if new_major is not None else "a new major version"
    current = {
        component.get("id"): index
        for index, component in enumerate(descriptor.components)
        if _is_output_port(component)
    }
    failures = []
    for old in previous.get("components") or []:
        if not isinstance(old, dict) or not _is_output_port(old):
            continue
        if old.get("id") not in current:
            failures.append(_failure(descriptor, ("components",),
                                     f"output port '{old.get('id')}' was removed; removing an output port is a "
                                     f"breaking change that needs version {next_major}"))
            continue
        index = current[old["id"]]
        component = descriptor.components[index]
        failures.extend(_column_failures(
            descriptor, _columns(old), _columns(component), ("components", index, "dataContract", "schema"),
            str(component.get("name") or component.get("id")), next_major,
        ))
    return CheckOutcome(failures)


def _is_output_port(component: Any) -> bool:
    return isinstance(component, dict) and str(component.get("kind", "")).lower() == "outputport"


def _columns(component: dict[str, Any]) -> list[Any]:
    contract = component.get("dataContract")
    schema = contract.get("schema") if isinstance(contract, dict) else None
    return schema if isinstance(schema, list) else []


def _column_failures(
    descriptor: Descriptor,
    old_columns: list[Any],
    new_columns: list[Any],
    path: DataPath,
    port: str,
    next_major: str,
    prefix: str = "",
) -> list[Failure]:
    by_name = {column.get("name"): index for index, column in enumerate(new_columns) if isinstance(column, dict)}
    failures = []
    for old in old_columns:
        if not isinstance(old, dict) or "name" not in old:
            continue
        label = prefix + str(old["name"])
        if old["name"] not in by_name:
            failures.append(_failure(descriptor, path,
                                     f"column '{label}' was dropped from output port '{port}'; that is a breaking "
                                     f"change that needs version {next_major}"))
            continue
        index = by_name[old["name"]]
        new = new_columns[index]
        for field_name in ("dataType", "arrayDataType"):
            before, after = old.get(field_name), new.get(field_name)
            if before is not None and str(before).upper() != str(after).upper():
                failures.append(_failure(descriptor, (*path, index, field_name if field_name in new else "name"),
                                         f"column '{label}' of output port '{port}' changed {field_name} from "
                                         f"{before} to {after}; that is a breaking change that needs version "
                                         f"{next_major}"))
        if isinstance(old.get("children"), list):
            children = new.get("children") if isinstance(new.get("children"), list) else []
            failures.extend(_column_failures(descriptor, old["children"], children, (*path, index, "children"),
                                             port, next_major, prefix=label + "."))
    return failures


BUILTINS: dict[str, BuiltinCheck] = {
    "urn-ids": urn_ids,
    "no-breaking-changes": no_breaking_changes,
}
