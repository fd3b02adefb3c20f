"""Access grants on the engine side: the refs last applied per output port, and the `updateacl` job.

A merged change of `access/<port>.yaml` becomes one access run (bot.forge.access_grant): the changes of each
environment are applied by one job on the deploy queue that holds the data product's deploy lock in that environment
(bot.engine.locks), so an `updateacl` never runs while a deployment of the same product and environment does. The
refs an adapter accepted are recorded with the time, the merge request and who merged it; a failure records nothing
applied (the next merge, or a retry, sends the refs again). The last job of a run queues the report to the forge.

A successful deployment of a repository that ever had access files queues `handlers.access.after_deployment`
(`queue_after_deployment`): the environment's ACLs are brought to what the default branch's access files say. Refs
applied before a component was unprovisioned (an undeploy, a prune) count as never applied (`removed_since`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from rq import Callback, Retry
from rq.job import Job

from adapters.client import TechAdapterClient
from adapters.payloads import component_request
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.locks import Locks, lock_key
from bot.engine.runner import queue, start_next
from bot.engine.store import PREFIX, Deployment, Store, as_text, now_iso

APPLY_JOB = f"{__name__}.apply"
REPORT_JOB = "handlers.access.report"  # renders the run's outcome on its merge request (bot.forge.access_grant)
ACCESS_HISTORY = 20  # attempts kept per data product, environment and output port
WAIT_SECONDS = 3  # between two looks at a deploy lock held by a deployment
MAX_WAITS = 2400  # two hours of waiting for deployments of the product in that environment to end
RUN_TTL = 7 * 86400
PROJECTS_KEY = f"{PREFIX}:access:projects"  # forge:project of every repository that ever had access applied
FILES_KEY = f"{PREFIX}:access:file-projects"  # forge:project of every repository whose merges ever had access files
AFTER_DEPLOYMENT_JOB = "handlers.access.after_deployment"  # a deployment succeeded: its environment's ACLs follow
AFTER_DEPLOYMENT_TTL = 7 * 86400  # a retried report job queues no second after_deployment
SUCCEEDED = frozenset({DeploymentState.DEPLOYED, DeploymentState.PARTIALLY_DEPLOYED})
REMOVALS_LOOKED_AT = 50  # newest deployments read to find unprovisions after refs were applied
EVERY_COMPONENT = "*"  # removed_since: an undeploy removed every component

APPLIED, UNCHANGED, FAILED, SKIPPED = "applied", "unchanged", "failed", "skipped"


def applied_key(data_product: str, environment: str) -> str:
    """The hash of the refs last applied to each output port of a data product in an environment."""
    return f"{PREFIX}:access:{data_product}:{environment}"


def attempts_key(data_product: str, environment: str, port: str) -> str:
    """The list of `updateacl` attempts of one output port, newest first."""
    return f"{PREFIX}:access-history:{data_product}:{environment}:{port}"


def run_key(run_id: str) -> str:
    """The hash of one access run: its origin, its changes per environment and their outcomes."""
    return f"{PREFIX}:access-run:{run_id}"


@dataclass(frozen=True, slots=True)
class Applied:
    """The refs an adapter last accepted for an output port in an environment, and by which merge."""

    refs: list[str]
    applied_at: str
    merge_request: int | None = None
    merged_by: str = ""
    project: str = ""
    message: str = ""
    origin: str = ""  # what asked, when not a merge: "after deployment <id>"

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"refs": self.refs, "appliedAt": self.applied_at, "mergeRequest": self.merge_request,
                "mergedBy": self.merged_by, "project": self.project, "message": self.message, "origin": self.origin}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Applied:
        """From plain data."""
        number = data.get("mergeRequest")
        return cls(refs=[str(ref) for ref in data.get("refs") or []], applied_at=str(data.get("appliedAt") or ""),
                   merge_request=int(number) if isinstance(number, int) else None,
                   merged_by=str(data.get("mergedBy") or ""), project=str(data.get("project") or ""),
                   message=str(data.get("message") or ""), origin=str(data.get("origin") or ""))


@dataclass(frozen=True, slots=True)
class AclChange:
    """One output port whose refs must become refs in an environment, through the adapter at adapter."""

    port: str
    component: str
    refs: list[str]
    adapter: dict[str, Any]  # {url, timeout, ca_bundle}: what the server configuration resolved
    resend: bool = False  # the refs recorded were applied before the component was unprovisioned: send them again

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"port": self.port, "component": self.component, "refs": self.refs, "adapter": self.adapter,
                "resend": self.resend}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AclChange:
        """From plain data."""
        return cls(port=str(data["port"]), component=str(data["component"]), refs=[str(r) for r in data["refs"]],
                   adapter=dict(data["adapter"]), resend=bool(data.get("resend")))


@dataclass(slots=True)
class AccessRun:
    """What a merge asks of the engine: its origin (plain data for the report) and the changes per environment."""

    origin: dict[str, Any]
    data_product: str
    changes: dict[str, list[AclChange]] = field(default_factory=dict)


class AccessStore:
    """The applied refs and attempts of output ports in Redis."""

    def __init__(self, connection: redis.Redis, history: int = ACCESS_HISTORY) -> None:
        self.redis, self.history = connection, history

    def applied(self, data_product: str, environment: str) -> dict[str, Applied]:
        """The refs last applied to each output port (by port short name)."""
        fields = self.redis.hgetall(applied_key(data_product, environment))
        return {as_text(port): Applied.from_json(json.loads(value)) for port, value in fields.items()}

    def attempts(self, data_product: str, environment: str, port: str) -> list[dict[str, Any]]:
        """The last attempts of an output port, newest first."""
        return [json.loads(item) for item in self.redis.lrange(attempts_key(data_product, environment, port), 0, -1)]

    def ports(self, data_product: str, environment: str) -> list[str]:
        """Every output port with refs applied or an attempt recorded, sorted."""
        prefix = attempts_key(data_product, environment, "")
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
        tried = {as_text(key)[len(prefix):] for key in self.redis.scan_iter(match=pattern, count=1000)}
        return sorted(tried | set(self.applied(data_product, environment)))

    def record(self, data_product: str, environment: str, port: str, attempt: dict[str, Any],
               applied: Applied | None) -> None:
        """Keep an attempt (bounded history) and, when the adapter accepted it, the refs now applied."""
        key = attempts_key(data_product, environment, port)
        with self.redis.pipeline() as pipeline:
            pipeline.lpush(key, json.dumps(attempt))
            pipeline.ltrim(key, 0, self.history - 1)
            if applied is not None:
                pipeline.hset(applied_key(data_product, environment), port, json.dumps(applied.as_json()))
            pipeline.execute()

    def remember_project(self, forge: str, project: str) -> None:
        """Note that a repository has had access applied (a later merge deleting its files must revoke)."""
        self.redis.sadd(PROJECTS_KEY, f"{forge}:{project}")

    def knows_project(self, forge: str, project: str) -> bool:
        """Whether access was ever applied for a repository."""
        return bool(self.redis.sismember(PROJECTS_KEY, f"{forge}:{project}"))

    def remember_files(self, forge: str, project: str) -> None:
        """Note that a merge into a repository's default branch had access files (its deployments must follow them)."""
        self.redis.sadd(FILES_KEY, f"{forge}:{project}")

    def follows_deployments(self, forge: str, project: str) -> bool:
        """Whether a repository ever had access files or access applied: only then does a deployment look at them."""
        member = f"{forge}:{project}"
        with self.redis.pipeline() as pipeline:
            pipeline.sismember(FILES_KEY, member)
            pipeline.sismember(PROJECTS_KEY, member)
            return any(pipeline.execute())


