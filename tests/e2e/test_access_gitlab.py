"""Access grants on GitLab, end to end: a `/deploy` through real RQ workers and the reference SQLite adapter, then
merged merge requests (Merge Request Hooks, action merge, with the token) that add and remove a consumer in
access/daily-cashflow.yaml: the adapter's access list follows (updateacl, refs mapped by the server configuration) and
each merge request gets the result note."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.reference import sqlite
from bot.engine.access import AccessStore
from tests.cli.test_deploy import adapters_config
from tests.deploy_harness import Start
from tests.e2e.test_commands_gitlab import PRODUCT, replies, say
from tests.e2e.test_gitlab import Bot, gitlab_bot, open_merge_request
from tests.e2e.test_promotion_gitlab import merged_hook, tag
from tests.servers.gitlab import MergeRequestRecord, gitlab_server
from tests.servers.reference_adapter import running_adapter

PORT = "urn:dmb:cmp:finance:cashflow:1:daily-cashflow"
ACCESS_FILE = "access/daily-cashflow.yaml"
HEADING = "### 🔑 meshbot: access to the output ports of `urn:dmb:dp:finance:cashflow:1`"
MAPPING = "access:\n  user_ref: 'user:{name}@acme.com'\n  refs: {'group:data/finance': 'group:finance-analysts'}\n"


def acl(database: Path) -> list[str]:
    """Who the reference adapter lets read the daily-cashflow output port."""
    with sqlite.connect(database) as connection:
        return sqlite.acl(connection, PORT)


def merge(bot: Bot, branch: str, files: dict[str, bytes]) -> MergeRequestRecord:
    """Push branch with files, open a merge request, merge it as `owner` and deliver the Merge Request Hook."""
    bot.server.push(bot.project, branch, files, message=f"Work on {branch}")
    record = bot.server.open_merge_request(bot.project, branch, author="alice", title=f"Change {branch}")
    bot.server.merge(bot.project, record.iid, merged_by="owner")
    assert bot.deliver("Merge Request Hook", merged_hook(bot, record)).status_code == 202
    return record


def access_note(bot: Bot, record: MergeRequestRecord) -> str | None:
    return next((body for body in bot.notes(record) if body.startswith(HEADING)), None)


def test_merging_consumers_grants_mapped_refs_and_merging_a_removal_revokes(
        start: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    database = tmp_path / "adapter.db"
    with gitlab_server() as server, running_adapter(database) as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=MAPPING))
        server.set_member(bot.project, "dev", 30)  # Developer
        record = open_merge_request(bot)
        say(bot, record, "/deploy", "dev")
        bot.until(lambda: any("**DEPLOYED**" in text for text in replies(bot, record)), "the deploy to development")
        bot.settle()

        granted = merge(bot, "meshbot/access/daily-cashflow/alice", {
            ACCESS_FILE: b"consumers:\n  - user: alice\n  - group: data/finance\n"})
        text = bot.until(lambda: access_note(bot, granted), "the access note")
        assert "| `daily-cashflow` | `development` | ✅ granted to `group:finance-analysts`, `user:alice@acme.com` |" \
            in text
        assert acl(database) == ["group:finance-analysts", "user:alice@acme.com"]

        revert = merge(bot, "revert-alice", {ACCESS_FILE: b"consumers:\n  - group: data/finance\n"})
        text = bot.until(lambda: access_note(bot, revert), "the revoke note")
        assert "| `daily-cashflow` | `development` | ✅ revoked from `user:alice@acme.com` |" in text
        assert acl(database) == ["group:finance-analysts"]
        bot.settle()
    applied = AccessStore(bot.engine.redis).applied(PRODUCT, "development")["daily-cashflow"]
    assert (applied.refs, applied.merge_request, applied.merged_by) == (["group:finance-analysts"], revert.iid,
                                                                        "release-manager")


def test_a_release_tag_deploying_a_port_after_its_access_file_was_merged_grants_it_without_a_note(
        start: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    database = tmp_path / "adapter.db"
    releases = "environments: [development, production]\nreleases:\n  environments: [production]\n"
    with gitlab_server() as server, running_adapter(database) as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=MAPPING + releases))
        granted = merge(bot, "meshbot/access/daily-cashflow/alice", {ACCESS_FILE: b"consumers:\n  - user: alice\n"})
        bot.settle()
        assert access_note(bot, granted) is None  # deployed nowhere yet: nothing to send
        tag(bot)  # the first release: production gets the port, then its consumers
        bot.until(lambda: acl(database) == ["user:alice@acme.com"] or None, "the refs in production")
        bot.settle()
        assert access_note(bot, granted) is None  # a release tag: no merge request to write on
    applied = AccessStore(bot.engine.redis).applied(PRODUCT, "production")["daily-cashflow"]
    assert (applied.refs, applied.merge_request) == (["user:alice@acme.com"], None)
    assert applied.origin.startswith("after deployment ")
    [attempt] = AccessStore(bot.engine.redis).attempts(PRODUCT, "production", "daily-cashflow")
    assert attempt["origin"] == applied.origin
