"""Removals end to end on both forges: a component deleted from the merge request's branch is listed and kept until
`/deploy ENV --prune` where the environment's prune mode is `confirm`, then unprovisioned (signed webhooks, real RQ
workers, the reference SQLite adapter, the reply comments as the forge records them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_deploy import adapters_config
from tests.cli.test_deploy_reconcile import ARCHIVE, ARCHIVE_CATALOG
from tests.deploy_harness import Start
from tests.e2e import test_commands_github as github_commands
from tests.e2e import test_commands_gitlab as gitlab_commands
from tests.e2e.test_github import BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.e2e.test_gitlab import gitlab_bot, open_merge_request
from tests.servers.gitlab import gitlab_server
from tests.servers.reference_adapter import running_adapter

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
ARCHIVE_FILE = "components/archive/catalog-info.yaml"
CONFIG_EXTRA = "environments: {development: {prune: confirm}, production: }\n"


def components_of(engine: object, environment: str = "development") -> dict[str, dict[str, str]]:
    return engine.store.product(PRODUCT, environment)["components"]  # type: ignore[attr-defined, no-any-return]


def test_github_confirm_keeps_a_removed_component_until_deploy_prune(bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    say, replies = github_commands.say, github_commands.replies
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra=CONFIG_EXTRA))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {ARCHIVE_FILE: ARCHIVE_CATALOG.encode()})
        say(meshbot, number, "/deploy development", "writer")
        first = meshbot.until(lambda: next((t for t in replies(meshbot, number) if "**DEPLOYED**" in t), None),
                              "the first deploy")
        assert first.count("✅ COMPLETED") == 4 and ARCHIVE in components_of(meshbot.engine)

        meshbot.repository.push("change", {}, deleted=(ARCHIVE_FILE,), message="Drop the archive")
        say(meshbot, number, "/deploy development --dry-run", "writer")
        dry = meshbot.until(lambda: next((t for t in replies(meshbot, number) if "--dry-run" in t), None), "dry run")
        assert "Plan: 3 to provision, 1 kept." in dry and f"| `{ARCHIVE}` |  | kept | not asked |" in dry

        say(meshbot, number, "/deploy development", "writer")
        kept = meshbot.until(lambda: next((t for t in replies(meshbot, number)[2:] if "**DEPLOYED**" in t), None),
                             "the deploy that keeps the archive")
        assert f"- {ARCHIVE}: not in the repository any more; kept until a deploy with --prune" in kept
        assert components_of(meshbot.engine)[ARCHIVE]["status"] == "DEPLOYED"

        say(meshbot, number, "/deploy development --prune", "writer")
        pruned = meshbot.until(lambda: next((t for t in replies(meshbot, number)[3:] if "**DEPLOYED**" in t), None),
                               "the deploy with --prune")
        assert f"| `{ARCHIVE}` | storage (remove) | ✅ COMPLETED |" in pruned
        assert ARCHIVE not in components_of(meshbot.engine)
        meshbot.idle()


def test_gitlab_confirm_keeps_a_removed_component_until_deploy_prune(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    say, replies = gitlab_commands.say, gitlab_commands.replies
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=CONFIG_EXTRA))
        server.set_member(bot.project, "dev", 30)
        record = open_merge_request(bot, {ARCHIVE_FILE: ARCHIVE_CATALOG.encode()})
        say(bot, record, "/deploy", "dev")
        bot.until(lambda: next((t for t in replies(bot, record) if "**DEPLOYED**" in t), None), "the first deploy")
        assert ARCHIVE in components_of(bot.engine)

        server.push(bot.project, record.source_branch, {}, deleted=(ARCHIVE_FILE,), message="Drop the archive")
        say(bot, record, "/deploy", "dev")
        kept = bot.until(lambda: next((t for t in replies(bot, record)[1:] if "**DEPLOYED**" in t), None),
                         "the deploy that keeps the archive")
        assert f"- {ARCHIVE}: not in the repository any more; kept until a deploy with --prune" in kept

        say(bot, record, "/deploy development --prune", "dev")
        pruned = bot.until(lambda: next((t for t in replies(bot, record)[2:] if "**DEPLOYED**" in t), None),
                           "the deploy with --prune")
        assert f"| `{ARCHIVE}` | storage (remove) | ✅ COMPLETED |" in pruned
        assert ARCHIVE not in components_of(bot.engine)
        bot.settle()
