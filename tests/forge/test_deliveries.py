"""Accepting a webhook delivery: its jobs enqueued and the delivery recorded in one atomic step, acting once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from bot.engine.runner import queue
from bot.forge.deliveries import (
    JOB_FAILURE_TTL_SECONDS,
    JOB_RESULT_TTL_SECONDS,
    JOB_RETRIES,
    JOB_RETRY_INTERVALS,
    JOB_TIMEOUT_SECONDS,
    DeliveryCount,
    DeliveryIntake,
    delivery_key,
)
from bot.forge.router import CHECK, COMMANDS, REVIEW, JobRequest

CHECK_MAIN = JobRequest(CHECK, ("github", "acme/sales", "main", "a" * 40), "check github acme/sales branch main")
REVIEW_7 = JobRequest(REVIEW, ("gitlab", "acme/sales", 7, "b" * 40), "review gitlab acme/sales merge request 7")
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture
def intake(redis_engine) -> DeliveryIntake:
    return DeliveryIntake(queue(redis_engine.redis))


def test_a_delivery_is_accepted_once(intake):
    first = intake.accept("github", DELIVERY, [CHECK_MAIN])
    assert first is not None and len(first) == 1
    assert intake.accept("github", DELIVERY, [CHECK_MAIN]) is None
    assert intake.queue.job_ids == first  # the duplicate enqueued nothing
    assert intake.accept("gitlab", DELIVERY, [REVIEW_7]) is not None  # forges apart


def test_the_record_expires(redis_engine):
    intake = DeliveryIntake(queue(redis_engine.redis), ttl_seconds=120)
    assert intake.accept("gitlab", "d1", [REVIEW_7])
    assert 0 < redis_engine.redis.ttl(delivery_key("gitlab", "d1")) <= 120


def test_a_delivery_without_an_id_is_enqueued_every_time_and_not_recorded(intake):
    first = intake.accept("gitlab", "", [REVIEW_7])
    second = intake.accept("gitlab", "", [REVIEW_7])
    assert first and second and first != second
    assert intake.queue.job_ids == first + second
    assert not intake.connection.keys(delivery_key("gitlab", "") + "*")


def test_concurrent_arrivals_act_once(intake):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: intake.accept("github", "same", [CHECK_MAIN]), range(32)))
    accepted = [ids for ids in results if ids is not None]
    assert len(accepted) == 1
    assert intake.queue.job_ids == accepted[0]


def test_every_job_of_a_delivery_is_queued_in_order(intake):
    ids = intake.accept("github", DELIVERY, [CHECK_MAIN, REVIEW_7])
    assert ids is not None and len(set(ids)) == 2
    assert intake.queue.job_ids == ids
    assert [Job.fetch(job_id, intake.connection).description for job_id in ids] == [
        CHECK_MAIN.description, REVIEW_7.description]


def test_the_job_is_the_one_rq_would_enqueue(intake):
    """The same hash as RQ's own Queue.enqueue_many writes: a newer RQ that stores jobs differently fails here."""
    connection: redis.Redis = intake.connection
    (ours,) = intake.accept("github", DELIVERY, [CHECK_MAIN]) or []
    rq_queue: Queue = queue(connection)
    (theirs,) = rq_queue.enqueue_many([Queue.prepare_data(
        CHECK_MAIN.function, args=CHECK_MAIN.args, description=CHECK_MAIN.description, timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=JOB_RESULT_TTL_SECONDS, failure_ttl=JOB_FAILURE_TTL_SECONDS,
        retry=Retry(max=JOB_RETRIES, interval=list(JOB_RETRY_INTERVALS)),
        meta={"forge": "github", "delivery": DELIVERY})])
    times = {b"created_at", b"enqueued_at"}
    our_hash = connection.hgetall(f"rq:job:{ours}")
    their_hash = connection.hgetall(f"rq:job:{theirs.id}")
    assert {k: v for k, v in our_hash.items() if k not in times} == {
        k: v for k, v in their_hash.items() if k not in times}
    assert set(our_hash) == set(their_hash)
    assert connection.ttl(f"rq:job:{ours}") == connection.ttl(f"rq:job:{theirs.id}") == -1
    assert rq_queue.job_ids == [ours, theirs.id]
    assert rq_queue.key.encode() in connection.smembers(rq_queue.redis_queues_keys)
    job = Job.fetch(ours, connection, serializer=rq_queue.serializer)
    assert job.get_status() == JobStatus.QUEUED and job.origin == rq_queue.name
    assert (job.func_name, job.args, job.meta) == (CHECK_MAIN.function, list(CHECK_MAIN.args),
                                                   {"forge": "github", "delivery": DELIVERY})
    assert (job.retries_left, job.retry_intervals) == (JOB_RETRIES, list(JOB_RETRY_INTERVALS))


