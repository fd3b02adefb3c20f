"""End to end on GitLab: a webhook with its token, to the Flask app, to real RQ workers, to the GitLab server's state.

The forge is the local GitLab REST v4 server of `tests/servers/gitlab.py`; the workers are real subprocesses
(`tests/deploy_harness.py`) that reach it through `MESHBOT_GITLAB_URL` and `MESHBOT_GITLAB_TOKEN`, set before
they start. Every wait polls with a timeout that says what it waited for.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from bot.engine.runner import QUEUE_NAME
from bot.engine.status import product_status
from bot.forge.review import MARKER, STATUS_CONTEXT
from tests.cli.test_deploy import adapters_config
from tests.deploy_harness import EXAMPLE, Engine, Start, wait_for
from tests.forge.test_events import fixture
from tests.servers.gitlab import GitLabServer, MergeRequestRecord, Project, gitlab_server
from tests.servers.reference_adapter import running_adapter

SECRET = "gl-e2e-webhook-token"
PATH = "data/finance/cashflow"
BRANCH = "feature/forecast"
PRODUCT = "urn:dmb:dp:finance:cashflow:1"
DEPLOY_CONTEXT = "meshbot/deploy/production"
TIMEOUT = 30.0


def example_files() -> dict[str, bytes]:
    """Every file of the finance-cashflow example, by its path in the repository."""
    return {str(path.relative_to(EXAMPLE)): path.read_bytes() for path in sorted(EXAMPLE.rglob("*")) if path.is_file()}


@dataclass
class Bot:
    """The GitLab server, the engine and meshbot's web application wired together for one test."""

    server: GitLabServer
    engine: Engine
    web: FlaskClient
    project: Project

    # ------------------------------------------------------------------ deliveries

    def deliver(self, event: str, payload: dict[str, Any], *, token: str = SECRET,
                delivery: str | None = None) -> TestResponse:
        """POST a delivery as GitLab does: the event, the token, an Idempotency-Key and a JSON body."""
        headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": token, "Content-Type": "application/json",
                   "X-Gitlab-Event-UUID": str(uuid.uuid4()), "Idempotency-Key": delivery or str(uuid.uuid4()),
                   "X-Gitlab-Instance": self.server.url, "User-Agent": "GitLab/17.0.0"}
        return self.web.post("/webhooks/gitlab", data=json.dumps(payload), headers=headers)

    def merge_request_hook(self, record: MergeRequestRecord, action: str, oldrev: str | None = None) -> dict[str, Any]:
        """A Merge Request Hook body for record at its current head (GitLab's shape, this server's values)."""
        payload = copy.deepcopy(fixture("gitlab", "merge_request_open"))
        head = self.project.branches[record.source_branch]
        payload["project"] |= self._project_fields()
        payload["user"] |= {"username": record.author.username, "name": record.author.name}
        attributes = payload["object_attributes"]
        attributes.update(
            id=record.id, iid=record.iid, action=action, source_branch=record.source_branch,
            target_branch=record.target_branch, source_project_id=self.project.id, target_project_id=self.project.id,
            title=record.title, url=f"{self.server.url}/{PATH}/-/merge_requests/{record.iid}",
            last_commit={"id": head, "message": self.project.commits[head].message,
                         "title": self.project.commits[head].message,
                         "url": f"{self.server.url}/{PATH}/-/commit/{head}"},
        )
        if oldrev is not None:
            attributes["oldrev"] = oldrev
        return payload

    def push_hook(self, ref: str, before: str, after: str, name: str = "push") -> dict[str, Any]:
        """A Push Hook (or, with name "tag_push", a Tag Push Hook) body."""
        payload = copy.deepcopy(fixture("gitlab", name))
        payload.update(ref=ref, before=before, after=after, checkout_sha=after, project_id=self.project.id,
                       user_username="carla", user_name="Carla Ops")
        payload["project"] |= self._project_fields()
        payload["commits"] = []
        return payload

    def _project_fields(self) -> dict[str, Any]:
        return {"id": self.project.id, "path_with_namespace": PATH, "web_url": f"{self.server.url}/{PATH}",
                "default_branch": self.project.default_branch}

    # ------------------------------------------------------------------ the server's state

    def notes(self, record: MergeRequestRecord) -> list[str]:
        """Bodies of the notes meshbot wrote on the merge request."""
        return [note.body for note in record.notes if note.author.username == self.server.bot.username]

    def statuses(self, sha: str, name: str) -> list[dict[str, Any]]:
        """The commit statuses of that name on sha, oldest first."""
        return [status for status in list(self.project.statuses) if status["sha"] == sha and status["name"] == name]

    def status(self, sha: str, name: str, state: str) -> dict[str, Any]:
        """Wait for the newest status of that name on sha to be in state; that status."""
        def newest() -> dict[str, Any] | None:
            found = self.statuses(sha, name)
            return found[-1] if found and found[-1]["status"] == state else None

        return self.until(newest, f"status {name} {state} on {sha[:8]} (have: {self.statuses(sha, name)})")

    def until(self, condition: Any, what: str, timeout: float = TIMEOUT) -> Any:
        """Poll condition; on timeout fail with what, and the workers' logs."""
        try:
            return wait_for(condition, timeout, what)
        except AssertionError as error:
            logs = "\n".join(f"--- {name}\n{self.engine.log(name)[-3000:]}" for name in self.engine.workers)
            raise AssertionError(f"{error}\n{logs}") from None

    def settle(self) -> None:
        """Wait until every queued job has finished (and none failed)."""
        self.until(self.engine.settled, "every job to finish")
        failed = {job: status for job, status in self.engine.jobs().items() if status != "finished"}
        assert failed == {}, f"jobs did not finish: {failed}"


