"""`meshbot policies test DIR` for real: `python -m bot.cli` on a real Redis holding deployed records, one data
product's repository served by the local GitHub test server (positions), one on a GitLab it has no token for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bot.descriptor.assembly import assemble
from bot.engine.deployed import DEPLOYED_FIELD, deployed_record
from bot.engine.deployment import Operation
from bot.engine.store import Deployment, Store, new_deployment_id
from tests.cli.test_deploy import Meshbot
from tests.deploy_harness import Engine
from tests.servers.github import GitHubServer, github_server
from vcs.memory import MemoryRepository
from vcs.reader import RevisionReader

# Lines: 1 apiVersion ... 9 mesh / 10 version / 11 tier (its value at column 11)
SYSTEM = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: {domain}.{name}.1
spec:
  type: dataproduct
  owner: group:{domain}
  domain: {domain}
  mesh:
    version: 1.0.0
    tier: {tier}
"""
TIER_POLICY = """\
id: gold-or-silver
description: A deployed data product is gold or silver
target: dataproduct
severity: error
status: draft
schema:
  properties:
    tier:
      enum: [gold, silver]
      x-message: the tier must be gold or silver
"""
OWNER_POLICY = """\
id: owned
description: Every data product names its owner group
target: dataproduct
severity: warning
status: enabled
schema:
  required: [devGroup]
"""
CASHFLOW = "urn:dmb:dp:finance:cashflow:1"
ORDERS = "urn:dmb:dp:sales:orders:1"
LEDGER = "urn:dmb:dp:finance:ledger:1"


def files(domain: str, name: str, tier: str) -> dict[str, bytes]:
    """A one-file data product repository."""
    return {"catalog-info.yaml": SYSTEM.format(domain=domain, name=name, tier=tier).encode()}


def deploy_record(connection: redis.Redis, content: dict[str, bytes], environment: str,
                  report_to: dict[str, str] | None) -> str:
    """Record content's descriptor for environment as deployed (as the engine leaves a successful deploy)."""
    repository = MemoryRepository("any/thing", content)
    descriptor = assemble(RevisionReader(repository, repository.branch_head("main") or ""), environment).data
    deployment = Deployment(id=new_deployment_id(), data_product=descriptor["id"], environment=environment,
                            version="1.0.0", operation=Operation.DEPLOY, descriptor=descriptor, tasks=[],
                            started_by="test", report_to=report_to)
    store = Store(connection)
    store.create(deployment)
    store.set_product(deployment.data_product, environment, status="DEPLOYED", version="1.0.0",
                      deployment=deployment.id, **{DEPLOYED_FIELD: deployed_record(
                          descriptor, "1.0.0", deployment.id, "2026-01-01T00:00:00Z", "DEPLOYED")})
    return deployment.id


def deploy_three(connection: redis.Redis, github: GitHubServer, monkeypatch: pytest.MonkeyPatch,
                 with_ledger: bool = True) -> str:
    """Deploy cashflow (its repository on the GitHub test server, which the forge client is pointed at), orders (on a
    GitLab meshbot has no token for) and, with_ledger, ledger (deployed from the command line); cashflow's sha."""
    cashflow = files("finance", "cashflow", "bronze")
    sha = github.create_repository("acme/cashflow", cashflow).branch_head("main") or ""
    deploy_record(connection, cashflow, "development",
                  {"forge": "github", "project": "acme/cashflow", "sha": sha, "context": "meshbot/deploy/dev"})
    deploy_record(connection, files("sales", "orders", "bronze"), "production",
                  {"forge": "gitlab", "project": "acme/orders", "sha": "b" * 40})
    if with_ledger:
        deploy_record(connection, files("finance", "ledger", "gold"), "production", None)
    monkeypatch.setenv("MESHBOT_GITHUB_TOKEN", github.token)
    monkeypatch.setenv("MESHBOT_GITHUB_API_URL", github.api_url)
    monkeypatch.delenv("MESHBOT_GITLAB_TOKEN", raising=False)
    return sha


@dataclass
class Deployed:
    """Three deployed data products (cashflow from GitHub, orders from an unreachable GitLab, ledger passes)."""

    meshbot: Meshbot
    config: str
    github: GitHubServer
    sha: str
    policies: Path


