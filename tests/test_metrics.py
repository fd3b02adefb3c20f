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


# ---------------------------------------------------------------------- every family (issue 16)

import json  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402

from app import create_app  # noqa: E402
from bot.metrics import (  # noqa: E402
    DEPLOYMENT_DURATION,
    Batch,
    Gauge,
    adapter_label,
    count_delivery,
    count_deployment,
    observe_adapter_call,
    observe_lock_wait,
)
from handlers.merge_request import review_outcome  # noqa: E402
from tests.deploy_harness import Start, adapters_for, generated_descriptor, scripted_adapter  # noqa: E402
from vcs.tally import RateLimitWaits  # noqa: E402

TOKEN = "metrics-t0ken"


def families(text: bytes | str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Each family's samples as (sample name, labels, value)."""
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text if isinstance(text, str) else text.decode()):
        found[family.name] = [(sample.name, dict(sample.labels), sample.value) for sample in family.samples]
    return found


def value(found: dict[str, list[tuple[str, dict[str, str], float]]], name: str, **labels: str) -> float:
    """The value of the one sample with that name and (at least) those labels."""
    family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
    matches = [sample_value for sample_name, sample_labels, sample_value in found[family]
               if sample_name == name and labels.items() <= sample_labels.items()]
    assert len(matches) == 1, (name, labels, found[family])
    return matches[0]


def test_a_histogram_keeps_buckets_sum_and_count_in_redis_and_renders_them_cumulative(redis_engine):
    count_deployment(redis_engine.redis, "DEPLOY", "DEPLOYED", 0.4)
    count_deployment(redis_engine.redis, "DEPLOY", "DEPLOYED", 20)
    count_deployment(redis_engine.redis, "DEPLOY", "DEPLOYED", 99999)
    count_deployment(redis_engine.redis, "UNDEPLOY", "CORRUPT", None)
    found = families(render(redis_engine.redis))
    assert value(found, "meshbot_deployments_total", operation="DEPLOY", outcome="DEPLOYED") == 3
    assert value(found, "meshbot_deployments_total", operation="UNDEPLOY", outcome="CORRUPT") == 1
    bucket = "meshbot_deployment_duration_seconds_bucket"
    assert value(found, bucket, operation="DEPLOY", le="1.0") == 1
    assert value(found, bucket, operation="DEPLOY", le="15.0") == 1
    assert value(found, bucket, operation="DEPLOY", le="30.0") == 2
    assert value(found, bucket, operation="DEPLOY", le="7200.0") == 2
    assert value(found, bucket, operation="DEPLOY", le="+Inf") == 3
    assert value(found, "meshbot_deployment_duration_seconds_count", operation="DEPLOY") == 3
    assert value(found, "meshbot_deployment_duration_seconds_sum", operation="DEPLOY") == pytest.approx(100019.4)
    assert not [s for s in found["meshbot_deployment_duration_seconds"] if s[1].get("operation") == "UNDEPLOY"]
    assert len(redis_engine.redis.hgetall(DEPLOYMENT_DURATION.redis_key)) == 4  # three buckets and a sum


def test_adapters_are_labelled_by_host_and_port_and_errors_counted_apart(redis_engine):
    assert adapter_label("https://user:secret@adapters.example:8443/datamesh.specificprovisioner") == \
        "adapters.example:8443"
    assert adapter_label("http://adapter.internal/p") == "adapter.internal" and adapter_label("") == "none"
    batch = Batch()
    observe_adapter_call(batch, "http://a.example:81/x", "provision", 0.2, failed=False)
    observe_adapter_call(batch, "http://a.example:81/y", "provision", 3.0, failed=True)
    batch.send(redis_engine.redis)
    observe_lock_wait(redis_engine.redis, "development", 12.0)
    found = families(render(redis_engine.redis))
    assert value(found, "meshbot_adapter_call_duration_seconds_count", adapter="a.example:81",
                 operation="provision") == 2
    assert value(found, "meshbot_adapter_errors_total", adapter="a.example:81", operation="provision") == 1
    assert value(found, "meshbot_deployment_lock_wait_seconds_bucket", environment="development", le="15.0") == 1


def test_rate_limit_waits_are_counted_with_the_event_that_took_them(redis_engine):
    waits = RateLimitWaits()
    waits.record("github", 30.0)
    waits.record("github", 2.5)
    taken = waits.take()
    assert taken == [("github", 2, 32.5)] and waits.take() == []
    count_event(redis_engine.redis, "github", "tag", 3, taken)
    found = families(render(redis_engine.redis))
    assert value(found, "meshbot_forge_rate_limit_waits_total", forge="github") == 2
    assert value(found, "meshbot_forge_rate_limit_wait_seconds_total", forge="github") == 32.5


def test_a_metric_write_never_fails_the_work_it_counts():
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2)
    count_delivery(unreachable, "github", "push", "queued", 202)  # logged, not raised


