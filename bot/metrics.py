"""Counters every meshbot process adds to in Redis, exposed in the Prometheus text format by the web service.

Web workers and RQ workers are separate processes, often on separate machines, so the counts live in
Redis (one hash per counter) and the `/metrics` endpoint renders them with prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import CollectorRegistry, CounterMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

# Under the engine's own "meshbot:" key prefix; metrics sit below the engine, so they do not import it.
API_CALLS_KEY = "meshbot:metrics:forge_api_calls"
EVENTS_KEY = "meshbot:metrics:events"
SEPARATOR = "\x1f"  # joins label values in a hash field; never in a forge name or event kind


def count_event(connection: redis.Redis, forge: str, event: str, api_calls: int) -> None:
    """Count one handled event and the forge REST calls it took."""
    field = f"{forge}{SEPARATOR}{event}"
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.hincrby(EVENTS_KEY, field, 1)
        pipeline.hincrby(API_CALLS_KEY, field, api_calls)
        pipeline.execute()


def _text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else value


class _RedisCounters(Collector):
    """The counters as they are in Redis at collection time."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One metric family per counter, labelled by forge and event."""
        for key, name, documentation in (
            (EVENTS_KEY, "meshbot_events", "Forge events handled by meshbot's workers."),
            (API_CALLS_KEY, "meshbot_forge_api_calls", "Forge REST calls made while handling events."),
        ):
            family = CounterMetricFamily(name, documentation, labels=["forge", "event"])
            for field, value in sorted(self.connection.hgetall(key).items()):
                forge, _, event = _text(field).partition(SEPARATOR)
                family.add_metric([forge, event], float(_text(value)))
            yield family


def render(connection: redis.Redis) -> bytes:
    """Every counter in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RedisCounters(connection))
    return generate_latest(registry)
