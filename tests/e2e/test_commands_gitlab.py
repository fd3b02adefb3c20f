"""`/deploy` and `/undeploy` on a GitLab merge request, end to end: Note Hooks, real RQ workers, the reference
SQLite adapter, and the reply note edited until it shows the outcome."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bot.engine.status import product_status
from tests.cli.test_deploy import adapters_config, sqlite_objects
from tests.deploy_harness import Start
from tests.e2e.test_gitlab import PATH, PRODUCT, Bot, example_files, gitlab_bot, open_merge_request
from tests.forge.test_events import fixture
from tests.servers.gitlab import gitlab_server
from tests.servers.reference_adapter import running_adapter

REPLY_MARKER = "<!-- meshbot:command -->"


def say(bot: Bot, record: Any, body: str, username: str) -> None:
    """A person adds a note to the merge request (the server records it) and GitLab delivers the Note Hook."""
    note = bot.server.add_note(bot.project, record.iid, body, author=username)
    payload = copy.deepcopy(fixture("gitlab", "note_merge_request"))
    payload["user"] |= {"username": username, "name": username.title()}
    payload["project"] |= {"id": bot.project.id, "path_with_namespace": PATH}
    payload["object_attributes"] |= {"id": note.id, "note": body, "noteable_type": "MergeRequest", "action": "create",
                                     "system": False}
    payload["merge_request"] |= {"iid": record.iid, "id": record.id, "source_branch": record.source_branch,
                                 "target_branch": record.target_branch}
    response = bot.deliver("Note Hook", payload)
    assert response.status_code == 202, response.get_json()


def replies(bot: Bot, record: Any) -> list[str]:
    return [body for body in bot.notes(record) if body.startswith(REPLY_MARKER)]


def test_deploy_then_undeploy_from_a_merge_request(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url))
        project, engine = bot.project, bot.engine
        server.set_member(project, "dev", 30)  # Developer
        server.set_member(project, "lead", 50)  # Owner
        record = open_merge_request(bot)

        say(bot, record, "/undeploy development", "lead")  # nothing deployed yet: nothing recorded
        never = bot.until(lambda: next((text for text in replies(bot, record) if "nothing deployed" in text), None),
                          "the reply that nothing is deployed")
        assert never.endswith(f"`/undeploy` of `{PRODUCT}`: nothing deployed in `development`, so nothing was "
                              "undeployed.")
        assert engine.store.history(PRODUCT, "development") == []

        say(bot, record, "/deploy", "dev")
        final = bot.until(lambda: next((text for text in replies(bot, record) if "**DEPLOYED**" in text), None),
                          "the deploy reply to end DEPLOYED")
        assert final.count("✅ COMPLETED") == 3
        assert product_status(engine.redis, PRODUCT, "development")[0]["status"] == "DEPLOYED"
        head = project.branches[record.source_branch]
        bot.status(head, "meshbot/deploy/development", "success")
        deploy_id = engine.store.history(PRODUCT, "development")[0]

        # the branch moves on (an output port removed, the other's view renamed): the undeploy ignores it
        port = "components/daily-cashflow/catalog-info.yaml"
        renamed = server.files_at(project, record.source_branch)[port].replace(b"viewName: daily_cashflow_v",
                                                                               b"viewName: cashflow_by_day")
        server.push(project, record.source_branch, {port: renamed},
                    deleted=("components/transactions/catalog-info.yaml",), message="Drop the transactions port")

        say(bot, record, "/undeploy development", "dev")
        bot.until(lambda: any("needs the Owner role" in text for text in replies(bot, record)),
                  "the refusal for a Developer")
        say(bot, record, "/undeploy development --remove-data", "lead")
        gone = bot.until(lambda: next((text for text in replies(bot, record) if "**NOT_DEPLOYED**" in text), None),
                         "the undeploy to end")
        assert gone.count("✅ COMPLETED") == 3
        bot.settle()
    assert sqlite_objects(tmp_path / "adapter.db") == set()
    undeployed, deployed = (engine.store.load(item) for item in engine.store.history(PRODUCT, "development")[:2])
    assert deployed is not None and deployed.id == deploy_id
    assert undeployed is not None and undeployed.descriptor == deployed.descriptor  # not the branch's head
    assert ["eyes"] in [note.award_emoji for note in record.notes]  # each command note acknowledged


def test_dry_run_typos_usage_import_and_a_human_commit_on_gitlab(start: Start, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    import sqlite3

    port = "components/daily-cashflow/catalog-info.yaml"
    with gitlab_server() as server, running_adapter(tmp_path / "adapter.db") as adapter:
        bot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url))
        project = bot.project
        server.set_member(project, "dev", 30)
        server.set_member(project, "guest", 20)
        record = open_merge_request(bot)

        say(bot, record, "/deplyo\n/import\n/deploy --dry-run", "dev")
        bot.until(lambda: len(replies(bot, record)) == 3 and "nothing was provisioned" in replies(bot, record)[2],
                  "three replies, the dry run's complete")
        typo, usage, dry = replies(bot, record)
        assert "did you mean `/deploy`?" in typo
        assert "Usage: `/import COMPONENT [key=value ...]`" in usage
        assert "nothing was provisioned" in dry and dry.count("| valid |") == 3
        fork = server.create_project("outsider/cashflow", example_files(), forked_from=project)
        server.push(fork, "fork-change", {"README.md": b"from a fork\n"}, message="fork work")
        fork_request = server.open_merge_request(project, "fork-change", source_project=fork, author="outsider")
        say(bot, fork_request, "/deploy", "dev")
        bot.until(lambda: any("merge requests from forks can never deploy or import" in text
                              for text in replies(bot, fork_request)), "the refusal from a fork")
        say(bot, record, "/deploy", "guest")
        bot.until(lambda: any("needs the Developer role or higher" in text and "@guest has Reporter" in text
                              for text in replies(bot, record)), "the refusal for a Reporter")

        say(bot, record, "/deploy", "dev")
        bot.until(lambda: any("**DEPLOYED**" in text for text in replies(bot, record)), "the deploy")
        with sqlite3.connect(tmp_path / "adapter.db") as connection:
            connection.execute("ALTER TABLE daily_cashflow ADD COLUMN currency TEXT")
            connection.execute("DROP VIEW daily_cashflow_v")
            connection.execute("CREATE VIEW daily_cashflow_v AS SELECT business_unit, booked_on, net_amount, currency "
                               "FROM daily_cashflow")
        say(bot, record, "/import daily-cashflow", "dev")
        bot.until(lambda: any("opened" in text and "/import" in text for text in replies(bot, record)), "the import")
        imports = [request for request in project.merge_requests.values()
                   if request.source_branch.startswith("meshbot/import/")]
        assert len(imports) == 1 and imports[0].target_branch == record.source_branch
        branch = imports[0].source_branch
        before = bot.server.files_at(project, record.source_branch)[port].decode()
        imported = bot.server.files_at(project, branch)[port].decode()
        import difflib

        changed = [line for line in difflib.ndiff(before.splitlines(), imported.splitlines())
                   if line[:2] in ("- ", "+ ")]
        assert [" ".join(line.split()) for line in changed] == ["+ - name: currency", "+ dataType: TEXT"], changed

        bot.server.push(project, branch, {"NOTES.md": b"a person's commit\n"}, message="my own change")
        say(bot, record, "/import daily-cashflow", "dev")
        bot.until(lambda: any("refused" in text and "/import" in text for text in replies(bot, record)),
                  "the import refusing to overwrite a person's commit")
        assert "NOTES.md" in bot.server.files_at(project, branch)
        bot.settle()
