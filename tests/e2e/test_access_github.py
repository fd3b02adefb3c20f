"""Access grants on GitHub, end to end: a `/deploy qa` through real RQ workers and the reference SQLite adapter, then
merged pull requests (signed `pull_request` webhooks) that add and remove a consumer in access/daily-cashflow.yaml:
the adapter's access list follows (updateacl with the complete refs) and each pull request gets the result comment."""

from __future__ import annotations

from pathlib import Path

from adapters.reference import sqlite
from bot.engine.access import AccessStore
from tests.cli.test_deploy import adapters_config
from tests.e2e.test_commands_github import PRODUCT, replies, say
from tests.e2e.test_github import Bot, BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.e2e.test_promotion_github import merged_payload
from tests.servers.reference_adapter import running_adapter

PORT = "urn:dmb:cmp:finance:cashflow:1:daily-cashflow"
ACCESS_FILE = "access/daily-cashflow.yaml"
HEADING = "### 🔑 meshbot: access to the output ports of `urn:dmb:dp:finance:cashflow:1`"


def acl(database: Path) -> list[str]:
    """Who the reference adapter lets read the daily-cashflow output port."""
    with sqlite.connect(database) as connection:
        return sqlite.acl(connection, PORT)


def merge(meshbot: Bot, branch: str, files: dict[str, bytes]) -> int:
    """Open a pull request with files, merge it, and deliver GitHub's merged webhook; its number."""
    number, _ = meshbot.open_pull_request(branch, files)
    with meshbot.github.lock:
        pull = dict(meshbot.repository.pulls[number])
    merge_sha = meshbot.repository.merge_pull_request(number, merged_by="owner")
    meshbot.accepted("pull_request", merged_payload(pull, merge_sha))
    return number


def access_comment(meshbot: Bot, number: int) -> str | None:
    return next((comment["body"] for comment in meshbot.comments(number) if comment["body"].startswith(HEADING)),
                None)


def test_merging_a_consumer_grants_and_merging_its_removal_revokes(bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy qa", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy to qa")
        meshbot.idle()

        granted = merge(meshbot, "meshbot/access/daily-cashflow/alice",
                        {ACCESS_FILE: b"# who reads daily-cashflow\nconsumers:\n  - user: alice\n"})
        text = meshbot.until(lambda: access_comment(meshbot, granted), "the access comment")
        assert "| `daily-cashflow` | `qa` | ✅ granted to `user:alice` |" in text
        assert acl(database) == ["user:alice"]
        applied = AccessStore(meshbot.engine.redis).applied(PRODUCT, "qa")["daily-cashflow"]
        assert (applied.refs, applied.merge_request) == (["user:alice"], granted)

        unrelated = merge(meshbot, "docs", {"README.md": b"more words\n"})  # the refs are applied: nothing to send
        meshbot.idle()
        assert meshbot.comments(unrelated) == []  # most merges: no comment

        revert = merge(meshbot, "revert-alice", {ACCESS_FILE: b"consumers: []\n"})
        text = meshbot.until(lambda: access_comment(meshbot, revert), "the revoke comment")
        assert "| `daily-cashflow` | `qa` | ✅ revoked from `user:alice` (nobody has access now) |" in text
        assert acl(database) == []
        meshbot.idle()
    attempts = AccessStore(meshbot.engine.redis).attempts(PRODUCT, "qa", "daily-cashflow")
    assert [(item["refs"], item["mergeRequest"]) for item in attempts] == [([], revert), (["user:alice"], granted)]


def test_an_invalid_access_file_is_reported_with_its_position_and_changes_nothing(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy qa", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy to qa")
        broken = merge(meshbot, "broken", {ACCESS_FILE: b"consumers:\n  - user: alice\n  - robot: r2d2\n"})
        text = meshbot.until(lambda: next((comment["body"] for comment in meshbot.comments(broken)
                                           if "meshbot: access" in comment["body"]), None), "the access comment")
        assert text.startswith("### ⚠️ meshbot: access to the output ports of")
        assert "❌ `access/daily-cashflow.yaml` is not a valid access file; nothing changed for output port " \
               "`daily-cashflow`:\n- `access/daily-cashflow.yaml` line 3, column 5: field 'consumers.1'" in text
        assert acl(database) == []
        meshbot.idle()
