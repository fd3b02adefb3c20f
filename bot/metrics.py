"""Counters and histograms every meshbot process adds to in Redis, exposed in the Prometheus text format by the web
service.

Web workers and RQ workers are separate processes, often on separate machines, so the figures live in Redis (one
hash per metric, a field per label set; a histogram keeps a counter per bucket and a sum) and the
`/metrics` endpoint renders them with prometheus_client at scrape time. Every event writes with one pipeline; a
scrape reads one hash per metric (no SCAN). A write that fails (Redis unreachable) is logged and dropped: a
metric never fails the work it counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Under the engine's own "meshbot:" key prefix; metrics sit below the engine, so they do not import it.
KEY_PREFIX = "meshbot:metrics"
SEPARATOR = "\x1f"  # joins label values in a hash field; removed from any label value
MAX_LABEL_LENGTH = 64
SUM_FIELD = "+sum"  # a histogram's sum, beside its buckets' upper bounds (its count is the cumulative +Inf bucket)


@dataclass(frozen=True)
class Counter:
    """A counter family: `name` without `_total` (prometheus_client adds it), kept in the Redis hash `key`."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    key: str = ""

    @property
    def redis_key(self) -> str:
        """The Redis hash holding one field per label set."""
        return self.key or f"{KEY_PREFIX}:{self.name}"


