"""RQ's Redis hash of a queued job, built without RQ's Job object: the fields Queue.enqueue writes for our jobs.

RQ's `Job.create(...).to_dict()` costs a webhook delivery more CPU than the rest of its job handling (the Job object,
its serializer checks, every field encoded on its own by redis-py). The fields that are the same for every job of
the intake are encoded once here; a job adds its id, times, data, description and meta. The layout is RQ's (rq is
bounded in pyproject.toml): tests/forge/test_rqjobs.py compares it field by field with RQ's own for the same call.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import now, utcformat


@dataclass(frozen=True)
class QueuedJob:
    """A job ready for the intake's script: its id, its hash key and its hash fields packed (see packed)."""

    id: str
    key: str
    fields: bytes


def packed(items: Iterable[bytes]) -> bytes:
    """items as one string of "<byte length>:<bytes>" items, which the intake's Lua script splits again."""
    return b"".join(b"%d:%s" % (len(item), item) for item in items)


def _encoded(value: str | bytes | int) -> bytes:
    """A hash value as redis-py encodes it: bytes as they are, text in UTF-8, a number by repr."""
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else repr(value)).encode()


class JobLayout:
    """Builds queued jobs of one queue with one set of options, as `queue.create_job(...)` then `Queue.enqueue`."""

    def __init__(self, queue: Queue, *, timeout: int, result_ttl: int, failure_ttl: int, retries: int,
                 retry_intervals: Sequence[int]) -> None:
        self.queue = queue
        self._serializer = queue.serializer
        self._key_prefix = queue.job_class.redis_job_namespace_prefix
        # Job.to_dict's fields that do not change from job to job, for a queued job without callbacks, dependencies,
        # group, TTL or repeats (what Job.create leaves them at), with a Retry(max=retries, interval=retry_intervals)
        static: Mapping[str, str | int] = {
            "success_callback_name": "", "failure_callback_name": "", "stopped_callback_name": "", "started_at": "",
            "ended_at": "", "last_heartbeat": "", "worker_name": "", "group_id": "", "retries_left": retries,
            "retry_intervals": json.dumps(list(retry_intervals)), "origin": queue.name, "timeout": timeout,
            "result_ttl": result_ttl, "failure_ttl": failure_ttl, "status": JobStatus.QUEUED.value,
        }
        self._static = packed(item for name, value in static.items() for item in (name.encode(), _encoded(value)))

    def job(self, function: str, args: Sequence[str | int], description: str, meta: Mapping[str, str]) -> QueuedJob:
        """A new queued job calling function(*args): created and enqueued now, RQ's description, meta and data."""
        job_id = str(uuid.uuid4())
        stamp = utcformat(now()).encode()
        if not description:  # Job.create's default: the call string
            description = Job.create(function, args=list(args), connection=self.queue.connection,
                                     serializer=self._serializer).get_call_string() or ""
        data = zlib.compress(self._serializer.dumps((function, None, list(args), {})))
        own = [b"created_at", stamp, b"data", data, b"description", description.encode(), b"enqueued_at", stamp]
        if meta:  # Job.to_dict leaves an empty meta out
            own += [b"meta", self._serializer.dumps(dict(meta))]
        return QueuedJob(job_id, self._key_prefix + job_id, self._static + packed(own))
