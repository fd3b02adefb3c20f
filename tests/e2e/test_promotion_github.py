"""Promotion between release stages on GitHub, end to end: signed tag and merged webhooks, real RQ workers, the
reference SQLite adapter (or a scripted one that fails), and the GitHub test server's pull requests and statuses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from bot.engine.status import product_status
from bot.forge.promotion import read_release_file
from tests.cli.test_deploy import adapters_config
from tests.e2e.test_github import (  # noqa: F401  (fixtures)
    PROJECT,
    ZERO_SHA,
    Bot,
    BotFactory,
    bot,
    github,
    push_payload,
)
from tests.forge.test_events import fixture
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply, adapter_server

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
BRANCH = "meshbot/promote/production/1.0.0"
QA, PRODUCTION = "meshbot/deploy/qa", "meshbot/deploy/production"
STAGES = "releases:\n  environments: [qa, {name: production, after: qa}]\n"
AUTOMATIC = "releases:\n  environments: [qa, {name: production, after: qa, promotion: automatic}]\n"


def merged_payload(pull: dict[str, Any], merge_sha: str) -> dict[str, Any]:
    """GitHub's `pull_request` delivery of a merged pull request (action closed, merged true)."""
    payload = copy.deepcopy(fixture("github", "pull_request_merged"))
    number = pull["number"]
    payload["number"] = number
    body = payload["pull_request"]
    body.update(number=number, title=pull["title"], merge_commit_sha=merge_sha,
                url=f"https://api.github.com/repos/{PROJECT}/pulls/{number}",
                html_url=f"https://github.com/{PROJECT}/pull/{number}")
    body["head"].update(ref=pull["head"], label=f"acme-data:{pull['head']}")
    body["base"].update(ref=pull["base"], label=f"acme-data:{pull['base']}")
    return payload


def state(meshbot: Bot, sha: str, context: str) -> tuple[str, str] | None:
    """The newest status of context on sha as (state, description)."""
    found = meshbot.statuses(sha, context)
    return (found[-1]["state"], found[-1]["description"]) if found else None


def promotion_pull(meshbot: Bot) -> dict[str, Any] | None:
    """The open pull request from the promotion branch, if any."""
    with meshbot.github.lock:
        return next((dict(pull) for pull in meshbot.repository.pulls.values()
                     if pull["head"] == BRANCH and pull["state"] == "open"), None)


def tag(meshbot: Bot) -> str:
    """Tag v1.0.0 on main and deliver the signed tag push; the tagged sha."""
    sha = meshbot.repository.create_tag("v1.0.0", "main")
    meshbot.accepted("push", push_payload("refs/tags/v1.0.0", ZERO_SHA, sha))
    return sha


