"""Worker death: a SIGKILLed worker is noticed within seconds, its task retried once, and a deployment ends.

The ledger's provision takes ~3 s at the adapter; the worker running it is killed in the middle. Its
heartbeats stop, its started-registry entry expires after HEARTBEAT_TTL, and the reaper of a surviving
worker runs the failure callback and requeues the task (the adapter is idempotent: provisioning again is
safe). Times are measured from the kill, with this process's clock on both sides.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rq.registry import ReadyJobRegistry

from bot.engine import runner
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.runner import planned_tasks, queue
from bot.engine.store import Deployment, new_deployment_id
from bot.engine.worker import HEARTBEAT_TTL, REAPER_SECONDS
from tests.deploy_harness import (
    ENVIRONMENT,
    Engine,
    ScriptedAdapter,
    adapters_for,
    component_id,
    example_descriptor,
    scripted_adapter,
    wait_for,
)
from tests.servers.tech_adapter import Reply

SLOW = Reply(200, {"status": "COMPLETED", "result": "ledger ready"}, delay=3.0)
QUICK = Reply(200, {"status": "COMPLETED", "result": "ledger ready"}, delay=0.2)
PREPARE = f"{runner.__name__}.prepare"
FINISH = f"{runner.__name__}.finish"
DEADLINE = 20.0  # from the kill to a finished deployment

@pytest.fixture
def scripted() -> Iterator[ScriptedAdapter]:
    with scripted_adapter(delay=0.05) as adapter:
        yield adapter


def task_job(running: Engine, deployment_id: str, task_id: str) -> str:
    """The RQ job id of one task of a deployment."""
    deployment = running.store.load(deployment_id)
    assert deployment is not None
    return f"meshbot-{deployment_id}-{[task.id for task in deployment.tasks].index(task_id)}"


def kill_runner_of(running: Engine, scripted: ScriptedAdapter, deployment_id: str, task_id: str,
                   attempt: int) -> tuple[str, float]:
    """Once the adapter is working on the task's attempt, SIGKILL the worker running it; (its name, when)."""
    wait_for(lambda: len(scripted.requests("/v1/provision", task_id)) >= attempt, 15,
             f"attempt {attempt} of {task_id} to reach the adapter")
    time.sleep(0.3)  # in the middle of the 3 s call
    name = running.worker_of(task_job(running, deployment_id, task_id))
    assert name in running.alive()
    record = running.tasks(deployment_id)[task_id]
    assert (record["state"], record["attempts"]) == ("RUNNING", attempt)
    return name, running.kill(name)


def finished(running: Engine, deployment_id: str, timeout: float) -> tuple[Deployment, float]:
    deployment = running.wait(deployment_id, timeout)
    return deployment, time.time()


def test_a_killed_workers_task_is_retried_once_and_the_deployment_completes(start, scripted):
    descriptor = example_descriptor()
    ledger = component_id(descriptor, "ledger")
    ports = [component_id(descriptor, name) for name in ("daily-cashflow", "transactions")]
    scripted.script(ledger, "/v1/provision", SLOW, QUICK)
    running = start(2)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    victim, killed = kill_runner_of(running, scripted, deployment_id, ledger, attempt=1)

    retry = wait_for(lambda: scripted.requests("/v1/provision", ledger)[1:], DEADLINE, "the retry")[0]
    deployment, ended = finished(running, deployment_id, DEADLINE)
    detected, total = retry.started - killed, ended - killed
    print(f"\nworker death: retry reached the adapter {detected:.2f} s after the kill, deployment finished "
          f"{total:.2f} s after it (HEARTBEAT_TTL {HEARTBEAT_TTL} s, reaper every {REAPER_SECONDS:g} s)")
    assert detected < HEARTBEAT_TTL + 2 * REAPER_SECONDS + 1.5
    assert total < DEADLINE
    assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "3 completed")
    record = running.tasks(deployment_id)[ledger]
    assert (record["state"], record["attempts"], record["message"]) == (
        "COMPLETED", 2, "ledger ready (attempt 2; before: the worker running this task died)")
    assert running.worker_of(task_job(running, deployment_id, ledger)) != victim
    assert len(scripted.requests("/v1/provision", ledger)) == 2
    assert [len(scripted.requests("/v1/provision", port)) for port in ports] == [1, 1]
    assert all(call.started > retry.ended for port in ports for call in scripted.requests("/v1/provision", port))
    assert running.store.product(descriptor.id, ENVIRONMENT)["status"] == "DEPLOYED"
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_task_whose_retry_dies_too_fails_and_the_deployment_ends_corrupt(start, scripted):
    descriptor = example_descriptor()
    ledger = component_id(descriptor, "ledger")
    ports = [component_id(descriptor, name) for name in ("daily-cashflow", "transactions")]
    scripted.script(ledger, "/v1/provision", SLOW)  # every attempt is slow
    running = start(3)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    first, _ = kill_runner_of(running, scripted, deployment_id, ledger, attempt=1)
    second, killed = kill_runner_of(running, scripted, deployment_id, ledger, attempt=2)
    assert first != second

    deployment, ended = finished(running, deployment_id, DEADLINE)
    print(f"\nsecond worker death: deployment finished {ended - killed:.2f} s after the second kill")
    assert ended - killed < DEADLINE
    assert deployment.state is DeploymentState.CORRUPT
    assert deployment.message == (f"1 failed, 2 skipped; failed: {ledger}: the worker running this task died "
                                  "(also on the retry)")
    tasks = running.tasks(deployment_id)
    assert (tasks[ledger]["state"], tasks[ledger]["message"]) == (
        "FAILED", "the worker running this task died (also on the retry)")
    assert {port: (tasks[port]["state"], tasks[port]["message"]) for port in ports} == {
        port: ("SKIPPED", f"not started: {ledger} FAILED") for port in ports}
    assert len(scripted.requests("/v1/provision", ledger)) == 2
    assert all(not scripted.requests("/v1/provision", port) for port in ports)
    product = running.store.product(descriptor.id, ENVIRONMENT)
    assert product["status"] == "CORRUPT"
    assert product["components"][ledger]["status"] == "FAILED"
    running.assert_clean((descriptor.id, ENVIRONMENT))


