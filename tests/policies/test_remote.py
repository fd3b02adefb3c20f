"""Remote policy engines: the client against a real HTTP engine on 127.0.0.1, the error outcome, and the cache."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import PolicyEngineSettings
from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from policies.engine import evaluate
from policies.loader import load_policies
from policies.model import Policy, Status
from policies.remote import (
    MAX_ANSWER_BYTES,
    MemoryCache,
    Question,
    RedisCache,
    RemoteEngine,
    Verdict,
    cache_for,
    cache_key,
    parse_answer,
)
from policies.report import CheckReport, to_json, to_markdown, to_text
from tests.servers.policy_engine import PolicyEngine, policy_engine

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
PORT = "urn:dmb:cmp:finance:cashflow:1:daily"
TABLE = "urn:dmb:cmp:finance:cashflow:1:ledger"
DESCRIPTOR = Descriptor(
    data={"id": PRODUCT, "kind": "dataproduct", "name": "Cash flow", "components": [
        {"id": PORT, "kind": "outputport", "name": "Daily"},
        {"id": TABLE, "kind": "storage", "name": "Ledger"},
    ]},
    environment="production",
    sources={(): SourcePosition("catalog-info.yaml", 1, 1),
               ("components", 0): SourcePosition("components/daily/catalog-info.yaml", 7, 3)},
)


def policy_text(policy_id: str = "cue-check", target: str = "component", status: str = "enabled",
                engine: str = "cue", extra: str = "") -> str:
    return (f"id: {policy_id}\ndescription: Checked by the {engine} engine\ntarget: {target}\nseverity: error\n"
            f"status: {status}\nremote: {engine}\n{extra}")


@pytest.fixture
def engine() -> Iterator[PolicyEngine]:
    with policy_engine() as running:
        yield running


def load(folder: Path, engine_url: str, timeout: float = 2.0, cache: object = None, **policies: str) -> list[Policy]:
    """The remote policies of folder (written from policies: file name -> text), with a fresh LRU unless given."""
    folder.mkdir(exist_ok=True)
    for name, text in policies.items():
        (folder / f"{name}.yaml").write_text(text)
    engines = {"cue": PolicyEngineSettings("cue", engine_url, timeout)}
    return load_policies([folder], include_builtin=False, engines=engines,
                         cache=cache if cache is not None else MemoryCache())  # type: ignore[arg-type]


def report_of(policies: list[Policy]) -> CheckReport:
    return CheckReport(DESCRIPTOR, evaluate(DESCRIPTOR, policies), len(policies))


def refused_port() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/evaluate"


# ---------------------------------------------------------------------- the request and its answers


def test_a_component_policy_asks_once_per_component_with_the_three_fields_and_passes(engine, tmp_path):
    policies = load(tmp_path / "p", engine.url, p=policy_text())
    results = evaluate(DESCRIPTOR, policies)
    assert [(r.resource, r.outcome, r.blocking) for r in results] == [(PORT, "passed", False), (TABLE, "passed", False)]
    requests = engine.received()
    assert sorted(request.body["resourceId"] for request in requests) == [PORT, TABLE]
    port = next(request for request in requests if request.body["resourceId"] == PORT)
    assert set(port.body) == {"content", "resourceType", "resourceId"}
    assert port.body["resourceType"] == "component"
    assert port.body["content"] == f"id: {PORT}\nkind: outputport\nname: Daily\n"
    assert (port.path, port.headers["x-meshbot-policy"], port.headers["x-meshbot-environment"]) == (
        "/evaluate", "cue-check", "production")


def test_a_data_product_policy_sends_the_whole_descriptor_as_a_system(engine, tmp_path):
    policies = load(tmp_path / "p", engine.url, p=policy_text(target="dataproduct"))
    [result] = evaluate(DESCRIPTOR, policies)
    assert (result.resource, result.outcome) == (PRODUCT, "passed")
    [request] = engine.received()
    assert (request.body["resourceType"], request.body["resourceId"]) == ("system", PRODUCT)
    assert request.body["content"].startswith(f"id: {PRODUCT}\nkind: dataproduct\n")
    assert f"  - id: {TABLE}\n" in request.body["content"]


def test_a_block_gives_the_engines_errors_as_failures_at_the_resource(engine, tmp_path):
    engine.behave("block", errors=("the port has no SLA", "the owner is **unknown**"))
    policies = load(tmp_path / "p", engine.url, p=policy_text())
    port, table = evaluate(DESCRIPTOR, policies)
    assert (port.outcome, port.blocking) == ("failed", True)
    assert [(f.message, f.path, f.position) for f in port.errors] == [
        ("the port has no SLA", "components[0]", SourcePosition("components/daily/catalog-info.yaml", 7, 3)),
        ("the owner is **unknown**", "components[0]", SourcePosition("components/daily/catalog-info.yaml", 7, 3)),
    ]
    assert table.outcome == "failed"
    body = to_markdown(report_of(policies))
    assert "the owner is \\*\\*unknown\\*\\*" in body  # the engine's text is escaped in the comment


def test_a_block_without_reasons_still_fails_with_a_message(engine, tmp_path):
    engine.behave("block")
    [port, _] = evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, p=policy_text()))
    assert [f.message for f in port.errors] == ["policy engine 'cue' found the policy not satisfied (no reason given)"]


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("error", "policy engine 'cue' answered HTTP 500"),
    ("garbage", "policy engine 'cue' answered no JSON"),
    ("shape", "policy engine 'cue' answered no satisfiesPolicy"),
    ("huge", "policy engine 'cue' answered more than 1 MiB"),
])
def test_a_bad_answer_is_an_engine_error_that_blocks_when_enabled(engine, tmp_path, behaviour, reason):
    engine.behave(behaviour)
    results = evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, p=policy_text()))
    assert [(r.outcome, r.engine_error, r.errors, r.blocking) for r in results] == [("error", reason, [], True)] * 2
    assert engine.url.split("//")[1] not in reason


def test_a_timeout_is_an_error_outcome_never_passed(engine, tmp_path):
    engine.behave("sleep", delay=3)
    started = time.monotonic()
    policies = load(tmp_path / "p", engine.url, timeout=0.5, p=policy_text())
    results = evaluate(DESCRIPTOR, policies)
    assert time.monotonic() - started < 2.5  # both components asked at once, each giving up after 0.5 s
    assert [(r.outcome, r.engine_error, r.blocking) for r in results] == [
        ("error", "policy engine 'cue' timed out after 0.5 s", True)] * 2
    report = report_of(policies)
    assert not report.passed and report.passed_results == [] and len(report.failed("blocking")) == 2
    assert [r["outcome"] for r in to_json(report)["results"]] == ["error", "error"]
    assert to_json(report)["results"][0]["engineError"] == "policy engine 'cue' timed out after 0.5 s"


def test_an_engine_error_in_grace_is_shown_but_does_not_block(engine, tmp_path):
    engine.behave("error")
    policies = load(tmp_path / "p", engine.url, p=policy_text(status="grace"))
    report = report_of(policies)
    assert report.passed and [r.outcome for r in report.results] == ["error", "error"]
    assert len(report.failed("grace")) == 2 and report.passed_results == []
    assert "ENGINE ERROR: policy engine 'cue' answered HTTP 500; the policy engine gave no verdict, so this " \
           "policy was not evaluated" in to_text(report)


def test_connection_refused_names_the_engine_not_its_url(tmp_path):
    url = refused_port()
    [result, _] = evaluate(DESCRIPTOR, load(tmp_path / "p", url, p=policy_text()))
    assert result.engine_error == "policy engine 'cue' could not be reached (connection refused)"
    assert result.blocking


def test_answers_are_parsed_strictly():
    assert parse_answer({"satisfiesPolicy": True}) == Verdict(True)
    assert parse_answer({"satisfiesPolicy": False, "errors": ["a", "b"]}) == Verdict(False, ("a", "b"))
    assert parse_answer([]) == "answered no JSON object"
    assert parse_answer({"satisfiesPolicy": "yes"}) == "answered a satisfiesPolicy that is no boolean"
    assert parse_answer({"satisfiesPolicy": False, "errors": [1]}) == "answered errors that are not a list of texts"
    long = parse_answer({"satisfiesPolicy": False, "errors": ["x" * 1000] * 80})
    assert isinstance(long, Verdict) and len(long.errors) == 50 and len(long.errors[0]) == 300


def test_an_answer_up_to_the_limit_is_read(engine, tmp_path):
    reason = "y" * (MAX_ANSWER_BYTES - 100)
    engine.behave("block", errors=(reason,))
    [port, _] = evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, p=policy_text()))
    assert port.outcome == "failed" and port.errors[0].message.startswith("yyy")


# ---------------------------------------------------------------------- concurrency and order


def test_many_remote_evaluations_run_concurrently_in_a_stable_order(engine, tmp_path):
    components = [{"id": f"{PORT}-{index}", "kind": "outputport"} for index in range(16)]
    descriptor = Descriptor(data={"id": PRODUCT, "components": components}, environment="production")
    engine.behave("sleep", delay=0.3)
    engine.behave("block", errors=("no",), resource=f"{PORT}-5")
    policies = load(tmp_path / "p", engine.url, a=policy_text("a-check"), b=policy_text("b-check"))
    started = time.monotonic()
    results = evaluate(descriptor, policies)
    elapsed = time.monotonic() - started
    assert [(r.policy, r.resource) for r in results] == [
        (policy, component["id"]) for policy in ("a-check", "b-check") for component in components]
    assert [r.resource for r in results if r.outcome == "failed"] == [f"{PORT}-5"] * 2
    assert len(engine.received()) == 32
    assert elapsed < 32 * 0.3 / 4, elapsed  # 8 at a time: ~4 rounds of 0.3 s, far from 9.6 s one by one


# ---------------------------------------------------------------------- the cache


def test_a_cached_verdict_asks_no_second_time(engine, tmp_path):
    cache = MemoryCache()
    policies = load(tmp_path / "p", engine.url, cache=cache, p=policy_text())
    evaluate(DESCRIPTOR, policies)
    assert len(engine.received()) == 2
    engine.behave("error")  # would be an error if asked: the cache answers
    results = evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, cache=cache))
    assert [r.outcome for r in results] == ["passed", "passed"] and len(engine.received()) == 2


def test_changed_content_asks_again(engine, tmp_path):
    cache = MemoryCache()
    policies = load(tmp_path / "p", engine.url, cache=cache, p=policy_text())
    evaluate(DESCRIPTOR, policies)
    changed = Descriptor(data={**DESCRIPTOR.data, "components": [
        {"id": PORT, "kind": "outputport", "name": "Daily, renamed"}, DESCRIPTOR.components[1]]},
        environment="production")
    evaluate(changed, policies)
    assert [r.body["resourceId"] for r in engine.received()[2:]] == [PORT]  # the ledger is unchanged: cached


def test_a_changed_policy_file_asks_again(engine, tmp_path):
    cache = MemoryCache()
    evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, cache=cache, p=policy_text()))
    evaluate(DESCRIPTOR, load(tmp_path / "p", engine.url, cache=cache,
                              p=policy_text() + "selector: {kind: [outputport, storage]}\n"))
    assert len(engine.received()) == 4


def test_the_policy_version_is_the_sha256_of_its_file(engine, tmp_path):
    import hashlib

    [policy] = load(tmp_path / "p", engine.url, p=policy_text())
    assert policy.version == hashlib.sha256((tmp_path / "p" / "p.yaml").read_bytes()).hexdigest()
    assert policy.remote == "cue" and policy.engine is not None and policy.engine.name == "cue"


def test_engine_errors_are_not_cached(engine, tmp_path):
    cache = MemoryCache()
    engine.behave("error")
    policies = load(tmp_path / "p", engine.url, cache=cache, p=policy_text())
    assert [r.outcome for r in evaluate(DESCRIPTOR, policies)] == ["error", "error"]
    assert len(cache) == 0
    engine.behave("pass")
    assert [r.outcome for r in evaluate(DESCRIPTOR, policies)] == ["passed", "passed"]
    assert len(engine.received()) == 4 and len(cache) == 2


def test_the_key_covers_url_policy_version_type_and_content():
    question = Question("p", "v1", "component", PORT, "id: x\n")
    key = cache_key("http://a", question)
    assert key == cache_key("http://a", Question("p", "v1", "component", PORT, "id: x\n", environment="qa"))
    for other in (cache_key("http://b", question),
                  cache_key("http://a", Question("q", "v1", "component", PORT, "id: x\n")),
                  cache_key("http://a", Question("p", "v2", "component", PORT, "id: x\n")),
                  cache_key("http://a", Question("p", "v1", "system", PORT, "id: x\n")),
                  cache_key("http://a", Question("p", "v1", "component", PORT, "id: y\n"))):
        assert other != key


def test_the_memory_cache_is_bounded_least_recently_used_first():
    cache = MemoryCache(entries=2)
    cache.put("a", Verdict(True))
    cache.put("b", Verdict(False, ("no",)))
    assert cache.get("a") == Verdict(True)  # a is now the most recent
    cache.put("c", Verdict(True))
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (Verdict(True), None, Verdict(True))


def test_the_redis_cache_is_shared_between_two_loads_of_separate_processes(engine, tmp_path, redis_engine):
    """Two loads with their own LRU (as two worker processes have) share what the first one learnt, in Redis."""
    connection = redis_engine.redis
    engine.behave("block", errors=("the port has no SLA",))
    first = load(tmp_path / "p", engine.url, cache=cache_for(connection, MemoryCache()), p=policy_text())
    evaluate(DESCRIPTOR, first)
    assert len(engine.received()) == 2
    engine.behave("error")
    second = load(tmp_path / "p", engine.url, cache=cache_for(connection, MemoryCache()))
    results = evaluate(DESCRIPTOR, second)
    assert [(r.outcome, [f.message for f in r.errors]) for r in results] == [
        ("failed", ["the port has no SLA"])] * 2
    assert len(engine.received()) == 2
    ttl = [connection.ttl(key) for key in connection.scan_iter("meshbot:policy-verdict:*")]
    assert len(ttl) == 2 and all(23 * 3600 < seconds <= 24 * 3600 for seconds in ttl)


def test_a_redis_failure_is_a_cache_miss(engine, tmp_path):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    broken = RedisCache(redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), socket_connect_timeout=0.2,
                                    retry=Retry(NoBackoff(), 0)))
    assert broken.get("k") is None
    broken.put("k", Verdict(True))  # no exception
    engine_client = RemoteEngine(PolicyEngineSettings("cue", engine.url, 2.0), broken)
    assert engine_client.verdict(Question("p", "v", "component", PORT, "id: x\n")) == Verdict(True)


def test_policies_are_asked_with_the_status_they_run_with(engine, tmp_path):
    """Draft remote policies are not run: no request at all."""
    policies = load(tmp_path / "p", engine.url, p=policy_text(status="draft"))
    assert policies[0].status is Status.DRAFT
    assert evaluate(DESCRIPTOR, policies) == [] and engine.received() == []


# ---------------------------------------------------------------------- meshbot check


def test_meshbot_check_asks_the_engines_of_its_configuration(engine, tmp_path, capsys, monkeypatch):
    """`meshbot check --config FILE` evaluates remote policies with that file's engines; an engine error blocks."""
    from bot.cli.main import main
    from tests.deploy_harness import EXAMPLE

    monkeypatch.setenv("NO_COLOR", "1")
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "cue.yaml").write_text(policy_text(target="dataproduct"))
    config = tmp_path / "meshbot.yaml"
    config.write_text(f"policies: [{folder}]\npolicy_engines:\n  cue: {{url: '{engine.url}', timeout: 0.5}}\n")
    assert main(["check", str(EXAMPLE), "--config", str(config)]) == 0
    assert [request.body["resourceId"] for request in engine.received()] == [PRODUCT]
    capsys.readouterr()
    engine.behave("sleep", delay=2)
    (folder / "cue.yaml").write_text(policy_text(target="dataproduct") + "# a new version: not in the cache\n")
    assert main(["check", str(EXAMPLE), "--config", str(config), "--format", "json"]) == 1
    [remote] = [r for r in json.loads(capsys.readouterr().out)["results"] if r["policy"] == "cue-check"]
    assert (remote["outcome"], remote["blocking"], remote["engineError"]) == (
        "error", True, "policy engine 'cue' timed out after 0.5 s")
