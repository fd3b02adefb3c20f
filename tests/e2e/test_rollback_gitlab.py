"""`/rollback qa` on a GitLab merge request, end to end: Note Hooks, real RQ workers, the reference SQLite adapter,
and the reply note edited until it says DEPLOYED with the version rolled back to (its view definition restored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.deployed import RedisDeployedStates
from tests.cli.test_deploy import adapters_config
from tests.cli.test_rollback import VIEW_100, VIEW_110, view_sql
from tests.deploy_harness import Start
from tests.e2e.test_commands_gitlab import replies, say
from tests.e2e.test_gitlab import PRODUCT, gitlab_bot, open_merge_request
from tests.e2e.test_rollback_github import NET_AMOUNT, PORT, SYSTEM
from tests.servers.gitlab import gitlab_server
from tests.servers.reference_adapter import running_adapter


def test_rollback_on_gitlab_restores_the_previous_version(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    database = tmp_path / "adapter.db"
    with gitlab_server() as server, running_adapter(database) as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path,
                         adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        server.set_member(bot.project, "dev", 30)  # Developer
        server.set_member(bot.project, "guest", 20)  # Reporter: reads, may not deploy
        record = open_merge_request(bot)

        def deployed_replies() -> list[str]:
            return [text for text in replies(bot, record) if "**DEPLOYED**" in text]

        say(bot, record, "/deploy qa", "dev")
        bot.until(lambda: len(deployed_replies()) == 1, "the deploy of 1.0.0")
        files = server.files_at(bot.project, record.source_branch)
        system = files[SYSTEM].replace(b"    version: 1.0.0\n", b"    version: 1.1.0\n", 1)
        port = files[PORT].replace(NET_AMOUNT, b"").replace(b"      schema:\n", b"      schema:\n" + NET_AMOUNT, 1)
        server.push(bot.project, record.source_branch, {SYSTEM: system, PORT: port}, message="1.1.0")
        say(bot, record, "/deploy qa", "dev")
        bot.until(lambda: len(deployed_replies()) == 2, "the deploy of 1.1.0")
        assert view_sql(database) == VIEW_110

        say(bot, record, "/rollback qa", "guest")
        bot.until(lambda: any("@guest `/rollback` refused" in text for text in replies(bot, record)), "the refusal")
        say(bot, record, "/rollback qa 1.0.0", "dev")
        final = bot.until(lambda: next((text for text in deployed_replies() if "`/rollback`" in text), None),
                          "the rollback reply to end DEPLOYED")
        assert f"`/rollback` of `{PRODUCT}` 1.0.0 to `qa`, deployment `" in final
        assert view_sql(database) == VIEW_100
        bot.settle()
    state = RedisDeployedStates(bot.engine.redis).deployed(PRODUCT, "qa")
    assert state is not None and state.version == "1.0.0"
