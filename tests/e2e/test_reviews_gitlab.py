"""Reviews against what is deployed, end to end on GitLab (meshbot issue 12).

One setup for the module: the GitLab test server holding the example on a subgroup project, the reference SQLite
adapter, a real Redis with two worker subprocesses, meshbot's web application (webhooks through its test client, the
descriptor API over real HTTP), and v1.0.0 released to production through a Tag Push Hook. Each test then opens its
own merge request from its own branch and reads what meshbot wrote; none changes what is deployed, so they run in
any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.engine.deployment import DeploymentState
from bot.engine.status import product_status
from bot.forge.review import MARKER, STATUS_CONTEXT
from tests.deploy_harness import engine
from tests.e2e import reviews
from tests.e2e.reviews import API_TOKEN, PRODUCT, RELEASED
from tests.e2e.test_gitlab import DEPLOY_CONTEXT, TIMEOUT, Bot, gitlab_bot
from tests.forge.test_review import dropping_a_column
from tests.servers.gitlab import gitlab_server
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
    """meshbot on the GitLab server with the example's v1.0.0 deployed to production through a tag push."""
    directory = tmp_path_factory.mktemp("reviews-gitlab")
    with pytest.MonkeyPatch.context() as monkeypatch, ExitStack() as stack:
        server = stack.enter_context(gitlab_server())
        adapter = stack.enter_context(running_adapter(directory / "adapter.db"))
        monkeypatch.setenv("MESHBOT_API_TOKEN", API_TOKEN)  # the workers start after it, in gitlab_bot
        bot = gitlab_bot(server, lambda workers: stack.enter_context(engine(directory, workers)), monkeypatch,
                         directory, reviews.server_config(directory, adapter.url))
        api = stack.enter_context(reviews.served(bot.web.application))

        tagged = bot.project.branches["main"]
        response = bot.deliver("Tag Push Hook", bot.push_hook("refs/tags/v1.0.0", "0" * 40, tagged, "tag_push"))
        assert response.status_code == 202, response.get_json()

        def started() -> str | None:
            deployment = product_status(bot.engine.redis, PRODUCT, "production")[0]["deployment"]
            return deployment["id"] if deployment else None

        deployment = bot.until(started, "the release's deployment to production to start")
        finished = bot.engine.wait(deployment, timeout=TIMEOUT)
        assert finished.state is DeploymentState.DEPLOYED, bot.engine.diagnosis(deployment)
        bot.status(tagged, DEPLOY_CONTEXT, "success")
        bot.until(lambda: [record for record in bot.project.deployments.values() if record["status"] == "success"],
                  f"GitLab's deployment to succeed (have: {bot.project.deployments})")
        bot.settle()
        yield Released(bot, tagged, deployment, api)


def review(bot: Bot, branch: str, files: dict[str, bytes]) -> tuple[str, str]:
    """Push branch with files, open a merge request, deliver its hook, wait for the review; (head, note)."""
    head = bot.server.push(bot.project, branch, files, message=f"Work on {branch}", author="carla")
    record = bot.server.open_merge_request(bot.project, branch, author="carla", title=f"Change {branch}")
    response = bot.deliver("Merge Request Hook", bot.merge_request_hook(record, "open"))
    assert response.status_code == 202, response.get_json()
    bot.until(lambda: bot.statuses(head, STATUS_CONTEXT), f"the review of {branch} at {head[:8]}")
    bot.settle()
    [note] = [body for body in bot.notes(record) if body.startswith(MARKER)]
    assert f"meshbot checked commit {head[:8]};" in note
    return head, note


def statuses(bot: Bot, head: str) -> reviews.Statuses:
    """The governance statuses on head, each set once: (state, description) by name."""
    found = {}
    for name in (reviews.DEVELOPMENT, reviews.PRODUCTION, reviews.GOVERNANCE):
        [status] = bot.statuses(head, name)
        found[name] = (status["status"], status["description"])
    return found


# ---------------------------------------------------------------------- 1. the release


def test_the_release_tag_deployed_1_0_0_to_production_and_the_api_serves_it(released: Released) -> None:
    """The tag push deployed v1.0.0 to production only; the API answers that descriptor, behind its token."""
    bot = released.bot
    document, waiting = product_status(bot.engine.redis, PRODUCT, "production")
    assert (document["status"], document["version"], waiting) == ("DEPLOYED", RELEASED, [])
    assert document["deployment"]["id"] == released.deployment
    assert bot.statuses(released.tagged, DEPLOY_CONTEXT)[-1]["status"] == "success"
    assert [record["environment"] for record in bot.project.deployments.values()] == [{"name": "production"}]
    reviews.check_descriptor_api(released.api, released.deployment)


# ---------------------------------------------------------------------- 2. to 4. reviews per environment


def test_a_dropped_column_is_blocked_for_production_with_file_and_line(released: Released) -> None:
    """Dropping net_amount: production blocked by no-breaking-changes at the column list, 1 to change naming it."""
    head, note = review(released.bot, "drop-net-amount", dropping_a_column())
    reviews.check_dropped_column(note, statuses(released.bot, head))


def test_a_new_component_is_one_to_add_where_deployed(released: Released) -> None:
    """A new output port: 1 to add against production's 1.0.0, all 4 to add where nothing is deployed; success."""
    head, note = review(released.bot, "add-bookings", reviews.adding_a_component())
    reviews.check_new_component(note, statuses(released.bot, head))


def test_a_production_only_policy_blocks_only_the_production_row(released: Released) -> None:
    """The platform's production-uptime policy (selector environment: [production]) fails production alone."""
    head, note = review(released.bot, "lower-uptime", reviews.lowering_the_uptime())
    reviews.check_production_only_policy(note, statuses(released.bot, head))


# ---------------------------------------------------------------------- 5. meshbot diff prints the same plan


def test_meshbot_diff_prints_the_plan_of_the_note(released: Released, tmp_path: Path) -> None:
    """`meshbot diff --env production --server URL` on the branch's files: the note's production plan, exactly."""
    bot = released.bot
    _, note = review(bot, "drop-net-amount-diff", dropping_a_column())
    checkout = reviews.write_files(tmp_path / "checkout", bot.server.files_at(bot.project, "drop-net-amount-diff"))
    reviews.check_same_plan(note, checkout, released.api)