@pytest.fixture
def bot(start: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Bot]:
    """A GitLab server holding the example on `data/finance/cashflow`, two workers pointed at it, the web app."""
    with gitlab_server() as server:
        yield gitlab_bot(server, start, monkeypatch, tmp_path, "")


def configure(monkeypatch: pytest.MonkeyPatch, server: GitLabServer, directory: Path, config: str) -> None:
    """The environment the app and the workers read (set before the workers start)."""
    path = directory / "meshbot.yaml"
    path.write_text(config)
    monkeypatch.setenv("MESHBOT_CONFIG", str(path))
    monkeypatch.setenv("MESHBOT_GITLAB_URL", server.url)
    monkeypatch.setenv("MESHBOT_GITLAB_TOKEN", server.token)
    monkeypatch.setenv("MESHBOT_GITLAB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MESHBOT_HOME", str(directory / "home"))
    monkeypatch.delenv("MESHBOT_BOT_USERNAME", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def gitlab_bot(server: GitLabServer, start: Start, monkeypatch: pytest.MonkeyPatch, directory: Path,
            config: str) -> Bot:
    """The example on PATH, the configuration written, two workers started (after it), and the web app."""
    project = server.create_project(PATH, example_files())
    configure(monkeypatch, server, directory, config)
    engine = start(2)
    web = create_app(redis_connection=engine.redis, bot_usernames=[server.bot.username]).test_client()
    return Bot(server, engine, web, project)


def open_merge_request(bot: Bot, files: dict[str, bytes] | None = None) -> MergeRequestRecord:
    """Push a commit to BRANCH and open a merge request from it."""
    bot.server.push(bot.project, BRANCH, files or {"README.md": b"# Cash flow\n"}, message="Start the forecast")
    return bot.server.open_merge_request(bot.project, BRANCH, author="carla", title="Add the forecast port")


# ---------------------------------------------------------------------- merge requests


def test_an_opened_merge_request_gets_one_note_and_a_success_status(bot: Bot) -> None:
    """An opened merge request on a subgroup project: one governance note and a success status on its head."""
    record = open_merge_request(bot)
    head = bot.project.branches[BRANCH]
    response = bot.deliver("Merge Request Hook", bot.merge_request_hook(record, "open"))
    assert response.status_code == 202, response.get_json()

    status = bot.status(head, STATUS_CONTEXT, "success")
    bot.settle()
    notes = bot.notes(record)
    assert len(notes) == 1
    assert notes[0].startswith(MARKER)
    assert f"meshbot checked commit {head[:8]}" in notes[0]
    assert "pass" in status["description"]
    assert [s["status"] for s in bot.statuses(head, STATUS_CONTEXT)] == ["success"]
    # The project path travelled URL-encoded, as one segment.
    assert all("data%2Ffinance%2Fcashflow" in r.raw_path for r in bot.server.requests if r.path.startswith("/projects"))


def test_ten_pushes_to_a_merge_request_leave_one_note_edited_in_place(bot: Bot) -> None:
    """Ten pushes, ten update deliveries: still one note, edited in place, naming the last commit."""
    record = open_merge_request(bot)
    first = bot.project.branches[BRANCH]
    assert bot.deliver("Merge Request Hook", bot.merge_request_hook(record, "open")).status_code == 202
    bot.status(first, STATUS_CONTEXT, "success")
    note_id = bot.until(lambda: record.notes and record.notes[0].id, "the first note")

    heads = []
    for index in range(10):
        before = bot.project.branches[BRANCH]
        heads.append(bot.server.push(bot.project, BRANCH, {f"docs/note-{index}.md": f"push {index}\n".encode()},
                                     message=f"Push {index}"))
        response = bot.deliver("Merge Request Hook", bot.merge_request_hook(record, "update", oldrev=before))
        assert response.status_code == 202, response.get_json()

    last = heads[-1]
    bot.status(last, STATUS_CONTEXT, "success")
    bot.until(lambda: f"meshbot checked commit {last[:8]}" in (bot.notes(record) or [""])[0],
              f"the note to name {last[:8]}")
    bot.settle()
    notes = bot.notes(record)
    assert len(notes) == 1, notes
    assert [note.id for note in record.notes] == [note_id]
    assert f"meshbot checked commit {last[:8]}" in notes[0]
    assert len(bot.server.requests_matching("POST", "/notes")) == 1
    assert bot.server.requests_matching("PUT", f"/notes/{note_id}")


def test_the_same_delivery_twice_acts_once(bot: Bot) -> None:
    """A redelivery with the same Idempotency-Key is answered but not acted on."""
    record = open_merge_request(bot)
    head = bot.project.branches[BRANCH]
    payload = bot.merge_request_hook(record, "open")
    delivery = str(uuid.uuid4())
    assert bot.deliver("Merge Request Hook", payload, delivery=delivery).status_code == 202
    again = bot.deliver("Merge Request Hook", payload, delivery=delivery)
    assert again.status_code == 200
    assert "duplicate delivery" in again.get_json()["ignored"]

    bot.status(head, STATUS_CONTEXT, "success")
    bot.settle()
    assert len(bot.engine.jobs()) == 1
    assert len(bot.notes(record)) == 1
    assert len(bot.server.requests_matching("POST", "/notes")) == 1
    assert len(bot.server.requests_matching("POST", "/statuses/")) == 1


def test_a_wrong_token_is_refused_and_nothing_happens(bot: Bot) -> None:
    """401 for a wrong X-Gitlab-Token: no job, no request to GitLab (a right delivery after it runs alone)."""
    head = bot.server.push(bot.project, BRANCH, {"README.md": b"x\n"})
    payload = bot.push_hook(f"refs/heads/{BRANCH}", "0" * 40, head)
    refused = bot.deliver("Push Hook", payload, token="not-the-token")
    assert refused.status_code == 401
    assert bot.engine.redis.llen(f"rq:queue:{QUEUE_NAME}") == 0
    assert bot.engine.jobs() == {}
    assert bot.server.requests == []

    assert bot.deliver("Push Hook", payload).status_code == 202  # the same body, rightly signed: acted on once
    bot.status(head, STATUS_CONTEXT, "success")
    bot.settle()
    assert len(bot.engine.jobs()) == 1
    assert len(bot.server.requests_matching("POST", "/statuses/")) == 1


def test_a_malformed_catalog_info_fails_and_the_note_names_file_line_and_column(bot: Bot) -> None:
    """Broken YAML in catalog-info.yaml: a failed status, and the note says where."""
    broken = (EXAMPLE / "catalog-info.yaml").read_text().replace("  lifecycle: experimental\n",
                                                                  "  lifecycle: [experimental\n")
    line = broken.splitlines().index("  lifecycle: [experimental") + 1
    record = open_merge_request(bot, {"catalog-info.yaml": broken.encode()})
    head = bot.project.branches[BRANCH]
    assert bot.deliver("Merge Request Hook", bot.merge_request_hook(record, "open")).status_code == 202

    status = bot.status(head, STATUS_CONTEXT, "failed")
    bot.settle()
    notes = bot.notes(record)
    assert len(notes) == 1
    # The unclosed flow sequence is noticed on the next line, at the colon after `  owner`.
    assert broken.splitlines()[line].startswith("  owner:")
    assert status["description"].startswith(f"catalog-info.yaml:{line + 1}:8: malformed YAML")
    assert f"- `catalog-info.yaml` line {line + 1}, column 8: malformed YAML" in notes[0], notes[0]
    assert notes[0].startswith(MARKER) and f"meshbot checked commit {head[:8]}" in notes[0]


# ---------------------------------------------------------------------- pushes and tags


def test_a_branch_push_gets_a_status_and_no_note(bot: Bot) -> None:
    """A Push Hook for a branch: the `meshbot/governance` status on its head, and no note anywhere."""
    record = open_merge_request(bot)  # a merge request exists from that branch: a push still writes no note
    before = bot.project.branches[BRANCH]
    head = bot.server.push(bot.project, BRANCH, {"docs/usage.md": b"Use it.\n"}, message="Document")
    assert bot.deliver("Push Hook", bot.push_hook(f"refs/heads/{BRANCH}", before, head)).status_code == 202

    bot.status(head, STATUS_CONTEXT, "success")
    bot.settle()
    assert record.notes == []
    assert bot.server.requests_matching("POST", "/notes") == []
    assert [s["name"] for s in bot.project.statuses] == [STATUS_CONTEXT]


def test_a_tag_naming_another_version_fails_and_deploys_nothing(bot: Bot) -> None:
    """Tag v9.9.9 on a descriptor at 1.0.0: a failed deploy status saying so, and no deployment."""
    sha = bot.project.branches["main"]
    assert bot.deliver("Tag Push Hook", bot.push_hook("refs/tags/v9.9.9", "0" * 40, sha, "tag_push")).status_code == 202

    status = bot.status(sha, DEPLOY_CONTEXT, "failed")
    bot.settle()
    assert "v9.9.9" in status["description"] and "9.9.9" in status["description"]
    assert "1.0.0" in status["description"]
    assert status["description"].startswith("nothing deployed")
    assert bot.project.deployments == {}
    assert bot.server.requests_matching("POST", "/deployments") == []
    document, waiting = product_status(bot.engine.redis, PRODUCT, "production")
    assert document["deployment"] is None and waiting == []


def test_a_release_tag_deploys_through_the_reference_adapter(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """Tag v1.0.0 with adapters configured: deployed, the deploy status success, GitLab's deployment success."""
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url))
        project, engine = bot.project, bot.engine
        sha = project.branches["main"]
        response = bot.deliver("Tag Push Hook", bot.push_hook("refs/tags/v1.0.0", "0" * 40, sha, "tag_push"))
        assert response.status_code == 202, response.get_json()

        def started() -> str | None:
            deployment = product_status(engine.redis, PRODUCT, "production")[0]["deployment"]
            return deployment["id"] if deployment else None

        deployment_id = bot.until(started, "the deployment to production to start")
        finished = engine.wait(deployment_id, timeout=TIMEOUT)
        assert str(finished.state) == "DEPLOYED", engine.diagnosis(deployment_id)
        status = bot.status(sha, DEPLOY_CONTEXT, "success")
        records = bot.until(lambda: [d for d in project.deployments.values() if d["status"] == "success"],
                            f"GitLab's deployment to succeed (have: {project.deployments})")
        bot.settle()

        document, _ = product_status(engine.redis, PRODUCT, "production")
        assert document["status"] == "DEPLOYED"
        assert document["version"] == "1.0.0"
        assert {component["status"] for component in document["components"]} == {"DEPLOYED"}
        # pending when requested, success last (the report may also come first when the deployment is quick)
        states = [s["status"] for s in bot.statuses(sha, DEPLOY_CONTEXT)]
        assert "pending" in states and states[-1] == "success", states
        assert "DEPLOYED" in status["description"]
        assert len(project.deployments) == 1
        (record,) = records
        assert record["environment"] == {"name": "production"} and record["sha"] == sha
        assert record["status_history"][0] == "running" and record["status_history"][-1] == "success"