@dataclass(frozen=True)
class Histogram:
    """A histogram family (`name` ends in `_seconds`): per label set, a counter per bucket and a sum."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]

    @property
    def redis_key(self) -> str:
        """The Redis hash holding the buckets, sums and counts of every label set."""
        return f"{KEY_PREFIX}:{self.name}"

    def bucket(self, value: float) -> str:
        """The field of the smallest bucket value fits in (`+Inf` past the last); rendering accumulates them."""
        for bound in self.buckets:
            if value <= bound:
                return repr(float(bound))
        return "+Inf"


# ---------------------------------------------------------------------- the metrics

EVENTS = Counter("meshbot_events", "Forge events handled by meshbot's workers.", ("forge", "event"),
                 key=f"{KEY_PREFIX}:events")
FORGE_API_CALLS = Counter("meshbot_forge_api_calls", "Forge REST calls made while handling events.",
                          ("forge", "event"), key=f"{KEY_PREFIX}:forge_api_calls")
RATE_LIMIT_WAITS = Counter("meshbot_forge_rate_limit_waits",
                           "Times a forge client waited (or gave up waiting) because the forge rate-limited it.",
                           ("forge",))
RATE_LIMIT_WAIT_SECONDS = Counter("meshbot_forge_rate_limit_wait_seconds",
                                  "Seconds forge clients were asked to wait by rate limits.", ("forge",))
DELIVERIES = Counter("meshbot_webhook_deliveries",
                     "Webhook deliveries received, by forge, event and how meshbot answered them.",
                     ("forge", "event", "answer", "code"))
REVIEWS = Counter("meshbot_reviews", "Merge request reviews, by outcome (the commit status set, or why none).",
                  ("forge", "outcome"))
DEPLOYMENTS = Counter("meshbot_deployments", "Deployments ended, by operation and final state.",
                      ("operation", "outcome"))
ADAPTER_ERRORS = Counter("meshbot_adapter_errors",
                         "Tech adapter calls that failed (no answer, a timeout, HTTP 5xx, a malformed or FAILED "
                         "answer); a refusal is a verdict, not an error.", ("adapter", "operation"))
COMPLIANCE_CHECKS = Counter("meshbot_compliance_checks",
                            "Compliance checks of a deployed data product in an environment against today's policies, "
                            "by outcome (compliant, grace, non_compliant).", ("environment", "outcome"))

DEPLOYMENT_DURATION = Histogram(
    "meshbot_deployment_duration_seconds",
    "Time from a deployment's start (it took its lock) to its end, by operation and final state.",
    ("operation", "outcome"), (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200))
TASK_DURATION = Histogram(
    "meshbot_task_duration_seconds", "Time a deployment task spent in its tech adapter, by operation and state.",
    ("operation", "outcome"), (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
ADAPTER_CALL_DURATION = Histogram(
    "meshbot_adapter_call_duration_seconds",
    "Tech adapter calls (polling included), by adapter (host:port of its URL) and operation.",
    ("adapter", "operation"), (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
LOCK_WAIT = Histogram(
    "meshbot_deployment_lock_wait_seconds",
    "Time a deployment waited for its data product and environment (the FIFO lock) before it started.",
    ("environment",), (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600))

COUNTERS = (EVENTS, FORGE_API_CALLS, RATE_LIMIT_WAITS, RATE_LIMIT_WAIT_SECONDS, DELIVERIES, REVIEWS, DEPLOYMENTS,
            ADAPTER_ERRORS, COMPLIANCE_CHECKS)
HISTOGRAMS = (DEPLOYMENT_DURATION, TASK_DURATION, ADAPTER_CALL_DURATION, LOCK_WAIT)

# Backwards-compatible names of the first two hashes.
API_CALLS_KEY, EVENTS_KEY = FORGE_API_CALLS.redis_key, EVENTS.redis_key


# ---------------------------------------------------------------------- writing


def _label(value: object) -> str:
    """A label value safe in a hash field and bounded in length."""
    return str(value).replace(SEPARATOR, " ")[:MAX_LABEL_LENGTH]


def _field(labels: Sequence[object]) -> str:
    return SEPARATOR.join(_label(value) for value in labels)


@dataclass
class Batch:
    """Metric updates sent to Redis together, in one pipeline."""

    updates: list[tuple[str, str, int | float]] = field(default_factory=list)

    def count(self, counter: Counter, labels: Sequence[object], amount: int | float = 1) -> Batch:
        """Add amount to the counter's label set."""
        if len(labels) != len(counter.labels):
            raise ValueError(f"{counter.name} takes labels {counter.labels}")
        if amount:
            self.updates.append((counter.redis_key, _field(labels), amount))
        return self

    def observe(self, histogram: Histogram, labels: Sequence[object], value: float) -> Batch:
        """Record one observation (seconds) in the histogram's label set."""
        if len(labels) != len(histogram.labels):
            raise ValueError(f"{histogram.name} takes labels {histogram.labels}")
        value = max(0.0, float(value))
        prefix = _field(labels) + SEPARATOR
        self.updates += [(histogram.redis_key, prefix + histogram.bucket(value), 1),
                         (histogram.redis_key, prefix + SUM_FIELD, value)]
        return self

    def send(self, connection: redis.Redis) -> None:
        """Write every update in one pipeline; a Redis error is logged, never raised."""
        if not self.updates:
            return
        try:
            with connection.pipeline(transaction=False) as pipeline:
                for key, name, amount in self.updates:
                    if isinstance(amount, int):
                        pipeline.hincrby(key, name, amount)
                    else:
                        pipeline.hincrbyfloat(key, name, amount)
                pipeline.execute()
        except redis.RedisError as error:
            logger.warning("metrics not recorded (%s: %s)", type(error).__name__, error)
        self.updates.clear()


def count_event(connection: redis.Redis, forge: str, event: str, api_calls: int,
                rate_limit_waits: Iterable[tuple[str, int, float]] = ()) -> None:
    """Count one handled event, the forge REST calls it took and the rate-limit waits (forge, times, seconds)."""
    batch = Batch().count(EVENTS, (forge, event)).count(FORGE_API_CALLS, (forge, event), api_calls)
    for name, times, seconds in rate_limit_waits:
        batch.count(RATE_LIMIT_WAITS, (name,), times).count(RATE_LIMIT_WAIT_SECONDS, (name,), float(seconds))
    batch.send(connection)


def count_delivery(connection: redis.Redis, forge: str, event: str, answer: str, code: int) -> None:
    """Count one webhook delivery and how it was answered."""
    Batch().count(DELIVERIES, (forge, event, answer, code)).send(connection)


def delivery_field(forge: str, event: str, answer: str, code: int) -> tuple[str, str]:
    """The Redis hash and field count_delivery adds one to, for a caller counting within its own round trip."""
    return DELIVERIES.redis_key, _field((forge, event, answer, code))


def count_review(connection: redis.Redis, forge: str, outcome: str) -> None:
    """Count one merge request review by its outcome."""
    Batch().count(REVIEWS, (forge, outcome)).send(connection)


