"""Assemble a data product descriptor for one environment from a repository's Backstage entities."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bot.descriptor.collector import collector_paused
from bot.descriptor.discovery import Discovery, RemoteLocations, discover
from bot.descriptor.entities import (
    BACKSTAGE_KINDS,
    COMPONENT_TYPES,
    Entity,
    closest,
    known_kind,
    mesh_positions,
    parse_reference,
    reference_name,
)
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES, FileReader, FileTooLarge
from bot.descriptor.merge import deep_merge
from bot.descriptor.model import Descriptor, major_version
from bot.descriptor.overrides import mesh_overrides
from bot.descriptor.sources import SourceMap
from bot.descriptor.structure import structure_errors
from bot.descriptor.yamlsafe import DataPath, load_single

DEFAULT_ENVIRONMENT = "development"
ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DATA_PRODUCT_PREFIX = "urn:dmb:dp:"
COMPONENT_PREFIX = "urn:dmb:cmp:"
# Fields meshbot derives and puts first, in this order; the rest of spec.mesh keeps the author's order.
_MESH = ("spec", "mesh")
HEAD_FIELDS = ("id", "name", "fullyQualifiedName", "description", "kind", "domain", "domainId", "version",
               "environment")


@dataclass(slots=True)
class _Part:
    """An entity's spec.mesh after environment overrides, with positions relative to spec.mesh.

    positions is None when nothing was overridden: the entity's own document then holds them all.
    """

    entity: Entity
    mesh: dict[str, Any]
    positions: dict[DataPath, SourcePosition] | None


def assemble(
    reader: FileReader,
    environment: str = DEFAULT_ENVIRONMENT,
    remote: RemoteLocations | None = None,
    discovered: Discovery | None = None,
) -> Descriptor:
    """The descriptor of the repository's data product for environment; InputErrors lists every problem.

    `discovered` is the repository's entities as `discover(reader, remote)` found them: they are the same in every
    environment, so assembling several environments of one revision reads and parses the files once.
    """
    if not ENVIRONMENT_NAME.match(environment):
        raise InputErrors([InputError(f"invalid environment name '{environment}'")])
    with collector_paused():
        return _assemble(reader, environment, remote, discovered)


def _assemble(
    reader: FileReader, environment: str, remote: RemoteLocations | None, discovered: Discovery | None
) -> Descriptor:
    found = discovered if discovered is not None else discover(reader, remote)
    errors = list(found.errors)
    systems = [e for e in found.entities if e.is_kind("System")]
    system = _the_system(systems, errors)
    if system is None:
        if not systems:
            # A misspelt System kind is the likely reason: name it beside "no data product found".
            errors.extend(_kind_problems(None, found.entities)[1])
        raise InputErrors(errors)
    kind_errors, warnings = _kind_problems(system, found.entities)
    errors.extend(kind_errors)
    components = _components_of(system, [e for e in found.entities if e.is_kind("Component")], errors)
    # Entities in one folder share its environments/ files, which are then keyed by metadata.name.
    per_folder = Counter(_override_label(entity, environment) for entity in [system, *components])
    listings = _Listings()
    system_part = _part(system, environment, errors, listings, per_folder[_override_label(system, environment)] > 1)
    component_parts = [
        _part(component, environment, errors, listings, per_folder[_override_label(component, environment)] > 1)
        for component in components
    ]
    if errors:
        # Entities sharing a folder share its override file: report a problem in that file once.
        raise InputErrors(list(dict.fromkeys(errors)))
    descriptor = _build(system_part, component_parts, environment)
    descriptor.warnings = warnings
    problems = structure_errors(descriptor)
    if problems:
        raise InputErrors(problems)
    return descriptor


def _the_system(systems: list[Entity], errors: list[InputError]) -> Entity | None:
    if not systems:
        if not errors:
            errors.append(InputError(
                "no data product found: expected a 'kind: System' entity with 'spec.type: dataproduct' "
                "in catalog-info.yaml at the repository root",
                SourcePosition("catalog-info.yaml"),
            ))
        return None
    if len(systems) > 1:
        others = ", ".join(f"'{s.name}' at {s.position()}" for s in systems[1:])
        errors.append(InputError(
            f"two Systems in one repository: '{systems[0].name}' and {others}; a repository holds one "
            "data product",
            systems[1].position(),
        ))
        return None
    system = systems[0]
    system_type = system.spec.get("type")
    if not isinstance(system_type, str) or system_type.lower() != "dataproduct":
        errors.append(InputError(
            f"System '{system.name}' has "
            + (f"spec.type {system_type!r}" if system_type is not None else "no spec.type")
            + "; meshbot handles data products (spec.type: dataproduct)",
            system.position("spec", "type"),
        ))
        return None
    return system


def _kind_problems(system: Entity | None, entities: list[Entity]) -> tuple[list[InputError], list[InputError]]:
    """(errors, warnings) about kinds: a non-Component naming the data product, a kind Backstage does not know."""
    errors, warnings = [], []
    for entity in entities:
        if entity.is_kind("Component") or entity.is_kind("System"):
            continue
        linked = system is not None and _system_target(entity, system) == system.name
        if known_kind(entity.kind):
            if linked:
                errors.append(InputError(
                    f"{entity.kind} '{entity.name}' names this data product in spec.system, but only kind: "
                    "Component entities are its components (meshbot would ignore it)",
                    entity.position("kind"),
                ))
            continue
        guess = closest(entity.kind, BACKSTAGE_KINDS)
        unknown = f"kind '{entity.kind}' is not a Backstage kind " + (
            f"(did you mean '{guess}'?)" if guess else f"({', '.join(BACKSTAGE_KINDS)})")
        if linked:
            errors.append(InputError(
                f"{unknown}: '{entity.name}' names this data product in spec.system, and only kind: Component "
                "entities are its components",
                entity.position("kind"),
            ))
        else:
            warnings.append(InputError(f"{unknown}; meshbot ignores '{entity.name}'", entity.position("kind")))
    return errors, warnings


def _system_target(entity: Entity, system: Entity) -> str | None:
    """The System entity's spec.system names, qualified by namespace when it is not the data product's."""
    raw = entity.spec.get("system")
    target = reference_name(raw, "system")
    namespace = parse_reference(raw.strip(), "system")[1] if isinstance(raw, str) else None
    if target is not None and (namespace or entity.namespace) != system.namespace:
        target = f"{namespace or entity.namespace}/{target}"
    return target


def _components_of(system: Entity, components: list[Entity], errors: list[InputError]) -> list[Entity]:
    linked = []
    for component in components:
        raw = component.spec.get("system")
        target = _system_target(component, system)
        if target is None:
            errors.append(InputError(
                f"Component '{component.name}' has no valid spec.system; set it to '{system.name}'",
                component.position("spec", "system"),
            ))
        elif target != system.name:
            errors.append(InputError(
                f"Component '{component.name}' points at unknown System '{raw}'; this repository's data "
                f"product is '{system.name}'",
                component.position("spec", "system"),
            ))
        elif str(component.spec.get("type", "")).lower() not in COMPONENT_TYPES:
            errors.append(InputError(
                f"Component '{component.name}' has spec.type {component.spec.get('type')!r}; expected one of "
                + ", ".join(COMPONENT_TYPES),
                component.position("spec", "type"),
            ))
        elif _declared_kind(component) not in (None, str(component.spec.get("type")).lower()):
            errors.append(InputError(
                f"Component '{component.name}' has spec.mesh.kind {component.spec['mesh']['kind']!r} but "
                f"spec.type {component.spec.get('type')!r}; they must agree",
                component.position("spec", "mesh", "kind"),
            ))
        else:
            linked.append(component)
    return linked


def _declared_kind(component: Entity) -> str | None:
    mesh = component.spec.get("mesh")
    kind = mesh.get("kind") if isinstance(mesh, dict) else None
    return kind.lower() if isinstance(kind, str) else None


class _Listings:
    """Each reader's file listing as a set, computed once per assembly."""

    def __init__(self) -> None:
        self._sets: dict[int, frozenset[str]] = {}

    def has(self, reader: FileReader, path: str) -> bool:
        """Whether the reader's tree holds path."""
        if id(reader) not in self._sets:
            self._sets[id(reader)] = frozenset(reader.list_files())
        return path in self._sets[id(reader)]


