"""Access grants on merge: a merged change of `access/<output port>.yaml` calls `updateacl` where the port is deployed.

On every merge into the default branch meshbot reads the access files at the merge commit, assembles the data
product there for each environment where it is deployed, and compares each output port's desired refs (its consumers
mapped through the server configuration's `access` section) with the refs last applied (bot.engine.access). Only
ports whose refs differ are sent to the adapter, as the complete list: a later merge that removes a consumer revokes.
One comment on the merge request reports it; most merges touch no access file and get none.

After a successful deployment of a repository whose merges ever had access files, the same comparison runs for that
environment with the access files of the default branch head (`grant_after_deployment`): a port deployed after its
file was merged gets its refs. Its report is a comment on the merge request whose `/deploy` started the deployment;
after a release tag or a promotion, only the console shows it ("after deployment <id>").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from adapters.registry import AdapterRegistry
from bot.config import AccessSettings, ServerConfig
from bot.descriptor.access_file import Consumer, output_port_of, read_consumers
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import FileTooLarge
from bot.descriptor.model import Descriptor, component_name
from bot.engine.access import (
    APPLIED,
    FAILED,
    SKIPPED,
    UNCHANGED,
    AccessRun,
    AccessStore,
    AclChange,
    deployment_origin,
    recent_deployments,
    start_run,
    still_applied,
)
from bot.engine.deployed import RedisDeployedStates
from bot.engine.status import environments as known_environments
from bot.engine.store import Deployment, as_text
from policies.report import markdown_environment
from vcs.base import ForgeError, Repository
from vcs.reader import RevisionReader

INVALID, UNKNOWN_PORT, UNREADABLE = "invalid", "unknown port", "unreadable"
MAX_ACCESS_FILES = 100
MERGE_MEMORY_SECONDS = 7 * 86400  # a retried job of the same merge starts no second run
COMMENT_LIMIT = 60_000  # under GitHub's 65,536 characters


# ---------------------------------------------------------------------- decisions (pure)


def desired_refs(consumers: Iterable[Consumer], settings: AccessSettings) -> list[str]:
    """The refs an adapter must grant: each consumer mapped through the configuration, sorted, without repeats."""
    return sorted({settings.ref(consumer.kind, consumer.name) for consumer in consumers})


def refs_diff(before: Sequence[str], after: Sequence[str]) -> tuple[list[str], list[str]]:
    """(granted, revoked): the refs after has and before lacks, and the other way round, sorted."""
    return sorted(set(after) - set(before)), sorted(set(before) - set(after))


@dataclass(frozen=True, slots=True)
class PortAccess:
    """One output port's access file at the merge commit: its consumers, or why it cannot be read."""

    port: str
    path: str
    consumers: list[Consumer] | None  # None: no file (deleted, or never written)
    errors: list[InputError] = field(default_factory=list)


def needs_update(desired: list[str], applied: list[str] | None) -> bool:
    """Whether updateacl must be called: the refs differ from those applied, or a file asks for refs never sent."""
    if applied is None:
        return bool(desired)  # nothing applied and nobody wanted: nothing to revoke either
    return desired != applied


NEWS = frozenset({APPLIED, FAILED, INVALID, UNKNOWN_PORT, UNREADABLE})


def worth_reporting(entries: Sequence[dict[str, Any]]) -> bool:
    """Whether a merge gets a comment: something was granted, revoked, failed or is wrong; never for a merge that
    leaves every port unchanged (or not deployed), which is most merges."""
    return any(entry.get("status") in NEWS for entry in entries)


def problem_fingerprint(entry: dict[str, Any]) -> str:
    """What an invalid or unknown access file's report says, to tell it once and not on every later merge."""
    return json.dumps([entry.get("status"), entry.get("errors"), entry.get("known")], sort_keys=True)


# ---------------------------------------------------------------------- reading the merge commit