def count_deployment(connection: redis.Redis, operation: str, outcome: str, seconds: float | None) -> None:
    """Count a deployment's end and observe how long it ran (None: unknown, counted only)."""
    batch = Batch().count(DEPLOYMENTS, (operation, outcome))
    if seconds is not None:
        batch.observe(DEPLOYMENT_DURATION, (operation, outcome), seconds)
    batch.send(connection)


def count_compliance(connection: redis.Redis, outcomes: Iterable[tuple[str, str]]) -> None:
    """Count compliance checks, one per (environment, outcome)."""
    batch = Batch()
    for environment, outcome in outcomes:
        batch.count(COMPLIANCE_CHECKS, (environment, outcome))
    batch.send(connection)


def observe_lock_wait(connection: redis.Redis, environment: str, seconds: float) -> None:
    """Observe how long a deployment waited for its lock."""
    Batch().observe(LOCK_WAIT, (environment,), seconds).send(connection)


def adapter_label(url: str) -> str:
    """The adapter label of an adapter URL: its host and port (never credentials nor path), low in cardinality."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "invalid"
    if not host:
        return "none"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def observe_adapter_call(batch: Batch, url: str, operation: str, seconds: float, failed: bool) -> Batch:
    """Add one adapter call (its latency, and an error when it failed) to batch."""
    adapter = adapter_label(url)
    batch.observe(ADAPTER_CALL_DURATION, (adapter, operation), seconds)
    if failed:
        batch.count(ADAPTER_ERRORS, (adapter, operation))
    return batch


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Gauge:
    """A figure computed at scrape time (not kept in Redis), with its label values."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    values: tuple[tuple[tuple[str, ...], float], ...] = ()


def _text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else value


class _RedisMetrics(Collector):
    """The counters and histograms as they are in Redis at collection time, and the gauges given."""

    def __init__(self, connection: redis.Redis, gauges: Sequence[Gauge]) -> None:
        self.connection = connection
        self.gauges = gauges

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        """One family per metric: every counter, then every histogram, then the gauges."""
        with self.connection.pipeline(transaction=False) as pipeline:
            for metric in (*COUNTERS, *HISTOGRAMS):
                pipeline.hgetall(metric.redis_key)
            replies = pipeline.execute()
        for counter, reply in zip(COUNTERS, replies[:len(COUNTERS)], strict=True):
            family = CounterMetricFamily(counter.name, counter.documentation, labels=list(counter.labels))
            for name, value in sorted((_text(key), _text(value)) for key, value in reply.items()):
                family.add_metric(_values(name, len(counter.labels)), float(value))
            yield family
        for histogram, reply in zip(HISTOGRAMS, replies[len(COUNTERS):], strict=True):
            yield _histogram(histogram, {_text(key): float(_text(value)) for key, value in reply.items()})
        for gauge in self.gauges:
            gauge_family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))
            for labels, number in gauge.values:
                gauge_family.add_metric(list(labels), number)
            yield gauge_family


def _values(name: str, count: int) -> list[str]:
    """The label values of a hash field (a field with too few is padded: labels may be added later)."""
    values = name.split(SEPARATOR) if count else []
    return (values + [""] * count)[:count]


def _histogram(histogram: Histogram, fields: dict[str, float]) -> HistogramMetricFamily:
    """The histogram's family from its hash: cumulative buckets, sum and count per label set."""
    family = HistogramMetricFamily(histogram.name, histogram.documentation, labels=list(histogram.labels))
    label_sets: dict[str, dict[str, float]] = {}
    for name, value in fields.items():
        labels, _, part = name.rpartition(SEPARATOR)
        label_sets.setdefault(labels, {})[part] = value
    for labels, parts in sorted(label_sets.items()):
        running, buckets = 0.0, []
        for bound in (*histogram.buckets, math.inf):
            running += parts.get("+Inf" if bound == math.inf else repr(float(bound)), 0.0)
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), running))
        family.add_metric(_values(labels, len(histogram.labels)), buckets, parts.get(SUM_FIELD, 0.0))
    return family


def render(connection: redis.Redis, gauges: Sequence[Gauge] = ()) -> bytes:
    """Every metric in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RedisMetrics(connection, gauges))
    return generate_latest(registry)
