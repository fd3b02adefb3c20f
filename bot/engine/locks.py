"""One deployment per data product and environment: a lease lock in Redis, and a FIFO queue behind it."""

from __future__ import annotations

import redis

from bot.engine.redis_connection import outage_seconds
from bot.engine.store import ACTIVE_KEY, PREFIX, as_text

DEFAULT_LEASE_MS = 30_000
LEASE_MARGIN_MS = 10_000
WAITING_SET = f"{PREFIX}:waiting"  # the queue keys that may hold waiting deployments


def lock_key(data_product: str, environment: str) -> str:
    """The lease lock of a data product in an environment; its value is the holding deployment's id."""
    return f"{PREFIX}:lock:{data_product}:{environment}"


def queue_key(data_product: str, environment: str) -> str:
    """The FIFO list of deployments waiting for the lock."""
    return f"{PREFIX}:queue:{data_product}:{environment}"


# If the lock is free, the head of the queue takes it (atomically, so two callers never start two), and
# joins the active set in the same step: a caller that dies right after cannot leave it lost and untracked.
_TAKE_NEXT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local head = redis.call('LPOP', KEYS[2])
if not head then redis.call('SREM', KEYS[3], KEYS[2]) return false end
redis.call('SET', KEYS[1], head, 'PX', ARGV[1])
redis.call('SADD', KEYS[4], head)
return head
"""
# Renew or release only a lock this deployment holds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def default_lease_ms() -> int:
    """A lease outlasting the Redis outages the engine rides out (no renewal gets through one; it must not lapse)."""
    return max(DEFAULT_LEASE_MS, int(outage_seconds() * 1000) + LEASE_MARGIN_MS)


class Locks:
    """The lease locks and waiting queues of every data product and environment."""

    def __init__(self, connection: redis.Redis, lease_ms: int | None = None) -> None:
        self.redis = connection
        self.lease_ms = lease_ms if lease_ms is not None else default_lease_ms()
        self._take_next = connection.register_script(_TAKE_NEXT)
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)

    def enqueue(self, data_product: str, environment: str, deployment_id: str) -> int:
        """Put a deployment at the back of the queue; returns how many wait before it (0: it is next)."""
        key = queue_key(data_product, environment)
        with self.redis.pipeline() as pipeline:
            pipeline.rpush(key, deployment_id)
            pipeline.sadd(WAITING_SET, key)
            position = pipeline.execute()[0]
        return int(position) - 1

    def take_next(self, data_product: str, environment: str) -> str | None:
        """The deployment that now holds the lock, if the lock was free and one was waiting (it is active from now)."""
        keys = [lock_key(data_product, environment), queue_key(data_product, environment), WAITING_SET, ACTIVE_KEY]
        head = self._take_next(keys=keys, args=[self.lease_ms])
        return as_text(head) if head else None

    def holder(self, data_product: str, environment: str) -> str | None:
        """The deployment holding the lock, if any."""
        value = self.redis.get(lock_key(data_product, environment))
        return as_text(value) if value is not None else None

    def renew(self, data_product: str, environment: str, deployment_id: str) -> bool:
        """Extend the lease of a lock the deployment holds; False when it no longer holds it."""
        return bool(self._renew(keys=[lock_key(data_product, environment)], args=[deployment_id, self.lease_ms]))

    def release(self, data_product: str, environment: str, deployment_id: str) -> bool:
        """Free a lock the deployment holds."""
        return bool(self._release(keys=[lock_key(data_product, environment)], args=[deployment_id]))

    def waiting(self, data_product: str, environment: str) -> list[str]:
        """Deployments waiting for the lock, first in line first."""
        return [as_text(item) for item in self.redis.lrange(queue_key(data_product, environment), 0, -1)]

    def waiting_queues(self) -> list[tuple[str, str]]:
        """(data product, environment) of every queue that may hold waiting deployments."""
        pairs = []
        for raw in self.redis.smembers(WAITING_SET):
            key = as_text(raw)
            data_product, _, environment = key.removeprefix(f"{PREFIX}:queue:").rpartition(":")
            pairs.append((data_product, environment))
        return sorted(pairs)