def read_access_files(reader: RevisionReader) -> dict[str, PortAccess]:
    """Every access file at the revision, by output port name; an unreadable one carries its errors."""
    found: dict[str, PortAccess] = {}
    for path in reader.list_files():
        port = output_port_of(path)
        if port is None or port in found:
            continue
        if len(found) >= MAX_ACCESS_FILES:  # each file is a forge call: a repository cannot make meshbot read more
            found[port] = PortAccess(port, path, None, [InputError(
                f"not read, nor any access file after it: over {MAX_ACCESS_FILES} access files", SourcePosition(path))])
            break
        try:
            found[port] = PortAccess(port, path, read_consumers(reader.read_bytes(path), path))
        except InputErrors as invalid:
            found[port] = PortAccess(port, path, None, invalid.errors)
        except (FileTooLarge, FileNotFoundError) as error:
            found[port] = PortAccess(port, path, None, [InputError(str(error), SourcePosition(path))])
    return found


def output_ports(descriptor: Descriptor) -> dict[str, dict[str, Any]]:
    """The output port components of a descriptor, by short name."""
    return {component_name(item): item for item in descriptor.components if item.get("kind") == "outputport"}


@dataclass(slots=True)
class AccessPlan:
    """What a merge asks: entries settled at once (plain data for the report) and the changes for the engine."""

    data_product: str
    decided: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, list[AclChange]] = field(default_factory=dict)


def plan_access(files: dict[str, PortAccess], descriptors: dict[str, Descriptor],
                applied: dict[str, dict[str, list[str]]], deployed_components: dict[str, set[str]],
                config: ServerConfig) -> AccessPlan:
    """Decide each output port in each environment where the data product is deployed (pure, given what was read).

    descriptors: the data product at the merge commit, per deployed environment; applied: refs last applied, per
    environment and port; deployed_components: the component ids deployed per environment.
    """
    data_product = next(iter(descriptors.values())).id if descriptors else ""
    plan = AccessPlan(data_product)
    for access in files.values():
        if access.errors:
            plan.decided.append({"port": access.port, "status": INVALID, "path": access.path,
                                 "errors": [_error_json(error) for error in access.errors]})
    registry = AdapterRegistry(config.adapters)
    for environment, descriptor in descriptors.items():
        ports = output_ports(descriptor)
        for port in sorted(set(files) - set(ports)):
            if not files[port].errors and environment == next(iter(descriptors)):
                plan.decided.append({"port": port, "status": UNKNOWN_PORT, "path": files[port].path,
                                     "known": sorted(ports)})
        for port, component in sorted(ports.items()):
            found = files.get(port)
            before = applied.get(environment, {}).get(port)
            if found is not None and found.errors:
                continue  # reported once, above; nothing changes for it
            if found is None and before is None:
                continue  # no file, nothing ever applied: nothing to say
            desired = desired_refs(found.consumers or [], config.access) if found else []
            entry = {"environment": environment, "port": port, "component": str(component.get("id")),
                     "before": before or [], "refs": desired, "message": ""}
            if str(component.get("id")) not in deployed_components.get(environment, set()):
                plan.decided.append({**entry, "status": SKIPPED, "message": f"not deployed in {environment}"})
            elif not needs_update(desired, before):
                plan.decided.append({**entry, "status": UNCHANGED})
            else:
                template = component.get("infrastructureTemplateId")
                adapter = registry.find(template, environment) if isinstance(template, str) else None
                if adapter is None:
                    plan.decided.append({**entry, "status": FAILED, "message": f"no tech adapter serves "
                                         f"infrastructureTemplateId '{template}' in {environment}"})
                    continue
                plan.changes.setdefault(environment, []).append(AclChange(
                    port=port, component=str(component.get("id")), refs=desired,
                    adapter={"url": adapter.url, "timeout": adapter.timeout, "ca_bundle": adapter.ca_bundle}))
    return plan


def _error_json(error: InputError) -> dict[str, Any]:
    position = error.position
    return {"message": error.message, "file": position.file if position else None,
            "line": position.line if position else None, "column": position.column if position else None}


# ---------------------------------------------------------------------- the merge, or a deployment


