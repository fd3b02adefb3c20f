"""Promotion between release stages through the in-memory forge and a real Redis (no worker: ends are set by hand).

The texts meshbot writes (the merge request's description, its comments) are golden files in tests/fixtures/comments/;
after an intended change of wording regenerate them with `MESHBOT_REGENERATE_GOLDEN=1` and read the diff.
"""

from __future__ import annotations

import pytest

from bot.config import ReleaseStage, ServerConfig
from bot.engine.deployment import DeploymentState
from bot.forge.promotion import (
    PromotionRefused,
    ReleaseRecord,
    _reply,
    follow_up,
    needs_follow_up,
    parse_promotion_branch,
    promote,
    promotion_branch,
    promotion_description,
    read_release_file,
    release_file,
    report_promotion,
    stopped_status,
)
from bot.forge.release import deploy_context, release
from policies.loader import load_policies
from tests.engine.test_store import make_deployment
from tests.forge.test_release import ADAPTERS, PRODUCT
from tests.forge.test_review_comments import assert_golden
from tests.vcs.test_reader import example_files
from vcs.base import CommitState
from vcs.memory import MemoryForge, MemoryRepository

SHA = "0123456789abcdef0123456789abcdef01234567"
RECORD = ReleaseRecord(data_product=PRODUCT, environment="production", version="1.0.0", tag="v1.0.0", commit=SHA,
                       promoted_from="qa", deployment="1767261600000-0a1b2c3d")
BRANCH = "meshbot/promote/production/1.0.0"


def stages(promotion: str = "merge-request") -> ServerConfig:
    return ServerConfig(adapters=ADAPTERS, release_environments=["qa", "production"],
                        release_stages=[ReleaseStage("qa"), ReleaseStage("production", "qa", promotion)])


# ---------------------------------------------------------------------- names and the release file


def test_promotion_branches_name_the_environment_and_version():
    assert promotion_branch("production", "1.2.0-rc.1") == "meshbot/promote/production/1.2.0-rc.1"
    assert parse_promotion_branch("meshbot/promote/production/1.2.0-rc.1") == ("production", "1.2.0-rc.1")
    for branch in ("meshbot/promote/production", "meshbot/promote/production/v1.2.0", "feature/x",
                   "meshbot/promote/Prod uction/1.0.0", "meshbot/promote//1.0.0", "meshbot/import/1/ledger"):
        assert parse_promotion_branch(branch) is None, branch


def test_the_release_file_is_read_back_as_written():
    text = release_file(RECORD)
    assert text.startswith("# Written by meshbot: merging the merge request that changes this file deploys 1.0.0 "
                           "to production.\n")
    assert f"dataProduct: {PRODUCT}\n" in text and "promotedFrom:\n  stage: qa\n" in text
    assert read_release_file(text.encode(), "releases/production.yaml", "production") == RECORD


@pytest.mark.parametrize(("content", "reason"), [
    (b"version: [1.0.0\n", "releases/production.yaml is not valid YAML: releases/production.yaml:2:1: "),
    (b"- a\n- b\n", "releases/production.yaml is not a mapping"),
    (b"", "releases/production.yaml is not a mapping"),
    (b"version: 1.0.0\n", "releases/production.yaml lacks dataProduct, environment, tag, commit, promotedFrom.stage, "
                          "promotedFrom.deployment (each a non-empty string)"),
    (release_file(RECORD).replace("environment: production", "environment: qa").encode(),
     "releases/production.yaml names environment 'qa', not 'production'"),
    (release_file(RECORD).replace("version: 1.0.0", "version: latest").encode(),
     "releases/production.yaml: version 'latest' is not a semantic version"),
    (release_file(RECORD).replace(SHA, "main").encode(),
     "releases/production.yaml: commit 'main' is not a full commit sha"),
    (release_file(RECORD).replace("tag: v1.0.0", "tag: 7").encode(),
     "releases/production.yaml lacks tag (each a non-empty string)"),
])
def test_a_malformed_release_file_is_refused_saying_why(content, reason):
    with pytest.raises(PromotionRefused) as refused:
        read_release_file(content, "releases/production.yaml", "production")
    assert str(refused.value).startswith(reason), str(refused.value)


def test_a_stage_that_did_not_deploy_stops_the_chain():
    assert stopped_status("qa", DeploymentState.REFUSED) == (CommitState.FAILURE, "not promoted: qa ended REFUSED")
    assert stopped_status("qa", DeploymentState.CORRUPT) == (CommitState.ERROR, "not promoted: qa ended CORRUPT")
    assert stopped_status("qa", DeploymentState.PARTIALLY_DEPLOYED) == (
        CommitState.ERROR, "not promoted: qa ended PARTIALLY_DEPLOYED")


