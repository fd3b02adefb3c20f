"""The console's data: read from the engine's Redis with few round trips (pipelines), shaped by pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import redis

from bot.console.consumers import consumers
from bot.console.svg import Span, dependency_graph_svg, duration_seconds, timeline_svg
from bot.descriptor.model import Descriptor
from bot.engine import compliance
from bot.engine.deployed import RedisDeployedStates
from bot.engine.drift import load_report
from bot.engine.plan import build_plan
from bot.engine.status import environments as product_environment_names
from bot.engine.status import product_environments, product_status
from bot.engine.store import (
    SUMMARY_FIELD,
    Store,
    as_text,
    deployment_key,
    deployment_summary,
    history_key,
    pair_member,
    product_key,
    tasks_key,
)
from bot.forge.policy_impact import deployed_descriptors, impacts, stored
from policies.engine import evaluate
from policies.model import Policy, effective_status

HISTORY_SHOWN = 50


# ---------------------------------------------------------------- pure shaping


def public_info(info: Any) -> Any:
    """What an adapter's info may show: its publicInfo only (privateInfo stays with the platform)."""
    if isinstance(info, Mapping):
        return info.get("publicInfo")
    return None


def split_key(key: str, head: str) -> tuple[str, str] | None:
    """(data product, environment) of a product or history key; None for anything else (environments hold no colon)."""
    if not key.startswith(head):
        return None
    data_product, _, environment = key[len(head):].rpartition(":")
    return (data_product, environment) if data_product and environment else None


def domain_of(data_product: str, descriptor: Mapping[str, Any] | None = None) -> str:
    """The domain of a data product: its descriptor's, else the one in its URN (urn:dmb:dp:<domain>:<name>:<major>)."""
    if descriptor and descriptor.get("domain"):
        return str(descriptor["domain"])
    parts = data_product.split(":")
    return parts[3] if len(parts) >= 5 and parts[:3] == ["urn", "dmb", "dp"] else "(no domain)"


def origin(report_to: Mapping[str, Any] | None, started_by: str) -> dict[str, Any]:
    """Where a deployment was started: a merge request command, a release tag, or the command line."""
    report = dict(report_to or {})
    repository = f"{report['forge']}:{report['project']}" if report.get("forge") and report.get("project") else None
    if report.get("tag"):
        kind, detail = "tag", str(report["tag"])
    elif repository and "@" in started_by.partition(" ")[0]:  # a release: "<forge>:<project>@<tag>"
        kind, detail = "tag", started_by.partition(" ")[0].rpartition("@")[2]
    elif report.get("comment") is not None or "!" in started_by:
        kind, detail = "merge request", started_by.partition(" by ")[0]
    elif started_by.startswith("cli:") or started_by.endswith("(cli)") or report_to is None:
        kind, detail = "cli", started_by
    else:
        kind, detail = "other", started_by
    return {"kind": kind, "detail": detail, "repository": repository, "command": report.get("command"),
            "sha": report.get("sha"), "statusContext": report.get("context")}


def matches(row: Mapping[str, Any], domain: str = "", environment: str = "", status: str = "", query: str = "") -> bool:
    """Whether a mesh row passes the filters (each empty filter passes everything; search ignores case)."""
    if domain and row["domain"] != domain:
        return False
    cells: Mapping[str, Any] = row["environments"]
    if environment and environment not in cells:
        return False
    if status:
        wanted = status.upper()
        considered = [cells[environment]] if environment else list(cells.values())
        if not any(cell.get("status") == wanted for cell in considered):
            return False
    if query:
        text = " ".join([row["id"], row.get("name") or "", row.get("description") or "", row["domain"]]).lower()
        return query.lower() in text
    return True