def _kill_every_worker_mid_task(running: Engine, scripted: ScriptedAdapter, ledger: str) -> tuple[str, float]:
    descriptor = example_descriptor()
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    _, killed = kill_runner_of(running, scripted, deployment_id, ledger, attempt=1)
    assert running.alive() == []
    return deployment_id, killed


def test_with_no_worker_alive_nothing_moves_until_one_comes_back(start, scripted):
    descriptor = example_descriptor()
    ledger = component_id(descriptor, "ledger")
    scripted.script(ledger, "/v1/provision", SLOW, QUICK)
    running = start(1)
    deployment_id, killed = _kill_every_worker_mid_task(running, scripted, ledger)

    # The job's heartbeat expires, but nobody is left to notice: the deployment stays as it was.
    wip = "rq:wip:meshbot"
    wait_for(lambda: all(score < time.time() for _, score in running.redis.zrange(wip, 0, -1, withscores=True)),
             HEARTBEAT_TTL + 2, "the abandoned job's heartbeat to expire")
    time.sleep(1.5 * REAPER_SECONDS)
    assert running.redis.zcard(wip) == 1  # not reaped
    assert running.store.load(deployment_id).state is DeploymentState.IN_PROGRESS
    assert running.tasks(deployment_id)[ledger]["state"] == "RUNNING"
    assert running.locks.holder(descriptor.id, ENVIRONMENT) == deployment_id  # the lease (30 s) still holds
    assert len(scripted.requests("/v1/provision")) == 1

    # A worker comes back (within the lease): its reaper retries the task and the deployment completes.
    back = time.time()
    running.start_workers(1)
    deployment, ended = finished(running, deployment_id, DEADLINE)
    print(f"\nno worker for {back - killed:.2f} s; after one came back the deployment finished in {ended - back:.2f} s")
    assert ended - back < 10
    assert deployment.state is DeploymentState.DEPLOYED
    assert running.tasks(deployment_id)[ledger]["message"] == (
        "ledger ready (attempt 2; before: the worker running this task died)")
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_worker_coming_back_after_the_lease_expired_does_not_retry_and_reports_corrupt(start, scripted):
    descriptor = example_descriptor()
    ledger = component_id(descriptor, "ledger")
    ports = [component_id(descriptor, name) for name in ("daily-cashflow", "transactions")]
    scripted.script(ledger, "/v1/provision", SLOW, QUICK)
    running = start(1)
    deployment_id, _ = _kill_every_worker_mid_task(running, scripted, ledger)
    # No worker renews the lease: after default_lease_ms() it expires. Expire it now rather than wait ~51 s.
    running.redis.delete(f"meshbot:lock:{descriptor.id}:{ENVIRONMENT}")
    running.start_workers(1)
    deployment = running.wait(deployment_id, DEADLINE)
    tasks = running.tasks(deployment_id)
    assert (tasks[ledger]["state"], tasks[ledger]["message"]) == (
        "FAILED", "not retried: the deployment lost its lease (no worker renewed it in time) after an attempt was "
        "cut off (the worker running this task died)")
    assert {tasks[port]["message"] for port in ports} == {f"not started: {ledger} FAILED"}
    assert len(scripted.requests("/v1/provision")) == 1  # the retry did not call the adapter again
    assert deployment.state is DeploymentState.CORRUPT  # the cut-off provision may have left the ledger half done
    assert running.store.product(descriptor.id, ENVIRONMENT)["components"][ledger]["status"] == "FAILED"
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_validation_whose_worker_died_is_retried_while_the_deployment_keeps_its_lock(start, scripted):
    """The validation job is retried like a task; until it ends, the next deployment of the product waits."""
    descriptor = example_descriptor()
    ledger = component_id(descriptor, "ledger")
    valid = {"valid": True, "error": {"errors": []}}
    scripted.script(ledger, "/v1/validate", Reply(200, valid, delay=3.0), Reply(200, valid))
    running = start(2)
    adapters = adapters_for(descriptor, scripted.url)
    first_id, _ = running.request(descriptor, adapters)
    second_id, ahead = running.request(descriptor, adapters)
    assert ahead == 1
    wait_for(lambda: scripted.requests("/v1/validate", ledger), 15, "the validation to reach the adapter")
    time.sleep(0.5)
    running.kill(running.worker_of(f"meshbot-{first_id}-prepare"))
    wait_for(lambda: scripted.requests("/v1/validate", ledger)[1:], DEADLINE, "the validation's retry")
    assert running.locks.holder(descriptor.id, ENVIRONMENT) == first_id  # the retry runs under the same lock
    assert running.store.load(second_id).state is DeploymentState.QUEUED
    first, second = running.wait(first_id, DEADLINE), running.wait(second_id, DEADLINE)
    assert (first.state, first.message) == (DeploymentState.DEPLOYED, "3 completed")
    assert (second.state, second.message) == (DeploymentState.DEPLOYED, "3 completed")
    assert second.started_at >= first.finished_at
    assert len(scripted.requests("/v1/provision")) == 6
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_the_reaper_starts_a_deployment_whose_requester_died_before_starting_it(start, scripted):
    """Recorded and queued, but never started (the requesting process died): a worker's reaper starts it."""
    descriptor = example_descriptor()
    running = start(1)
    deployment = Deployment(
        id=new_deployment_id(), data_product=descriptor.id, environment=ENVIRONMENT, version="1.0.0",
        operation=Operation.DEPLOY, descriptor=descriptor.data, started_by="tests",
        tasks=planned_tasks(descriptor, Operation.DEPLOY, adapters_for(descriptor, scripted.url)),
    )
    running.store.create(deployment)
    queued = time.time()
    assert running.locks.enqueue(descriptor.id, ENVIRONMENT, deployment.id) == 0
    ended = running.wait(deployment.id, 10)
    print(f"\nthe reaper started an orphaned deployment; it ended {time.time() - queued:.2f} s after it was queued")
    assert (ended.state, ended.message) == (DeploymentState.DEPLOYED, "3 completed")
    assert running.locks.waiting_queues() == []
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_the_reaper_enqueues_a_job_rq_left_in_its_ready_registry(start, scripted):
    """When two workers race to enqueue a dependent, RQ 3 may leave it in the ready registry for its 10-minute
    maintenance; the reaper must enqueue it within a round. Here the prepare job is left there on purpose."""
    descriptor = example_descriptor()
    running = start(1)  # its start-up maintenance is over: only the reaper can help now
    deployment = Deployment(
        id=new_deployment_id(), data_product=descriptor.id, environment=ENVIRONMENT, version="1.0.0",
        operation=Operation.DEPLOY, descriptor=descriptor.data, started_by="tests",
        tasks=planned_tasks(descriptor, Operation.DEPLOY, adapters_for(descriptor, scripted.url)),
    )
    running.store.create(deployment)
    running.locks.enqueue(descriptor.id, ENVIRONMENT, deployment.id)
    assert running.locks.take_next(descriptor.id, ENVIRONMENT) == deployment.id
    running.store.set_state(deployment.id, DeploymentState.VALIDATING)  # start_next, up to its enqueue
    rq_queue = queue(running.redis)
    job = rq_queue.create_job(PREPARE, args=[deployment.id], job_id=f"meshbot-{deployment.id}-prepare")
    job.save()
    with running.redis.pipeline() as pipeline:
        ReadyJobRegistry(queue=rq_queue).register_jobs([job], pipeline)
        pipeline.execute()
    assert running.jobs()[job.id] == "ready_to_enqueue"
    left = time.time()
    ended = running.wait(deployment.id, 10)
    print(f"\na job left in the ready registry ran; its deployment ended {time.time() - left:.2f} s later")
    assert (ended.state, ended.message) == (DeploymentState.DEPLOYED, "3 completed")
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_dependents_left_in_the_ready_registry_are_enqueued_after_a_job(redis_engine):
    from rq.job import Job

    from bot.engine.worker import enqueue_ready_dependents

    rq_queue = queue(redis_engine.redis)
    left = [Job.create(FINISH, args=[f"d{index}"], connection=redis_engine.redis, origin=rq_queue.name,
                       serializer=rq_queue.serializer) for index in range(3)]
    with redis_engine.redis.pipeline() as pipeline:
        for job in left:
            job.save(pipeline=pipeline)
        rq_queue.ready_job_registry.register_jobs(left, pipeline=pipeline)  # as RQ leaves a job that lost a race
        pipeline.execute()
    assert rq_queue.job_ids == []

    enqueue_ready_dependents(rq_queue)
    assert sorted(rq_queue.job_ids) == sorted(job.id for job in left)
    assert ReadyJobRegistry(queue=rq_queue).count == 0
    enqueue_ready_dependents(rq_queue)  # nothing left: nothing enqueued twice
    assert len(rq_queue.job_ids) == 3