# ---------------------------------------------------------------------- after a deployment


def deployment_origin(deployment: Deployment) -> dict[str, Any]:
    """The origin of the access run after a deployment: its forge and project, and the merge request whose command
    started it (None for a release tag or a promotion: nothing is commented then)."""
    target = deployment.report_to or {}
    number = str((target.get("comment") or {}).get("number") or "")
    return {"forge": str(target.get("forge") or ""), "project": str(target.get("project") or ""),
            "number": int(number) if number.isdigit() else None, "mergedBy": "", "sha": "",
            "deployment": deployment.id, "environment": deployment.environment}


def origin_label(origin: dict[str, Any]) -> str:
    """How the console names a run that no merge asked for: `after deployment <id>`; empty for a merge."""
    return f"after deployment {origin['deployment']}" if origin.get("deployment") else ""


def follows_up(deployment: Deployment) -> bool:
    """Whether a deployment's end may change access: a successful deploy a forge asked for (pure)."""
    target = deployment.report_to or {}
    return (deployment.operation == Operation.DEPLOY and deployment.state in SUCCEEDED
            and bool(target.get("forge")) and bool(target.get("project")))


def queue_after_deployment(connection: redis.Redis, deployment: Deployment) -> bool:
    """Queue the access job of a successful deployment of a repository that ever had access files, once; whether it
    was queued. Repositories without access files cost nothing here (no forge call, two Redis reads)."""
    if not follows_up(deployment):
        return False
    target = deployment.report_to or {}
    if not AccessStore(connection).follows_deployments(str(target["forge"]), str(target["project"])):
        return False
    if not connection.set(f"{PREFIX}:access-after:{deployment.id}", "1", nx=True, ex=AFTER_DEPLOYMENT_TTL):
        return False
    queue(connection).enqueue(AFTER_DEPLOYMENT_JOB, deployment.id, job_id=f"meshbot-{deployment.id}-access",
                              retry=Retry(max=3, interval=[5, 30, 120]), result_ttl=600, failure_ttl=86400)
    return True


