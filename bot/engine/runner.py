"""The deploy engine on RQ: request a deployment, then jobs validate, run each task of the plan, and finish.

Every task job allows its dependencies to fail and decides itself: when an upstream task did not
complete, it records SKIPPED without calling any adapter. So every job of a deployment always runs to
its end, the final job always runs, and no deferred job is ever left behind in Redis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import networkx as nx
import redis
from rq import Callback, Queue, Retry
from rq.job import Dependency, Job, JobStatus
from rq.queue import EnqueueData
from rq.serializers import JSONSerializer

from adapters.client import TechAdapterClient
from adapters.descriptor_yaml import adapter_yaml
from adapters.error_paths import LocatedError, locate
from adapters.model import AdapterResult, Request, ValidationOutcome
from adapters.payloads import ComponentRequests, data_product_request
from adapters.registry import AdapterTarget
from bot.descriptor.model import Descriptor
from bot.engine import marketplace
from bot.engine.deployed import DEPLOYED_FIELD, SUCCESSFUL, RedisDeployedStates, deployed_record
from bot.engine.deployment import (
    DeploymentState,
    Operation,
    TaskState,
    component_state_after,
    deployment_outcome,
    product_status,
)
from bot.engine.locks import Locks
from bot.engine.plan import build_plan
from bot.engine.reconcile import Reconciliation, Scope, deployed_after, previous_components, reconcile
from bot.engine.store import Deployment, PlannedTask, Store, new_deployment_id, now_iso
from bot.engine.undeploy_target import undeploy_target
from bot.logs import bind_log_context
from bot.metrics import TASK_DURATION, Batch, count_deployment, observe_adapter_call, observe_lock_wait

QUEUE_NAME = "meshbot"
JOB_MARGIN_SECONDS = 60  # an RQ job may run this much longer than its adapter's own deadline
FINAL_JOB_TIMEOUT = 300


def queue(connection: redis.Redis) -> Queue:
    """meshbot's RQ queue (JSON job arguments: ids and plain data only)."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def planned_tasks(
    descriptor: Descriptor, operation: Operation, adapters: Mapping[str, AdapterTarget]
) -> list[PlannedTask]:
    """The plan's tasks, dependencies reversed for an undeploy, each with the adapter that will run it."""
    plan = build_plan(descriptor)
    tasks = []
    for task in plan.tasks:
        if operation is Operation.DEPLOY:
            depends_on = list(task.depends_on)
        else:  # dependents first, the data product last
            depends_on = sorted(plan.graph.successors(task.id))
        target = adapters.get(task.id)
        tasks.append(PlannedTask(id=task.id, kind=task.kind, depends_on=depends_on,
                                 adapter_url=target.url if target else None,
                                 adapter_timeout=target.timeout if target else 600.0,
                                 adapter_ca_bundle=target.ca_bundle if target else None))
    return tasks


ResolveAdapters = Callable[[Descriptor], Mapping[str, AdapterTarget]]


def request_deployment(
    connection: redis.Redis,
    descriptor: Descriptor,
    operation: Operation,
    adapters: Mapping[str, AdapterTarget],
    started_by: str,
    *,
    remove_data: bool = False,
    marketplace: list[str] | None = None,
    history: int = 50,
    report_to: dict[str, Any] | None = None,
    scope: Scope | None = None,
    resolve_removed: ResolveAdapters | None = None,
) -> tuple[str, int]:
    """Record a deployment and queue it behind any other of the same data product and environment.

    A deploy is reconciled with what is deployed (bot.engine.reconcile) under scope (default: everything, and
    prune `auto`); resolve_removed gives the adapters of components to remove (without it, none is removed).
    Returns its id and how many deployments wait before it (0 when it started at once).
    """
    deployment = Deployment(
        id=new_deployment_id(), data_product=descriptor.id, environment=descriptor.environment,
        version=str(descriptor.data.get("version", "")), operation=operation, descriptor=descriptor.data,
        tasks=planned_tasks(descriptor, operation, adapters), started_by=started_by, remove_data=remove_data,
        marketplace=list(marketplace or []), history=history, report_to=report_to,
    )
    store, locks = Store(connection), Locks(connection)
    if operation is Operation.DEPLOY:
        deployment.scope = (scope or Scope()).as_json()
        # Every task it may plan keeps its adapter: planned again at its start, it may run tasks it skipped now.
        deployment.adapters = {**_removal_adapters(store, descriptor, resolve_removed),
                               **{task_id: _target_json(target) for task_id, target in adapters.items()}}
        _reconcile(store, deployment)
    store.create(deployment)
    ahead = locks.enqueue(deployment.data_product, deployment.environment, deployment.id)
    holder = locks.holder(deployment.data_product, deployment.environment)
    start_next(connection, deployment.data_product, deployment.environment)
    return deployment.id, ahead + (1 if holder and holder != deployment.id else 0)  # a reaper may have started it


