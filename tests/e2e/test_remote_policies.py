"""Remote policy engines in the review of a pull request, end to end on GitHub: a signed webhook, real RQ workers,
the GitHub test server, and a remote policy engine over real HTTP on 127.0.0.1 (tests/servers/policy_engine.py).

Each test starts its own Redis and workers, so no verdict is cached from one test to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.forge.review import STATUS_CONTEXT
from tests.e2e.test_github import (  # noqa: F401  (fixtures)
    PRODUCT,
    Bot,
    BotFactory,
    bot,
    github,
    meshbot_comments,
    pull_request_payload,
)
from tests.servers.policy_engine import PolicyEngine, policy_engine

POLICY = "cue-owner"
REMOTE_POLICY = f"""\
id: {POLICY}
description: The data product names its owner group (checked by the CUE engine)
target: dataproduct
severity: error
status: enabled
remote: cue
"""


@pytest.fixture
def engine() -> Iterator[PolicyEngine]:
    with policy_engine() as running:
        yield running


def start(bot: BotFactory, engine: PolicyEngine, folder: Path) -> Bot:  # noqa: F811
    """meshbot with the platform's one remote policy and the engine `cue` (timeout 1 s) in its configuration."""
    folder.mkdir()
    (folder / f"{POLICY}.yaml").write_text(REMOTE_POLICY)
    return bot(f"policies: [{folder}]\npolicy_engines:\n  cue: {{url: '{engine.url}', timeout: 1}}\n")


def review(meshbot: Bot, branch: str) -> tuple[dict[str, str], str]:
    """Open a pull request that changes the README and wait for its review; (the governance status, the comment)."""
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request(branch, {"README.md": b"# Cash flow\n"})
    meshbot.accepted("pull_request", pull_request_payload("opened", number, branch, head, base))
    [status] = meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), f"the review of {branch}")
    meshbot.idle()
    [comment] = meshbot_comments(meshbot.comments(number))
    return status, comment["body"]


def test_a_passing_remote_policy_is_listed_as_passed(bot: BotFactory, engine: PolicyEngine,  # noqa: F811
                                                      tmp_path: Path) -> None:
    meshbot = start(bot, engine, tmp_path / "policies")
    status, body = review(meshbot, "readme")
    assert status["state"] == "success", status
    assert f"| `{POLICY}` | `{PRODUCT}` |" in body  # in the passed checks of each environment
    requests = engine.received()
    assert sorted(request.headers["x-meshbot-environment"] for request in requests) == ["development", "production"]
    assert {(request.body["resourceType"], request.body["resourceId"]) for request in requests} == {
        ("system", PRODUCT)}
    assert all(request.body["content"].startswith(f"id: {PRODUCT}\n") for request in requests)
    # the review job loaded its policies with its Redis connection: both verdicts are there for every worker
    assert len(list(meshbot.engine.redis.scan_iter("meshbot:policy-verdict:*"))) == 2


def test_a_blocking_remote_policy_fails_the_status_and_shows_the_engines_error(
        bot: BotFactory, engine: PolicyEngine, tmp_path: Path) -> None:  # noqa: F811
    engine.behave("block", errors=("ownerGroup must be a group of the finance domain (got *nobody*)",))
    meshbot = start(bot, engine, tmp_path / "policies")
    status, body = review(meshbot, "readme")
    assert status["state"] == "failure", status
    assert "1 blocking failure" in status["description"]
    assert f"**`{POLICY}`** on `{PRODUCT}` (error, enabled): The data product names its owner group " in body
    assert ("- `catalog-info.yaml` line 13, column 3 · `(root)`: ownerGroup must be a group of the finance domain "
            "\\(got \\*nobody\\*\\)") in body.splitlines()  # the engine's text, escaped, at the data product
    assert f"| `{POLICY}` | `{PRODUCT}` |" not in body


def test_a_remote_engine_that_times_out_is_an_error_never_passed(
        bot: BotFactory, engine: PolicyEngine, tmp_path: Path) -> None:  # noqa: F811
    engine.behave("sleep", delay=3)
    meshbot = start(bot, engine, tmp_path / "policies")
    status, body = review(meshbot, "readme")
    assert status["state"] == "failure", status
    assert ("- ⛔ **engine error**: policy engine 'cue' timed out after 1 s; the policy engine gave no verdict, so "
            "this policy counts as failed and blocks (fail closed)") in body.splitlines()
    assert "| ⛔ policy engine errors (counted above) | 1 |" in body
    assert f"| `{POLICY}` | `{PRODUCT}` |" not in body
    assert "✅ passed" not in body.split("<details>")[0]