def _part(
    entity: Entity, environment: str, errors: list[InputError], listings: _Listings, shares_folder: bool
) -> _Part:
    mesh = entity.spec.get("mesh", {})
    if mesh is None:
        mesh = {}
    if not isinstance(mesh, dict):
        errors.append(InputError("spec.mesh must be a mapping", entity.position("spec", "mesh")))
        mesh = {}
    override = _override(entity, environment, errors, listings, shares_folder)
    if override is None:
        return _Part(entity=entity, mesh=mesh, positions=None)
    positions = {path: SourcePosition(entity.file, *where) for path, where in mesh_positions(entity).items()}
    override_positions, values = override
    label = _override_label(entity, environment)
    mesh, positions = deep_merge(
        mesh, positions, values, {path: SourcePosition(label, *where) for path, where in override_positions.items()}
    )
    return _Part(entity=entity, mesh=mesh, positions=positions)


def _override_path(entity: Entity, environment: str) -> str:
    if entity.path.startswith("/"):
        return posixpath.join(posixpath.dirname(entity.path), "environments", environment, "configurations.yaml")
    folder = entity.path.rpartition("/")[0]  # what posixpath.dirname gives for a relative path, at a fraction of it
    tail = f"environments/{environment}/configurations.yaml"
    return f"{folder}/{tail}" if folder else tail