def preview(connection: redis.Redis, descriptor: Descriptor, scope: Scope,
            resolve_removed: ResolveAdapters | None = None) -> Reconciliation:
    """What a deploy of descriptor under scope would do now (a dry run, a plan): nothing is recorded."""
    store = Store(connection)
    previous, states = _previous(store, descriptor.id, descriptor.environment)
    deployed = RedisDeployedStates(connection).deployed(descriptor.id, descriptor.environment)
    planned = reconcile(descriptor, deployed.descriptor if deployed else None, previous, states, scope)
    _keep_unserved_removals(planned, _removal_adapters(store, descriptor, resolve_removed), descriptor.environment)
    return planned


def _removal_adapters(store: Store, descriptor: Descriptor, resolve: ResolveAdapters | None) -> dict[str, Any]:
    """The adapters of the components provisioned in the environment that descriptor no longer has."""
    if resolve is None:
        return {}
    previous, _ = _previous(store, descriptor.id, descriptor.environment)
    wanted = {component.get("id") for component in descriptor.components}
    absent = [component for identifier, component in previous.items() if identifier not in wanted]
    if not absent:
        return {}
    resolved = resolve(Descriptor(data={**descriptor.data, "components": absent}, environment=descriptor.environment))
    return {identifier: _target_json(target) for identifier, target in resolved.items() if identifier != descriptor.id}


def _target_json(target: AdapterTarget) -> dict[str, Any]:
    return {"url": target.url, "timeout": target.timeout, "ca_bundle": target.ca_bundle}


def _target(data: Mapping[str, Any] | None) -> AdapterTarget | None:
    if not data:
        return None
    return AdapterTarget(str(data["url"]), float(data["timeout"]), data.get("ca_bundle"))