def test_a_retry_whose_interval_has_passed_is_enqueued_by_the_reaper(redis_engine):
    from datetime import UTC, datetime, timedelta

    from bot.engine.worker import enqueue_due_retries

    rq_queue = queue(redis_engine.redis)
    due = rq_queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), FINISH, "d1", job_id="due")
    later = rq_queue.enqueue_at(datetime.now(UTC) + timedelta(hours=1), FINISH, "d2", job_id="later")
    assert rq_queue.job_ids == []
    enqueue_due_retries(rq_queue)
    assert rq_queue.job_ids == [due.id]
    assert later.id in rq_queue.scheduled_job_registry.get_job_ids()


def test_a_stopping_workers_command_thread_ends_within_its_poll_time_whatever_it_read_first(redis_engine):
    # RQ's stop unsubscribes, then stops and joins the thread reading the command channel. This is the order that
    # made a SIGTERMed worker wait up to a minute: the thread reads the unsubscribe reply before it is told to stop.
    import threading

    from rq.serializers import JSONSerializer

    from bot.engine.worker import COMMAND_POLL_SECONDS, MeshbotWorker

    worker = MeshbotWorker([queue(redis_engine.redis)], connection=redis_engine.redis, serializer=JSONSerializer)
    worker.subscribe()
    assert worker.pubsub is not None and worker.pubsub_thread is not None
    wait_for(lambda: redis_engine.redis.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 1, 5, "the subscription")
    worker.pubsub.unsubscribe()
    wait_for(lambda: not worker.pubsub.subscribed, 5, "the thread to read the unsubscribe reply")

    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)  # RQ's own teardown step
    began = time.monotonic()
    stopping.start()
    stopping.join(2.0)
    took = time.monotonic() - began
    assert not stopping.is_alive() and not worker.pubsub_thread.is_alive(), f"still stopping after {took:.1f} s"
    assert took < COMMAND_POLL_SECONDS + 0.5


