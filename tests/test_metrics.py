"""Counters in a real Redis, rendered in the Prometheus text format."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import count_event, render


def samples(text: bytes) -> dict[tuple[str, str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                found[(sample.name, sample.labels["forge"], sample.labels["event"])] = sample.value
    return found


def test_events_and_api_calls_add_up_per_forge_and_event(redis_engine):
    count_event(redis_engine.redis, "github", "merge_request", 4)
    count_event(redis_engine.redis, "github", "merge_request", 3)
    count_event(redis_engine.redis, "gitlab", "tag", 9)
    assert samples(render(redis_engine.redis)) == {
        ("meshbot_events_total", "github", "merge_request"): 2.0,
        ("meshbot_events_total", "gitlab", "tag"): 1.0,
        ("meshbot_forge_api_calls_total", "github", "merge_request"): 7.0,
        ("meshbot_forge_api_calls_total", "gitlab", "tag"): 9.0,
    }


def test_nothing_counted_yet_renders_empty_families(redis_engine):
    text = render(redis_engine.redis).decode()
    assert "# TYPE meshbot_forge_api_calls_total counter" in text and "_total{" not in text