def grant_on_merge(repository: Repository, connection: redis.Redis, *, forge: str, project: str, number: int,
                   target_branch: str, merge_sha: str, merged_by: str, config: ServerConfig,
                   remote: RemoteLocations | None = None) -> str:
    """Read the merge commit and start the access run it asks for; what was done, in one line."""
    if target_branch != repository.default_branch():
        return f"merged into {target_branch}, not the default branch: access files there grant nothing"
    reader = RevisionReader(repository, merge_sha)
    files = read_access_files(reader)
    access = AccessStore(connection)
    if files:
        access.remember_files(forge, project)  # its later deployments bring their environment to these files
    elif not access.knows_project(forge, project):
        return "no access file, and no access ever applied: nothing to do"
    origin = {"forge": forge, "project": project, "number": number, "mergedBy": merged_by, "sha": merge_sha}
    return grant_at(reader, connection, origin, files, config=config, remote=remote,
                    once=f"meshbot:access-merge:{forge}:{project}:{number}:{merge_sha}")


def grant_after_deployment(repository: Repository, connection: redis.Redis, deployment: Deployment, *,
                           config: ServerConfig, remote: RemoteLocations | None = None) -> str:
    """Bring the ACLs of a deployment's environment to the default branch head's access files (never a merge
    request's head: unmerged access files grant nothing); what was done, in one line."""
    branch = repository.default_branch()
    head = repository.branch_head(branch)
    if head is None:
        return f"the default branch {branch} has no commit: nothing to do"
    reader = RevisionReader(repository, head)
    files = read_access_files(reader)
    origin = {**deployment_origin(deployment), "sha": head}
    if not files and not AccessStore(connection).applied(deployment.data_product, deployment.environment):
        return f"no access file on {branch} and no access applied in {deployment.environment}: nothing to do"
    return grant_at(reader, connection, origin, files, config=config, remote=remote,
                    environments=[deployment.environment], data_product=deployment.data_product,
                    once=f"meshbot:access-deployment:{deployment.id}")


def grant_at(reader: RevisionReader, connection: redis.Redis, origin: dict[str, Any], files: dict[str, PortAccess],
             *, config: ServerConfig, once: str, environments: Sequence[str] | None = None,
             data_product: str | None = None, remote: RemoteLocations | None = None) -> str:
    """Compare the access files read at reader's revision with the refs applied, in environments (default: every
    environment where the data product is deployed), and start the run that sends the differences, once per once."""
    sha = str(origin.get("sha") or "")
    try:
        first = assemble(reader, environments[0] if environments else config.merge_request_environment, remote)
    except InputErrors as invalid:
        return _refuse(connection, origin, first_error(invalid), bool(files))
    except (ForgeError, FileTooLarge, FileNotFoundError) as error:
        return _refuse(connection, origin, f"cannot read the repository at {sha[:12]}: {error}", bool(files))
    if data_product is not None and first.id != data_product:
        return f"the data product at {sha[:12]} is {first.id}, not {data_product}: nothing applied"
    access = AccessStore(connection)
    deployed_states = RedisDeployedStates(connection)
    descriptors: dict[str, Descriptor] = {}
    deployed_components: dict[str, set[str]] = {}
    applied: dict[str, dict[str, list[str]]] = {}
    stale: dict[str, set[str]] = {}
    for environment in environments if environments is not None else known_environments(connection, first.id):
        deployed = deployed_states.deployed(first.id, environment)
        if deployed is None:
            continue
        try:
            descriptors[environment] = first if environment == first.environment else \
                assemble(reader, environment, remote)
        except InputErrors as invalid:
            return _refuse(connection, origin, f"{environment}: {first_error(invalid)}", bool(files))
        deployed_components[environment] = {str(item.get("id")) for item in deployed.descriptor.get("components")
                                            or [] if isinstance(item, dict)}
        recorded = access.applied(first.id, environment)
        components = {port: str(item.get("id")) for port, item in output_ports(descriptors[environment]).items()}
        kept = still_applied(recorded, components, recent_deployments(connection, first.id, environment)) \
            if recorded else {}
        applied[environment] = {port: entry.refs for port, entry in kept.items()}
        stale[environment] = set(recorded) - set(kept)
    plan = plan_access(files, descriptors, applied, deployed_components, config)
    plan.changes = {environment: [replace(change, resend=change.port in stale.get(environment, set()))
                                  for change in changes] for environment, changes in plan.changes.items()}
    plan.decided = _new_problems(connection, f"{origin.get('forge')}:{origin.get('project')}", files, plan.decided)
    if not plan.changes and not worth_reporting(plan.decided):
        return "no access changes where the data product is deployed: nothing to send or report"
    plan.data_product = first.id
    if not connection.set(once, "1", nx=True, ex=MERGE_MEMORY_SECONDS):
        return "this access run was started before (a retried job): nothing more to do"
    run_id = start_run(connection, AccessRun(origin, first.id, plan.changes), plan.decided)
    changes = sum(len(items) for items in plan.changes.values())
    return f"access run {run_id}: {changes} updateacl call(s) queued, {len(plan.decided)} settled"