def _previous(store: Store, data_product: str, environment: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """What may be provisioned in the environment (component id -> definition) and each component's state."""
    record = store.product(data_product, environment)
    states = {identifier: str((entry or {}).get("status")) for identifier, entry in
              (record.get("components") or {}).items() if isinstance(entry, dict)}
    deployed = RedisDeployedStates(store.redis).deployed(data_product, environment)
    last = None
    if record.get("deployment") and (deployed is None or deployed.deployment != record.get("deployment")):
        latest = store.load_static(str(record["deployment"]))
        last = latest.descriptor if latest is not None and latest.operation is Operation.DEPLOY else None
    return previous_components(deployed.descriptor if deployed else None, last, states), states


def _reconcile(store: Store, deployment: Deployment) -> bool:
    """Plan a deploy against what is deployed now: its tasks, reconciliation and removals; whether they changed."""
    descriptor = Descriptor(data=deployment.descriptor, environment=deployment.environment)
    previous, states = _previous(store, deployment.data_product, deployment.environment)
    deployed = RedisDeployedStates(store.redis).deployed(deployment.data_product, deployment.environment)
    scope = Scope.from_json(deployment.scope)
    planned = reconcile(descriptor, deployed.descriptor if deployed else None, previous, states, scope)
    _keep_unserved_removals(planned, deployment.adapters, deployment.environment)
    kinds = {task.id: task.kind for task in build_plan(descriptor).tasks}
    tasks = [_planned(task_id, kinds[task_id], planned.depends_on[task_id], _target(deployment.adapters.get(task_id)))
             for task_id in planned.provision]
    tasks += [_planned(task_id, str(previous[task_id].get("kind", "")), planned.depends_on[task_id],
                       _target(deployment.adapters[task_id]), removal=True) for task_id in planned.remove]
    reconciliation = planned.as_json()
    # Removals send the definitions they were deployed with; kept and (partial deploy) untouched components keep them.
    needed = planned.remove or planned.kept or planned.partial
    root = deployed.descriptor if deployed else deployment.descriptor
    previous_descriptor = {**root, "components": list(previous.values())} if needed else None
    changed = (reconciliation != deployment.reconciliation or [t.as_json() for t in tasks] !=
               [t.as_json() for t in deployment.tasks] or previous_descriptor != deployment.previous)
    deployment.tasks, deployment.reconciliation, deployment.previous = tasks, reconciliation, previous_descriptor
    return changed


def _keep_unserved_removals(planned: Reconciliation, adapters: Mapping[str, Any], environment: str) -> None:
    """Removals no adapter was resolved for stay provisioned, and say why."""
    unserved = [task_id for task_id in planned.remove if task_id not in adapters]
    for task_id in unserved:
        planned.remove.remove(task_id)
        planned.depends_on.pop(task_id)
        planned.kept[task_id] = (f"not in the repository any more; kept: no tech adapter serves it in {environment} "
                                 "(or it appeared while this deployment waited): deploy again to remove it")
    for task_id in planned.remove:
        planned.depends_on[task_id] = [dependency for dependency in planned.depends_on[task_id]
                                       if dependency not in unserved]


def _planned(task_id: str, kind: str, depends_on: list[str], target: AdapterTarget | None,
             removal: bool = False) -> PlannedTask:
    return PlannedTask(id=task_id, kind=kind, depends_on=list(depends_on), adapter_url=target.url if target else None,
                       adapter_timeout=target.timeout if target else 600.0,
                       adapter_ca_bundle=target.ca_bundle if target else None, removal=removal)


def start_next(connection: redis.Redis, data_product: str, environment: str) -> str | None:
    """If the data product's lock is free, give it to the first waiting deployment and start that one."""
    deployment_id = Locks(connection).take_next(data_product, environment)
    if deployment_id is None:
        return None
    Store(connection).set_state(deployment_id, DeploymentState.VALIDATING)
    waited = _seconds_since(_requested_at(deployment_id))
    if waited is not None:
        observe_lock_wait(connection, environment, waited)
    enqueue_prepare(connection, deployment_id)
    return deployment_id


def _requested_at(deployment_id: str) -> datetime | None:
    """When a deployment was requested: its id starts with that time in milliseconds (new_deployment_id)."""
    stamp = deployment_id.partition("-")[0]
    return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp.isdigit() else None


def _seconds_since(moment: datetime | str | None) -> float | None:
    """Seconds from moment (a datetime or an ISO 8601 time) to now; None when unknown."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment is None:
        return None
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def _count_end(connection: redis.Redis, deployment: Deployment, state: DeploymentState) -> None:
    """Count a deployment's end by its final state, with how long it ran since it took its lock."""
    count_deployment(connection, str(deployment.operation), str(state),
                     _seconds_since(deployment.started_at or deployment.created_at))


def prepare_job_id(deployment_id: str) -> str:
    """The RQ job id of a deployment's validation job."""
    return f"meshbot-{deployment_id}-prepare"


def finish_job_id(deployment_id: str) -> str:
    """The RQ job id of a deployment's final job."""
    return f"meshbot-{deployment_id}-finish"


def enqueue_prepare(connection: redis.Redis, deployment_id: str) -> None:
    """Queue the validation job of a deployment that holds its lock."""
    queue(connection).enqueue(
        f"{__name__}.prepare", deployment_id, job_id=prepare_job_id(deployment_id),
        job_timeout=FINAL_JOB_TIMEOUT, retry=Retry(max=2), on_failure=Callback(f"{__name__}.on_prepare_failure"),
        result_ttl=600, failure_ttl=86400,
    )


def _connection() -> redis.Redis:
    from rq import get_current_job

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    return job.connection


# ---------------------------------------------------------------------- jobs


def prepare(deployment_id: str) -> str:
    """Job: ask every task's adapter to validate; then enqueue the task jobs and the final job."""
    connection = _connection()
    store = Store(connection)
    deployment = store.load(deployment_id)
    if deployment is None:
        return "unknown deployment"
    _bind(deployment)
    prepared = _prepared(store, deployment_id, deployment)
    if prepared is None:
        return "unknown deployment"
    changed = _undeploy_target_changed(store, deployment)
    if changed:
        store.set_state(deployment_id, DeploymentState.REFUSED, changed)
        _count_end(connection, deployment, DeploymentState.REFUSED)
        _release(connection, deployment)
        return "refused"
    if deployment.operation is Operation.DEPLOY and deployment.scope is not None and \
            store.product(deployment.data_product, deployment.environment).get("deployment") != deployment.id:
        # What is deployed may have changed while it waited: plan again against it (a retried job had started).
        if _reconcile(store, deployment):
            store.replan(deployment)
        prepared = _PREPARED[deployment_id] = _Prepared(deployment, prepared.descriptor_yaml)
    refusals, failures = _validation_problems(prepared, connection)
    if refusals or failures:
        state, message = validation_end(refusals, failures)
        store.set_state(deployment_id, state, message)
        _count_end(connection, deployment, state)
        _release(connection, deployment)
        return "refused" if state is DeploymentState.REFUSED else "not validated"
    store.save_descriptor_yaml(deployment_id, _descriptor_text(prepared))
    store.set_state(deployment_id, DeploymentState.IN_PROGRESS)
    store.set_product(deployment.data_product, deployment.environment, status="IN_PROGRESS",
                      deployment=deployment_id)
    enqueue_tasks(connection, deployment)
    return "started"


def _undeploy_target_changed(store: Store, deployment: Deployment) -> str | None:
    """Why an undeploy may not start: what is deployed changed while it waited behind another deployment.

    It was planned from what was deployed when it was requested; the adapters it resolved serve that descriptor.
    """
    if deployment.operation is not Operation.UNDEPLOY:
        return None
    if store.product(deployment.data_product, deployment.environment).get("deployment") == deployment.id:
        return None  # a retried validation job: this undeploy had started
    target = undeploy_target(store.redis, deployment.data_product, deployment.environment)
    if target is None:
        return (f"nothing is deployed in {deployment.environment} any more (a deployment that ended before this "
                "one started removed it); nothing was unprovisioned")
    if target.descriptor != deployment.descriptor:
        return (f"what is deployed in {deployment.environment} changed while this undeploy waited (now version "
                f"{target.version or '?'}, deployment {target.deployment}); nothing was unprovisioned: undeploy again")
    return None


def _validation_problems(prepared: _Prepared,
                         connection: redis.Redis | None = None) -> tuple[list[LocatedError], list[LocatedError]]:
    """What the adapters refused (each error under the task it names) and which adapters failed to validate.

    With a connection, each validate call's latency (and failure) is recorded in the metrics, in one pipeline.
    """
    deployment = prepared.deployment
    if deployment.operation is Operation.UNDEPLOY:
        return [], []  # what exists must be removable even if today's adapter would refuse to create it
    to_validate = [task for task in deployment.tasks if task.adapter_url and not task.removal]

    def validate(task: PlannedTask) -> tuple[PlannedTask, ValidationOutcome, float]:
        # Each body (the whole descriptor) is built here and dropped after its call: only as many exist at once as
        # calls are in flight, never one per component (which made memory grow with the square of the components).
        request = _request(prepared, task)
        client = TechAdapterClient(task.adapter_url or "", timeout=task.adapter_timeout,
                                   ca_bundle=task.adapter_ca_bundle)
        started = time.monotonic()
        return task, client.validate(request), time.monotonic() - started

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(to_validate)))) as pool:
        timed = list(pool.map(validate, to_validate))
    if connection is not None:
        batch = Batch()
        for task, outcome, seconds in timed:
            observe_adapter_call(batch, task.adapter_url or "", "validate", seconds, outcome.failed)
        batch.send(connection)
    outcomes = [(task, outcome) for task, outcome, _ in timed]
    descriptor = Descriptor(deployment.descriptor, deployment.environment)
    task_ids = [task.id for task in deployment.tasks]
    refusals: list[LocatedError] = []
    failures = [LocatedError(task.id, outcome.message) for task, outcome in outcomes if outcome.failed]
    for task, outcome in outcomes:
        if outcome.refused:
            refusals.extend(locate(descriptor, task.id, outcome.errors or [outcome.message], task_ids))
    order = {task_id: index for index, task_id in enumerate(task_ids)}
    refusals.sort(key=lambda error: order.get(error.task, len(order)))  # stable: each adapter's order kept
    return refusals, failures


