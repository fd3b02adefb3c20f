"""Failure callbacks of the engine's jobs, on real RQ jobs in a real Redis."""

from __future__ import annotations

from rq.job import Job

from bot.engine.deployment import DeploymentState
from bot.engine.locks import Locks
from bot.engine.runner import on_finish_failure
from tests.deploy_harness import Engine
from tests.engine.test_store import DP, make_deployment


def final_job(redis_engine: Engine, deployment_id: str, retries_left: int | None) -> Job:
    job = Job.create("bot.engine.runner.finish", args=[deployment_id], connection=redis_engine.redis)
    job.retries_left = retries_left
    return job


def test_a_final_job_that_fails_for_good_ends_corrupt_and_frees_the_lock(redis_engine):
    store, locks = redis_engine.store, Locks(redis_engine.redis)
    deployment = make_deployment()
    store.create(deployment)
    locks.enqueue(DP, "development", deployment.id)
    assert locks.take_next(DP, "development") == deployment.id
    store.set_state(deployment.id, DeploymentState.IN_PROGRESS)

    on_finish_failure(final_job(redis_engine, deployment.id, 2), redis_engine.redis, RuntimeError, "boom", None)
    assert store.load(deployment.id).state is DeploymentState.IN_PROGRESS  # RQ retries it: nothing decided yet

    on_finish_failure(final_job(redis_engine, deployment.id, 0), redis_engine.redis, RuntimeError, "boom", None)
    ended = store.load(deployment.id)
    assert ended.state is DeploymentState.CORRUPT
    assert ended.message == "the final step failed (RuntimeError: boom); what the tasks left behind is unknown"
    assert store.product(DP, "development")["status"] == "CORRUPT"
    assert locks.holder(DP, "development") is None
    assert deployment.id not in store.active()
