"""`/deploy` and `/undeploy` from a merge request: checks, then the engine; the reply shows the plan as it runs.

The reply comment holds a table (task, kind, status, time, adapter message) that the engine's report jobs
edit as tasks finish (`handlers.report`), and its final state links the status API when `public_url` is
configured.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis

from adapters.registry import AdapterRegistry, AdapterTarget
from bot.config import ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import FileTooLarge
from bot.descriptor.model import Descriptor, component_name, find_components
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import Operation
from bot.engine.plan import build_plan
from bot.engine.reconcile import Reconciliation, Scope
from bot.engine.runner import preview, request_deployment
from bot.engine.store import Deployment
from bot.engine.undeploy import request_undeploy
from bot.forge.adapter_validation import AdapterVerdict, ask_adapters, fenced_block
from bot.forge.commands import Deploy, Undeploy
from policies.engine import evaluate
from policies.report import CheckReport, escape_markdown, markdown_environment, to_markdown
from vcs.base import ForgeError, MergeRequest, Repository
from vcs.reader import RevisionReader

REPLY_LIMIT = 60_000
MESSAGE_LIMIT = 200  # an adapter message in a table cell
ICONS = {"COMPLETED": "✅", "FAILED": "❌", "SKIPPED": "⏭️", "RUNNING": "⏳", "PENDING": "⌛"}


def run_deploy_command(
    repository: Repository, connection: redis.Redis, config: ServerConfig, policies: Sequence[Any], *,
    forge: str, project: str, merge_request: MergeRequest, command: Deploy | Undeploy, author: str,
    reply: dict[str, str], remote: RemoteLocations | None = None,
) -> str:
    """Check and start a deploy of the head, or an undeploy of what is deployed; the reply's text (edited later)."""
    environment = command.environment or config.merge_request_environment
    word = "/undeploy" if isinstance(command, Undeploy) else "/deploy"
    sha = merge_request.head_sha
    try:
        descriptor = assemble(RevisionReader(repository, sha), environment, remote)
    except InputErrors as invalid:
        return _reply("cannot_assemble", word=word, environment=environment, sha=sha[:8],
                      errors=[str(error) for error in invalid.errors[:20]])
    except (ForgeError, FileTooLarge) as error:
        return _reply("cannot_read", word=word, environment=environment, error=str(error))
    started_by = f"{forge}:{project}!{merge_request.number} by @{author}"
    report_to = {"forge": forge, "project": project, "sha": sha, "context": f"meshbot/deploy/{environment}",
                 "statusUrl": _status_url(config, descriptor.id, environment), "publicUrl": config.public_url,
                 "comment": reply, "command": word}
    if isinstance(command, Undeploy):  # the head only names the data product: what is deployed is removed
        return undeploy_reply(connection, config, descriptor.id, environment, command, started_by, report_to)
    deployed = RedisDeployedStates(connection).deployed(descriptor.id, environment)
    results = evaluate(descriptor, policies, deployed.descriptor if deployed else None,
                       previous_missing=f"nothing deployed in {environment}")
    active = sum(1 for policy in policies if str(getattr(policy, "status", "")) != "draft")
    report = CheckReport(descriptor=descriptor, results=results, policy_count=active)
    if not report.passed:
        return _reply("governance_blocks", strip=False, word=word, environment=environment, sha=sha[:8],
                      report=to_markdown(report, limit=REPLY_LIMIT // 2))
    registry = AdapterRegistry(config.adapters)
    unresolved = registry.unresolved(descriptor)
    if unresolved:
        return _reply("no_adapter", word=word, environment=environment,
                      errors=[str(error) for error in unresolved[:20]])
    adapters = registry.resolve_all(descriptor)
    components, problems = component_ids(descriptor, command.components)
    if problems:
        return _reply("unknown_components", word=word, environment=environment,
                      problems=[escape_markdown(problem) for problem in problems])
    scope = Scope(prune=config.rules(environment).prune, prune_confirmed=command.prune,
                  only_changed=config.only_changed, components=components)
    if command.dry_run:
        planned = preview(connection, descriptor, scope, registry.resolve_all)
        return dry_run_reply(descriptor, adapters, sha, planned)
    deployment_id, ahead = request_deployment(
        connection, descriptor, Operation.DEPLOY, adapters, started_by, marketplace=config.marketplace,
        history=config.history, report_to=report_to, scope=scope, resolve_removed=registry.resolve_all,
    )
    return _reply("started", word=word, data_product=descriptor.id, version=str(descriptor.data.get("version", "")),
                  sha=sha[:8], environment=environment, deployment=deployment_id,
                  queued=_queued(ahead, descriptor.id, environment))


def undeploy_reply(connection: redis.Redis, config: ServerConfig, data_product: str, environment: str,
                   command: Undeploy, started_by: str, report_to: dict[str, Any]) -> str:
    """Start the undeploy of what is deployed in environment (never the merge request's descriptor); the reply."""
    requested = request_undeploy(connection, data_product, environment, AdapterRegistry(config.adapters), started_by,
                                 remove_data=command.remove_data, history=config.history, report_to=report_to)
    if requested.target is None:
        return _reply("nothing_deployed", data_product=data_product, environment=environment)
    deployed_by = f"deployment `{escape_markdown(requested.target.deployment)}`"
    if requested.unresolved:
        return _reply("undeploy_no_adapter", environment=environment, deployed_by=deployed_by,
                      errors=[str(error) for error in requested.unresolved[:20]])
    return _reply("undeploy_started", data_product=data_product, version=requested.target.version,
                  environment=environment, deployed_by=deployed_by, deployment=requested.deployment_id,
                  queued=_queued(requested.ahead, data_product, environment), remove_data=command.remove_data)


def _queued(ahead: int, data_product: str, environment: str) -> str:
    return _reply("queued", ahead=ahead, data_product=data_product, environment=environment)


def _reply(name: str, strip: bool = True, **values: Any) -> str:
    """One reply of templates/comments/deploy_command.md.j2 (a macro each)."""
    text = str(getattr(markdown_environment().get_template("deploy_command.md.j2").module, name)(**values))
    return text.rstrip("\n") if strip else text


def component_ids(descriptor: Descriptor, names: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """The ids of the components --component names (by id or name), and what is wrong with the names."""
    ids: list[str] = []
    problems = []
    known = [component_name(component) for component in descriptor.components]
    for name in names:
        found = find_components(descriptor.components, name)
        if len(found) == 1:
            ids.append(str(found[0]["id"]))
            continue
        if found:
            problems.append(f"'{name}' names {len(found)} components; give its id")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"'{name}' is not a component of {descriptor.id}" +
                        (f" (did you mean '{close[0]}'?)" if close else f" (components: {', '.join(known[:20])})"))
    return tuple(dict.fromkeys(ids)), problems


def dry_run_reply(descriptor: Descriptor, adapters: dict[str, AdapterTarget], sha: str,
                  planned: Reconciliation | None = None) -> str:
    """The plan (against what is deployed) and what each provisioning task's adapter says of it."""
    plan = build_plan(descriptor)
    stage_of = {task_id: index + 1 for index, stage in enumerate(plan.stages) for task_id in stage}
    provision = set(planned.provision) if planned is not None else {task.id for task in plan.tasks}
    asked = [task.id for task in plan.tasks if task.id in provision]
    verdicts = {verdict.task: verdict for verdict in ask_adapters(descriptor, adapters, asked, timeout=60.0)}
    rows = []
    for task in plan.tasks:
        if task.id not in provision:
            rows.append({"stage": stage_of.get(task.id, "?"), "task": task.id, "kind": task.kind,
                         "action": "left as it is" if planned and planned.partial else "unchanged",
                         "verdict": "not asked"})
            continue
        rows.append({"stage": stage_of.get(task.id, "?"), "task": task.id, "kind": task.kind, "action": "provision",
                     "verdict": _verdict_cell(verdicts[task.id])})
    if planned is not None:
        rows += [{"stage": "", "task": task_id, "kind": "", "action": "**remove**", "verdict": "not asked"}
                 for task_id in planned.remove]
        rows += [{"stage": "", "task": task_id, "kind": "", "action": "kept", "verdict": "not asked"}
                 for task_id in planned.kept]
    return _reply("dry_run", data_product=descriptor.id, sha=sha[:8], environment=descriptor.environment, rows=rows,
                  verdicts=[verdicts[task_id] for task_id in asked], summary=planned.summary() if planned else "",
                  notes=[escape_markdown(note) for note in planned.notes(descriptor.environment)] if planned else [])


def _verdict_cell(verdict: AdapterVerdict) -> str:
    """A task's adapter verdict in one table cell: its errors are listed below the table, never in it."""
    if verdict.valid:
        return "valid"
    if verdict.failed:
        return "⚠️ could not validate: " + _cell(verdict.message)
    return "not valid" + (": " + _cell(verdict.message) if verdict.message and not verdict.said else "")


def progress_reply(deployment: Deployment, tasks: list[dict[str, Any]], status_url: str | None) -> str:
    """The reply as the deployment runs or after it ended: the plan as a table."""
    command = str((deployment.report_to or {}).get("command", "/deploy"))
    state = deployment.state
    removals = {task.id for task in deployment.tasks if task.removal}
    rows = []
    for task in tasks:
        status = str(task.get("state", "PENDING"))
        kind = str(task.get("kind", "")) + (" (remove)" if task["id"] in removals else "")
        rows.append({"task": str(task["id"]), "kind": kind, "icon": ICONS.get(status, ""),
                     "status": status, "time": _duration(task), "message": _cell(str(task.get("message", "")))})
    notes = []
    if deployment.reconciliation:
        planned = Reconciliation.from_json({**deployment.reconciliation, "remove": []})  # the table shows removals
        notes = [_cell(note) for note in planned.notes(deployment.environment)]
    headline, *rest = (deployment.message or "").splitlines() or [""]
    return _reply("progress", command=command, data_product=deployment.data_product, version=deployment.version,
                  environment=deployment.environment, deployment=deployment.id, state=str(state),
                  message=_cell(headline) if headline and state.finished else "", rows=rows,
                  status_url=status_url, finished=state.finished, notes=notes,
                  details=message_details(rest) if state.finished else [])[:REPLY_LIMIT]


def message_details(lines: list[str]) -> list[dict[str, str]]:
    """The lines after an engine message's first (`- task: error`, indented continuations, plain lines) as items."""
    items: list[dict[str, str]] = []
    for line in lines:
        if line.startswith("    ") and items and items[-1]["bullet"]:
            items[-1]["more"] += line[4:] + "\n"
        elif line.strip():
            task, _, text = line[2:].partition(": ") if line.startswith("- ") else ("", "", line)
            items.append({"bullet": "yes" if task else "", "task": task, "text": text, "more": ""})
    for item in items:  # an error's further lines: a fenced block under its list item
        item["more"] = fenced_block(item["more"], 2) if item["more"] else ""
    return items


def _duration(task: dict[str, Any]) -> str:
    try:
        started = datetime.fromisoformat(str(task["startedAt"]).replace("Z", "+00:00"))
        finished = datetime.fromisoformat(str(task["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return ""
    return f"{(finished - started).total_seconds():.1f} s"


def _cell(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > MESSAGE_LIMIT:
        one_line = one_line[:MESSAGE_LIMIT - 1] + "…"
    return escape_markdown(one_line)  # escapes `|` too, so the text stays in its table cell


def _status_url(config: ServerConfig, data_product: str, environment: str) -> str | None:
    if not config.public_url:
        return None
    return f"{config.public_url.rstrip('/')}/status/{data_product}?env={environment}"