def removed_since(deployments: list[Deployment], since: str) -> set[str]:
    """The components unprovisioned by deployments that ended after since (EVERY_COMPONENT for an undeploy): refs
    applied before then are gone with the resource (pure)."""
    removed: set[str] = set()
    for deployment in deployments:
        if not deployment.finished_at or deployment.finished_at <= since or \
                deployment.state in (DeploymentState.REFUSED, DeploymentState.FAILED):
            continue  # ended before, or provisioned nothing
        if deployment.operation == Operation.UNDEPLOY:
            removed.add(EVERY_COMPONENT)
        else:
            removed.update(str(item) for item in (deployment.reconciliation or {}).get("remove") or [])
    return removed


def recent_deployments(connection: redis.Redis, data_product: str, environment: str) -> list[Deployment]:
    """The newest deployments of a data product in an environment (at most REMOVALS_LOOKED_AT)."""
    store = Store(connection)
    loaded = (store.load(deployment_id) for deployment_id in
              store.history(data_product, environment)[:REMOVALS_LOOKED_AT])
    return [deployment for deployment in loaded if deployment is not None]


def still_applied(applied: dict[str, Applied], components: dict[str, str],
                  deployments: list[Deployment]) -> dict[str, Applied]:
    """The applied refs whose component was not unprovisioned since they were applied (components: port -> id)."""
    kept: dict[str, Applied] = {}
    for port, entry in applied.items():
        gone = removed_since(deployments, entry.applied_at)
        if EVERY_COMPONENT not in gone and components.get(port) not in gone:
            kept[port] = entry
    return kept


# ---------------------------------------------------------------------- runs


def start_run(connection: redis.Redis, run: AccessRun, decided: list[dict[str, Any]]) -> str:
    """Record a run (decided: the entries the forge side settled itself) and queue one job per environment; when
    there is nothing to apply, the report is queued at once. Returns the run id."""
    run_id = f"{int(time.time() * 1000):013d}-{secrets.token_hex(4)}"
    key = run_key(run_id)
    environments = [environment for environment, changes in run.changes.items() if changes]
    mapping: dict[Any, Any] = {"origin": json.dumps(run.origin), "dataProduct": run.data_product,
                               "decided": json.dumps(decided), "pending": len(environments)}
    for environment in environments:
        mapping[f"changes:{environment}"] = json.dumps([change.as_json() for change in run.changes[environment]])
    with connection.pipeline() as pipeline:
        pipeline.hset(key, mapping=mapping)
        pipeline.expire(key, RUN_TTL)
        pipeline.execute()
    if not environments:
        _enqueue_report(connection, run_id)
    for environment in environments:
        queue(connection).enqueue(APPLY_JOB, run_id, environment, 0, **_apply_options(
            f"meshbot-access-{run_id}-{environment}", run.changes[environment]))
    return run_id