def _override_label(entity: Entity, environment: str) -> str:
    prefix = entity.file[: len(entity.file) - len(entity.path)]
    return prefix + _override_path(entity, environment)


def _override(
    entity: Entity, environment: str, errors: list[InputError], listings: _Listings, shares_folder: bool
) -> tuple[dict[DataPath, tuple[int, int]], dict[str, Any]] | None:
    """The positions and values of the entity's environments/<env>/configurations.yaml, if any."""
    path = _override_path(entity, environment)
    label = _override_label(entity, environment)
    if not listings.has(entity.reader, path):
        return None
    try:
        document = load_single(entity.reader.read_bytes(path, MAX_FILE_BYTES), label)
    except FileTooLarge as too_large:
        errors.append(InputError(f"file is {too_large.size} bytes, over the 1 MiB limit", SourcePosition(label)))
        return None
    except InputErrors as invalid:
        errors.extend(invalid.errors)
        return None
    if document is None:
        return None
    if not isinstance(document.value, dict):
        errors.append(InputError("environment overrides must be a mapping of spec.mesh fields", document.position()))
        return None
    if shares_folder:
        # One folder, several entities: the override file is keyed by metadata.name.
        values = document.value.get(entity.name)
        if values is None:
            return None
        if not isinstance(values, dict):
            errors.append(InputError(f"overrides for '{entity.name}' must be a mapping",
                                     document.position((entity.name,))))
            return None
        positions = {p[1:]: v for p, v in document.positions.items() if p[:1] == (entity.name,)}
    else:
        values, positions = document.value, dict(document.positions)
    values, positions, problems = mesh_overrides(values, positions, label)
    if problems:
        errors.extend(problems)
        return None
    return positions, values


def _build(system: _Part, components: list[_Part], environment: str) -> Descriptor:
    sources = SourceMap()
    data = _data_product_fields(system, environment, sources)
    data["components"] = []
    sources[("components",)] = system.entity.position()
    component_files: dict[str, str] = {}
    for index, part in enumerate(sorted(components, key=lambda p: (p.entity.file.count("/"), p.entity.file))):
        component = _component_fields(part, system, data, ("components", index), sources)
        data["components"].append(component)
        component_files[str(component.get("id"))] = part.entity.file
    return Descriptor(data=data, environment=environment, sources=sources, component_files=component_files)


def _record(part: _Part, prefix: DataPath, sources: SourceMap) -> None:
    """The part's positions under prefix: a layer over its own positions, nothing copied."""
    if part.positions is not None:
        sources.add_layer(prefix, None, part.positions, ())
    else:
        sources.add_layer(prefix, part.entity.file, part.entity.document.positions, _MESH)