def validation_end(refusals: list[LocatedError], failures: list[LocatedError]) -> tuple[DeploymentState, str]:
    """How a deployment whose validation found problems ends: REFUSED when an adapter said no, else FAILED.

    The message's first line says what happened; each problem follows on its own `- task: error` line (an
    error's own further lines indented under it).
    """
    lines = []
    if refusals:
        lines.append("the tech adapters refused the descriptor; nothing was provisioned:")
        lines += [_problem_line(error.task, error.message) for error in refusals]
        if failures:
            lines.append("and these tech adapters could not validate:")
    else:
        lines.append("could not validate: a tech adapter failed; nothing was provisioned:")
    lines += [_problem_line(error.task, error.message) for error in failures]
    return (DeploymentState.REFUSED if refusals else DeploymentState.FAILED), "\n".join(lines)


def _problem_line(task: str, message: str) -> str:
    first, *rest = message.strip().splitlines() or [""]
    return "\n".join([f"- {task}: {first}", *(f"    {line}" for line in rest if line.strip())])


def enqueue_tasks(connection: redis.Redis, deployment: Deployment) -> None:
    """Enqueue every task job and the final job in one transaction, the roots last.

    RQ dependencies follow the transitive reduction of the plan (a job still checks all its direct
    dependencies itself), and the final job waits only for the tasks nothing depends on (every other task
    is an ancestor of one of them), through join jobs when they are many (fan_in). So RQ's dependency
    bookkeeping stays proportional to the graph's edges.
    """
    rq_queue = queue(connection)
    job_ids = {task.id: f"meshbot-{deployment.id}-{index}" for index, task in enumerate(deployment.tasks)}
    finish_id = finish_job_id(deployment.id)
    if Job.exists(finish_id, connection=connection):
        return  # a retried prepare whose first attempt had enqueued everything (one transaction)
    graph = rq_dependency_graph(deployment.tasks)
    by_id = {task.id: task for task in deployment.tasks}
    deferred: list[Job] = []
    roots: list[EnqueueData] = []
    for task_id in nx.topological_sort(graph):
        task = by_id[task_id]
        options: dict[str, Any] = {
            "args": (deployment.id, task.id), "job_id": job_ids[task.id],
            "timeout": int(task.adapter_timeout) + JOB_MARGIN_SECONDS,
            # Adapters must make provision and unprovision idempotent, so a task whose worker died is retried once.
            "retry": Retry(max=1), "on_failure": Callback(f"{__name__}.on_task_failure"),
            "result_ttl": 600, "failure_ttl": 86400,
        }
        dependencies = sorted(job_ids[dependency] for dependency in graph.predecessors(task_id))
        if dependencies:
            deferred.append(rq_queue.create_job(f"{__name__}.run_task", depends_on=_after(dependencies),
                                                status=JobStatus.DEFERRED, **options))
        else:
            roots.append(Queue.prepare_data(f"{__name__}.run_task", **options))
    joins, sinks = fan_in(sorted(job_ids[task_id] for task_id in graph if graph.out_degree(task_id) == 0),
                          f"meshbot-{deployment.id}-join")
    for join_id, waits_for in joins:
        deferred.append(rq_queue.create_job(f"{__name__}.join", args=(deployment.id,), job_id=join_id,
                                            depends_on=_after(waits_for), status=JobStatus.DEFERRED,
                                            timeout=JOB_MARGIN_SECONDS, retry=Retry(max=1), result_ttl=600,
                                            failure_ttl=86400))
    final: dict[str, Any] = {"args": (deployment.id,), "job_id": finish_id, "timeout": FINAL_JOB_TIMEOUT,
                             "retry": Retry(max=3), "on_failure": Callback(f"{__name__}.on_finish_failure"),
                             "result_ttl": 600, "failure_ttl": 86400}
    if sinks:
        deferred.append(rq_queue.create_job(f"{__name__}.finish", depends_on=_after(sinks), status=JobStatus.DEFERRED,
                                            **final))
    else:
        roots.append(Queue.prepare_data(f"{__name__}.finish", **final))
    # Nothing of this deployment runs before the transaction commits, so every dependent is registered
    # before any job it waits for can end: no WATCH and no dependency check is needed.
    with connection.pipeline() as pipeline:
        for job in deferred:
            job.save(pipeline=pipeline)
            job.register_dependency(pipeline=pipeline)
        rq_queue.enqueue_many(roots, pipeline=pipeline)
        pipeline.execute()


