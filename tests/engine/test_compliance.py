"""Compliance of what is deployed: the policy set's fingerprint, one deployed descriptor checked, results and history
in a real Redis, and the compliance round on a real RQ worker process."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.engine import compliance
from bot.engine.compliance import ComplianceResult, RoundState, fingerprint, full_check_due, record_history, unchecked
from bot.engine.deployed import Deployed, deployed_record
from bot.engine.periodic import COMPLIANCE, COMPLIANCE_JOB, start_compliance_sweep
from bot.engine.runner import QUEUE_NAME
from bot.metrics import render
from policies.loader import load_policies
from tests.deploy_harness import ENVIRONMENT, Engine, Start, example_descriptor, wait_for

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
OWNER_POLICY = """id: owner-team
description: The data product names an owner team
target: dataproduct
severity: error
status: {status}
{extra}schema:
  type: object
  required: [ownerTeam]
"""


def policy_folder(path: Path, status: str = "enabled", extra: str = "") -> Path:
    """A policy folder with one data product policy the bundled example fails (it has no ownerTeam)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "owner.yaml").write_text(OWNER_POLICY.format(status=status, extra=extra))
    return path


def deployed(version: str = "1.0.0", deployment: str = "d1") -> Deployed:
    descriptor = example_descriptor()
    return Deployed(descriptor.id, ENVIRONMENT, descriptor.data, version, deployment, "2026-05-01T11:00:00Z")


def test_the_fingerprint_changes_with_a_policy_file_its_status_and_a_grace_date_reached(tmp_path):
    folder = policy_folder(tmp_path / "policies", "grace", "grace_until: 2026-06-01\n")
    first = fingerprint(load_policies([folder]), date(2026, 5, 1))
    assert fingerprint(load_policies([folder]), date(2026, 5, 2)) == first  # nothing changed
    assert fingerprint(load_policies([folder]), date(2026, 6, 1)) != first  # the grace ended: it blocks now
    assert fingerprint(load_policies(), date(2026, 5, 1)) != first  # the policy removed
    (folder / "owner.yaml").write_text(OWNER_POLICY.format(status="grace", extra="grace_until: 2026-06-01\n")
                                       .replace("owner team", "owning team"))
    assert fingerprint(load_policies([folder]), date(2026, 5, 1)) != first  # the file's text changed


def test_a_deployed_descriptor_checked_blocking_grace_and_not_evaluated(tmp_path):
    blocking = compliance.check(deployed(), load_policies([policy_folder(tmp_path / "a")]), "fp", NOW)
    assert (blocking.compliant, blocking.outcome, blocking.needs_attention) == (False, "non_compliant", True)
    [failure] = blocking.of("blocking")
    assert (failure.policy, failure.resource, failure.severity, failure.status, failure.blocking) == (
        "owner-team", "urn:dmb:dp:finance:cashflow:1", "error", "enabled", True)
    assert failure.messages == ("missing required field 'ownerTeam'",)
    not_evaluated = blocking.of("not_evaluated")
    assert not_evaluated and {finding.policy for finding in not_evaluated} == {"no-breaking-changes"}
    assert all(finding.outcome == "not_evaluated" and not finding.blocking for finding in not_evaluated)
    assert blocking.summary() == f"non compliant: 1 blocking, {len(not_evaluated)} not evaluated"

    grace = compliance.check(deployed(), load_policies([policy_folder(tmp_path / "b", "grace",
                                                                      "grace_until: 2027-03-01\n")]), "fp", NOW)
    [warned] = grace.of("grace")
    assert (grace.compliant, grace.outcome, grace.needs_attention) == (True, "grace", True)
    assert (warned.blocking, warned.blocks_from) == (False, "blocks from 2027-03-01")
    late = compliance.check(deployed(), load_policies([tmp_path / "b"]), "fp", datetime(2027, 3, 1, tzinfo=UTC))
    assert late.outcome == "non_compliant"  # the grace date has come

    clean = compliance.check(deployed(), load_policies(), "fp", NOW)
    assert (clean.outcome, clean.needs_attention, clean.of("blocking", "grace")) == ("compliant", False, [])
    assert clean.of("not_evaluated"), "a breaking-change policy is never reported passed"
    assert ComplianceResult.from_json(blocking.as_json()) == blocking


