"""Readiness: whether meshbot can do its work now (Redis answers, a worker heartbeat is fresh), and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Worker
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import utcparse
from rq.worker_registration import clean_worker_registry

from bot.engine.runner import QUEUE_NAME

HEARTBEAT_WINDOW_SECONDS = 30.0  # a worker whose last heartbeat is older counts as gone
PROBE_TIMEOUT_SECONDS = 2.0  # a probe never hangs on a Redis that does not answer


@dataclass(frozen=True)
class Readiness:
    """What a readiness probe found: ready when Redis answers and at least one worker beat within the window."""

    redis: str  # "ok", or the error
    workers_alive: int = 0
    workers_registered: int = 0
    queue_depth: int | None = None
    oldest_queued_seconds: float | None = None
    window: float = HEARTBEAT_WINDOW_SECONDS
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """Whether meshbot can work now."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The probe's answer: status, problems, and each figure."""
        return {
            "status": "ready" if self.ready else "not ready", "problems": self.problems, "redis": self.redis,
            "workers": {"alive": self.workers_alive, "registered": self.workers_registered,
                        "heartbeatWindowSeconds": self.window},
            "queue": {"depth": self.queue_depth, "oldestQueuedSeconds": self.oldest_queued_seconds},
        }


def probe_client(connection: redis.Redis) -> redis.Redis:
    """A client on connection's server with its own pool, short timeouts and no retries: a failure is an answer."""
    pool = connection.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": PROBE_TIMEOUT_SECONDS,
              "socket_connect_timeout": PROBE_TIMEOUT_SECONDS, "retry": Retry(NoBackoff(), 0),
              "health_check_interval": 0}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, max_connections=2,
                                                            **kwargs))


def readiness(connection: redis.Redis, window: float = HEARTBEAT_WINDOW_SECONDS,
              now: datetime | None = None) -> Readiness:
    """Ask Redis: does it answer, how many workers beat within window seconds, how deep and old is the queue.

    Registrations of workers whose key has expired (killed workers) are removed first, so the counts are true.
    """
    try:
        connection.ping()
        queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
        clean_worker_registry(queue)
        moment = now or datetime.now(UTC)
        workers = Worker.all(connection=connection, queue=queue, serializer=JSONSerializer)
        alive = sum(1 for worker in workers if worker.last_heartbeat is not None
                    and (moment - _aware(worker.last_heartbeat)).total_seconds() < window)
        depth = queue.count
        oldest = _oldest_queued_seconds(connection, queue, moment)
    except redis.RedisError as error:
        message = f"{type(error).__name__}: {error}"
        return Readiness(redis=message, window=window, problems=[f"Redis does not answer ({message})"])
    problems = [] if alive else [
        f"no worker sent a heartbeat in the last {window:g} s ({len(workers)} registered): start `meshbot worker`"
    ]
    return Readiness("ok", alive, len(workers), depth, oldest, window, problems)


def _oldest_queued_seconds(connection: redis.Redis, queue: Queue, now: datetime) -> float | None:
    """How long the job at the head of the queue (the next one out) has waited; None when the queue is empty."""
    head = connection.lindex(queue.key, 0)
    if head is None:
        return None
    job_id = head.decode() if isinstance(head, bytes) else str(head)
    enqueued = connection.hget(f"{queue.job_class.redis_job_namespace_prefix}{job_id}", "enqueued_at")
    if not enqueued:
        return None
    stamp = utcparse(enqueued.decode() if isinstance(enqueued, bytes) else str(enqueued))
    return round(max(0.0, (now - _aware(stamp)).total_seconds()), 3)


def _aware(moment: datetime) -> datetime:
    """moment in UTC (RQ's timestamps are naive UTC in some versions)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