FAN_IN = 16  # at most this many jobs gate one job: RQ reads every dependency's status each time one of them ends


def fan_in(job_ids: list[str], prefix: str, width: int = FAN_IN) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Join jobs (id, the jobs it waits for) gathering job_ids by width, level by level, and the (at most width)
    jobs left for the final job to wait for: ending a task then costs RQ at most width status reads, not one per
    task nothing depends on (which grew with the component count, and the total with its square)."""
    joins: list[tuple[str, list[str]]] = []
    level = 0
    while len(job_ids) > width:
        groups = [job_ids[start:start + width] for start in range(0, len(job_ids), width)]
        names = [f"{prefix}-{level}-{index}" for index in range(len(groups))]
        joins += zip(names, groups, strict=True)
        job_ids, level = names, level + 1
    return joins, job_ids


def join(deployment_id: str) -> str:
    """Job: nothing; it ends once the jobs it waits for have ended, however they ended (see fan_in)."""
    return "joined"


def rq_dependency_graph(tasks: list[PlannedTask]) -> nx.DiGraph:
    """The tasks' dependency graph with every edge implied by others removed."""
    graph = nx.DiGraph()
    for task in tasks:
        graph.add_node(task.id)
        graph.add_edges_from((dependency, task.id) for dependency in task.depends_on)
    return nx.transitive_reduction(graph)


def _after(job_ids: list[str]) -> Dependency | None:
    """Run after these jobs however they ended: the job itself decides what their outcome means."""
    return Dependency(jobs=job_ids, allow_failure=True) if job_ids else None


def run_task(deployment_id: str, task_id: str) -> str:
    """Job: run one task through its adapter, unless an upstream task did not complete or the lease was lost."""
    connection = _connection()
    store = Store(connection)
    prepared = _prepared(store, deployment_id)
    if prepared is None:
        return "unknown deployment"
    deployment = prepared.deployment
    _bind(deployment, task=task_id)
    task = prepared.task(task_id)
    states = store.task_records(deployment_id, [task_id, *task.depends_on])
    if states.get(task_id, {}).get("state") in (TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED):
        return "already done"
    blocked = [dep for dep in task.depends_on if states.get(dep, {}).get("state") != TaskState.COMPLETED]
    if blocked:
        reasons = ", ".join(f"{dep} {states.get(dep, {}).get('state', 'PENDING')}" for dep in blocked)
        store.update_task(deployment_id, task_id, state=TaskState.SKIPPED, finishedAt=now_iso(),
                          message=f"not started: {reasons}")
        return "skipped"
    locks = Locks(connection)
    if not locks.renew(deployment.data_product, deployment.environment, deployment_id):
        before = states.get(task_id, {})
        if before.get("state") == TaskState.RUNNING:  # an attempt was cut off: what it left behind is unknown
            reason = str(before.get("message", "")).removesuffix("; retrying")
            store.update_task(deployment_id, task_id, state=TaskState.FAILED, finishedAt=now_iso(),
                              message=f"not retried: the deployment lost its lease (no worker renewed it in time) "
                                      f"after an attempt was cut off ({reason})")
            return "lease lost"
        store.update_task(deployment_id, task_id, state=TaskState.SKIPPED, finishedAt=now_iso(),
                          message="not started: the deployment lost its lease (no worker renewed it in time)")
        return "lease lost"
    attempts = int(states.get(task_id, {}).get("attempts", 0)) + 1
    previous = states.get(task_id, {})
    note = ""
    if previous.get("state") == TaskState.RUNNING:
        note = f" (attempt {attempts}; before: {str(previous.get('message', '')).removesuffix('; retrying')})"
    running = store.update_task(deployment_id, task_id, previous, state=TaskState.RUNNING, startedAt=now_iso(),
                                attempts=attempts, message="running" + note)
    started = time.monotonic()
    result = _call_adapter(prepared, task)
    seconds = time.monotonic() - started
    operation = "provision" if _operation(deployment, task) is Operation.DEPLOY else "unprovision"
    batch = Batch().observe(TASK_DURATION, (operation, "COMPLETED" if result.ok else "FAILED"), seconds)
    if task.adapter_url:
        observe_adapter_call(batch, task.adapter_url, operation, seconds, not result.ok)
    batch.send(connection)
    store.update_task(
        deployment_id, task_id, running, state=TaskState.COMPLETED if result.ok else TaskState.FAILED,
        finishedAt=now_iso(),
        message=result.message + note, info=result.info, logs=result.logs, details=result.details,
        result=result.message if result.ok else "",  # the answer's result, for updateacl's provisionInfo
    )
    _report_progress(connection, deployment)
    return str(result.outcome)