def _data_product_fields(part: _Part, environment: str, sources: SourceMap) -> dict[str, Any]:
    entity, mesh = part.entity, part.mesh
    _record(part, (), sources)
    sources[()] = entity.position("spec", "mesh") if "mesh" in entity.spec else entity.position()
    derived: dict[str, tuple[Any, SourcePosition]] = {}
    domain = reference_name(entity.spec.get("domain"), "domain")
    name_parts = _split_versioned_name(entity.name)
    if domain is None and name_parts:
        domain = name_parts[0]
    if domain is not None:
        derived["domain"] = (domain, entity.position("spec", "domain"))
        derived["domainId"] = (f"urn:dmb:dmn:{domain}", entity.position("spec", "domain"))
    derived["id"] = (_data_product_id(entity, mesh, domain), entity.position("metadata", "name"))
    title = entity.metadata.get("title")
    derived["name"] = (title if isinstance(title, str) else (name_parts[1] if name_parts else entity.name),
                       entity.position("metadata", "title" if isinstance(title, str) else "name"))
    if "description" in entity.metadata:
        derived["description"] = (entity.metadata["description"], entity.position("metadata", "description"))
    dev_group = mesh.get("developmentGroup", entity.spec.get("owner"))
    if dev_group is not None:
        derived["devGroup"] = (dev_group, sources.get(("developmentGroup",)) or entity.position("spec", "owner"))
    owner_key = "projectOwner" if "projectOwner" in mesh else "dataProductOwner"
    if owner_key in mesh:
        for field_name in ("ownerGroup", "projectOwner"):
            derived[field_name] = (mesh[owner_key], sources[(owner_key,)])
    data: dict[str, Any] = {}
    for key in HEAD_FIELDS:
        if key == "kind":
            data[key] = "dataproduct"
            sources[(key,)] = sources[()]
        elif key == "environment":
            data[key] = environment
            sources[(key,)] = sources[()]
        elif key in mesh:
            data[key] = mesh[key]
        elif key in derived:
            data[key], sources[(key,)] = derived[key]
    for key, value in mesh.items():
        if key not in data and key != "components":
            data[key] = value
    for key, (value, position) in derived.items():
        if key not in data:
            data[key] = value
            sources[(key,)] = position
    return data


def _data_product_id(entity: Entity, mesh: dict[str, Any], domain: str | None) -> str:
    if isinstance(mesh.get("id"), str):
        return mesh["id"]
    parts = _split_versioned_name(entity.name)
    if parts:
        return f"{DATA_PRODUCT_PREFIX}{parts[0]}:{parts[1]}:{parts[2]}"
    major = major_version(mesh.get("version")) or "0"
    return f"{DATA_PRODUCT_PREFIX}{domain or 'default'}:{entity.name}:{major}"


def _split_versioned_name(name: str) -> tuple[str, str, str] | None:
    """(domain, name, major) of a System name written `<domain>.<name>.<major>`."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1].isdigit():
        return parts[0], ".".join(parts[1:-1]), parts[-1]
    return None


def _component_fields(
    part: _Part,
    system: _Part,
    data_product: dict[str, Any],
    prefix: DataPath,
    sources: SourceMap,
) -> dict[str, Any]:
    entity, mesh = part.entity, part.mesh
    _record(part, prefix, sources)
    sources[prefix] = entity.position("spec", "mesh") if "mesh" in entity.spec else entity.position()
    component: dict[str, Any] = {}
    if isinstance(mesh.get("id"), str):
        component["id"] = mesh["id"]
    else:
        component["id"] = _component_id(entity.name, system.entity.name, str(data_product["id"]))
        sources[(*prefix, "id")] = entity.position("metadata", "name")
    spec_type = str(entity.spec.get("type", "")).lower()
    component["kind"] = spec_type
    sources[(*prefix, "kind")] = entity.position("spec", "type")
    if "name" not in mesh:
        title = entity.metadata.get("title")
        component["name"] = title if isinstance(title, str) else entity.name.rsplit(".", 1)[-1]
        sources[(*prefix, "name")] = entity.position("metadata", "title" if isinstance(title, str) else "name")
    if "description" not in mesh and "description" in entity.metadata:
        component["description"] = entity.metadata["description"]
        sources[(*prefix, "description")] = entity.position("metadata", "description")
    for key, value in mesh.items():
        if key not in ("id", "kind"):
            component[key] = value
    return component


def _component_id(name: str, system_name: str, data_product_id: str) -> str:
    if name.startswith(system_name + "."):
        local = name[len(system_name) + 1:]
    else:
        local = name
    if data_product_id.startswith(DATA_PRODUCT_PREFIX):
        return f"{COMPONENT_PREFIX}{data_product_id[len(DATA_PRODUCT_PREFIX):]}:{local}"
    return f"{COMPONENT_PREFIX}{local}"