def test_results_and_history_are_stored_and_the_history_is_not_flooded(redis_engine, tmp_path):
    connection = redis_engine.redis
    failing = load_policies([policy_folder(tmp_path / "a")])
    first = compliance.check(deployed(), failing, "fp1", NOW)
    assert compliance.save(connection, first) is True
    for minutes in range(1, 30):  # the same outcome, checked every minute, with another policy set
        same = compliance.check(deployed(), failing, f"fp{minutes}", NOW + timedelta(minutes=minutes))
        assert compliance.save(connection, same) is False
    assert compliance.load(connection, first.data_product, ENVIRONMENT).checked_at == "2026-05-01T12:29:00Z"
    assert [entry.checked_at for entry in compliance.history(connection, first.data_product, ENVIRONMENT)] == [
        "2026-05-01T12:00:00Z"]

    fixed = compliance.check(deployed(), load_policies(), "fp2", NOW + timedelta(hours=1))
    assert compliance.save(connection, fixed) is True  # the outcome changed
    a_day_later = compliance.check(deployed(), load_policies(), "fp2", NOW + timedelta(days=1, hours=1))
    assert compliance.save(connection, a_day_later) is True  # unchanged, but a day since the newest entry
    stored = compliance.history(connection, first.data_product, ENVIRONMENT)
    assert [entry.outcome for entry in stored] == ["compliant", "compliant", "non_compliant"]
    assert stored[-1] == first and stored[-1].of("not_evaluated") == first.of("not_evaluated")

    for day in range(2, 60):
        compliance.save(connection, compliance.check(deployed(), load_policies(), "fp2", NOW + timedelta(days=day)))
    assert len(compliance.history(connection, first.data_product, ENVIRONMENT)) == compliance.HISTORY_LIMIT
    assert compliance.checked_pairs(connection) == [(first.data_product, ENVIRONMENT)]
    compliance.forget(connection, first.data_product, ENVIRONMENT)
    assert compliance.load(connection, first.data_product, ENVIRONMENT) is None
    assert compliance.checked_pairs(connection) == []
    assert len(compliance.history(connection, first.data_product, ENVIRONMENT)) == compliance.HISTORY_LIMIT


def test_what_is_due_is_decided_from_the_last_round_and_the_deployments():
    assert full_check_due(RoundState(), "a", 86400, NOW) == "first check"
    assert full_check_due(RoundState("a", "2026-05-01T11:00:00Z"), "b", 86400, NOW) == "the policies changed"
    assert full_check_due(RoundState("a", "2026-05-01T11:00:00Z"), "a", 86400, NOW) is None
    assert full_check_due(RoundState("a", "2026-04-30T12:00:00Z"), "a", 86400, NOW) == (
        "the last check is older than 86400 s")
    assert full_check_due(RoundState("a", "2026-04-01T12:00:00Z"), "a", 0, NOW) is None  # periodic check off
    deployed_now = {("p", "dev"): "d2", ("p", "prod"): "d1", ("q", "dev"): "d3"}
    checked = {("p", "dev"): "d1", ("p", "prod"): "d1"}
    assert unchecked(deployed_now, checked, [("p", "dev"), ("p", "prod"), ("r", "qa")]) == {
        "p": ["dev"], "q": ["dev"], "r": ["qa"]}
    first, again = (ComplianceResult("p", "dev", at, "fp") for at in ("2026-05-01T12:00:00Z", "2026-05-02T11:00:00Z"))
    assert record_history(None, first) is True and record_history(first, again) is False


# ---------------------------------------------------------------------- the round, on a real RQ worker


def set_deployed(engine: Engine, data_product: str, environment: str, descriptor: dict[str, Any],
                 deployment: str) -> None:
    engine.store.set_product(data_product, environment, status="DEPLOYED", deployment=deployment,
                             deployed=deployed_record(descriptor, "1.0.0", deployment, "2026-05-01T11:00:00Z",
                                                      "DEPLOYED"))


def run_round(engine: Engine) -> str:
    """Enqueue a compliance round and wait for it and every check it queued."""
    queue = Queue(QUEUE_NAME, connection=engine.redis, serializer=JSONSerializer)
    job = queue.enqueue(COMPLIANCE_JOB)
    wait_for(lambda: job.get_status(refresh=True) in ("finished", "failed"), 60, "the compliance round")
    assert job.get_status() == "finished", engine.log("w0")
    wait_for(lambda: not list(engine.redis.scan_iter(match="meshbot:compliance-pending:*")) and queue.count == 0,
             300, "the compliance checks")
    return str(job.return_value())


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$MESHBOT_CONFIG with a policy folder (the workers inherit it); the folder, empty."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (tmp_path / "meshbot.yaml").write_text("policies: [policies]\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    return folder


