"""The reaper's repairs of deployments stuck between steps, on a real Redis and (end to end) real workers."""

from __future__ import annotations

import time

import pytest
from rq.job import Job, JobStatus

from bot.engine.deployment import DeploymentState, Operation
from bot.engine.recovery import GRACE_SECONDS, Repair, needed_repair, repair
from bot.engine.runner import finish_job_id, planned_tasks, prepare_job_id, queue
from bot.engine.store import Deployment, new_deployment_id
from tests.deploy_harness import ENVIRONMENT, Engine, adapters_for, example_descriptor, scripted_adapter
from tests.engine.test_store import DP, make_deployment

S = DeploymentState
J = JobStatus


@pytest.mark.parametrize(("state", "prepare", "finish", "expected"), [
    (S.QUEUED, None, None, Repair.START_VALIDATION),  # its starter died after taking the lock
    (S.VALIDATING, None, None, Repair.START_VALIDATION),  # ... or before queueing the validation job
    (S.VALIDATING, J.QUEUED, None, Repair.NONE),
    (S.VALIDATING, J.STARTED, None, Repair.NONE),
    (S.VALIDATING, J.SCHEDULED, None, Repair.NONE),  # RQ retries it
    (S.VALIDATING, J.FAILED, None, Repair.REFUSE),  # failed for good, and its callback did not record it
    (S.IN_PROGRESS, J.FINISHED, J.DEFERRED, Repair.NONE),
    (S.IN_PROGRESS, J.FINISHED, J.STARTED, Repair.NONE),
    (S.IN_PROGRESS, J.STARTED, None, Repair.NONE),  # validation about to queue the tasks
    (S.IN_PROGRESS, J.FAILED, None, Repair.ENQUEUE_TASKS),  # validation passed, then died before queueing
    (S.IN_PROGRESS, None, None, Repair.ENQUEUE_TASKS),
    (S.IN_PROGRESS, J.FINISHED, J.FAILED, Repair.CORRUPT),
    (S.DEPLOYED, J.FINISHED, J.FINISHED, Repair.NONE),
    (S.REFUSED, J.FAILED, None, Repair.NONE),
])
def test_the_repair_follows_from_the_state_and_the_jobs(state, prepare, finish, expected):
    assert needed_repair(state, prepare, finish) is expected


def holding(redis_engine: Engine, state: DeploymentState = DeploymentState.QUEUED) -> Deployment:
    """A deployment that took its lock (as start_next does first) and went no further."""
    deployment = make_deployment()
    redis_engine.store.create(deployment)
    redis_engine.locks.enqueue(DP, ENVIRONMENT, deployment.id)
    assert redis_engine.locks.take_next(DP, ENVIRONMENT) == deployment.id
    assert deployment.id in redis_engine.store.active()  # taking the lock made it active, in the same step
    if state is not DeploymentState.QUEUED:
        redis_engine.store.set_state(deployment.id, state)
    loaded = redis_engine.store.load(deployment.id)
    assert loaded is not None
    return loaded


def failed_job(redis_engine: Engine, job_id: str, deployment_id: str) -> None:
    job = Job.create("bot.engine.runner.finish", args=[deployment_id], id=job_id, connection=redis_engine.redis)
    job.set_status(JobStatus.FAILED)
    job.save()


def test_a_lock_taken_by_a_starter_that_died_gets_its_validation_after_the_grace(redis_engine):
    deployment = holding(redis_engine)
    assert repair(redis_engine.redis, deployment, grace=0.3) is Repair.NONE  # first sighting
    assert repair(redis_engine.redis, deployment, grace=0.3) is Repair.NONE  # not long enough
    time.sleep(0.35)
    assert repair(redis_engine.redis, deployment, grace=0.3) is Repair.START_VALIDATION
    assert redis_engine.store.load(deployment.id).state is DeploymentState.VALIDATING
    assert queue(redis_engine.redis).job_ids == [prepare_job_id(deployment.id)]
    assert repair(redis_engine.redis, redis_engine.store.load(deployment.id), grace=0.0) is Repair.NONE  # it has a job


def test_a_deployment_that_recovers_on_its_own_is_left_alone(redis_engine):
    deployment = holding(redis_engine, DeploymentState.VALIDATING)
    assert repair(redis_engine.redis, deployment, grace=0.2) is Repair.NONE
    queue(redis_engine.redis).enqueue("bot.engine.runner.prepare", deployment.id, job_id=prepare_job_id(deployment.id))
    time.sleep(0.25)
    assert repair(redis_engine.redis, deployment, grace=0.2) is Repair.NONE
    assert queue(redis_engine.redis).job_ids == [prepare_job_id(deployment.id)]  # nothing enqueued twice


def test_a_validation_that_failed_unrecorded_ends_failed_and_frees_the_lock(redis_engine):
    deployment = holding(redis_engine, DeploymentState.VALIDATING)
    failed_job(redis_engine, prepare_job_id(deployment.id), deployment.id)
    repair(redis_engine.redis, deployment, grace=0.0)
    assert repair(redis_engine.redis, deployment, grace=0.0) is Repair.REFUSE
    ended = redis_engine.store.load(deployment.id)
    assert ended.state is DeploymentState.FAILED  # nothing judged the descriptor: not a refusal
    assert ended.message.startswith("could not validate: ") and "nothing was provisioned" in ended.message
    assert redis_engine.locks.holder(DP, ENVIRONMENT) is None
    assert deployment.id not in redis_engine.store.active()


def test_a_final_job_that_failed_unrecorded_ends_corrupt(redis_engine):
    deployment = holding(redis_engine, DeploymentState.IN_PROGRESS)
    failed_job(redis_engine, finish_job_id(deployment.id), deployment.id)
    repair(redis_engine.redis, deployment, grace=0.0)
    assert repair(redis_engine.redis, deployment, grace=0.0) is Repair.CORRUPT
    assert redis_engine.store.load(deployment.id).state is DeploymentState.CORRUPT
    assert redis_engine.store.product(DP, ENVIRONMENT)["status"] == "CORRUPT"
    assert redis_engine.locks.holder(DP, ENVIRONMENT) is None


def test_a_deployment_whose_starter_died_still_deploys_with_real_workers(start):
    descriptor = example_descriptor()
    with scripted_adapter(delay=0.05) as scripted:
        running = start(1)
        adapters = adapters_for(descriptor, scripted.url)
        deployment = Deployment(
            id=new_deployment_id(), data_product=descriptor.id, environment=descriptor.environment,
            version=str(descriptor.data["version"]), operation=Operation.DEPLOY, descriptor=descriptor.data,
            tasks=planned_tasks(descriptor, Operation.DEPLOY, adapters), started_by="test")
        running.store.create(deployment)
        running.locks.enqueue(descriptor.id, descriptor.environment, deployment.id)
        assert running.locks.take_next(descriptor.id, descriptor.environment) == deployment.id  # then "died"
        began = time.monotonic()
        ended = running.wait(deployment.id, GRACE_SECONDS + 15)
        print(f"\nresumed and deployed {time.monotonic() - began:.1f} s after the starter died "
              f"(grace {GRACE_SECONDS:g} s)")
        assert ended.state is DeploymentState.DEPLOYED
        assert "was stuck (start validation): repaired" in running.log("w0")
        running.assert_clean((descriptor.id, descriptor.environment))
