"""The console's /policies/impact page and its JSON twin: the configured draft and grace policies on a real Redis's
deployed records, positions read from the local GitHub test server, the reason where a repository is unreachable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import create_app
from bot.console.policy_impact import about_to_switch, impact_document
from bot.descriptor.model import Descriptor
from bot.forge.policy_impact import Origin
from policies.loader import load_policy_file
from policies.model import Policy, Severity, Status, Target
from tests.cli.test_policies_test import CASHFLOW, LEDGER, ORDERS, TIER_POLICY, deploy_record, deploy_three, files
from tests.deploy_harness import Engine
from tests.servers.github import github_server
from vcs.base import ForgeError
from vcs.factory import forget

TOKEN = "impact-operator-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
GRACE_POLICY = """\
id: versioned
description: Every data product has a version
target: dataproduct
severity: error
status: grace
grace_until: 2099-01-01
schema:
  required: [version]
"""
ENABLED_POLICY = """\
id: gold-only
description: Only gold data products
target: dataproduct
severity: error
status: enabled
schema:
  properties:
    tier:
      const: gold
"""


@dataclass
class Console:
    """A served console over three deployed products: cashflow (GitHub, bronze), orders (GitLab, bronze), ledger."""

    client: FlaskClient
    engine: Engine
    sha: str


@pytest.fixture
def served(redis_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, text in (("tier", TIER_POLICY), ("versioned", GRACE_POLICY), ("gold", ENABLED_POLICY)):
        (folder / f"{name}.yaml").write_text(text)
    (tmp_path / "meshbot.yaml").write_text("policies: [policies]\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    with github_server() as github:
        sha = deploy_three(redis_engine.redis, github, monkeypatch)
        forget()  # the forge clients are built once per process, from the environment
        try:
            yield Console(create_app(redis_connection=redis_engine.redis).test_client(), redis_engine, sha)
        finally:
            forget()


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def test_the_api_lists_draft_and_grace_policies_with_their_failing_products(served: Console) -> None:
    assert served.client.get("/api/v1/policies/impact").status_code == 401
    document = served.client.get("/api/v1/policies/impact", headers=BEARER).get_json()
    assert [(policy["id"], policy["status"], policy["would"]) for policy in document["policies"]] == [
        ("gold-or-silver", "draft", "would block"), ("versioned", "grace", "would warn")]
    assert (document["deployed"], document["failing"], document["maxRepositories"]) == (3, 2, 10)
    assert document["policies"][1]["graceUntil"] == "2099-01-01"
    assert document["policies"][1]["failing"] == []  # every deployed descriptor has a version
    cashflow, orders = document["policies"][0]["failing"]
    assert (cashflow["dataProduct"], cashflow["repository"], cashflow["noPosition"]) == (
        CASHFLOW, {"forge": "github", "project": "acme/cashflow", "sha": served.sha}, None)
    assert cashflow["errors"] == [{"message": "the tier must be gold or silver", "path": "tier",
                                   "file": "catalog-info.yaml", "line": 11, "column": 11}]
    assert (orders["dataProduct"], orders["repository"]) == (ORDERS, None)
    assert orders["noPosition"] == ("repository not reachable: gitlab:acme/orders@bbbbbbbb: MESHBOT_GITLAB_TOKEN is "
                                    "not set: give meshbot a GitLab access token")


def test_the_page_shows_positions_and_reasons_and_the_policies_page_links_to_it(served: Console) -> None:
    refused = served.client.get("/policies/impact", headers=HTML)
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/login?next=")
    page = text(served.client.get("/policies/impact", headers={**HTML, **BEARER}))
    assert "<h1>Policy impact</h1>" in page
    assert '<code class="position">catalog-info.yaml:11:11</code> the tier must be gold or silver' in page
    assert f"from github:acme/cashflow @ {served.sha[:8]}" in page
    assert "no position: repository not reachable: gitlab:acme/orders@bbbbbbbb" in page
    assert LEDGER not in page and "gold-only" not in page  # passes; enabled policies are not about to switch
    assert "blocks from 2099-01-01" in page
    assert re.search(r'<td class="would">would block</td>', page)
    policies = text(served.client.get("/policies", headers={**HTML, **BEARER}))
    assert 'href="/policies/impact"' in policies


def test_only_visible_products_and_at_most_the_capped_repositories_are_read(redis_engine: Engine,
                                                                             tmp_path: Path) -> None:
    for name in ("cashflow", "ledger", "treasury"):
        deploy_record(redis_engine.redis, files("finance", name, "bronze"), "development",
                      {"forge": "github", "project": f"acme/{name}", "sha": "c" * 40})
    asked: list[str] = []

    def read(origin: Origin, environment: str) -> Descriptor:
        asked.append(origin.project)
        raise ForgeError("offline")

    tier = tmp_path / "tier.yaml"
    tier.write_text(TIER_POLICY)
    policies = [load_policy_file(tier)]
    visible = {CASHFLOW, LEDGER, "urn:dmb:dp:finance:treasury:1"}
    document = impact_document(redis_engine.redis, policies, visible, date(2026, 12, 6), read, max_repositories=2)
    assert asked == ["acme/cashflow", "acme/ledger"]
    assert document["notes"] == ["positions come from at most 2 repositories per page view: 1 more were not read "
                                 "(meshbot policies test reads them all)"]
    assert document["policies"][0]["failing"][2]["noPosition"] == (
        "repository not read: at most 2 repositories are read per page view")
    hidden = impact_document(redis_engine.redis, policies, {LEDGER}, date(2026, 12, 6), read)
    assert [failure["dataProduct"] for failure in hidden["policies"][0]["failing"]] == [LEDGER]


def test_about_to_switch_keeps_draft_and_grace_policies() -> None:
    made = [Policy(id=str(status), description="", target=Target.DATA_PRODUCT, severity=Severity.ERROR, status=status,
                   file="") for status in Status]
    assert [policy.id for policy in about_to_switch(made)] == ["draft", "grace"]
