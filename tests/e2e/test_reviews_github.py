"""Reviews against what is deployed, end to end on GitHub (meshbot issue 12).

One setup for the module: the GitHub test server holding the example, the reference SQLite adapter, a real Redis
with two worker subprocesses, meshbot's web application (webhooks through its test client, the descriptor API over
real HTTP), and v1.0.0 released to production through a signed tag push. Each test then opens its own pull request
from its own branch and reads what meshbot wrote; none changes what is deployed, so they run in any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import create_app
from bot.engine.deployment import DeploymentState
from bot.engine.status import product_status
from bot.forge.review import STATUS_CONTEXT
from tests.deploy_harness import engine
from tests.e2e import reviews
from tests.e2e.reviews import API_TOKEN, PRODUCT, RELEASED
from tests.e2e.test_github import (
    DEPLOY_CONTEXT,
    PROJECT,
    SECRET,
    TIMEOUT,
    ZERO_SHA,
    Bot,
    example_files,
    meshbot_comments,
    pull_request_payload,
    push_payload,
)
from tests.forge.test_review import dropping_a_column
from tests.servers.github import github_server
from tests.servers.reference_adapter import running_adapter


@dataclass
class Released:
    """The running bot after the release, the tagged commit, its deployment and the web application's URL."""

    bot: Bot
    tagged: str
    deployment: str
    api: str


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """meshbot on the GitHub server with the example's v1.0.0 deployed to production through a tag push."""
    directory = tmp_path_factory.mktemp("reviews-github")
    with pytest.MonkeyPatch.context() as monkeypatch, ExitStack() as stack:
        github = stack.enter_context(github_server())
        adapter = stack.enter_context(running_adapter(directory / "adapter.db"))
        repository = github.create_repository(PROJECT, example_files())
        # As tests/e2e/test_github.py's `bot` fixture sets it up, plus the API token; before the workers start.
        config = directory / "meshbot.yaml"
        config.write_text(reviews.server_config(directory, adapter.url))
        monkeypatch.setenv("MESHBOT_CONFIG", str(config))
        monkeypatch.setenv("MESHBOT_GITHUB_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("MESHBOT_GITHUB_TOKEN", github.token)
        monkeypatch.setenv("MESHBOT_GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("MESHBOT_GITHUB_SECONDS_BETWEEN_WRITES", "0")
        monkeypatch.setenv("MESHBOT_API_TOKEN", API_TOKEN)
        for variable in ("MESHBOT_GITHUB_APP_ID", "MESHBOT_GITHUB_APP_PRIVATE_KEY", "MESHBOT_BOT_USERNAME"):
            monkeypatch.delenv(variable, raising=False)
        running = stack.enter_context(engine(directory, workers=2))
        app = create_app(redis_connection=running.redis, bot_usernames=["meshbot"])
        meshbot = Bot(github, repository, running, app.test_client())
        api = stack.enter_context(reviews.served(app))

        tagged = repository.create_tag("v1.0.0", "main")
        meshbot.accepted("push", push_payload("refs/tags/v1.0.0", ZERO_SHA, tagged))

        def started() -> str | None:
            deployment = product_status(running.redis, PRODUCT, "production")[0]["deployment"]
            return deployment["id"] if deployment else None

        deployment = meshbot.until(started, "the release's deployment to production to start")
        finished = running.wait(deployment, timeout=TIMEOUT)
        assert finished.state is DeploymentState.DEPLOYED, running.diagnosis(deployment)
        meshbot.until(lambda: [status["state"] for status in meshbot.statuses(tagged, DEPLOY_CONTEXT)][-1:]
                      == ["success"], "the deployment's outcome on GitHub")
        meshbot.idle()
        yield Released(meshbot, tagged, deployment, api)


def review(meshbot: Bot, branch: str, files: dict[str, bytes]) -> tuple[str, str]:
    """Push branch with files, open a pull request, deliver its webhook, wait for the review; (head, comment)."""
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request(branch, files)
    meshbot.accepted("pull_request", pull_request_payload("opened", number, branch, head, base))
    meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), f"the review of {branch} at {head[:8]}")
    meshbot.idle()
    [comment] = meshbot_comments(meshbot.comments(number))
    assert f"meshbot checked commit {head[:8]};" in comment["body"]
    return head, comment["body"]


def statuses(meshbot: Bot, head: str) -> reviews.Statuses:
    """The governance statuses on head, each set once: (state, description) by context, GitHub's failure as failed."""
    found = {}
    for context in (reviews.DEVELOPMENT, reviews.PRODUCTION, reviews.GOVERNANCE):
        [status] = meshbot.statuses(head, context)
        found[context] = ({"failure": "failed"}.get(status["state"], status["state"]), status["description"])
    return found


# ---------------------------------------------------------------------- 1. the release


def test_the_release_tag_deployed_1_0_0_to_production_and_the_api_serves_it(released: Released) -> None:
    """The tag push deployed v1.0.0 to production only; the API answers that descriptor, behind its token."""
    meshbot = released.bot
    document, waiting = product_status(meshbot.engine.redis, PRODUCT, "production")
    assert (document["status"], document["version"], waiting) == ("DEPLOYED", RELEASED, [])
    assert document["deployment"]["id"] == released.deployment
    assert meshbot.statuses(released.tagged, DEPLOY_CONTEXT)[-1]["state"] == "success"
    assert [record["environment"] for record in meshbot.repository.deployments.values()] == ["production"]
    reviews.check_descriptor_api(released.api, released.deployment)


# ---------------------------------------------------------------------- 2. to 4. reviews per environment


def test_a_dropped_column_is_blocked_for_production_with_file_and_line(released: Released) -> None:
    """Dropping net_amount: production blocked by no-breaking-changes at the column list, 1 to change naming it."""
    head, comment = review(released.bot, "drop-net-amount", dropping_a_column())
    reviews.check_dropped_column(comment, statuses(released.bot, head))


def test_a_new_component_is_one_to_add_where_deployed(released: Released) -> None:
    """A new output port: 1 to add against production's 1.0.0, all 4 to add where nothing is deployed; success."""
    head, comment = review(released.bot, "add-bookings", reviews.adding_a_component())
    reviews.check_new_component(comment, statuses(released.bot, head))


def test_a_production_only_policy_blocks_only_the_production_row(released: Released) -> None:
    """The platform's production-uptime policy (selector environment: [production]) fails production alone."""
    head, comment = review(released.bot, "lower-uptime", reviews.lowering_the_uptime())
    reviews.check_production_only_policy(comment, statuses(released.bot, head))


# ---------------------------------------------------------------------- 5. meshbot diff prints the same plan


def test_meshbot_diff_prints_the_plan_of_the_comment(released: Released, tmp_path: Path) -> None:
    """`meshbot diff --env production --server URL` on the branch's files: the comment's production plan, exactly."""
    meshbot = released.bot
    _, comment = review(meshbot, "drop-net-amount-diff", dropping_a_column())
    checkout = reviews.write_files(tmp_path / "checkout", meshbot.repository.files_at("drop-net-amount-diff"))
    reviews.check_same_plan(comment, checkout, released.api)
