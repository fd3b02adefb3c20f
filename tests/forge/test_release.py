"""Release tags through the in-memory forge and a real Redis: version check, governance, deploy request, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.config import AdapterSettings, ServerConfig
from bot.engine.deployment import DeploymentState
from bot.forge.release import deploy_context, release, report_outcome, tag_version
from policies.loader import load_policies
from tests.vcs.test_reader import example_files
from vcs.base import CommitState
from vcs.base import DeploymentState as ForgeDeploymentState
from vcs.memory import MemoryForge, MemoryRepository

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
ADAPTERS = [AdapterSettings(STORAGE_TEMPLATE_ID, "http://127.0.0.1:9/a"),
            AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, "http://127.0.0.1:9/a")]


@pytest.mark.parametrize(("pattern", "tag", "version"), [
    ("v{version}", "v1.2.0", "1.2.0"),
    ("v{version}", "v1.2.0-rc.1+build.5", "1.2.0-rc.1+build.5"),
    ("v{version}", "1.2.0", None),
    ("v{version}", "v1.2", None),
    ("v{version}", "v01.2.0", None),
    ("v{version}", "nightly", None),
    ("v{version}", "v", None),
    ("release-{version}-final", "release-2.0.0-final", "2.0.0"),
    ("{version}", "3.1.4", "3.1.4"),
])
def test_the_version_a_tag_names(pattern, tag, version):
    assert tag_version(pattern, tag) == version


@pytest.fixture
def repository() -> MemoryRepository:
    return MemoryForge().add("acme/cashflow", example_files())


def run(repository: MemoryRepository, redis_engine, tag: str, config: ServerConfig | None = None, policies=None):
    sha = repository.branch_head("main")
    steps = release(repository, redis_engine.redis, forge="github", project="acme/cashflow", tag=tag, sha=sha,
                    config=config or ServerConfig(adapters=ADAPTERS), policies=policies or load_policies(),
                    status_url="https://meshbot.example.com/status")
    return sha, steps


def test_a_release_tag_requests_a_deployment_and_reports_its_end(repository, redis_engine):
    sha, [step] = run(repository, redis_engine, "v1.0.0")
    assert (step.environment, step.state) == ("production", CommitState.PENDING)
    status = repository.status(sha, deploy_context("production"))
    assert status.state is CommitState.PENDING and step.deployment_id in status.description
    [record] = repository.deployments.values()
    assert (record.sha, record.environment) == (sha, "production")
    assert record.states[0][0] is ForgeDeploymentState.IN_PROGRESS
    deployment = redis_engine.store.load(step.deployment_id)
    assert deployment.version == "1.0.0" and deployment.started_by == "github:acme/cashflow@v1.0.0"
    assert deployment.report_to["record"] == record.id

    redis_engine.store.set_state(deployment.id, DeploymentState.DEPLOYED, "3 completed")
    report_outcome(repository, redis_engine.store.load(deployment.id))
    ended = repository.status(sha, deploy_context("production"))
    assert (ended.state, ended.description) == (CommitState.SUCCESS, "DEPLOYED: 3 completed")
    assert record.states[-1][:2] == (ForgeDeploymentState.SUCCESS, "DEPLOYED: 3 completed")


def test_a_corrupt_end_is_an_error(repository, redis_engine):
    sha, [step] = run(repository, redis_engine, "v1.0.0")
    redis_engine.store.set_state(step.deployment_id, DeploymentState.CORRUPT, "1 failed: disk full")
    report_outcome(repository, redis_engine.store.load(step.deployment_id))
    assert repository.status(sha, deploy_context("production")).state is CommitState.ERROR


def test_a_tag_whose_version_differs_is_refused_and_nothing_deploys(repository, redis_engine):
    sha, [step] = run(repository, redis_engine, "v1.1.0")
    status = repository.status(sha, deploy_context("production"))
    assert (status.state, status.description) == (
        CommitState.ERROR, "nothing deployed: tag v1.1.0 names version 1.1.0, the descriptor says '1.0.0'")
    assert step.deployment_id is None and repository.deployments == {}
    assert redis_engine.store.history(PRODUCT, "production") == []


def test_a_tag_that_is_not_a_release_says_nothing(repository, redis_engine):
    sha, steps = run(repository, redis_engine, "nightly")
    assert steps == [] and repository.statuses == []


def test_every_release_environment_gets_its_status(repository, redis_engine):
    config = ServerConfig(adapters=ADAPTERS, release_environments=["staging", "production"])
    sha, steps = run(repository, redis_engine, "v1.0.0", config)
    assert [(step.environment, step.state) for step in steps] == [
        ("staging", CommitState.PENDING), ("production", CommitState.PENDING)]
    assert {record.environment for record in repository.deployments.values()} == {"staging", "production"}


def test_malformed_yaml_at_the_tag_is_an_error_naming_the_place(repository, redis_engine):
    repository.push("main", {"catalog-info.yaml": b"kind: System\nmetadata: [unclosed\n"})
    sha, [step] = run(repository, redis_engine, "v1.0.0")
    assert step.state is CommitState.ERROR
    assert step.description.startswith("nothing deployed: catalog-info.yaml:3:1:")
    assert len(repository.status(sha, deploy_context("production")).description) <= 140


def test_an_unserved_template_is_an_error(repository, redis_engine):
    sha, [step] = run(repository, redis_engine, "v1.0.0", ServerConfig(adapters=ADAPTERS[:1]))
    assert step.state is CommitState.ERROR and "no tech adapter" in step.description.lower()


def test_an_unknown_environment_is_an_error(repository, redis_engine):
    config = ServerConfig(adapters=ADAPTERS, environments={"development": {}}, release_environments=["production"])
    sha, [step] = run(repository, redis_engine, "v1.0.0", config)
    assert step.state is CommitState.ERROR and "not in the server configuration" in step.description


def test_a_blocking_policy_deploys_nothing(repository, redis_engine, tmp_path: Path):
    (tmp_path / "needs-sla.yaml").write_text(
        "id: needs-sla\ndescription: every data product states its SLA\ntarget: dataproduct\n"
        "severity: error\nstatus: enabled\nschema:\n  type: object\n  required: [sla]\n")
    sha, [step] = run(repository, redis_engine, "v1.0.0", policies=load_policies([tmp_path]))
    assert (step.state, step.description) == (
        CommitState.FAILURE, "nothing deployed: 1 blocking governance failure: needs-sla")
    assert repository.deployments == {}


def test_a_release_job_run_again_never_deploys_twice(repository, redis_engine):
    sha, [first] = run(repository, redis_engine, "v1.0.0")
    _, [again] = run(repository, redis_engine, "v1.0.0")
    assert again.deployment_id == first.deployment_id and again.state is CommitState.PENDING
    assert len(repository.deployments) == 1 and len(redis_engine.store.history(PRODUCT, "production")) == 1
    redis_engine.store.set_state(first.deployment_id, DeploymentState.DEPLOYED, "3 completed")
    _, [after] = run(repository, redis_engine, "v1.0.0")
    assert after.state is CommitState.SUCCESS
    assert repository.status(sha, deploy_context("production")).state is CommitState.SUCCESS