@pytest.fixture
def deployed(meshbot: Meshbot, redis_engine: Engine, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    with github_server() as github:
        sha = deploy_three(redis_engine.redis, github, monkeypatch)
        server = tmp_path / "server-policies"
        server.mkdir()
        (server / "owned.yaml").write_text(OWNER_POLICY)
        config = meshbot.config(f"redis_url: {redis_engine.url}\npolicies: [{server}]\n"
                                "environments: [development, production]\n")
        policies = tmp_path / "trial"
        policies.mkdir()
        (policies / "tier.yaml").write_text(TIER_POLICY)
        yield Deployed(meshbot, config, github, sha, policies)


def test_a_new_draft_policy_lists_the_two_failing_products_with_positions_where_reachable(deployed: Deployed) -> None:
    result = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("meshbot policies test: 1 policy on 3 deployed data products in every environment ")
    assert "gold-or-silver (new, draft, error): would block 2 resources" in lines
    at = lines.index(f"  ✗ {CASHFLOW} 1.0.0 in development: {CASHFLOW} from github:acme/cashflow@{deployed.sha[:8]}")
    assert lines[at + 1] == "      catalog-info.yaml:11:11: the tier must be gold or silver (at tier)"
    at = lines.index(f"  ✗ {ORDERS} 1.0.0 in production: {ORDERS} (no position: repository not reachable: "
                     f"gitlab:acme/orders@bbbbbbbb: MESHBOT_GITLAB_TOKEN is not set: give meshbot a GitLab access "
                     "token)")
    assert lines[at + 1] == "      the tier must be gold or silver (at tier)"
    assert LEDGER not in result.stdout
    assert lines[-1] == "2 deployed data products would fail"


def test_env_filters_and_json_has_the_positions(deployed: Deployed) -> None:
    result = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config,
                              "--env", "production", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert (document["version"], document["environment"], document["deployed"], document["failing"]) == (
        1, "production", 2, 1)
    [policy] = document["policies"]
    assert {key: policy[key] for key in ("id", "status", "severity", "change", "would", "graceUntil")} == {
        "id": "gold-or-silver", "status": "draft", "severity": "error", "change": "new", "would": "would block",
        "graceUntil": None}
    [failure] = policy["failing"]
    assert (failure["dataProduct"], failure["environment"], failure["repository"]) == (ORDERS, "production", None)
    assert failure["noPosition"].startswith("repository not reachable: gitlab:acme/orders@bbbbbbbb: ")
    assert failure["errors"] == [{"message": "the tier must be gold or silver", "path": "tier", "file": None,
                                  "line": None, "column": None}]

    everywhere = json.loads(deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config,
                                             "--format", "json").stdout)
    cashflow = next(item for item in everywhere["policies"][0]["failing"] if item["dataProduct"] == CASHFLOW)
    assert cashflow["repository"] == {"forge": "github", "project": "acme/cashflow", "sha": deployed.sha}
    assert (cashflow["noPosition"], cashflow["errors"][0]["file"], cashflow["errors"][0]["line"],
            cashflow["errors"][0]["column"]) == (None, "catalog-info.yaml", 11, 11)


def test_a_policy_every_product_passes_exits_zero_and_is_compared_with_the_server(deployed: Deployed) -> None:
    (deployed.policies / "tier.yaml").unlink()
    (deployed.policies / "owned.yaml").write_text(OWNER_POLICY)
    result = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "owned (unchanged, enabled, warning): passes everywhere (it warns on failure)" in result.stdout
    assert result.stdout.endswith("\nno deployed data product would fail\n")

    (deployed.policies / "owned.yaml").write_text(OWNER_POLICY.replace("severity: warning", "severity: error"))
    changed = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "owned (changed, enabled, error): passes everywhere (it blocks on failure)" in changed.stdout


def test_a_bad_policy_file_exits_two_with_its_position(deployed: Deployed) -> None:
    bad = deployed.policies / "bad.yaml"
    bad.write_text(TIER_POLICY.replace("id: gold-or-silver", "id: other").replace("status: draft", "status: maybe"))
    result = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{bad}:5:9: field 'status': 'maybe' is not one of draft, grace, enabled\n"
    as_json = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config,
                               "--format", "json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {"errors": [{
        "message": "field 'status': 'maybe' is not one of draft, grace, enabled", "file": str(bad), "line": 5,
        "column": 9}]}


def test_an_unknown_environment_or_an_empty_folder_is_an_input_error(deployed: Deployed, tmp_path: Path) -> None:
    unknown = deployed.meshbot("policies", "test", str(deployed.policies), "--config", deployed.config, "--env", "qa")
    assert (unknown.returncode, unknown.stderr) == (2, "meshbot: environment 'qa' is not in the server configuration "
                                                       "(known: development, production)\n")
    bare = deployed.meshbot("policies")
    assert bare.returncode == 2 and "test" in bare.stderr and bare.stdout == ""
    (tmp_path / "empty").mkdir()
    empty = deployed.meshbot("policies", "test", str(tmp_path / "empty"), "--config", deployed.config)
    assert (empty.returncode, empty.stderr) == (2, f"{tmp_path / 'empty'}: no policy files (*.yaml, *.yml) in this "
                                                   "folder\n")
