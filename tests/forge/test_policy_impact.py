"""Policy impact: the pure decisions, positions from repositories of an in-memory forge, and the deployed records read
from a real Redis."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed
from bot.forge.policy_impact import (
    CHANGED,
    NEW,
    UNCHANGED,
    WOULD_BLOCK,
    WOULD_WARN,
    Origin,
    Positions,
    assess,
    change,
    deployed_descriptors,
    impact_json,
    impacts,
    origin_of,
    same_descriptor,
    trial,
    verdict,
)
from policies.loader import load_policy_file
from policies.model import Policy, Severity, Status, Target
from tests.cli.test_policies_test import TIER_POLICY, deploy_record, files
from tests.deploy_harness import Engine
from vcs.base import ForgeError
from vcs.memory import MemoryForge
from vcs.reader import RevisionReader

TODAY = date(2026, 12, 6)


def policy(status: Status, severity: Severity = Severity.ERROR, grace_until: date | None = None) -> Policy:
    return Policy(id="p", description="d", target=Target.DATA_PRODUCT, severity=severity, status=status, file="p.yaml",
                  grace_until=grace_until)


@pytest.mark.parametrize(("status", "severity", "grace_until", "expected"), [
    (Status.DRAFT, Severity.ERROR, None, WOULD_BLOCK),
    (Status.DRAFT, Severity.WARNING, None, WOULD_WARN),
    (Status.ENABLED, Severity.ERROR, None, WOULD_BLOCK),
    (Status.ENABLED, Severity.INFO, None, WOULD_WARN),
    (Status.GRACE, Severity.ERROR, None, WOULD_WARN),
    (Status.GRACE, Severity.ERROR, date(2027, 3, 1), WOULD_WARN),
    (Status.GRACE, Severity.ERROR, TODAY, WOULD_BLOCK),
])
def test_verdict_follows_status_grace_date_and_severity(status, severity, grace_until, expected) -> None:
    assert verdict(policy(status, severity, grace_until), TODAY) == expected


def test_change_and_trial() -> None:
    server = {"a": b"one", "b": b"two"}
    assert [change("a", b"one", server), change("b", b"other", server), change("c", b"x", server)] == [
        UNCHANGED, CHANGED, NEW]
    tried = trial([policy(Status.DRAFT), policy(Status.GRACE)])
    assert [item.status for item in tried] == [Status.ENABLED, Status.GRACE]


def test_origin_of_names_the_repository_or_why_not() -> None:
    assert origin_of({"forge": "github", "project": "a/b", "sha": "c" * 40}) == Origin("github", "a/b", "c" * 40)
    assert origin_of(None) == "the deployment names no repository (deployed from the command line)"
    assert origin_of({"forge": "github", "project": "a/b"}) == "the deployment record names no repository and commit"


def test_same_descriptor_compares_the_stored_json() -> None:
    assert same_descriptor({"a": [1, {"b": date(2026, 1, 1)}]}, {"a": [1, {"b": "2026-01-01"}]})
    assert not same_descriptor({"a": 1}, {"a": 2})


def deployed_of(content: dict[str, bytes], environment: str = "development") -> Deployed:
    forge = MemoryForge()
    repository = forge.add("x/y", content)
    data = assemble(RevisionReader(repository, repository.branch_head("main") or ""), environment).data
    return Deployed(data_product=data["id"], environment=environment, descriptor=data, version="1.0.0")


def test_positions_come_from_a_reachable_repository_and_the_reason_otherwise(tmp_path: Path) -> None:
    forge = MemoryForge()
    bronze = files("finance", "cashflow", "bronze")
    sha = forge.add("acme/cashflow", bronze).branch_head("main") or ""

    def read(origin: Origin, environment: str) -> Descriptor:
        repository = forge.repository(origin.project)  # ForgeError 404 for an unknown project
        return assemble(RevisionReader(repository, origin.sha), environment)

    positions = Positions(read, max_repositories=2, per="per page view")
    deployed = deployed_of(bronze)
    reachable = positions.evaluable(deployed, Origin("github", "acme/cashflow", sha))
    assert (reachable.origin, reachable.no_position) == (Origin("github", "acme/cashflow", sha), None)
    missing = positions.evaluable(deployed, Origin("github", "acme/gone", sha))
    assert missing.no_position == f"repository not reachable: github:acme/gone@{sha[:8]}: no repository acme/gone"
    capped = positions.evaluable(deployed, Origin("github", "acme/third", sha))
    assert capped.no_position == "repository not read: at most 2 repositories are read per page view"
    assert positions.skipped == {("github", "acme/third", sha)}
    other = positions.evaluable(deployed_of(files("finance", "cashflow", "gold")), Origin("github", "acme/cashflow",
                                                                                          sha))
    assert other.no_position == f"github:acme/cashflow@{sha[:8]} no longer assembles the deployed descriptor"
    assert positions.evaluable(deployed, "why not").no_position == "why not"

    def unreachable(origin: Origin, environment: str) -> Descriptor:
        raise ForgeError("HTTP 502")

    assert Positions(unreachable).evaluable(deployed, Origin("gitlab", "a/b", "d" * 40)).no_position == (
        "repository not reachable: gitlab:a/b@dddddddd: HTTP 502")

    tier = tmp_path / "tier.yaml"
    tier.write_text(TIER_POLICY)
    found = impacts([load_policy_file(tier)], [reachable, missing], TODAY, {"gold-or-silver": NEW})
    [impact] = found
    assert (impact.would, impact.change, len(impact.failing)) == (WOULD_BLOCK, NEW, 2)
    assert [str(error.position) for failure in impact.failing for error in failure.errors] == [
        "catalog-info.yaml:11:11", "None"]
    document = impact_json(found, TODAY, None, 2)
    assert (document["failing"], document["today"], document["policies"][0]["failing"][1]["noPosition"]) == (
        1, "2026-12-06", missing.no_position)


def test_deployed_descriptors_read_from_redis_with_their_origin(redis_engine: Engine) -> None:
    connection = redis_engine.redis
    deploy_record(connection, files("finance", "cashflow", "bronze"), "development",
                  {"forge": "github", "project": "acme/cashflow", "sha": "a" * 40})
    deploy_record(connection, files("finance", "ledger", "gold"), "production", None)
    found = deployed_descriptors(connection)
    assert [(item.data_product, item.environment, origin) for item, origin in found] == [
        ("urn:dmb:dp:finance:cashflow:1", "development", Origin("github", "acme/cashflow", "a" * 40)),
        ("urn:dmb:dp:finance:ledger:1", "production", "the deployment names no repository (deployed from the "
                                                      "command line)")]
    assert [item.data_product for item, _ in deployed_descriptors(connection, "production")] == [
        "urn:dmb:dp:finance:ledger:1"]
    assert deployed_descriptors(connection, visible={"urn:dmb:dp:finance:ledger:1"})[0][0].environment == "production"


def test_assess_reads_only_the_repositories_of_failing_products(redis_engine: Engine, tmp_path: Path) -> None:
    connection = redis_engine.redis
    for name, tier in (("cashflow", "bronze"), ("ledger", "gold")):
        deploy_record(connection, files("finance", name, tier), "development",
                      {"forge": "github", "project": f"acme/{name}", "sha": "a" * 40})
    asked: list[Origin] = []

    def read(origin: Origin, environment: str) -> Descriptor:
        asked.append(origin)
        raise ForgeError("offline")

    tier = tmp_path / "tier.yaml"
    tier.write_text(TIER_POLICY)
    [impact] = assess([load_policy_file(tier)], deployed_descriptors(connection), Positions(read), TODAY)
    assert asked == [Origin("github", "acme/cashflow", "a" * 40)]
    assert [(failure.data_product, failure.no_position) for failure in impact.failing] == [
        ("urn:dmb:dp:finance:cashflow:1", f"repository not reachable: github:acme/cashflow@{'a' * 8}: offline")]