def test_a_round_checks_everything_once_then_only_when_the_policies_or_a_deployment_change(
        start: Start, configured: Path) -> None:
    running = start(1)
    descriptor = example_descriptor().data
    product = str(descriptor["id"])
    set_deployed(running, product, ENVIRONMENT, descriptor, "d1")
    queue = Queue(QUEUE_NAME, connection=running.redis, serializer=JSONSerializer)
    assert start_compliance_sweep(queue) is not None  # something is deployed: a round starts
    wait_for(lambda: compliance.load(running.redis, product, ENVIRONMENT) is not None, 60, "the first check")
    assert running.redis.exists(f"meshbot:periodic:{COMPLIANCE}:next")  # the next round is scheduled
    first = compliance.load(running.redis, product, ENVIRONMENT)
    assert first is not None and first.outcome == "compliant" and first.deployment == "d1"

    assert run_round(running).startswith("policies unchanged: 0 data product(s)")
    assert compliance.load(running.redis, product, ENVIRONMENT) == first

    policy_folder(configured)  # an enabled policy the deployed example fails
    assert run_round(running) == "the policies changed: 1 data product(s), 1 compliance check(s) queued"
    changed = compliance.load(running.redis, product, ENVIRONMENT)
    assert changed is not None and changed.outcome == "non_compliant" and changed.fingerprint != first.fingerprint
    assert [entry.outcome for entry in compliance.history(running.redis, product, ENVIRONMENT)] == [
        "non_compliant", "compliant"]

    set_deployed(running, product, ENVIRONMENT, descriptor, "d2")  # a new deployment: checked at the next round
    assert run_round(running).startswith("policies unchanged: 1 data product(s)")
    assert compliance.load(running.redis, product, ENVIRONMENT).deployment == "d2"
    running.store.set_product(product, ENVIRONMENT, status="NOT_DEPLOYED", deployment="d3")  # as an undeploy does
    running.store.drop_product_fields(product, ENVIRONMENT, "deployed")  # undeployed: its result is dropped
    run_round(running)
    assert compliance.load(running.redis, product, ENVIRONMENT) is None
    assert compliance.checked_products(running.redis) == set()  # no issue to close: no longer followed
    scraped = render(running.redis).decode()
    assert 'meshbot_compliance_checks_total{environment="development",outcome="compliant"} 1.0' in scraped
    assert 'meshbot_compliance_checks_total{environment="development",outcome="non_compliant"} 2.0' in scraped


def test_two_hundred_deployed_products_are_checked_in_one_round(start: Start, configured: Path) -> None:
    running = start(2)
    base = example_descriptor().data
    for index in range(200):
        product = f"urn:dmb:dp:finance:cashflow{index}:1"
        set_deployed(running, product, ENVIRONMENT, {**base, "id": product}, f"d{index}")
    began = time.monotonic()
    assert run_round(running) == "first check: 200 data product(s), 200 compliance check(s) queued"
    seconds = time.monotonic() - began
    print(f"200 deployed data products checked in {seconds:.1f} s on 2 workers")
    assert len(compliance.checked_pairs(running.redis)) == 200
    assert seconds < 120


def test_a_round_with_unreadable_policies_says_so_and_checks_nothing(redis_engine, tmp_path):
    from bot.config import ServerConfig
    from handlers.compliance import run_sweep

    folder = policy_folder(tmp_path / "policies")
    (folder / "broken.yaml").write_text("id: broken\nstatus: sometimes\n")
    set_deployed(redis_engine, "urn:dmb:dp:a:b:1", ENVIRONMENT, example_descriptor().data, "d1")
    queue = Queue(QUEUE_NAME, connection=redis_engine.redis, serializer=JSONSerializer)
    message = run_sweep(queue, ServerConfig(policy_folders=[folder]), NOW)
    assert message.startswith("the policies cannot be read: ") and "broken.yaml" in message, message
    assert queue.count == 0 and compliance.round_state(redis_engine.redis) == RoundState()


def test_a_remote_policy_left_unanswered_is_neither_blocking_nor_compliant():
    from policies.model import PolicyResult, Severity, Status

    unanswered = PolicyResult("tier", "Tier set", "urn:dmb:dp:a:b:1", Severity.ERROR, Status.ENABLED,
                              engine_error="engine cue: no answer within 10 s")
    assert unanswered.blocking  # a deploy fails closed
    finding = compliance.finding_of(unanswered)
    assert finding is not None and (finding.category, finding.blocking, finding.messages) == (
        "unanswered", False, ("engine cue: no answer within 10 s",))
    result = ComplianceResult("urn:dmb:dp:a:b:1", ENVIRONMENT, "2026-05-01T12:00:00Z", "fp", findings=(finding,))
    assert (result.outcome, result.compliant, result.needs_attention) == ("unknown", True, False)
    assert result.summary() == "unknown: 1 unanswered"