PROGRESS_JOB = "handlers.report.deployment_progress"
PROGRESS_INTERVAL_MS = 2000  # at most one progress report per deployment this often (a forge's rate limits)


def _report_progress(connection: redis.Redis, deployment: Deployment) -> None:
    """When someone follows this deployment in a comment, queue an update of it (throttled)."""
    if not (deployment.report_to or {}).get("comment"):
        return
    if connection.set(f"meshbot:progress:{deployment.id}", "1", nx=True, px=PROGRESS_INTERVAL_MS):
        queue(connection).enqueue(PROGRESS_JOB, deployment.id, result_ttl=60, failure_ttl=3600)


def _call_adapter(prepared: _Prepared, task: PlannedTask) -> AdapterResult:
    if not task.adapter_url:
        from adapters.model import Outcome

        return AdapterResult(outcome=Outcome.FAILED, message="no tech adapter was resolved for this task")
    client = TechAdapterClient(task.adapter_url, timeout=task.adapter_timeout, ca_bundle=task.adapter_ca_bundle)
    request = _request(prepared, task)
    if _operation(prepared.deployment, task) is Operation.DEPLOY:
        return client.provision(request)
    return client.unprovision(request)


def _operation(deployment: Deployment, task: PlannedTask) -> Operation:
    """What a task does: a deploy's removals unprovision."""
    return Operation.UNDEPLOY if task.removal else deployment.operation


@dataclass(slots=True)
class _Prepared:
    """What a worker derives once per deployment: the static record and the request texts built from it."""

    deployment: Deployment
    descriptor_yaml: str = ""
    component_requests: ComponentRequests | None = None
    removal_requests: ComponentRequests | None = None  # from the previous descriptor: removals send what was sent
    tasks: dict[str, PlannedTask] | None = None  # by id, built at the first lookup

    def task(self, task_id: str) -> PlannedTask:
        """The planned task with that id (a dict lookup: Deployment.task reads the list, as long as the plan)."""
        if self.tasks is None:
            self.tasks = {task.id: task for task in self.deployment.tasks}
        return self.tasks[task_id]


_PREPARED: dict[str, _Prepared] = {}  # per worker process, the latest few deployments
_PREPARED_KEPT = 4  # each holds a descriptor: a few deployments of 1,000 components are tens of MB


def _bind(deployment: Deployment, **more: str) -> None:
    """The deployment's id, data product and environment on every log line of the running job."""
    bind_log_context(deployment_id=deployment.id, data_product=deployment.data_product,
                     environment=deployment.environment, **more)


def _prepared(store: Store, deployment_id: str, loaded: Deployment | None = None) -> _Prepared | None:
    """The worker's prepared deployment; loaded (the record as the caller just read it) saves reading it again."""
    prepared = _PREPARED.get(deployment_id)
    if prepared is None:
        deployment = loaded if loaded is not None else store.load_static(deployment_id)
        if deployment is None:
            return None
        if len(_PREPARED) >= _PREPARED_KEPT:
            _PREPARED.pop(next(iter(_PREPARED)))
        # Written once by the validation job: no worker spends the CPU of writing 100 KB of YAML again.
        prepared = _PREPARED[deployment_id] = _Prepared(deployment, store.descriptor_yaml(deployment_id) or "")
    return prepared


def _descriptor_text(prepared: _Prepared) -> str:
    if not prepared.descriptor_yaml:
        prepared.descriptor_yaml = adapter_yaml(prepared.deployment.descriptor)
    return prepared.descriptor_yaml


def _request(prepared: _Prepared, task: PlannedTask) -> Request:
    deployment = prepared.deployment
    if task.removal:  # a component no longer in the repository: its definition as deployed, never its data
        if prepared.removal_requests is None:
            prepared.removal_requests = ComponentRequests(adapter_yaml(deployment.previous or {}), False)
        return prepared.removal_requests.body(task.id)
    if task.kind == "dataproduct":
        return {**data_product_request({}, deployment.remove_data), "descriptor": _descriptor_text(prepared)}
    if prepared.component_requests is None:
        prepared.component_requests = ComponentRequests(_descriptor_text(prepared), deployment.remove_data)
    return prepared.component_requests.body(task.id)


