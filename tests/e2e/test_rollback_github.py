"""`/rollback qa` on a GitHub pull request, end to end: signed comment webhooks, real RQ workers, the reference SQLite
adapter, and the reply comment edited until it says DEPLOYED with the version rolled back to."""

from __future__ import annotations

from pathlib import Path

from bot.engine.deployed import RedisDeployedStates
from tests.cli.test_deploy import adapters_config
from tests.cli.test_rollback import VIEW_100, VIEW_110, view_sql
from tests.e2e.test_commands_github import PRODUCT, replies, say
from tests.e2e.test_github import BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.servers.reference_adapter import running_adapter

SYSTEM, PORT = "catalog-info.yaml", "components/daily-cashflow/catalog-info.yaml"
NET_AMOUNT = b"        - name: net_amount\n          dataType: DECIMAL\n"


def test_rollback_redeploys_the_previous_version_and_the_reply_says_deployed(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, qa]\n"))
        meshbot.repository.set_permission("writer", "write")
        meshbot.repository.set_permission("reader", "read")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})

        def deployed_replies() -> list[str]:
            return [text for text in replies(meshbot, number) if "**DEPLOYED**" in text]

        say(meshbot, number, "/deploy qa", "writer")
        meshbot.until(lambda: len(deployed_replies()) == 1, "the deploy of 1.0.0")
        files = meshbot.repository.files_at("change")
        system = files[SYSTEM].replace(b"    version: 1.0.0\n", b"    version: 1.1.0\n", 1)
        port = files[PORT].replace(NET_AMOUNT, b"").replace(b"      schema:\n", b"      schema:\n" + NET_AMOUNT, 1)
        head = meshbot.repository.push("change", {SYSTEM: system, PORT: port}, message="1.1.0: net_amount first")
        say(meshbot, number, "/deploy qa", "writer")
        meshbot.until(lambda: len(deployed_replies()) == 2, "the deploy of 1.1.0")
        assert view_sql(database) == VIEW_110

        say(meshbot, number, "/rollback qa", "reader")
        meshbot.until(lambda: any("@reader `/rollback` refused" in text for text in replies(meshbot, number)),
                      "the refusal of a reader")
        say(meshbot, number, "/rollback qa", "writer")
        final = meshbot.until(lambda: next((text for text in deployed_replies() if "`/rollback`" in text), None),
                              "the rollback reply to end DEPLOYED")
        assert f"`/rollback` of `{PRODUCT}` 1.0.0 to `qa`, deployment `" in final
        assert final.count("✅ COMPLETED") == 3
        assert view_sql(database) == VIEW_100
        meshbot.idle()
    state = RedisDeployedStates(meshbot.engine.redis).deployed(PRODUCT, "qa")
    first = meshbot.engine.store.load(meshbot.engine.store.history(PRODUCT, "qa")[-1])
    assert state is not None and first is not None
    assert (state.version, state.descriptor) == ("1.0.0", first.descriptor)
    rollback = meshbot.engine.store.load(state.deployment)
    assert rollback is not None and rollback.started_by.startswith("rollback to 1.0.0 by @writer (github:")
    assert meshbot.statuses(head, "meshbot/rollback/qa")[-1]["state"] == "success"