def test_the_promotion_texts_as_rendered():
    deployment = make_deployment("d9", environment="production", version="1.0.0",
                                 report_to={"tag": "v1.0.0", "promotion": {"number": 3}})
    deployment.state, deployment.message = DeploymentState.CORRUPT, "1 failed: disk *full* <b>"
    texts = [
        promotion_description(RECORD, "### the plan\n", "### the governance report\n", passed=True),
        promotion_description(RECORD, "### the plan\n", "### the governance report\n", passed=False),
        _reply("started", record=RECORD, deployment="d9"),
        _reply("refused", reason="tag v1.0.0 is unknown in this repository"),
        _reply("outcome", deployment=deployment, environment="production", state="CORRUPT", deployed=False,
               tag="v1.0.0", url="https://meshbot.example.com/status/x?env=production"),
        _reply("outcome", deployment=make_deployment("d8", environment="production", version="1.0.0"),
               environment="production", state="DEPLOYED", deployed=True, tag="v1.0.0", url=""),
        _reply("stopped", environment="production", after="qa", version="1.0.0", state="CORRUPT",
               message="1 failed: boom | <x>", deployment="d7"),
    ]
    assert_golden("promotion.md", "\n\n=====\n\n".join(texts) + "\n")


# ---------------------------------------------------------------------- the chain, through the in-memory forge


@pytest.fixture
def repository() -> MemoryRepository:
    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.tags["v1.0.0"] = repository.branches["main"]
    return repository


def tag_release(repository: MemoryRepository, redis_engine, config: ServerConfig):
    sha = repository.tags["v1.0.0"]
    steps = release(repository, redis_engine.redis, forge="github", project="acme/cashflow", tag="v1.0.0", sha=sha,
                    config=config, policies=load_policies(), status_url="https://meshbot.example.com/status")
    return sha, steps


def end(redis_engine, deployment_id: str, state: DeploymentState, message: str = ""):
    redis_engine.store.set_state(deployment_id, state, message)
    return redis_engine.store.load(deployment_id)


def test_a_tag_deploys_the_first_stage_and_the_next_one_waits(repository, redis_engine):
    sha, [qa, production] = tag_release(repository, redis_engine, stages())
    assert (qa.environment, qa.state) == ("qa", CommitState.PENDING) and qa.deployment_id
    assert (production.environment, production.state, production.deployment_id) == (
        "production", CommitState.PENDING, None)
    assert repository.status(sha, deploy_context("production")).description == "waits for qa"
    assert {record.environment for record in repository.deployments.values()} == {"qa"}
    assert redis_engine.store.history(PRODUCT, "production") == []
    deployment = redis_engine.store.load(qa.deployment_id)
    assert {key: deployment.report_to[key] for key in ("tag", "version", "stage", "sha")} == {
        "tag": "v1.0.0", "version": "1.0.0", "stage": "qa", "sha": sha}


def test_a_release_run_again_leaves_a_moved_stage_alone(repository, redis_engine):
    sha, _ = tag_release(repository, redis_engine, stages())
    repository.set_commit_status(sha, deploy_context("production"), CommitState.ERROR, "not promoted: qa ended CORRUPT")
    tag_release(repository, redis_engine, stages())
    assert repository.status(sha, deploy_context("production")).description == "not promoted: qa ended CORRUPT"


def test_qa_deployed_opens_one_promotion_merge_request(repository, redis_engine):
    sha, [qa, _] = tag_release(repository, redis_engine, stages())
    deployment = end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED, "3 completed")
    assert needs_follow_up(deployment, stages())
    [done] = follow_up(repository, redis_engine.redis, deployment, config=stages(), policies=load_policies())
    assert done == "production: waits for the merge of promotion merge request 1"
    [request] = repository.merge_requests.values()
    assert (request.source_branch, request.target_branch, request.author) == (BRANCH, "main", "meshbot")
    assert request.title == f"meshbot: promote {PRODUCT} 1.0.0 to production"
    assert request.description.startswith(
        "<!-- meshbot:promotion environment=production version=1.0.0 -->\n"
        f"### meshbot: promote `{PRODUCT}` `1.0.0` to `production`\n")
    assert "### meshbot plan for `production`: nothing deployed: 3 to add" in request.description
    assert "### meshbot governance: ✅ passed" in request.description
    written = read_release_file(repository.read_file(BRANCH, "releases/production.yaml"),
                                "releases/production.yaml", "production")
    assert written == ReleaseRecord(PRODUCT, "production", "1.0.0", "v1.0.0", sha, "qa", deployment.id)
    status = repository.status(sha, deploy_context("production"))
    assert (status.state, status.target_url) == (CommitState.PENDING, request.url)
    head = repository.branch_head(BRANCH)

    follow_up(repository, redis_engine.redis, deployment, config=stages(), policies=load_policies())  # a retry
    assert len(repository.merge_requests) == 1 and repository.branch_head(BRANCH) == head