def test_a_comment_body_reaches_the_job_exactly(intake):
    body = "/deploy production\n\u00e9\u00e8 \"quoted\" \\ and a \U0001f680 \x00"
    request = JobRequest(COMMANDS, ("github", "acme/sales", 3, 99, body, "alice"), "commands")
    (job_id,) = intake.accept("github", "d-comment", [request]) or []
    job = Job.fetch(job_id, intake.connection, serializer=intake.queue.serializer)
    assert job.args == ["github", "acme/sales", 3, 99, body, "alice"]


def test_a_failed_enqueue_records_nothing_so_the_redelivery_is_accepted(intake):
    """The record is written last: a script that fails half-way leaves the delivery unrecorded."""
    connection: redis.Redis = intake.connection
    connection.set(intake.queue.key, "not a list")  # RPUSH onto it fails inside the script
    with pytest.raises(redis.ResponseError):
        intake.accept("github", DELIVERY, [CHECK_MAIN])
    assert not connection.exists(delivery_key("github", DELIVERY))
    connection.delete(intake.queue.key)
    assert intake.accept("github", DELIVERY, [CHECK_MAIN]) is not None


def test_long_ids_make_short_keys():
    key = delivery_key("gitlab", "x" * 10_000)
    assert len(key) < 120 and key != delivery_key("gitlab", "x" * 9_999)


def test_a_redis_that_lost_the_script_still_accepts(intake):
    """After a Redis restart or SCRIPT FLUSH the script is loaded again, not reported as a failure."""
    assert intake.accept("github", "before-flush", [CHECK_MAIN]) is not None
    intake.connection.script_flush()
    assert intake.accept("github", "after-flush", [CHECK_MAIN]) is not None
    assert intake.accept("github", "after-flush", [CHECK_MAIN]) is None
    assert len(intake.queue.job_ids) == 2


def test_the_outcome_is_counted_by_the_same_script(intake):
    count = DeliveryCount("meshbot:metrics:test", "queued", "duplicate")
    assert intake.accept("github", DELIVERY, [CHECK_MAIN], count) is not None
    assert intake.accept("github", DELIVERY, [CHECK_MAIN], count) is None
    assert intake.accept("github", DELIVERY, [CHECK_MAIN], count) is None
    assert intake.accept("github", "", [CHECK_MAIN], count) is not None  # no id: queued, counted, not recorded
    assert intake.connection.hgetall("meshbot:metrics:test") == {b"queued": b"2", b"duplicate": b"2"}


def test_a_failed_enqueue_counts_nothing(intake):
    connection: redis.Redis = intake.connection
    connection.set(intake.queue.key, "not a list")
    with pytest.raises(redis.ResponseError):
        intake.accept("github", DELIVERY, [CHECK_MAIN], DeliveryCount("meshbot:metrics:test", "queued", "duplicate"))
    assert not connection.exists("meshbot:metrics:test")


def test_a_description_with_separators_and_any_text_is_stored_exactly(intake):
    """The job's fields reach the script as one length-prefixed string: colons, digits and non-ASCII survive it."""
    description = "12:3 review: \u00e9 \U0001f680 5:x"
    (job_id,) = intake.accept("github", "d-text", [JobRequest(CHECK, CHECK_MAIN.args, description)]) or []
    assert intake.connection.hget(f"rq:job:{job_id}", "description") == description.encode()
    assert Job.fetch(job_id, intake.connection).description == description