def test_gauges_are_rendered_as_given(redis_engine):
    text = render(redis_engine.redis, [Gauge("meshbot_queue_depth", "Jobs.", ("queue",), ((("meshbot",), 4.0),))])
    assert value(families(text), "meshbot_queue_depth", queue="meshbot") == 4


def test_a_review_outcome_is_the_status_its_summary_names():
    assert review_outcome("g/p!3 at abc1234: failure (1 blocking), comment 7") == "failure"
    assert review_outcome("g/p!3 at abc1234: success (all 2 policies pass), comment 7") == "success"
    assert review_outcome("g/p!3: merged, not reviewed") == "not_reviewed"


def test_deliveries_are_counted_by_forge_event_and_answer(redis_engine, monkeypatch):
    monkeypatch.setenv("MESHBOT_GITLAB_WEBHOOK_SECRET", "s3cret")
    monkeypatch.delenv("MESHBOT_GITHUB_WEBHOOK_SECRET", raising=False)
    client = create_app(redis_connection=redis_engine.redis).test_client()
    hook = "/webhooks/gitlab"
    assert client.post(hook, data=b"{}", headers={"X-Gitlab-Token": "wrong", "X-Gitlab-Event": "x" * 500}
                       ).status_code == 401
    assert client.post(hook, data=b"not json", headers={"X-Gitlab-Token": "s3cret", "X-Gitlab-Event": "Push Hook"}
                       ).status_code == 400
    ignored = client.post(hook, data=json.dumps({"object_kind": "pipeline"}),
                          headers={"X-Gitlab-Token": "s3cret", "X-Gitlab-Event": "Pipeline Hook"})
    assert ignored.status_code == 200
    assert client.post("/webhooks/github", data=b"{}", headers={"X-GitHub-Event": "push"}).status_code == 401
    found = families(render(redis_engine.redis))
    name = "meshbot_webhook_deliveries_total"
    assert value(found, name, forge="gitlab", event="", answer="unauthorized", code="401") == 1
    assert value(found, name, forge="gitlab", event="Push Hook", answer="not_json", code="400") == 1
    assert value(found, name, forge="gitlab", event="Pipeline Hook", code="200") == 1
    assert value(found, name, forge="github", event="", answer="no_secret", code="401") == 1


def test_an_end_to_end_deploy_through_real_workers_shows_in_every_family(start: Start, monkeypatch):
    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    running = start(2)
    descriptor = generated_descriptor()
    with scripted_adapter() as adapter:
        deployment_id, _ = running.request(descriptor, adapters_for(descriptor, adapter.url))
        assert running.wait(deployment_id).state == "DEPLOYED"
    count_event(running.redis, "gitlab", "merge_request", 4)
    client = create_app(redis_connection=running.redis).test_client()
    client.post("/webhooks/gitlab", data=b"{}")  # no secret configured: 401, counted
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    found = families(scraped.get_data(as_text=True))
    for family in ("meshbot_events", "meshbot_forge_api_calls", "meshbot_forge_rate_limit_waits",
                   "meshbot_forge_rate_limit_wait_seconds", "meshbot_webhook_deliveries", "meshbot_reviews",
                   "meshbot_deployments", "meshbot_adapter_errors", "meshbot_deployment_duration_seconds",
                   "meshbot_task_duration_seconds", "meshbot_adapter_call_duration_seconds",
                   "meshbot_deployment_lock_wait_seconds", "meshbot_queue_depth",
                   "meshbot_queue_oldest_job_age_seconds", "meshbot_workers"):
        assert family in found, family
    tasks = len(running.tasks(deployment_id))
    assert value(found, "meshbot_deployments_total", operation="deploy", outcome="DEPLOYED") == 1
    assert value(found, "meshbot_deployment_duration_seconds_count", operation="deploy", outcome="DEPLOYED") == 1
    assert value(found, "meshbot_task_duration_seconds_count", operation="provision", outcome="COMPLETED") == tasks
    adapter_host = adapter_label(adapter.url)
    assert value(found, "meshbot_adapter_call_duration_seconds_count", adapter=adapter_host,
                 operation="provision") == tasks
    assert value(found, "meshbot_adapter_call_duration_seconds_count", adapter=adapter_host,
                 operation="validate") >= 1
    assert value(found, "meshbot_deployment_lock_wait_seconds_count", environment=descriptor.environment) == 1
    assert value(found, "meshbot_queue_depth", queue="meshbot") >= 0
    assert value(found, "meshbot_workers") == 2
    assert value(found, "meshbot_forge_api_calls_total", forge="gitlab", event="merge_request") == 4
    assert value(found, "meshbot_webhook_deliveries_total", forge="gitlab", answer="no_secret") == 1


def test_the_example_grafana_dashboard_charts_every_metric_family():
    import json
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    charted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"meshbot_[a-z_]+", target["expr"])}
    charted = {re.sub(r"_(bucket|sum|count)$", "", name) for name in charted}
    listed = set(re.findall(r"^\| `(meshbot_[a-z_]+)` \|", (docs / "operations.md").read_text(), flags=re.MULTILINE))
    assert listed and listed <= charted, sorted(listed - charted)