def _apply_options(job_id: str, changes: list[AclChange]) -> dict[str, Any]:
    """How an apply job is queued: retried once (updateacl is idempotent), its failure reported as the outcome."""
    return {"job_id": job_id, "job_timeout": _job_timeout(changes), "result_ttl": 600, "failure_ttl": 86400,
            "retry": Retry(max=1), "on_failure": Callback(f"{__name__}.on_apply_failure")}


def on_apply_failure(job: Job, connection: redis.Redis, exc_type: Any, value: Any, traceback: Any) -> None:
    """An apply job crashed or its worker died for good: its ports failed (nothing recorded), and the run reports."""
    if job.retries_left:
        return
    run_id, environment = str(job.args[0]), str(job.args[1])
    raw = connection.hget(run_key(run_id), f"changes:{environment}")
    if raw is None or connection.hexists(run_key(run_id), f"outcome:{environment}"):
        return
    message = f"the updateacl job failed ({exc_type.__name__}: {value}); nothing recorded as applied"
    _finish(connection, run_id, environment, [_entry(environment, AclChange.from_json(item), FAILED, [], message)
                                              for item in json.loads(raw)])


def run_record(connection: redis.Redis, run_id: str) -> dict[str, Any] | None:
    """A run: origin, dataProduct, decided entries and each environment's outcome entries (None when unknown)."""
    fields = {as_text(key): as_text(value) for key, value in connection.hgetall(run_key(run_id)).items()}
    if not fields:
        return None
    outcomes = [entry for name, value in sorted(fields.items()) if name.startswith("outcome:")
                for entry in json.loads(value)]
    return {"origin": json.loads(fields["origin"]), "dataProduct": fields["dataProduct"],
            "decided": json.loads(fields["decided"]), "outcomes": outcomes,
            "pending": int(fields.get("pending", "0"))}


def _job_timeout(changes: list[AclChange]) -> int:
    return int(sum(float(change.adapter.get("timeout", 600.0)) for change in changes)) + 60


def _enqueue_report(connection: redis.Redis, run_id: str) -> None:
    queue(connection).enqueue(REPORT_JOB, run_id, job_id=f"meshbot-access-{run_id}-report",
                              retry=Retry(max=3, interval=[5, 30, 120]), result_ttl=600, failure_ttl=86400)


# ---------------------------------------------------------------------- the job


