"""End to end on GitHub: signed webhooks into the Flask app, real RQ workers, and the GitHub test server's state.

Each test runs a local GitHub REST server (tests/servers/github.py) holding the example data product, a
real Redis with two worker subprocesses (tests/deploy_harness.py), and meshbot's web application in-process.
Webhook bodies are GitHub's fixture deliveries rewritten for the server's repository, commits and numbers.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from bot.engine.deployment import DeploymentState
from bot.engine.runner import QUEUE_NAME
from bot.engine.status import product_status
from bot.forge.review import MARKER, STATUS_CONTEXT
from tests.cli.test_deploy import adapters_config, sqlite_objects
from tests.deploy_harness import EXAMPLE, Engine, Start, wait_for
from tests.forge.test_events import fixture
from tests.servers.github import FakeRepository, GitHubServer, github_server
from tests.servers.reference_adapter import running_adapter

SECRET = "e2e-github-webhook-secret"
PROJECT = "acme-data/finance-cashflow"
PRODUCT = "urn:dmb:dp:finance:cashflow:1"
DEPLOY_CONTEXT = "meshbot/deploy/production"
ZERO_SHA = "0" * 40
TIMEOUT = 30.0

T = TypeVar("T")


def example_files() -> dict[str, bytes]:
    """Every file of the example data product, by its path in the repository."""
    return {path.relative_to(EXAMPLE).as_posix(): path.read_bytes() for path in sorted(EXAMPLE.rglob("*"))
            if path.is_file()}


def signature(body: bytes, secret: str = SECRET) -> str:
    """GitHub's X-Hub-Signature-256 of body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------- GitHub's deliveries, rewritten


def pull_request_payload(action: str, number: int, branch: str, head: str, base: str,
                         before: str | None = None) -> dict[str, Any]:
    """A `pull_request` delivery (opened or synchronize) for pull request number from branch at head."""
    payload = copy.deepcopy(fixture("github", "pull_request_synchronize" if action == "synchronize"
                                    else "pull_request_opened"))
    payload["action"] = action
    payload["number"] = number
    pull = payload["pull_request"]
    pull["number"] = number
    pull["url"] = f"https://api.github.com/repos/{PROJECT}/pulls/{number}"
    pull["html_url"] = f"https://github.com/{PROJECT}/pull/{number}"
    pull["head"].update(ref=branch, sha=head, label=f"acme-data:{branch}")
    pull["base"].update(ref="main", sha=base, label="acme-data:main")
    if action == "synchronize":
        payload["before"], payload["after"] = before or ZERO_SHA, head
    return payload


def push_payload(ref: str, before: str, after: str) -> dict[str, Any]:
    """A `push` delivery of a branch (refs/heads/...) or tag (refs/tags/...) moving from before to after."""
    payload = copy.deepcopy(fixture("github", "push_tag" if ref.startswith("refs/tags/") else "push_branch"))
    payload.update(ref=ref, before=before, after=after, created=before == ZERO_SHA, deleted=False, forced=False,
                   compare=f"https://github.com/{PROJECT}/compare/{before[:12]}...{after[:12]}")
    head_commit = payload["head_commit"]
    head_commit.update(id=after, url=f"https://github.com/{PROJECT}/commit/{after}")
    payload["commits"] = [] if ref.startswith("refs/tags/") else [head_commit]
    return payload


# ---------------------------------------------------------------------- the running bot