def test_a_changed_release_file_on_the_branch_gets_a_commit_on_top(repository, redis_engine):
    _, [qa, _] = tag_release(repository, redis_engine, stages())
    deployment = end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED)
    follow_up(repository, redis_engine.redis, deployment, config=stages(), policies=load_policies())
    human = repository.push(BRANCH, {"releases/production.yaml": b"version: 9.9.9\n"})
    follow_up(repository, redis_engine.redis, deployment, config=stages(), policies=load_policies())
    head = repository.branch_head(BRANCH)
    assert head != human and human in repository.commits  # a new commit, the human's kept in the history
    assert read_release_file(repository.read_file(BRANCH, "releases/production.yaml"), "releases/production.yaml",
                             "production").version == "1.0.0"
    assert len(repository.merge_requests) == 1


def test_automatic_promotion_deploys_the_next_stage_from_the_same_commit(repository, redis_engine):
    config = stages("automatic")
    sha, [qa, _] = tag_release(repository, redis_engine, config)
    deployment = end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED)
    [done] = follow_up(repository, redis_engine.redis, deployment, config=config, policies=load_policies())
    assert done.startswith("production: pending deploying 1.0.0 to production (deployment ")
    [production] = redis_engine.store.history(PRODUCT, "production")
    requested = redis_engine.store.load(production)
    assert (requested.version, requested.report_to["sha"], requested.report_to["stage"]) == ("1.0.0", sha,
                                                                                              "production")
    assert repository.merge_requests == {}
    follow_up(repository, redis_engine.redis, deployment, config=config, policies=load_policies())  # a retry
    assert redis_engine.store.history(PRODUCT, "production") == [production]


@pytest.mark.parametrize(("state", "commit_state"), [
    (DeploymentState.CORRUPT, CommitState.ERROR), (DeploymentState.REFUSED, CommitState.FAILURE),
    (DeploymentState.PARTIALLY_DEPLOYED, CommitState.ERROR)])
def test_a_failed_stage_stops_the_chain(repository, redis_engine, state, commit_state):
    sha, [qa, _] = tag_release(repository, redis_engine, stages())
    deployment = end(redis_engine, qa.deployment_id, state, "1 failed: disk full")
    [done] = follow_up(repository, redis_engine.redis, deployment, config=stages(), policies=load_policies())
    status = repository.status(sha, deploy_context("production"))
    assert (status.state, status.description) == (commit_state, f"not promoted: qa ended {state}")
    assert done == f"production: not promoted: qa ended {state}"
    assert repository.merge_requests == {}


def test_a_failed_stage_tells_an_open_promotion_merge_request(repository, redis_engine):
    _, [qa, _] = tag_release(repository, redis_engine, stages())
    follow_up(repository, redis_engine.redis, end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED),
              config=stages(), policies=load_policies())
    failed = make_deployment("qa-again", environment="qa", version="1.0.0", report_to={
        **redis_engine.store.load(qa.deployment_id).report_to})
    failed.data_product, failed.state, failed.message = PRODUCT, DeploymentState.CORRUPT, "1 failed"
    follow_up(repository, redis_engine.redis, failed, config=stages(), policies=load_policies())
    [comment] = repository.comments(1)
    assert comment.body.startswith(
        "⛔ Not promoted: `qa` ended `CORRUPT` for `1.0.0` (deployment `qa-again`: 1 failed)")


# ---------------------------------------------------------------------- merging the promotion merge request


def promoted(repository: MemoryRepository, redis_engine, config: ServerConfig | None = None):
    """Tag, qa DEPLOYED, the promotion merge request opened and merged; (tag sha, merge sha)."""
    sha, [qa, _] = tag_release(repository, redis_engine, config or stages())
    follow_up(repository, redis_engine.redis, end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED),
              config=config or stages(), policies=load_policies())
    return sha, repository.merge(1)


def merged(repository: MemoryRepository, redis_engine, merge_sha: str, config: ServerConfig | None = None,
           branch: str = BRANCH, target: str = "main"):
    return promote(repository, redis_engine.redis, forge="github", project="acme/cashflow", number=1,
                   source_branch=branch, target_branch=target, merge_sha=merge_sha, config=config or stages(),
                   policies=load_policies(), status_url="https://meshbot.example.com/status")