def finish(deployment_id: str) -> str:
    """Job: compute the outcome from every task, record it, free the lock (which queues the marketplace events)."""
    connection = _connection()
    store = Store(connection)
    deployment = store.load(deployment_id)
    if deployment is None:
        return "unknown deployment"
    _bind(deployment)
    if deployment.state.finished:
        _release(connection, deployment)
        return str(deployment.state)
    recorded = store.task_states(deployment_id)
    states = {task.id: recorded.get(task.id, {}) for task in deployment.tasks}  # plan order, not the hash's
    product = store.product(deployment.data_product, deployment.environment)
    before = product.get("components") or {}
    reconciliation = deployment.reconciliation or {}
    components = _components_before(deployment, before, reconciliation)
    removed = []
    for task in deployment.tasks:
        state = TaskState(states[task.id].get("state", TaskState.PENDING))
        if state is TaskState.PENDING:  # a task job that never ran: treat it as cut off
            states[task.id] = store.update_task(deployment_id, task.id, state=TaskState.SKIPPED, message="never ran")
            state = TaskState.SKIPPED
        after = component_state_after(_operation(deployment, task), state, (before.get(task.id) or {}).get("status"))
        if task.removal and state is TaskState.COMPLETED:
            components.pop(task.id, None)  # unprovisioned: no longer part of the data product here
            removed.append(task.id)
            continue
        components[task.id] = {"status": after, "message": states.get(task.id, {}).get("message", "")}
        kept_result = states[task.id].get("result") or (before.get(task.id) or {}).get("result")
        if kept_result and after == "DEPLOYED":  # the provision answer's result, which updateacl sends back
            components[task.id]["result"] = kept_result
    status = product_status({task_id: entry["status"] for task_id, entry in components.items()})
    message = _summary(states, deployment)
    outcome = deployment_outcome(deployment.operation, status)
    fields: dict[str, Any] = {"status": str(status), "version": deployment.version, "deployment": deployment_id,
                              "components": components, "updatedAt": now_iso(),
                              "partial": bool(reconciliation.get("partial"))}
    if deployment.operation is Operation.DEPLOY and str(outcome) in SUCCESSFUL:
        fields[DEPLOYED_FIELD] = deployed_record(_deployed_descriptor(deployment, states, removed), deployment.version,
                                                 deployment_id, fields["updatedAt"], str(status))
    store.set_product(deployment.data_product, deployment.environment, **fields)
    if deployment.operation is Operation.UNDEPLOY and outcome is DeploymentState.NOT_DEPLOYED:
        store.drop_product_fields(deployment.data_product, deployment.environment, DEPLOYED_FIELD, "descriptor")
    store.set_state(deployment_id, outcome, message)
    _count_end(connection, deployment, outcome)
    _release(connection, deployment)
    return str(outcome)