@dataclass
class Bot:
    """The GitHub server and its repository, the engine with its workers, and the web application's client."""

    github: GitHubServer
    repository: FakeRepository
    engine: Engine
    client: FlaskClient

    def send(self, event: str, payload: dict[str, Any], delivery: str | None = None,
             sign: str | None = None) -> TestResponse:
        """POST a delivery as GitHub does: JSON body, event name, delivery id and signature headers."""
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                   "X-Hub-Signature-256": signature(body) if sign is None else sign,
                   "X-GitHub-Hook-ID": "471203991", "Content-Type": "application/json",
                   "User-Agent": "GitHub-Hookshot/8a3c4b1"}
        return self.client.post("/webhooks/github", data=body, headers=headers)

    def accepted(self, event: str, payload: dict[str, Any], delivery: str | None = None) -> list[str]:
        """Send a delivery that must be queued; its job ids."""
        response = self.send(event, payload, delivery)
        assert response.status_code == 202, response.get_json()
        jobs: list[str] = response.get_json()["jobs"]
        return jobs

    def until(self, condition: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
        """Poll condition until it holds; on timeout fail with what, the jobs' statuses and the workers' logs."""
        try:
            return wait_for(condition, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.diagnosis()}") from None

    def idle(self) -> None:
        """Wait until every job has run, then check that none failed."""
        def done() -> bool:
            jobs = self.engine.jobs()
            return (not self.engine.redis.llen(f"rq:queue:{QUEUE_NAME}")
                    and all(status in ("finished", "failed") for status in jobs.values()))

        self.until(done, "every job to finish")
        failed = {job: status for job, status in self.engine.jobs().items() if status != "finished"}
        assert failed == {}, f"jobs failed: {failed}\n{self.diagnosis()}"

    def diagnosis(self) -> str:
        """The jobs' statuses, the comments on the forge (their starts) and the tail of each worker's log."""
        lines = [f"jobs: {self.engine.jobs()}"]
        with self.github.lock:
            comments = list(self.repository.comments.values())
        for comment in comments[-12:]:
            lines.append(f"--- comment on #{comment['issue']}: {str(comment.get('body', ''))[:400]!r}")
        for name in self.engine.workers:
            lines.append(f"--- worker {name}:\n{self.engine.log(name)[-4000:]}")
        return "\n".join(lines)

    def statuses(self, sha: str, context: str) -> list[dict[str, Any]]:
        """The statuses set on sha under context, oldest first."""
        with self.github.lock:
            return [status for status in self.repository.statuses
                    if status["sha"] == sha and status["context"] == context]

    def comments(self, number: int) -> list[dict[str, Any]]:
        """The comments on pull request number, oldest first."""
        with self.github.lock:
            return [dict(comment) for comment in self.repository.comments.values() if comment["issue"] == number]

    def comment_posts(self) -> int:
        """How many comment creation requests the server received."""
        return len(self.github.requests_to("POST", f"/repos/{PROJECT}/issues/*/comments"))

    def open_pull_request(self, branch: str, files: dict[str, bytes]) -> tuple[int, str]:
        """Push branch (from main) with files and open a pull request from it; its number and head sha."""
        head = self.repository.push(branch, files, start="main", message=f"Work on {branch}")
        return self.repository.open_pull_request(branch, title=f"Change {branch}"), head


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    """A running GitHub test server."""
    with github_server() as server:
        yield server


BotFactory = Callable[..., Bot]


@pytest.fixture
def bot(github: GitHubServer, start: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BotFactory:
    """Start meshbot against the GitHub server: bot(config_text) writes $MESHBOT_CONFIG, then starts two workers."""
    repository = github.create_repository(PROJECT, example_files())

    def make(config: str = "") -> Bot:
        path = tmp_path / "meshbot.yaml"
        path.write_text(config)
        monkeypatch.setenv("MESHBOT_CONFIG", str(path))
        monkeypatch.setenv("MESHBOT_GITHUB_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("MESHBOT_GITHUB_TOKEN", github.token)
        monkeypatch.setenv("MESHBOT_GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("MESHBOT_GITHUB_SECONDS_BETWEEN_WRITES", "0")
        for variable in ("MESHBOT_GITHUB_APP_ID", "MESHBOT_GITHUB_APP_PRIVATE_KEY", "MESHBOT_BOT_USERNAME"):
            monkeypatch.delenv(variable, raising=False)
        engine = start(2)  # the workers inherit the environment set above
        client = create_app(redis_connection=engine.redis, bot_usernames=["meshbot"]).test_client()
        return Bot(github, repository, engine, client)

    return make


def meshbot_comments(comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comments meshbot wrote with its governance marker."""
    return [comment for comment in comments if comment["user"] == "meshbot" and comment["body"].startswith(MARKER)]


# ---------------------------------------------------------------------- merge requests


def test_opened_pull_request_gets_one_comment_and_a_success_status(bot: BotFactory) -> None:
    """An opened pull request on the example gets one governance comment and a success status on its head."""
    meshbot = bot()
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request("feature/readme", {"README.md": b"# Cash flow\n"})
    jobs = meshbot.accepted("pull_request", pull_request_payload("opened", number, "feature/readme", head, base))
    assert len(jobs) == 1

    [status] = meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), f"a {STATUS_CONTEXT} status on {head}")
    meshbot.idle()
    assert status["state"] == "success", status
    assert status["description"] == "development, production: 3 of 4 policies pass, 1 not evaluated", status
    assert status["target_url"] == f"https://github.com/{PROJECT}/pull/{number}"
    [comment] = meshbot.comments(number)
    assert comment["user"] == "meshbot"
    assert comment["body"].startswith(MARKER + "\n")
    assert f"meshbot checked commit {head[:8]};" in comment["body"]
    assert "| `production` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 3 to add |" in comment["body"]
    assert {item["context"] for item in meshbot.repository.statuses} == {STATUS_CONTEXT}  # no per-environment ones
    assert meshbot.comment_posts() == 1


def test_ten_pushes_keep_one_comment_edited_in_place(bot: BotFactory) -> None:
    """Ten synchronize deliveries, each after a real push: one comment, edited in place, naming the last commit."""
    meshbot = bot()
    base = meshbot.repository.branch_head("main")
    assert base is not None
    branch = "feature/many-pushes"
    number, head = meshbot.open_pull_request(branch, {"README.md": b"push 0\n"})
    meshbot.accepted("pull_request", pull_request_payload("opened", number, branch, head, base))
    meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), "the review of the opened pull request")
    heads = [head]
    for index in range(1, 11):
        before = heads[-1]
        pushed = meshbot.repository.push(branch, {"README.md": f"push {index}\n".encode()}, message=f"Push {index}")
        heads.append(pushed)
        meshbot.accepted("pull_request", pull_request_payload("synchronize", number, branch, pushed, before=before,
                                                              base=base))
        meshbot.until(partial(meshbot.statuses, pushed, STATUS_CONTEXT), f"the review of push {index}")
    last = heads[-1]
    meshbot.idle()

    [comment] = meshbot.comments(number)
    assert comment["user"] == "meshbot" and comment["body"].startswith(MARKER), comment
    assert f"meshbot checked commit {last[:8]};" in comment["body"]
    assert meshbot.comment_posts() == 1
    edits = meshbot.github.requests_to("PATCH", f"/repos/{PROJECT}/issues/comments/{comment['id']}")
    assert len(edits) == 10  # each push moved the footer's commit: one edit per push, of the one comment
    assert [status["state"] for status in meshbot.statuses(last, STATUS_CONTEXT)] == ["success"]
    assert {status["sha"] for status in meshbot.repository.statuses} == set(heads)


def test_the_same_delivery_twice_acts_once(bot: BotFactory) -> None:
    """A redelivery (same X-GitHub-Delivery) is acknowledged and ignored: one job, one comment creation."""
    meshbot = bot()
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request("feature/again", {"README.md": b"again\n"})
    payload = pull_request_payload("opened", number, "feature/again", head, base)
    delivery = str(uuid.uuid4())
    first = meshbot.send("pull_request", payload, delivery)
    again = meshbot.send("pull_request", payload, delivery)
    assert first.status_code == 202, first.get_json()
    assert (again.status_code, again.get_json()) == (
        200, {"ignored": f"duplicate delivery {delivery}: it was received before"})

    meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), f"a {STATUS_CONTEXT} status on {head}")
    meshbot.idle()
    assert list(meshbot.engine.jobs()) == first.get_json()["jobs"]
    assert meshbot.comment_posts() == 1
    assert len(meshbot.comments(number)) == 1
    assert len(meshbot.statuses(head, STATUS_CONTEXT)) == 1


def test_a_wrong_signature_is_refused_and_nothing_happens(bot: BotFactory) -> None:
    """A delivery signed with another secret, or not signed, is a 401: no job, no call to GitHub."""
    meshbot = bot()
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request("feature/forged", {"README.md": b"forged\n"})
    payload = pull_request_payload("opened", number, "feature/forged", head, base)
    body = json.dumps(payload).encode()
    for sign in (signature(body, "not-the-secret"), "", "sha256=" + "0" * 64, signature(body + b" ")):
        response = meshbot.send("pull_request", payload, sign=sign)
        assert (response.status_code, response.get_json()) == (401, {"error": "missing or wrong X-Hub-Signature-256"})
    assert meshbot.engine.redis.llen(f"rq:queue:{QUEUE_NAME}") == 0
    assert meshbot.engine.jobs() == {}
    assert meshbot.github.requests == []
    assert meshbot.comments(number) == [] and meshbot.repository.statuses == []


def test_malformed_catalog_info_gets_an_error_naming_file_line_and_column(bot: BotFactory) -> None:
    """Broken YAML in a pull request: an error status, and the comment says where the file is broken."""
    meshbot = bot()
    base = meshbot.repository.branch_head("main")
    assert base is not None
    broken = example_files()["catalog-info.yaml"].replace(b"  title: Cash Flow\n", b"  title: [Cash Flow\n")
    number, head = meshbot.open_pull_request("feature/broken", {"catalog-info.yaml": broken})
    meshbot.accepted("pull_request", pull_request_payload("opened", number, "feature/broken", head, base))

    [status] = meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), f"a {STATUS_CONTEXT} status on {head}")
    meshbot.idle()
    assert status["state"] == "error", status
    assert "catalog-info.yaml" in status["description"], status
    [comment] = meshbot_comments(meshbot.comments(number))
    assert "### meshbot governance: ❗ error" in comment["body"]
    match = re.search(r"- `catalog-info\.yaml` line (\d+), column (\d+): ", comment["body"])
    assert match, comment["body"]
    # The flow sequence opened on line 6 is unclosed: YAML notices at the `:` of line 7's `description:`.
    assert match.groups() == ("7", "14"), comment["body"]
    assert status["description"].startswith("catalog-info.yaml:7:14: malformed YAML"), status


# ---------------------------------------------------------------------- pushes


def test_a_branch_push_gets_only_a_status(bot: BotFactory) -> None:
    """A push to a branch sets the governance status of the pushed commit and comments nowhere."""
    meshbot = bot()
    before = meshbot.repository.branch_head("main")
    assert before is not None
    after = meshbot.repository.push("main", {"README.md": b"main moves\n"}, message="Docs")
    meshbot.accepted("push", push_payload("refs/heads/main", before, after))

    [status] = meshbot.until(lambda: meshbot.statuses(after, STATUS_CONTEXT), f"a {STATUS_CONTEXT} status on {after}")
    meshbot.idle()
    assert status["state"] == "success", status
    assert meshbot.repository.comments == {}
    assert meshbot.comment_posts() == 0
    assert [status["sha"] for status in meshbot.repository.statuses] == [after]


def test_a_tag_naming_another_version_is_refused(bot: BotFactory) -> None:
    """Tag v9.9.9 on a commit whose descriptor says 1.0.0: an error status on that commit and no deployment."""
    meshbot = bot()
    sha = meshbot.repository.create_tag("v9.9.9", "main")
    meshbot.accepted("push", push_payload("refs/tags/v9.9.9", ZERO_SHA, sha))

    [status] = meshbot.until(lambda: meshbot.statuses(sha, DEPLOY_CONTEXT), f"a {DEPLOY_CONTEXT} status on {sha}")
    meshbot.idle()
    assert status["state"] == "error", status
    assert status["description"] == "nothing deployed: tag v9.9.9 names version 9.9.9, the descriptor says '1.0.0'"
    assert meshbot.repository.deployments == {}
    assert meshbot.github.requests_to("POST", f"/repos/{PROJECT}/deployments") == []
    assert meshbot.engine.store.history(PRODUCT, "production") == []
    assert meshbot.engine.store.active() == []


def test_a_release_tag_deploys_and_reports_to_github(bot: BotFactory, tmp_path: Path) -> None:
    """Tag v1.0.0: deployed to production by the engine, the commit status and GitHub deployment follow it."""
    with running_adapter(tmp_path / "adapter.db") as adapter:
        config = adapters_config(adapter.url, extra="environments: [development, production]\n"
                                                     "releases:\n  environments: [production]\n")
        meshbot = bot(config)
        sha = meshbot.repository.create_tag("v1.0.0", "main")
        meshbot.accepted("push", push_payload("refs/tags/v1.0.0", ZERO_SHA, sha))

        [pending] = meshbot.until(lambda: [status for status in meshbot.statuses(sha, DEPLOY_CONTEXT)
                                           if status["state"] == "pending"], f"a pending {DEPLOY_CONTEXT} status")
        match = re.search(r"deploying 1\.0\.0 to production \(deployment ([^,)]+)", pending["description"])
        assert match, pending
        deployment = meshbot.engine.wait(match.group(1), timeout=TIMEOUT)
        assert deployment.state is DeploymentState.DEPLOYED, deployment.message
        meshbot.until(lambda: meshbot.statuses(sha, DEPLOY_CONTEXT)[-1]["state"] == "success",
                      "the deployment's outcome on GitHub")
        meshbot.idle()

    # pending, then success; a deployment quicker than the release job is reported once more, last
    states = [status["state"] for status in meshbot.statuses(sha, DEPLOY_CONTEXT)]
    assert states == ["pending", "success"] or (states[-1] == "success" and set(states) == {"pending", "success"}), \
        states
    document, waiting = product_status(meshbot.engine.redis, PRODUCT, "production")
    assert (document["status"], document["version"], waiting) == ("DEPLOYED", "1.0.0", [])
    assert document["deployment"]["id"] == deployment.id
    [record] = meshbot.repository.deployments.values()
    assert (record["ref"], record["sha"], record["environment"]) == (sha, sha, "production")
    assert record["required_contexts"] == [] and record["auto_merge"] is False
    deployment_states = [status["state"] for status in record["statuses"]]
    assert deployment_states[-1] == "success" and set(deployment_states) == {"in_progress", "success"}, \
        deployment_states
    assert record["statuses"][-1]["environment"] == "production"
    assert meshbot.repository.comments == {}
    assert {"table transactions", "view transactions_v"} <= sqlite_objects(tmp_path / "adapter.db")


def test_a_deployment_ending_before_its_pending_statuses_still_ends_as_success(bot: BotFactory, tmp_path: Path) -> None:
    """The engine may finish before the release job has told GitHub it started: GitHub must still end on success."""
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url))
        sha = meshbot.repository.create_tag("v1.0.0", "main")

        def reported() -> bool:
            with meshbot.github.lock:
                return any(status["state"] == "success" for deployment in meshbot.repository.deployments.values()
                           for status in deployment["statuses"])

        # The release job's first deployment status (in progress) reaches GitHub only after the report job's.
        meshbot.github.hold("POST", f"/repos/{PROJECT}/deployments/*/statuses", reported)
        meshbot.accepted("push", push_payload("refs/tags/v1.0.0", ZERO_SHA, sha))
        meshbot.until(lambda: [status for status in meshbot.statuses(sha, DEPLOY_CONTEXT)
                               if status["state"] == "pending"], "the release job's pending status")
        meshbot.idle()

    states = [status["state"] for status in meshbot.statuses(sha, DEPLOY_CONTEXT)]
    assert states[-1] == "success", states
    [record] = meshbot.repository.deployments.values()
    deployment_states = [status["state"] for status in record["statuses"]]
    assert deployment_states[-1] == "success", deployment_states
    document, _ = product_status(meshbot.engine.redis, PRODUCT, "production")
    assert document["status"] == "DEPLOYED"
