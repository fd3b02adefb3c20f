"""Accept a webhook delivery: record it and enqueue its jobs in one atomic Redis step, so that it acts once.

Forges redeliver, and a delivery must act once however many replicas receive it. The duplicate check, the enqueue
of the delivery's RQ jobs, the record of the delivery and its count in the metrics are one Lua script: one round
trip on the request path, and no state in which the delivery is recorded but its jobs are lost (the record is
written last).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from rq import Queue

from bot.forge.router import JobRequest
from bot.forge.rqjobs import JobLayout

DELIVERY_TTL_SECONDS = 7 * 24 * 3600  # GitHub redelivers up to 3 days back; GitLab retries within hours
KEY_PREFIX = "meshbot:webhook-delivery"
MAX_ID_LENGTH = 200

JOB_TIMEOUT_SECONDS = 600
JOB_RESULT_TTL_SECONDS = 600
JOB_FAILURE_TTL_SECONDS = 86400
JOB_RETRIES = 3
JOB_RETRY_INTERVALS = (60, 300, 900)  # seconds

# What RQ's Queue.enqueue writes for a job without dependencies (the queue registered in RQ's set of queues, the
# job's hash, its id pushed on the queue), after the duplicate check and before the delivery record; and, when asked,
# one added to the delivery counter's field for the outcome (queued or duplicate), so that counting costs no round trip.
# KEYS: the delivery key ("" when the delivery has no id), RQ's set of queues, the queue, the counter hash ("": none)
# ARGV: the delivery TTL, the counter field if queued, if a duplicate, then per job: its hash key, its id, and its hash
# fields as one string of "<byte length>:<bytes>" items, field, value, field, value... (bot.forge.rqjobs.packed: one
# argument instead of some forty, each of which redis-py would encode on its own)
_ACCEPT_SCRIPT = """
local function unpacked(packed)
    local items = {}
    local at = 1
    while at <= #packed do
        local colon = string.find(packed, ':', at, true)
        local size = tonumber(string.sub(packed, at, colon - 1))
        items[#items + 1] = string.sub(packed, colon + 1, colon + size)
        at = colon + size + 1
    end
    return items
end
local recorded = KEYS[1] ~= ''
local counted = KEYS[4] ~= ''
if recorded and redis.call('EXISTS', KEYS[1]) == 1 then
    if counted then
        redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
    end
    return 0
end
redis.call('SADD', KEYS[2], KEYS[3])
for i = 4, #ARGV, 3 do
    redis.call('HSET', ARGV[i], unpack(unpacked(ARGV[i + 2])))
    redis.call('RPUSH', KEYS[3], ARGV[i + 1])
end
if recorded then
    redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
end
if counted then
    redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
end
return 1
"""


@dataclass(frozen=True)
class DeliveryCount:
    """Where accept counts the delivery: a Redis hash, and its field to add one to if queued or if a duplicate."""

    key: str
    queued: str
    duplicate: str


def delivery_key(forge: str, delivery_id: str) -> str:
    """The Redis key recording that a forge's delivery was received (long ids hashed, so keys stay small)."""
    if len(delivery_id) > MAX_ID_LENGTH:
        delivery_id = "sha256-" + hashlib.sha256(delivery_id.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{KEY_PREFIX}:{forge}:{delivery_id}"


class DeliveryIntake:
    """Accepts deliveries onto one RQ queue: the script is registered once, the jobs' fixed fields encoded once."""

    def __init__(self, queue: Queue, ttl_seconds: int = DELIVERY_TTL_SECONDS) -> None:
        self.queue = queue
        self.ttl_seconds = ttl_seconds
        self._script = queue.connection.register_script(_ACCEPT_SCRIPT)
        # A forge that stays unavailable or rate-limited past the client's own waits: try again later (RQ's Retry).
        # Every job is safe to repeat (one comment edited in place, statuses, a release deployed once).
        self._jobs = JobLayout(queue, timeout=JOB_TIMEOUT_SECONDS, result_ttl=JOB_RESULT_TTL_SECONDS,
                               failure_ttl=JOB_FAILURE_TTL_SECONDS, retries=JOB_RETRIES,
                               retry_intervals=JOB_RETRY_INTERVALS)

    @property
    def connection(self) -> redis.Redis:
        """The Redis connection of the queue."""
        return self.queue.connection

    def accept(
        self, forge: str, delivery_id: str, requests: Sequence[JobRequest], count: DeliveryCount | None = None
    ) -> list[str] | None:
        """Enqueue the delivery's jobs and record it; their ids, or None when the delivery was received before.

        A delivery without an id ("") cannot be de-duplicated: its jobs are enqueued and nothing is recorded.
        With count, the outcome is counted in the same script (one round trip for the whole delivery).
        """
        meta = {"forge": forge, "delivery": delivery_id}
        jobs = [self._jobs.job(request.function, request.args, request.description, meta) for request in requests]
        arguments: list[str | bytes | int] = [self.ttl_seconds, count.queued if count else "",
                                              count.duplicate if count else ""]
        for job in jobs:
            arguments += [job.key, job.id, job.fields]
        key = delivery_key(forge, delivery_id) if delivery_id else ""
        keys = [key, self.queue.redis_queues_keys, self.queue.key, count.key if count else ""]
        accepted = self._script(keys=keys, args=arguments)
        return [job.id for job in jobs] if accepted else None