def test_a_release_reaches_production_through_the_promotion_pull_request(bot: BotFactory,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra=STAGES))
        sha = tag(meshbot)
        meshbot.until(lambda: state(meshbot, sha, QA) == ("success", "DEPLOYED: 3 completed") or None,
                      "qa deployed")
        pull = meshbot.until(lambda: promotion_pull(meshbot), "the promotion pull request")
        meshbot.until(lambda: state(meshbot, sha, PRODUCTION) == (
            "pending", f"waits for the merge of promotion merge request {pull['number']}") or None,
            "production waiting for the merge")
        meshbot.idle()
        assert product_status(meshbot.engine.redis, PRODUCT, "production")[0]["status"] == "NOT_DEPLOYED"
        assert {record["environment"] for record in meshbot.repository.deployments.values()} == {"qa"}
        assert pull["user"] == "meshbot" and pull["base"] == "main"
        assert pull["body"].startswith("<!-- meshbot:promotion environment=production version=1.0.0 -->")
        assert "### meshbot plan for `production`: nothing deployed: 3 to add" in pull["body"]
        written = meshbot.repository.files_at(BRANCH)["releases/production.yaml"]
        record = read_release_file(written, "releases/production.yaml", "production")
        assert (record.data_product, record.version, record.tag, record.commit, record.promoted_from) == (
            PRODUCT, "1.0.0", "v1.0.0", sha, "qa")

        merge_sha = meshbot.repository.merge_pull_request(pull["number"], merged_by="release-manager")
        meshbot.accepted("pull_request", merged_payload(pull, merge_sha))
        meshbot.until(lambda: state(meshbot, sha, PRODUCTION) == ("success", "DEPLOYED: 3 completed") or None,
                      "production deployed")
        meshbot.until(lambda: any("ended `DEPLOYED`" in comment["body"]
                                  for comment in meshbot.comments(pull["number"])) or None,
                      "the outcome on the pull request")
        meshbot.idle()

    document, _ = product_status(meshbot.engine.redis, PRODUCT, "production")
    assert (document["status"], document["version"]) == ("DEPLOYED", "1.0.0")
    production = [record for record in meshbot.repository.deployments.values()
                  if record["environment"] == "production"]
    assert [(record["sha"], record["statuses"][-1]["state"]) for record in production] == [(sha, "success")]
    bodies = [comment["body"] for comment in meshbot.comments(pull["number"])]
    assert bodies[0].startswith("Promotion merged: deploying") and len(bodies) == 2


def test_a_merged_pull_request_from_another_branch_promotes_nothing(bot: BotFactory) -> None:  # noqa: F811
    meshbot = bot("releases:\n  environments: [qa, {name: production, after: qa}]\n")
    number, _ = meshbot.open_pull_request("feature/docs", {"README.md": b"docs\n"})
    with meshbot.github.lock:
        pull = dict(meshbot.repository.pulls[number])
    merge_sha = meshbot.repository.merge_pull_request(number)
    [job] = meshbot.accepted("pull_request", merged_payload(pull, merge_sha))  # only its access files are read
    meshbot.idle()
    result = Job.fetch(job, connection=meshbot.engine.redis, serializer=JSONSerializer).return_value()
    assert result == f"{PROJECT}!{number}: no access file, and no access ever applied: nothing to do"
    assert promotion_pull(meshbot) is None


def test_a_failed_qa_opens_no_promotion_and_production_says_not_promoted(bot: BotFactory) -> None:  # noqa: F811
    with adapter_server() as adapter:
        adapter.reply("POST", "/v1/validate", Reply(200, {"valid": True, "error": {"errors": []}}))
        adapter.reply("POST", "/v1/provision", Reply(200, {"status": "FAILED", "result": "disk full"}))
        meshbot = bot(adapters_config(adapter.url, extra=STAGES))
        sha = tag(meshbot)
        meshbot.until(lambda: state(meshbot, sha, PRODUCTION) == ("error", "not promoted: qa ended CORRUPT") or None,
                      "production not promoted")
        meshbot.idle()
    assert (state(meshbot, sha, QA) or ("",))[0] == "error"
    assert meshbot.repository.pulls == {}
    assert meshbot.repository.branch_head(BRANCH) is None
    assert product_status(meshbot.engine.redis, PRODUCT, "production")[0]["status"] == "NOT_DEPLOYED"


def test_automatic_promotion_deploys_production_right_after_qa(bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra=AUTOMATIC))
        sha = tag(meshbot)
        meshbot.until(lambda: state(meshbot, sha, PRODUCTION) == ("success", "DEPLOYED: 3 completed") or None,
                      "production deployed")
        meshbot.idle()
    assert state(meshbot, sha, QA) == ("success", "DEPLOYED: 3 completed")
    assert [status["description"] for status in meshbot.statuses(sha, PRODUCTION)][0] == "waits for qa"
    assert meshbot.repository.pulls == {}
    for environment in ("qa", "production"):
        document, _ = product_status(meshbot.engine.redis, PRODUCT, environment)
        assert (document["status"], document["version"]) == ("DEPLOYED", "1.0.0"), environment