def edges_of(tasks: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(dependency, task) pairs of planned tasks (plain data with `id` and `depends_on`)."""
    return [(str(dependency), str(task["id"])) for task in tasks for dependency in task.get("depends_on") or []]


def _loads(value: Any) -> Any:
    return None if value is None else json.loads(value)


def _loads_all(values: Sequence[Any]) -> list[Any]:
    """Each JSON text (bytes or str) parsed, None for None: one parse of them all as a JSON array (pure)."""
    texts = [b"null" if value is None else value if isinstance(value, bytes) else str(value).encode()
             for value in values]
    found = json.loads(b"[" + b",".join(texts) + b"]")
    if len(found) != len(texts):  # a value that was not one JSON text (two, or none): parse each on its own
        return [_loads(value) for value in values]
    return list(found)


# ---------------------------------------------------------------- the mesh


def summaries(connection: redis.Redis, deployment_ids: Sequence[str | None],
              fields: Sequence[str]) -> list[tuple[dict[str, Any], list[Any]]]:
    """Each deployment's summary (bot.engine.store.deployment_summary) and the other hash fields asked for.

    One pipelined HMGET for all; a deployment recorded before summaries existed has its record read and summarised
    in one more pipeline, so lists never parse whole records (descriptors) for deployments written since.
    """
    with connection.pipeline(transaction=False) as pipeline:
        for deployment_id in deployment_ids:
            pipeline.hmget(deployment_key(deployment_id or "-"), [SUMMARY_FIELD, *fields])
        replies = pipeline.execute()
    found = _summarised(connection, deployment_ids, [values[0] for values in replies])
    return [(summary, list(values[1:])) for summary, values in zip(found, replies, strict=True)]


def _summarised(connection: redis.Redis, deployment_ids: Sequence[str | None],
                stored: Sequence[Any]) -> list[dict[str, Any]]:
    """The stored summaries parsed; those missing (older records) made from the records, read in one pipeline."""
    older = [index for index, value in enumerate(stored) if value is None and deployment_ids[index]]
    records: list[Any] = []
    if older:
        with connection.pipeline(transaction=False) as pipeline:
            for index in older:
                pipeline.hget(deployment_key(str(deployment_ids[index])), "record")
            records = pipeline.execute()
    found = [value if value is not None else {} for value in _loads_all(stored)]
    made: dict[str, str] = {}
    for index, record in zip(older, records, strict=True):
        if record is not None:
            found[index] = deployment_summary(json.loads(record))
            made[deployment_key(str(deployment_ids[index]))] = json.dumps(found[index])
    if made:  # kept, so that each older record is parsed once, not on every page
        connection.register_script(KEEP_SUMMARIES_SCRIPT)(keys=list(made), args=list(made.values()))
    return found


# A summary made from an older record, kept beside it: only while the record is there (a deployment dropped from
# history meanwhile is not brought back as a hash with a summary alone) and never over a summary already there.
KEEP_SUMMARIES_SCRIPT = f"""
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], 'record') == 1 then redis.call('HSETNX', KEYS[i], '{SUMMARY_FIELD}', ARGV[i]) end
end
return 0
"""


# One pair (ARGV: "<data product>:<environment>") after another, in Redis: the product record's fields, the newest
# deployment in the history (else the one the record names), and that deployment's summary, state and end. A script
# rather than a pipeline of three commands a pair: 3,000 pairs are 9,000 commands for the client to write and read.
MESH_SCRIPT = """
local product_head, history_head, deployment_head = ARGV[1], ARGV[2], ARGV[3]
local rows = {}
for i = 4, #ARGV do
  local record = redis.call('HMGET', product_head .. ARGV[i], 'status', 'version', 'deployment', 'updatedAt')
  local newest = redis.call('LINDEX', history_head .. ARGV[i], 0)
  local id = newest
  if not id and record[3] then
    local ok, acted = pcall(cjson.decode, record[3])
    if ok and type(acted) == 'string' then id = acted end
  end
  local deployment = {false, false, false}
  if id and id ~= '' then
    deployment = redis.call('HMGET', deployment_head .. id, 'summary', 'state', 'finishedAt')
  end
  rows[#rows + 1] = {record[1], record[2], record[3], record[4], newest, deployment[1], deployment[2], deployment[3]}
end
return rows
"""
MESH_BATCH = 500  # pairs per script call: Redis serves other clients between calls


def mesh_rows(connection: redis.Redis, pairs: Sequence[tuple[str, str]]) -> list[list[Any]]:
    """MESH_SCRIPT's rows for pairs, in order: batches of MESH_BATCH pairs, one pipelined round trip."""
    script = connection.register_script(MESH_SCRIPT)
    heads = [product_key("", "")[:-1], history_key("", "")[:-1], deployment_key("")]
    with connection.pipeline(transaction=False) as pipeline:
        for start in range(0, len(pairs), MESH_BATCH):
            members = [pair_member(data_product, environment) for data_product, environment
                       in pairs[start:start + MESH_BATCH]]
            script(keys=[], args=[*heads, *members], client=pipeline)
        batches = pipeline.execute()
    return [list(row) for batch in batches for row in batch]


def mesh(connection: redis.Redis) -> dict[str, Any]:
    """Every data product with its status in each environment: the index, then one script call per 500 pairs."""
    pairs = product_environments(connection)
    rows = mesh_rows(connection, pairs)
    fields = _loads_all([value for row in rows for value in row[:4]])
    latest: list[str | None] = []
    records: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        status, version, acted, updated = fields[4 * index:4 * index + 4]
        newest = row[4]
        latest.append(as_text(newest) if newest is not None else acted)
        records.append({"status": status, "version": version, "deployment": acted, "updatedAt": updated})
    found = _summarised(connection, latest, [row[5] for row in rows])
    products: dict[str, dict[str, Any]] = {}
    environments: set[str] = set()
    for (data_product, environment), record, deployment_id, summary, row in zip(
            pairs, records, latest, found, rows, strict=True):
        state, finished = row[6], row[7]
        row_of = products.setdefault(data_product, {
            "id": data_product, "domain": domain_of(data_product, summary), "name": summary.get("name"),
            "description": summary.get("description"), "repositories": set(), "environments": {}})
        where = origin(summary.get("reportTo"), str(summary.get("startedBy") or ""))
        if where["repository"]:
            row_of["repositories"].add(where["repository"])
        environments.add(environment)
        row_of["environments"][environment] = {
            "status": record["status"] or "NOT_DEPLOYED", "version": record["version"],
            "when": record["updatedAt"] or (as_text(finished) if finished else None) or summary.get("createdAt"),
            "by": summary.get("startedBy"), "deployment": deployment_id,
            "deploymentState": as_text(state) if state is not None else None,
        }
    return {"environments": sorted(environments), "products": [products[key] for key in sorted(products)]}


def mesh_document(found: Mapping[str, Any], visible: set[str], domain: str = "", environment: str = "",
                  status: str = "", query: str = "") -> dict[str, Any]:
    """The mesh page's data (and /api/v1/products): the visible rows passing the filters, grouped by domain."""
    rows = [row for row in found["products"] if row["id"] in visible]
    shown = [{**row, "repositories": sorted(row["repositories"])} for row in rows
             if matches(row, domain, environment, status, query)]
    return {
        "environments": [environment] if environment else list(found["environments"]),
        "domains": sorted({row["domain"] for row in rows}),
        "filters": {"domain": domain, "environment": environment, "status": status, "q": query},
        "products": shown,
        "byDomain": {name: [row["id"] for row in shown if row["domain"] == name]
                     for name in sorted({row["domain"] for row in shown})},
    }


# ---------------------------------------------------------------- a data product


def history(connection: redis.Redis, data_product: str, environment: str,
            limit: int = HISTORY_SHOWN) -> list[dict[str, Any]]:
    """The deployments of a data product in an environment, newest first (one read of ids, one pipeline)."""
    ids = [as_text(item) for item in connection.lrange(history_key(data_product, environment), 0, limit - 1)]
    replies = summaries(connection, ids, ["state", "startedAt", "finishedAt", "message"])
    entries = []
    for deployment_id, (static, (state, started, finished, message)) in zip(ids, replies, strict=True):
        entries.append({
            "id": deployment_id, "environment": environment, "operation": static.get("operation"),
            "version": static.get("version"), "state": as_text(state) if state is not None else None,
            "startedBy": static.get("startedBy"), "createdAt": static.get("createdAt"),
            "startedAt": as_text(started) if started is not None else None,
            "finishedAt": as_text(finished) if finished is not None else None,
            "message": as_text(message) if message is not None else "",
            "origin": origin(static.get("reportTo"), str(static.get("startedBy") or "")) if static else None,
        })
    return entries


def product(connection: redis.Redis, data_product: str, policies: Sequence[Policy]) -> dict[str, Any] | None:
    """Everything the data product page shows, per environment; None when meshbot never saw the product."""
    environments = product_environment_names(connection, data_product)
    if not environments:
        return None
    deployed_states = RedisDeployedStates(connection)
    shown = []
    for environment in environments:
        document, waiting = product_status(connection, data_product, environment)
        deployment = document.get("deployment") or {}
        deployment.pop("descriptor", None)
        deployed = deployed_states.deployed(data_product, environment)
        descriptor = deployed.descriptor if deployed else None
        components = [{"id": component["id"], "status": component["status"], "message": component["message"],
                       "publicInfo": public_info(component.get("info"))} for component in document["components"]]
        states = {component["id"]: component["status"] for component in components}
        report = load_report(connection, data_product, environment)
        shown.append({
            "environment": environment, "status": document["status"], "version": document["version"],
            "deployment": deployment or None, "waiting": waiting, "components": components,
            "deployed": None if deployed is None else {"version": deployed.version, "deployment": deployed.deployment,
                                                       "deployedAt": deployed.deployed_at},
            "compliance": compliance.document(connection, data_product, environment),
            "governance": governance(descriptor, environment, policies),
            "drift": None if report is None else report.as_json(),
            "graph": graph(descriptor, environment, states),
            "consumers": consumers(connection, data_product, environment),  # output ports' applied access
            "history": history(connection, data_product, environment),
        })
    first = next((entry for entry in shown if entry["deployed"]), shown[0])
    return {"id": data_product, "domain": domain_of(data_product), "environments": shown,
            "repositories": sorted({entry["origin"]["repository"] for item in shown for entry in item["history"]
                                    if entry["origin"] and entry["origin"]["repository"]}),
            "current": first["environment"]}


def graph(descriptor: Mapping[str, Any] | None, environment: str, states: Mapping[str, str]) -> dict[str, Any] | None:
    """The deployed descriptor's plan: stages, edges and its SVG; None when nothing is deployed."""
    if not descriptor:
        return None
    try:
        plan = build_plan(Descriptor(data=dict(descriptor), environment=environment))
    except Exception:  # a recorded descriptor the plan cannot read (a cycle written by an older meshbot)
        return None
    tasks = plan.as_json()["tasks"]
    edges = edges_of(tasks)
    return {"stages": plan.stages, "edges": [list(edge) for edge in edges],
            "svg": dependency_graph_svg(plan.stages, edges, states)}


def governance(descriptor: Mapping[str, Any] | None, environment: str,
               policies: Sequence[Policy]) -> dict[str, Any]:
    """The policies evaluated now on the deployed descriptor (results from deploy time are not recorded)."""
    if not descriptor:
        return {"evaluated": False, "note": "nothing deployed: no descriptor to evaluate", "results": []}
    results = evaluate(Descriptor(data=dict(descriptor), environment=environment), policies,
                       previous_missing="the console compares with no earlier descriptor")
    return {"evaluated": True, "note": "the current policies on the deployed descriptor, evaluated now; the results "
                                       "at deploy time are not recorded", "results": [r.as_json() for r in results]}


# ---------------------------------------------------------------- a deployment


def deployment(connection: redis.Redis, deployment_id: str) -> dict[str, Any] | None:
    """Everything the deployment page shows; None when the deployment is unknown (or dropped from history)."""
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.hgetall(deployment_key(deployment_id))
        pipeline.hgetall(tasks_key(deployment_id))
        fields, task_fields = pipeline.execute()
    if not fields:
        return None
    loaded = Store(connection).load(deployment_id)  # the same parse as the engine's (the hash is in memory already)
    if loaded is None:
        return None
    records = {as_text(key): json.loads(value) for key, value in task_fields.items()}
    tasks = []
    for task in loaded.tasks:
        record = records.get(task.id, {})
        tasks.append({
            "id": task.id, "kind": task.kind, "dependsOn": task.depends_on, "removal": task.removal,
            "state": record.get("state"), "startedAt": record.get("startedAt"), "finishedAt": record.get("finishedAt"),
            "durationSeconds": duration_seconds(record.get("startedAt"), record.get("finishedAt")),
            "attempts": record.get("attempts"), "message": record.get("message", ""),
            "publicInfo": public_info(record.get("info")), "logs": record.get("logs") or [],
        })
    spans = [Span(task["id"], str(task["state"] or ""), task["startedAt"], task["finishedAt"]) for task in tasks]
    states = {task["id"]: str(task["state"] or "") for task in tasks}
    stages = _stages(loaded.tasks)
    return {
        "id": loaded.id, "dataProduct": loaded.data_product, "environment": loaded.environment,
        "version": loaded.version, "operation": str(loaded.operation), "state": str(loaded.state),
        "message": loaded.message, "startedBy": loaded.started_by,
        "origin": origin(loaded.report_to, loaded.started_by), "removeData": loaded.remove_data,
        "createdAt": loaded.created_at, "startedAt": loaded.started_at, "finishedAt": loaded.finished_at,
        "durationSeconds": duration_seconds(loaded.started_at, loaded.finished_at),
        "reconciliation": loaded.reconciliation, "tasks": tasks,
        "timelineSvg": timeline_svg(spans),
        "graphSvg": dependency_graph_svg(stages, edges_of([task.as_json() for task in loaded.tasks]), states),
    }


def _stages(tasks: Sequence[Any]) -> list[list[str]]:
    """Planned tasks in layers: each task one column right of its deepest dependency (pure)."""
    depth: dict[str, int] = {}
    known = {task.id: task for task in tasks}

    def level(task_id: str, seen: frozenset[str] = frozenset()) -> int:
        if task_id not in depth:
            parents = [p for p in known[task_id].depends_on if p in known and p not in seen]
            depth[task_id] = 1 + max((level(p, seen | {task_id}) for p in parents), default=-1)
        return depth[task_id]

    for task in tasks:
        level(task.id)
    stages: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task in tasks:
        stages[depth[task.id]].append(task.id)
    return stages


# ---------------------------------------------------------------- policies


def policies_document(connection: redis.Redis, policies: Sequence[Policy], visible: set[str]) -> dict[str, Any]:
    """Every policy, and the deployed (visible) data products that fail it now (drafts evaluated as if enabled)."""
    found = deployed_descriptors(connection, visible=visible, origins=False)
    evaluated = [stored(deployed, reason) for deployed, reason in found if isinstance(reason, str)]
    today = date.today()
    failing = {impact.policy.id: impact.failing for impact in impacts(policies, evaluated, today)}
    return {"policies": [{
        "id": policy.id, "description": policy.description, "status": str(policy.status),
        "effectiveStatus": str(effective_status(policy, today)),
        "graceUntil": policy.grace_until.isoformat() if policy.grace_until else None,
        "severity": str(policy.severity), "target": str(policy.target), "file": policy.file,
        "builtin": policy.builtin, "failing": [{
            "dataProduct": failure.data_product, "environment": failure.environment, "resource": failure.resource,
            "errors": [error.message for error in failure.errors[:5]]} for failure in failing[policy.id]],
    } for policy in policies]}
