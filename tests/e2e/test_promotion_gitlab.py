"""Promotion between release stages on GitLab, end to end: Tag Push and Merge Request (merge) hooks with the token,
real RQ workers, the reference SQLite adapter (or a scripted one that fails), and the GitLab test server's state."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bot.engine.status import product_status
from bot.forge.promotion import read_release_file
from tests.cli.test_deploy import adapters_config
from tests.deploy_harness import Start
from tests.e2e.test_gitlab import PATH, Bot, gitlab_bot
from tests.forge.test_events import fixture
from tests.servers.gitlab import MergeRequestRecord, gitlab_server
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply, adapter_server

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
BRANCH = "meshbot/promote/production/1.0.0"
QA, PRODUCTION = "meshbot/deploy/qa", "meshbot/deploy/production"
STAGES = "releases:\n  environments: [qa, {name: production, after: qa}]\n"
AUTOMATIC = "releases:\n  environments: [qa, {name: production, after: qa, promotion: automatic}]\n"


def merged_hook(bot: Bot, record: MergeRequestRecord) -> dict[str, Any]:
    """GitLab's Merge Request Hook of a merged merge request (action merge), this server's values."""
    assert record.merge_commit_sha is not None
    payload = copy.deepcopy(fixture("gitlab", "merge_request_merge"))
    payload["project"] |= {"id": bot.project.id, "path_with_namespace": PATH,
                           "web_url": f"{bot.server.url}/{PATH}", "default_branch": bot.project.default_branch}
    payload["user"] |= {"username": "release-manager", "name": "Release Manager"}
    payload["object_attributes"].update(
        id=record.id, iid=record.iid, source_branch=record.source_branch, target_branch=record.target_branch,
        source_project_id=bot.project.id, target_project_id=bot.project.id, title=record.title,
        merge_commit_sha=record.merge_commit_sha, url=f"{bot.server.url}/{PATH}/-/merge_requests/{record.iid}")
    return payload


def state(bot: Bot, sha: str, name: str) -> tuple[str, str] | None:
    """The newest status of that name on sha as (status, description)."""
    found = bot.statuses(sha, name)
    return (found[-1]["status"], found[-1]["description"]) if found else None


def promotion_request(bot: Bot) -> MergeRequestRecord | None:
    """The open merge request from the promotion branch, if any."""
    return next((record for record in list(bot.project.merge_requests.values())
                 if record.source_branch == BRANCH and record.state == "opened"), None)


def tag(bot: Bot) -> str:
    """Tag v1.0.0 on main and deliver the Tag Push Hook; the tagged sha."""
    sha = bot.server.create_tag(bot.project, "v1.0.0", "main")
    response = bot.deliver("Tag Push Hook", bot.push_hook("refs/tags/v1.0.0", "0" * 40, sha, "tag_push"))
    assert response.status_code == 202, response.get_json()
    return sha


def test_a_release_reaches_production_through_the_promotion_merge_request(start: Start,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=STAGES))
        sha = tag(bot)
        bot.until(lambda: state(bot, sha, QA) == ("success", "DEPLOYED: 3 completed") or None, "qa deployed")
        record = bot.until(lambda: promotion_request(bot), "the promotion merge request")
        bot.settle()
        # GitLab keeps a status in the state it has (pending -> pending is refused): the first description stays.
        assert state(bot, sha, PRODUCTION) == ("pending", "waits for qa")
        assert product_status(bot.engine.redis, PRODUCT, "production")[0]["status"] == "NOT_DEPLOYED"
        assert [deployment["environment"] for deployment in bot.project.deployments.values()] == [{"name": "qa"}]
        assert record.author.username == server.bot.username and record.target_branch == "main"
        assert record.description.startswith("<!-- meshbot:promotion environment=production version=1.0.0 -->")
        written = server.files_at(bot.project, BRANCH)["releases/production.yaml"]
        release = read_release_file(written, "releases/production.yaml", "production")
        assert (release.data_product, release.version, release.tag, release.commit) == (PRODUCT, "1.0.0", "v1.0.0",
                                                                                         sha)

        server.merge(bot.project, record.iid, merged_by="release-manager")
        assert bot.deliver("Merge Request Hook", merged_hook(bot, record)).status_code == 202
        bot.until(lambda: state(bot, sha, PRODUCTION) == ("success", "DEPLOYED: 3 completed") or None,
                  "production deployed")
        bot.until(lambda: any("ended `DEPLOYED`" in note for note in bot.notes(record)) or None,
                  "the outcome on the merge request")
        bot.settle()

    document, _ = product_status(bot.engine.redis, PRODUCT, "production")
    assert (document["status"], document["version"]) == ("DEPLOYED", "1.0.0")
    production = [deployment for deployment in bot.project.deployments.values()
                  if deployment["environment"] == {"name": "production"}]
    assert [(deployment["sha"], deployment["status"]) for deployment in production] == [(sha, "success")]
    notes = bot.notes(record)
    assert notes[0].startswith("Promotion merged: deploying") and len(notes) == 2


def test_a_failed_qa_opens_no_promotion_and_production_says_not_promoted(start: Start,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    with gitlab_server() as server, adapter_server() as adapter:
        adapter.reply("POST", "/v1/validate", Reply(200, {"valid": True, "error": {"errors": []}}))
        adapter.reply("POST", "/v1/provision", Reply(200, {"status": "FAILED", "result": "disk full"}))
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=STAGES))
        sha = tag(bot)
        bot.until(lambda: state(bot, sha, PRODUCTION) == ("failed", "not promoted: qa ended CORRUPT") or None,
                  "production not promoted")
        bot.settle()
    assert (state(bot, sha, QA) or ("",))[0] == "failed"
    assert bot.project.merge_requests == {} and BRANCH not in bot.project.branches
    assert product_status(bot.engine.redis, PRODUCT, "production")[0]["status"] == "NOT_DEPLOYED"


def test_automatic_promotion_deploys_production_right_after_qa(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=AUTOMATIC))
        sha = tag(bot)
        bot.until(lambda: state(bot, sha, PRODUCTION) == ("success", "DEPLOYED: 3 completed") or None,
                  "production deployed")
        bot.settle()
    assert state(bot, sha, QA) == ("success", "DEPLOYED: 3 completed")
    assert bot.project.merge_requests == {}
    for environment in ("qa", "production"):
        document, _ = product_status(bot.engine.redis, PRODUCT, environment)
        assert (document["status"], document["version"]) == ("DEPLOYED", "1.0.0"), environment