def _components_before(deployment: Deployment, before: dict[str, Any],
                       reconciliation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The components a deploy's tasks leave as they were: unchanged, outside a partial deploy's scope, kept."""
    if deployment.operation is not Operation.DEPLOY or deployment.scope is None:
        return {}
    wanted = {str(component.get("id")) for component in deployment.descriptor.get("components") or []
              if isinstance(component, dict)}
    kept = reconciliation.get("kept") or {}
    components = {}
    for task_id, entry in before.items():
        if not isinstance(entry, dict):
            continue
        if task_id in kept:
            components[task_id] = {**entry, "message": kept[task_id]}
        elif task_id in wanted or task_id == deployment.data_product:
            components[task_id] = entry
    for task_id in reconciliation.get("unchanged") or []:  # a partial deploy left out what was never deployed
        components.setdefault(task_id, {"status": "NOT_DEPLOYED", "message": "not deployed: a partial deploy left it "
                                                                             "out"})
    return components


def _deployed_descriptor(deployment: Deployment, states: dict[str, dict[str, Any]],
                         removed: list[str]) -> dict[str, Any]:
    """What is deployed after a deploy that ended well (bot.engine.reconcile.deployed_after)."""
    reconciliation = deployment.reconciliation
    if deployment.scope is None or reconciliation is None:
        return deployment.descriptor
    previous = {str(component.get("id")): component for component in
                (deployment.previous or {}).get("components") or [] if isinstance(component, dict)}
    provisioned = [task_id for task_id, record in states.items() if record.get("state") == TaskState.COMPLETED]
    unchanged = [] if reconciliation.get("partial") else reconciliation.get("unchanged") or []
    return deployed_after(deployment.descriptor, previous, provisioned, unchanged, removed)


def _summary(states: dict[str, dict[str, Any]], deployment: Deployment) -> str:
    """`3 completed, 1 removed, 196 unchanged; kept: …; failed: …` (what the deployment's message says)."""
    removals = {task.id for task in deployment.tasks if task.removal}
    counts: dict[str, int] = {}
    for task_id, record in states.items():
        state = str(record.get("state", "PENDING"))
        label = "removed" if task_id in removals and state == TaskState.COMPLETED else state.lower()
        counts[label] = counts.get(label, 0) + 1
    reconciliation = deployment.reconciliation or {}
    if reconciliation.get("unchanged"):
        counts["left as they are" if reconciliation.get("partial") else "unchanged"] = len(reconciliation["unchanged"])
    failed = [f"{task_id}: {record.get('message', '')}" for task_id, record in states.items()
              if record.get("state") == TaskState.FAILED]
    text = ", ".join(f"{count} {label}" for label, count in sorted(counts.items()))
    if reconciliation.get("partial"):
        text = "partial deploy of " + ", ".join((deployment.scope or {}).get("components") or []) + ": " + text
    kept = reconciliation.get("kept") or {}
    if kept:
        text += f"; {len(kept)} kept though no longer in the repository: " + ", ".join(kept)
    return text + ("; failed: " + "; ".join(failed) if failed else "")


REPORT_JOB = "handlers.report.deployment_ended"  # tells whoever asked (a forge) how a deployment ended
MARKETPLACE_JOB = "handlers.marketplace.deliver"  # sends a deployment's CloudEvent to one marketplace URL
MARKETPLACE_SENT_TTL = 7 * 86400  # how long "this event was queued for this URL" is remembered


def _release(connection: redis.Redis, deployment: Deployment) -> None:
    Locks(connection).release(deployment.data_product, deployment.environment, deployment.id)
    if deployment.report_to:
        queue(connection).enqueue(REPORT_JOB, deployment.id, job_id=f"meshbot-{deployment.id}-report",
                                  retry=Retry(max=3, interval=[5, 30, 120]), result_ttl=600, failure_ttl=86400)
    _enqueue_marketplace(connection, deployment)
    start_next(connection, deployment.data_product, deployment.environment)


def _enqueue_marketplace(connection: redis.Redis, deployment: Deployment) -> None:
    """Queue one delivery job per marketplace URL for a deployment that ended, once: a second release (a retried
    final job) finds each URL's marker and queues nothing."""
    if not deployment.marketplace:
        return
    ended = Store(connection).load(deployment.id)
    if ended is None or marketplace.event_type(ended.operation, ended.state) is None:
        return
    intervals = marketplace.retry_intervals(os.environ.get(marketplace.RETRY_INTERVALS_VARIABLE))
    for url in dict.fromkeys(deployment.marketplace):
        job_id = marketplace.delivery_job_id(deployment.id, url)
        if not connection.set(f"meshbot:marketplace-sent:{job_id}", "1", nx=True, ex=MARKETPLACE_SENT_TTL):
            continue
        queue(connection).enqueue(MARKETPLACE_JOB, deployment.id, url, job_id=job_id,
                                  retry=Retry(max=len(intervals), interval=intervals),
                                  result_ttl=86400, failure_ttl=7 * 86400)


# ---------------------------------------------------------------------- failure callbacks


def on_task_failure(job: Job, connection: redis.Redis, exc_type: Any, value: Any, traceback: Any) -> None:
    """A task job crashed or its worker died: record why, so the final job counts it as FAILED."""
    deployment_id, task_id = job.args[0], job.args[1]
    died = exc_type.__name__ == "AbandonedJobError"
    reason = "the worker running this task died" if died else f"the task crashed: {exc_type.__name__}: {value}"
    if job.retries_left:
        # RQ retries it next: leave it RUNNING so that the retry runs and says why.
        Store(connection).update_task(deployment_id, task_id, message=f"{reason}; retrying")
        return
    Store(connection).update_task(deployment_id, task_id, state=TaskState.FAILED, finishedAt=now_iso(),
                                  message=reason + (" (also on the retry)" if died else ""))


def on_prepare_failure(job: Job, connection: redis.Redis, exc_type: Any, value: Any, traceback: Any) -> None:
    """The validation job crashed or died: end the deployment (nothing was provisioned) and free the lock."""
    if job.retries_left:
        return  # RQ runs it again: the deployment keeps its lock until then
    end_refused(connection, job.args[0], f"could not validate: the validation job failed ({exc_type.__name__}); "
                                         "nothing was provisioned", DeploymentState.FAILED)


def end_refused(connection: redis.Redis, deployment_id: str, message: str,
                state: DeploymentState = DeploymentState.REFUSED) -> None:
    """End a deployment that provisioned nothing (REFUSED, or FAILED when validation could not run) and free its
    lock (unless it has ended already)."""
    store = Store(connection)
    deployment = store.load(deployment_id)
    if deployment is None or deployment.state.finished:
        return
    store.set_state(deployment.id, state, message)
    _count_end(connection, deployment, state)
    _release(connection, deployment)


def on_finish_failure(job: Job, connection: redis.Redis, exc_type: Any, value: Any, traceback: Any) -> None:
    """The final job failed for good: the outcome is unknown, so say CORRUPT, and never keep the lock for ever."""
    if job.retries_left:
        return
    end_corrupt(connection, job.args[0],
                f"the final step failed ({exc_type.__name__}: {value}); what the tasks left behind is unknown")


def end_corrupt(connection: redis.Redis, deployment_id: str, message: str) -> None:
    """End a deployment whose outcome is unknown as CORRUPT and free its lock (unless it has ended already)."""
    store = Store(connection)
    deployment = store.load(deployment_id)
    if deployment is None or deployment.state.finished:
        return
    store.set_product(deployment.data_product, deployment.environment, status="CORRUPT", deployment=deployment.id,
                      updatedAt=now_iso())
    store.set_state(deployment.id, DeploymentState.CORRUPT, message)
    _count_end(connection, deployment, DeploymentState.CORRUPT)
    _release(connection, deployment)


def task_view(store: Store, deployment_id: str) -> list[dict[str, Any]]:
    """Each task with its state, for status and progress output."""
    deployment = store.load(deployment_id)
    states = store.task_states(deployment_id)
    if deployment is None:
        return []
    return [{"id": task.id, "kind": task.kind, **states.get(task.id, {})} for task in deployment.tasks]