def test_the_reaper_looks_for_due_sweeps_at_its_interval_and_a_first_deployment_starts_the_compliance_round(
        redis_engine):
    import threading

    from bot.engine.periodic import SWEEPS_DUE_LOOK_SECONDS, start_due_sweeps
    from bot.engine.store import Store
    from bot.engine.worker import start_reaper

    assert SWEEPS_DUE_LOOK_SECONDS <= 60  # a fresh installation's first deployment is checked within about a minute
    connection = redis_engine.redis
    rq_queue = queue(connection)
    looks: list[float] = []
    stop = threading.Event()
    began = time.monotonic()

    def look() -> None:
        looks.append(time.monotonic() - began)
        start_due_sweeps(rq_queue)

    start_reaper(connection, stop, recheck=look, look_seconds=1.5)
    try:
        wait_for(lambda: looks, 10, "the first look")
        assert looks[0] >= 1.5  # not at once: the worker's start already started what was due
        assert not rq_queue.job_ids  # nothing deployed: no round
        Store(connection).set_product("urn:dmb:dp:finance:orders:0", "production", status="DEPLOYED",
                                      deployment="d1", components={})
        wait_for(lambda: any("compliance" in (job.func_name or "") for job in rq_queue.jobs), 10,
                 "the compliance round started by a later look")
    finally:
        stop.set()