def test_merging_deploys_the_stage_and_its_end_is_commented_once(repository, redis_engine):
    sha, merge_sha = promoted(repository, redis_engine)
    step = merged(repository, redis_engine, merge_sha)
    assert not isinstance(step, str) and step.state is CommitState.PENDING and step.deployment_id
    deployment = redis_engine.store.load(step.deployment_id)
    assert (deployment.environment, deployment.version, deployment.report_to["sha"]) == ("production", "1.0.0", sha)
    assert deployment.report_to["promotion"] == {"number": 1}
    assert deployment.started_by == "github:acme/cashflow@v1.0.0 !1"
    assert repository.status(sha, deploy_context("production")).state is CommitState.PENDING
    [started] = repository.comments(1)
    assert started.body.startswith("Promotion merged: deploying")
    record = next(record for record in repository.deployments.values() if record.environment == "production")
    assert (record.sha, record.tag) == (sha, "v1.0.0")

    ended = end(redis_engine, step.deployment_id, DeploymentState.DEPLOYED, "3 completed")
    assert report_promotion(repository, ended) and report_promotion(repository, ended)
    [_, outcome] = repository.comments(1)
    assert f"✅ Deployment `{step.deployment_id}`" in outcome.body and "ended `DEPLOYED`: 3 completed." in outcome.body

    again = merged(repository, redis_engine, merge_sha)  # the job run again: the same deployment
    assert not isinstance(again, str) and again.deployment_id == step.deployment_id


def refusal(repository: MemoryRepository) -> str:
    return repository.comments(1)[-1].body.removeprefix("Promotion merged, but meshbot deployed nothing: ")


def test_a_version_qa_never_deployed_is_refused(repository, redis_engine):
    sha, [qa, _] = tag_release(repository, redis_engine, stages())
    follow_up(repository, redis_engine.redis, end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED),
              config=stages(), policies=load_policies())
    redis_engine.store.set_state(qa.deployment_id, DeploymentState.CORRUPT, "it failed after all")  # for the test
    outcome = merged(repository, redis_engine, repository.merge(1))
    assert outcome == (f"refused: qa has never deployed {PRODUCT} 1.0.0 (among its latest 50 deployments): "
                       "promote it to qa first")
    assert refusal(repository) == (f"qa has never deployed {PRODUCT} 1.0.0 \\(among its latest 50 "
                                   "deployments\\): promote it to qa first")
    assert redis_engine.store.history(PRODUCT, "production") == []


def test_an_unknown_tag_is_refused(repository, redis_engine):
    _, merge_sha = promoted(repository, redis_engine)
    del repository.tags["v1.0.0"]
    assert merged(repository, redis_engine, merge_sha) == "refused: tag v1.0.0 is unknown in this repository"
    assert redis_engine.store.history(PRODUCT, "production") == []


def test_a_tag_moved_elsewhere_is_refused(repository, redis_engine):
    sha, merge_sha = promoted(repository, redis_engine)
    repository.tags["v1.0.0"] = merge_sha
    assert merged(repository, redis_engine, merge_sha) == (
        f"refused: tag v1.0.0 names commit {merge_sha[:12]}, releases/production.yaml says {sha[:12]}")


def test_an_edited_release_file_is_refused(repository, redis_engine):
    sha, [qa, _] = tag_release(repository, redis_engine, stages())
    follow_up(repository, redis_engine.redis, end(redis_engine, qa.deployment_id, DeploymentState.DEPLOYED),
              config=stages(), policies=load_policies())
    repository.push(BRANCH, {"releases/production.yaml": b"dataProduct: [\n"})
    outcome = merged(repository, redis_engine, repository.merge(1))
    assert isinstance(outcome, str) and outcome.startswith(
        "refused: releases/production.yaml is not valid YAML: releases/production.yaml:2:1:")


@pytest.mark.parametrize(("branch", "target", "config", "reason"), [
    ("meshbot/promote/production", "main", None,
     "branch meshbot/promote/production is not named meshbot/promote/<environment>/<version>"),
    (BRANCH, "develop", None, "it was merged into develop, not into the default branch main"),
    (BRANCH, "main", stages("automatic"),
     "production is not a release stage promoted by merge request in meshbot's configuration"),
    ("meshbot/promote/production/1.0.1", "main", None,
     "releases/production.yaml names version 1.0.0, the branch 1.0.1"),
    ("meshbot/promote/qa/1.0.0", "main", None,
     "qa is not a release stage promoted by merge request in meshbot's configuration"),
])
def test_other_merges_are_refused(repository, redis_engine, branch, target, config, reason):
    _, merge_sha = promoted(repository, redis_engine)
    assert merged(repository, redis_engine, merge_sha, config=config, branch=branch, target=target) == \
        f"refused: {reason}"


def test_a_missing_release_file_is_refused(repository, redis_engine):
    _, merge_sha = promoted(repository, redis_engine)
    outcome = merged(repository, redis_engine, merge_sha, config=ServerConfig(
        adapters=ADAPTERS, release_environments=["qa", "staging"],
        release_stages=[ReleaseStage("qa"), ReleaseStage("staging", "qa", "merge-request")]),
        branch="meshbot/promote/staging/1.0.0")
    assert outcome == f"refused: releases/staging.yaml is missing at the merge commit {merge_sha[:12]}"
