"""RQ's job hash built without RQ's Job object: the same fields as RQ's own, and a real worker runs the job."""

from __future__ import annotations

import re

import pytest
import redis
from rq import Retry
from rq.job import Job, JobStatus

from bot.engine.runner import queue
from bot.forge.deliveries import DeliveryIntake
from bot.forge.router import JobRequest
from bot.forge.rqjobs import JobLayout, packed
from tests.deploy_harness import wait_for

TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
OPTIONS = {"timeout": 600, "result_ttl": 600, "failure_ttl": 86400}


def split(fields: bytes) -> list[bytes]:
    """The items of a packed string, split as the intake's Lua script splits them."""
    items, at = [], 0
    while at < len(fields):
        colon = fields.index(b":", at)
        size = int(fields[at:colon])
        items.append(fields[colon + 1:colon + 1 + size])
        at = colon + 1 + size
    return items


def unpacked(fields: bytes) -> dict[bytes, bytes]:
    """The field/value pairs of a packed string."""
    items = split(fields)
    return dict(zip(items[::2], items[1::2], strict=True))


def rq_hash(connection: redis.Redis, job_id: str, function: str, args: list[str | int], description: str,
            meta: dict[str, str]) -> dict[bytes, bytes]:
    """What RQ's own Job.create(...).to_dict() gives for the same call, encoded as redis-py would write it."""
    rq_queue = queue(connection)
    job = Job.create(function, args=args, description=description, retry=Retry(max=3, interval=[60, 300, 900]),
                     meta=meta, status=JobStatus.QUEUED, origin=rq_queue.name, id=job_id, connection=connection,
                     serializer=rq_queue.serializer, **OPTIONS)
    job.enqueued_at = job.created_at
    encoder = connection.get_encoder()
    return {encoder.encode(name): encoder.encode(value) for name, value in job.to_dict().items() if value is not None}


@pytest.fixture
def layout(redis_engine) -> JobLayout:
    return JobLayout(queue(redis_engine.redis), retries=3, retry_intervals=(60, 300, 900), **OPTIONS)


@pytest.mark.parametrize(("args", "description", "meta"), [
    (["github", "acme/sales", "main", "a" * 40], "check github acme/sales branch main",
     {"forge": "github", "delivery": "72d3162e"}),
    (["gitlab", "acme/sales", 7, 99, "/deploy \u00e9 \U0001f680 \"q\" \\ \x00", "alice"], "commands: \u00e9 12:3",
     {"forge": "gitlab", "delivery": ""}),
    (["x"], "", {}),  # RQ's defaults: the call string as description, no meta field
])
def test_the_hash_is_rqs_own_field_by_field(layout, redis_engine, args, description, meta):
    ours = layout.job("handlers.push.check", args, description, meta)
    assert ours.key == Job.key_for(ours.id) and re.fullmatch(r"[0-9a-f-]{36}", ours.id)
    fields = unpacked(ours.fields)
    theirs = rq_hash(redis_engine.redis, ours.id, "handlers.push.check", args, description, meta)
    assert set(fields) == set(theirs)
    for name, value in theirs.items():  # one by one, so that a changed field is named
        if name in (b"created_at", b"enqueued_at"):
            assert TIMESTAMP.match(fields[name]) and TIMESTAMP.match(value), name
        else:
            assert fields[name] == value, name


def test_each_job_has_its_own_id(layout):
    first, second = (layout.job("builtins.len", ["a"], "d", {}) for _ in range(2))
    assert first.id != second.id and first.key != second.key


def test_packed_items_keep_any_bytes():
    items = [b"", b"12:3", b"\x00\xff", "\u00e9".encode()]
    assert split(packed(items)) == items
    assert packed([b"ab", b""]) == b"2:ab0:"


def test_a_real_worker_runs_the_queued_job_and_retries_a_failed_one(redis_engine):
    intake = DeliveryIntake(queue(redis_engine.redis))
    (done,) = intake.accept("github", "d-ok", [JobRequest("builtins.len", ("abcd",), "length")]) or []
    (failing,) = intake.accept("github", "d-fail", [JobRequest("builtins.int", ("not a number",), "int")]) or []
    redis_engine.start_workers(1)
    serializer = intake.queue.serializer
    job = wait_for(lambda: (found := Job.fetch(done, redis_engine.redis, serializer=serializer)).is_finished and found,
                   20, "the worker to run the job")
    assert job.return_value() == 4 and job.meta == {"forge": "github", "delivery": "d-ok"}
    retried = wait_for(lambda: (found := Job.fetch(failing, redis_engine.redis, serializer=serializer)).retries_left
                       == 2 and found, 20, "the worker to fail the job once")
    assert retried.get_status() == JobStatus.SCHEDULED  # RQ's Retry as Queue.enqueue sets it: again in 60 s