def apply(run_id: str, environment: str, waits: int) -> str:
    """Job: under the data product's deploy lock in environment, call `updateacl` for each changed output port."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    return apply_with(job.connection, run_id, environment, waits)


def apply_with(connection: redis.Redis, run_id: str, environment: str, waits: int) -> str:
    """apply, given the connection."""
    key = run_key(run_id)
    data_product = connection.hget(key, "dataProduct")
    raw = connection.hget(key, f"changes:{environment}")
    if data_product is None or raw is None:
        return "unknown access run"
    if connection.hexists(key, f"outcome:{environment}"):
        return "already done"  # a retried job whose first attempt finished
    product = as_text(data_product)
    origin = json.loads(connection.hget(key, "origin") or "{}")
    changes = [AclChange.from_json(item) for item in json.loads(raw)]
    locks = Locks(connection)
    holder = f"access-{run_id}"
    if not connection.set(lock_key(product, environment), holder, nx=True, px=locks.lease_ms) and \
            locks.holder(product, environment) != holder:
        if waits < MAX_WAITS:
            queue(connection).enqueue_in(timedelta(seconds=WAIT_SECONDS), APPLY_JOB, run_id, environment, waits + 1,
                                         **_apply_options(f"meshbot-access-{run_id}-{environment}-{waits + 1}",
                                                          changes))
            return "waiting for the deploy lock"
        message = f"not applied: deployments of the data product in {environment} held it for over two hours"
        entries = [_entry(environment, change, FAILED, [], message) for change in changes]
        return _finish(connection, run_id, environment, entries)
    stop = threading.Event()
    threading.Thread(target=_renew, args=(locks, product, environment, holder, stop), daemon=True).start()
    try:
        entries = [_apply_one(connection, product, environment, change, origin) for change in changes]
    finally:
        stop.set()
        locks.release(product, environment, holder)
        start_next(connection, product, environment)  # deployments queued meanwhile
    return _finish(connection, run_id, environment, entries)


def _renew(locks: Locks, product: str, environment: str, holder: str, stop: threading.Event) -> None:
    while not stop.wait(locks.lease_ms / 3000):
        try:
            if not locks.renew(product, environment, holder):
                return
        except redis.RedisError:
            return


def _finish(connection: redis.Redis, run_id: str, environment: str, entries: list[dict[str, Any]]) -> str:
    """Keep an environment's outcome; the last environment of the run queues the report."""
    key = run_key(run_id)
    with connection.pipeline() as pipeline:
        pipeline.hset(key, f"outcome:{environment}", json.dumps(entries))
        pipeline.hincrby(key, "pending", -1)
        left = pipeline.execute()[1]
    if int(left) <= 0:
        _enqueue_report(connection, run_id)
    return ", ".join(f"{entry['port']}: {entry['status']}" for entry in entries)


def _entry(environment: str, change: AclChange, status: str, before: list[str], message: str) -> dict[str, Any]:
    return {"environment": environment, "port": change.port, "component": change.component, "status": status,
            "before": before, "refs": change.refs, "message": message}


def _apply_one(connection: redis.Redis, product: str, environment: str, change: AclChange,
               origin: dict[str, Any]) -> dict[str, Any]:
    """One output port, under the lock: what is deployed now decides, then the adapter's answer."""
    access = AccessStore(connection)
    before = access.applied(product, environment).get(change.port)
    before_refs = before.refs if before and not change.resend else []  # resend: those refs went with the resource
    if before is not None and before.refs == change.refs and not change.resend:
        return _entry(environment, change, UNCHANGED, before_refs, "")
    deployed = RedisDeployedStates(connection).deployed(product, environment)
    components = {str(item.get("id")): item for item in (deployed.descriptor.get("components") or [])
                  if isinstance(item, dict)} if deployed else {}
    if deployed is None or change.component not in components:
        return _entry(environment, change, SKIPPED, before_refs, f"not deployed in {environment}")
    record = (Store(connection).product(product, environment).get("components") or {}).get(change.component) or {}
    info = {"request": json.dumps(component_request(deployed.descriptor, change.component)),
            "result": str(record.get("result") or record.get("message") or "")}
    adapter = change.adapter
    client = TechAdapterClient(str(adapter["url"]), timeout=float(adapter.get("timeout", 600.0)),
                               ca_bundle=adapter.get("ca_bundle"))
    result = client.update_acl(change.refs, info)
    label = origin_label(origin)
    merge_request = None if label else origin.get("number")  # a /deploy's merge request granted nothing: unmerged
    attempt = {"at": now_iso(), "refs": change.refs, "status": str(result.outcome), "message": result.message,
               "mergeRequest": merge_request, "mergedBy": origin.get("mergedBy", ""),
               "project": origin.get("project", ""), "origin": label}
    applied = None
    if result.ok:
        applied = Applied(refs=change.refs, applied_at=attempt["at"], merge_request=merge_request,
                          merged_by=str(origin.get("mergedBy") or ""), project=str(origin.get("project") or ""),
                          message=result.message, origin=label)
        access.remember_project(str(origin.get("forge") or ""), str(origin.get("project") or ""))
    access.record(product, environment, change.port, attempt, applied)
    return _entry(environment, change, APPLIED if result.ok else FAILED, before_refs, result.message)
