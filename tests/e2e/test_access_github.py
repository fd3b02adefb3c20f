"""Access grants on GitHub, end to end: a `/deploy qa` through real RQ workers and the reference SQLite adapter, then
merged pull requests (signed `pull_request` webhooks) that add and remove a consumer in access/daily-cashflow.yaml:
the adapter's access list follows (updateacl with the complete refs) and each pull request gets the result comment."""

from __future__ import annotations

from pathlib import Path

from adapters.reference import sqlite
from bot.engine.access import AccessStore
from tests.cli.test_deploy import adapters_config
from tests.e2e.test_commands_github import PRODUCT, replies, say
from tests.e2e.test_github import PROJECT, Bot, BotFactory, bot, github  # noqa: F401  (fixtures)
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


def deployed_replies(meshbot: Bot, number: int, word: str = "**DEPLOYED**") -> int:
    return sum(word in text for text in replies(meshbot, number))


def test_a_port_deployed_after_its_access_file_was_merged_gets_the_default_branchs_refs_once(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        meshbot.repository.set_permission("writer", "write")
        granted = merge(meshbot, "meshbot/access/daily-cashflow/alice",
                        {ACCESS_FILE: b"consumers:\n  - user: alice\n"})
        meshbot.idle()
        assert meshbot.comments(granted) == []  # deployed nowhere: nothing to send, nothing to say

        # a merge request that asks for more: its /deploy deploys its head, its unmerged access file grants nothing
        number, _ = meshbot.open_pull_request("asks-more", {ACCESS_FILE: b"consumers:\n  - user: mallory\n"})
        say(meshbot, number, "/deploy qa", "writer")
        text = meshbot.until(lambda: access_comment(meshbot, number), "the access comment after the deploy")
        assert "access in `qa` follows the access files of the default branch" in text
        assert "| `daily-cashflow` | `qa` | ✅ granted to `user:alice` |" in text
        meshbot.until(lambda: deployed_replies(meshbot, number) == 1 or None, "the deploy's reply")
        meshbot.idle()
        assert acl(database) == ["user:alice"]
        applied = AccessStore(meshbot.engine.redis).applied(PRODUCT, "qa")["daily-cashflow"]
        assert (applied.refs, applied.merge_request) == (["user:alice"], None)
        assert applied.origin.startswith("after deployment ")

        say(meshbot, number, "/deploy qa", "writer")  # the same again: the refs are applied, nothing is sent
        meshbot.until(lambda: deployed_replies(meshbot, number) == 2 or None, "the second deploy's reply")
        meshbot.idle()
        assert len(AccessStore(meshbot.engine.redis).attempts(PRODUCT, "qa", "daily-cashflow")) == 1
        assert sum(comment["body"].startswith(HEADING) for comment in meshbot.comments(number)) == 1

        meshbot.repository.set_permission("owner", "admin")
        say(meshbot, number, "/undeploy qa", "owner")  # the adapter drops the view and its access list
        meshbot.until(lambda: any("**NOT_DEPLOYED**" in comment["body"] for comment in meshbot.comments(number))
                      or None, "the undeploy")
        meshbot.idle()
        assert acl(database) == []
        say(meshbot, number, "/deploy qa", "writer")  # deployed again: the refs applied before went with it
        meshbot.until(lambda: deployed_replies(meshbot, number) == 3 or None, "the redeploy")
        meshbot.until(lambda: acl(database) == ["user:alice"] or None, "the refs sent again")
        meshbot.idle()
    attempts = AccessStore(meshbot.engine.redis).attempts(PRODUCT, "qa", "daily-cashflow")
    assert [item["refs"] for item in attempts] == [["user:alice"], ["user:alice"]]
    assert meshbot.github.requests_to("GET", "/repos/acme-data/*/git/ref/heads/main")  # the default branch's head


def test_a_deploy_of_a_repository_without_access_files_reads_nothing_more(bot: BotFactory,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        meshbot.repository.set_permission("writer", "write")
        merge(meshbot, "docs", {"README.md": b"more words\n"})  # a merge, but no access file
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy qa", "writer")
        meshbot.until(lambda: deployed_replies(meshbot, number) == 1 or None, "the deploy to qa")
        meshbot.idle()
    assert not any(job.endswith("-access") for job in meshbot.engine.jobs())  # no job queued after the deploy
    assert meshbot.github.requests_to("GET", "/repos/acme-data/*/git/ref/heads/main") == []
    assert not AccessStore(meshbot.engine.redis).follows_deployments("github", PROJECT)