def _new_problems(connection: redis.Redis, repository: str, files: dict[str, PortAccess],
                  decided: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """decided without the invalid or unknown access files already reported as they are now (told once per state);
    a file that is fine again is forgotten, so a new mistake in it is told."""
    key = f"meshbot:access:problems:{repository}"
    told = {as_text(path): as_text(value) for path, value in connection.hgetall(key).items()}
    kept: list[dict[str, Any]] = []
    problems: dict[Any, Any] = {}
    for entry in decided:
        if entry.get("status") in (INVALID, UNKNOWN_PORT):
            problems[str(entry["path"])] = problem_fingerprint(entry)
            if told.get(str(entry["path"])) == problems[str(entry["path"])]:
                continue
        kept.append(entry)
    fixed = [path for path in told if path not in problems]
    with connection.pipeline() as pipeline:
        if fixed:
            pipeline.hdel(key, *fixed)
        if problems:
            pipeline.hset(key, mapping=problems)
        pipeline.execute()
    return kept


def first_error(invalid: InputErrors) -> str:
    """The first assembly error, with its position."""
    return str(invalid.errors[0]) if invalid.errors else str(invalid)


def _refuse(connection: redis.Redis, origin: dict[str, Any], message: str, report: bool) -> str:
    """The data product could not be read at the merge commit: said on the merge request when it has access files."""
    if report:
        start_run(connection, AccessRun(origin, ""), [{"status": UNREADABLE, "message": message}])
    return f"not applied: {message}"


# ---------------------------------------------------------------------- the report


def access_comment(data_product: str, entries: Sequence[dict[str, Any]], origin: dict[str, Any] | None = None) -> str:
    """The merge request comment of an access run (templates/comments/access_result.md.j2); origin names the
    deployment that started it, if one did."""
    rows = []
    for entry in entries:
        granted, revoked = refs_diff(entry.get("before") or [], entry.get("refs") or [])
        rows.append({**entry, "granted": granted, "revoked": revoked})
    order = {APPLIED: 0, FAILED: 1, INVALID: 2, UNKNOWN_PORT: 3, UNREADABLE: 4, SKIPPED: 5, UNCHANGED: 6}
    rows.sort(key=lambda row: (order.get(str(row.get("status")), 9), str(row.get("port", "")),
                               str(row.get("environment", ""))))
    origin = origin or {}
    text = markdown_environment().get_template("access_result.md.j2").render(
        data_product=data_product, rows=rows, deployment=origin.get("deployment"),
        environment=origin.get("environment"), sha=str(origin.get("sha") or ""))
    if len(text) > COMMENT_LIMIT:
        text = text[:COMMENT_LIMIT].rsplit("\n", 1)[0] + "\n\n… (cut: the report is longer than a comment holds)\n"
    return text


def report_run(repository: Repository, record: dict[str, Any]) -> str:
    """Post the comment of a finished access run on its merge request; what was done, in one line."""
    entries = [*record["decided"], *record["outcomes"]]
    if not worth_reporting(entries):
        return "nothing to report"
    origin = record["origin"]
    if origin.get("number") is None:  # after a release tag's or a promotion's deployment: the console shows it
        return "no merge request to report to"
    number = int(origin["number"])
    repository.create_comment(number, access_comment(record["dataProduct"], entries, origin))
    return f"reported {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} on merge request {number}"

