"""`/deploy` and `/undeploy` on a GitHub pull request, end to end: signed comment webhook, real RQ workers,
the reference SQLite adapter, and the reply comment edited until it shows the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.engine.deployment import DeploymentState
from bot.engine.status import product_status
from tests.cli.test_deploy import adapters_config, sqlite_objects
from tests.e2e.test_github import PROJECT, BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.servers.reference_adapter import running_adapter

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
REPLY_MARKER = "<!-- meshbot:command -->"


def comment_payload(number: int, comment_id: int, body: str, user: str) -> dict[str, Any]:
    """An issue_comment delivery for a new comment on pull request number."""
    return {
        "action": "created",
        "issue": {"number": number, "title": "Change", "pull_request": {"url": f"https://api.github.com/x/{number}"},
                  "user": {"login": "jane"}},
        "comment": {"id": comment_id, "body": body, "user": {"login": user}},
        "repository": {"full_name": PROJECT}, "sender": {"login": user},
    }


def say(meshbot: Any, number: int, body: str, user: str) -> None:
    """A person comments on the pull request (the server records it) and GitHub delivers the webhook."""
    comment_id = meshbot.repository.add_comment(number, body, user)
    meshbot.accepted("issue_comment", comment_payload(number, comment_id, body, user))


def replies(meshbot: Any, number: int) -> list[str]:
    return [comment["body"] for comment in meshbot.comments(number) if comment["body"].startswith(REPLY_MARKER)]


def test_deploy_dry_run_then_deploy_then_undeploy_with_remove_data(bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, production]\n"))
        meshbot.repository.set_permission("writer", "write")
        meshbot.repository.set_permission("owner", "admin")
        number, head = meshbot.open_pull_request("change", {"README.md": b"a change\n"})

        # a dry run: the plan and each adapter's validate, nothing provisioned
        body = "/deploy development --dry-run"
        say(meshbot, number, body, "writer")
        [dry] = meshbot.until(lambda: [text for text in replies(meshbot, number) if "--dry-run" in text],
                              "the dry-run reply")
        assert "nothing was provisioned" in dry and dry.count("| valid |") == 3
        assert sqlite_objects(tmp_path / "adapter.db") == set()

        # the deploy: its reply follows the deployment to its end
        say(meshbot, number, "/deploy development", "writer")
        final = meshbot.until(lambda: next((text for text in replies(meshbot, number)
                                            if "**DEPLOYED**" in text), None), "the deploy reply to end DEPLOYED")
        assert final.count("✅ COMPLETED") == 3 and "| task | kind | status | time | adapter message |" in final
        document, _ = product_status(meshbot.engine.redis, PRODUCT, "development")
        assert document["status"] == "DEPLOYED"
        # the progress job may write the final table just before the report job sets the status: wait for it
        meshbot.until(lambda: [s for s in meshbot.statuses(head, "meshbot/deploy/development")
                               if s["state"] == "success"], "the deploy's success status")
        assert {"table transactions", "view transactions_v"} <= sqlite_objects(tmp_path / "adapter.db")
        deploy_id = meshbot.engine.store.history(PRODUCT, "development")[0]

        # the branch moves on: an output port removed, the other's view renamed; the undeploy ignores both
        port = "components/daily-cashflow/catalog-info.yaml"
        renamed = meshbot.repository.files_at("change")[port].replace(b"viewName: daily_cashflow_v",
                                                                      b"viewName: cashflow_by_day")
        meshbot.repository.push("change", {port: renamed}, deleted=("components/transactions/catalog-info.yaml",),
                                message="Drop the transactions port")

        # a writer may not undeploy (admin by default); the owner may, and says --remove-data
        say(meshbot, number, "/undeploy development --remove-data", "writer")
        meshbot.until(lambda: any("needs the admin role" in text for text in replies(meshbot, number)),
                      "the undeploy refusal")
        say(meshbot, number, "/undeploy development --remove-data", "owner")
        gone = meshbot.until(lambda: next((text for text in replies(meshbot, number)
                                           if "**NOT_DEPLOYED**" in text), None), "the undeploy reply to end")
        assert "`/undeploy`" in gone and gone.count("✅ COMPLETED") == 3
        meshbot.idle()
    assert meshbot.engine.store.product(PRODUCT, "development")["status"] == "NOT_DEPLOYED"
    assert sqlite_objects(tmp_path / "adapter.db") == set()
    reactions = meshbot.github.requests_to("POST", f"/repos/{PROJECT}/issues/comments/*/reactions")
    assert len(reactions) == 4
    latest = meshbot.engine.store.load(meshbot.engine.store.history(PRODUCT, "development")[0])
    assert latest is not None and latest.state is DeploymentState.NOT_DEPLOYED and latest.remove_data
    deployed = meshbot.engine.store.load(deploy_id)
    assert deployed is not None and latest.descriptor == deployed.descriptor  # not the branch's head


def test_import_after_a_table_changed_opens_one_pull_request_with_exactly_the_change(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    import sqlite3

    port = "components/daily-cashflow/catalog-info.yaml"
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="environments: [development, production]\n"))
        meshbot.repository.set_permission("writer", "write")
        original = meshbot.repository.files_at("main")[port].decode()
        commented = "# Reviewed by the finance data team: keep the columns in this order.\n" + original.replace(
            "\n    dataContract:", "\n    dataContract:  # the consumers' contract", 1)
        number, head = meshbot.open_pull_request("change", {port: commented.encode()})
        say(meshbot, number, "/deploy development", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy")
        with sqlite3.connect(tmp_path / "adapter.db") as connection:  # a DBA adds a column and exposes it
            connection.execute("ALTER TABLE daily_cashflow ADD COLUMN currency TEXT")
            connection.execute("DROP VIEW daily_cashflow_v")
            connection.execute("CREATE VIEW daily_cashflow_v AS SELECT business_unit, booked_on, net_amount, currency "
                               "FROM daily_cashflow")

        say(meshbot, number, "/import daily-cashflow", "writer")
        opened = meshbot.until(lambda: next((text for text in replies(meshbot, number) if "/import" in text
                                             and "opened" in text), None), "the import reply")
        say(meshbot, number, "/import daily-cashflow", "writer")  # again: the same pull request, updated
        meshbot.until(lambda: sum("/import" in text for text in replies(meshbot, number)) == 2
                      and "updated" in replies(meshbot, number)[-1], "the second import reply")
        pulls = [pull for pull in meshbot.repository.pulls.values() if pull["head"] != "change"]
        imported = meshbot.repository.files_at(pulls[0]["head"])[port]
        meshbot.repository.push("change", {port: imported}, message="Merge the import")  # a person merges it
        say(meshbot, number, "/import daily-cashflow", "writer")  # nothing left to change: up to date
        meshbot.until(lambda: sum("/import" in text for text in replies(meshbot, number)) == 3
                      and "up to date" in replies(meshbot, number)[-1], "the third import reply")
        meshbot.idle()
    pulls = [pull for pull in meshbot.repository.pulls.values() if pull["head"] != "change"]
    assert len(pulls) == 1 and pulls[0]["base"] == "change", (opened, pulls)  # the third opened nothing
    branch = pulls[0]["head"]
    before, after = commented, meshbot.repository.files_at(branch)[port].decode()
    assert "# Reviewed by the finance data team" in after and "dataContract:  # the consumers' contract" in after
    import difflib

    changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] in ("- ", "+ ")]
    assert [" ".join(line.split()) for line in changed] == ["+ - name: currency", "+ dataType: TEXT"], changed


def test_a_reader_and_a_fork_are_refused_and_typos_answered(bot: BotFactory) -> None:  # noqa: F811
    meshbot = bot("environments: [development, production]\n")
    meshbot.repository.set_permission("reader", "read")
    meshbot.repository.set_permission("owner", "admin")
    number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
    say(meshbot, number, "/deploy", "reader")
    say(meshbot, number, "/improt ledger\n/undeploy\n/undeploy development", "owner")
    fork = meshbot.github.create_fork(meshbot.repository, "outsider")
    fork.push("fork-change", {"README.md": b"from a fork\n"}, start="main", message="fork work")
    fork_number = meshbot.repository.open_pull_request("fork-change", head_repository=fork, author="outsider")
    say(meshbot, fork_number, "/deploy", "owner")
    meshbot.until(lambda: len(replies(meshbot, number)) == 4 and replies(meshbot, fork_number)
                  and not any("checking …" in text for text in replies(meshbot, number)), "the replies")
    meshbot.idle()
    answered = "\n".join(replies(meshbot, number))  # two comments' jobs may run in either order
    assert "needs the write role or higher on this repository; @reader has read" in answered
    assert "did you mean `/import`?" in answered
    assert "Usage: `/undeploy ENV [--remove-data]`" in answered
    assert f"`/undeploy` of `{PRODUCT}`: nothing deployed in `development`, so nothing was undeployed." in answered
    [fork_reply] = replies(meshbot, fork_number)
    assert "merge requests from forks can never deploy or import" in fork_reply
    assert meshbot.engine.store.history(PRODUCT, "development") == []


def test_the_deploy_reply_links_the_console_page_of_that_deployment(bot: BotFactory, tmp_path: Path,  # noqa: F811
                                                                    monkeypatch: Any) -> None:
    monkeypatch.setenv("MESHBOT_API_TOKEN", "operator-token")
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="public_url: https://meshbot.example.com\n"))
        meshbot.repository.set_permission("writer", "write")
        number, head = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy development", "writer")
        final = meshbot.until(lambda: next((text for text in replies(meshbot, number) if "**DEPLOYED**" in text
                                            and "Status: " in text), None), "the deploy reply with its link")
        meshbot.until(lambda: [s for s in meshbot.statuses(head, "meshbot/deploy/development")
                               if s["state"] == "success"], "the deploy's success status")
        meshbot.idle()
    deployment_id = meshbot.engine.store.history(PRODUCT, "development")[0]
    link = f"https://meshbot.example.com/deployments/{deployment_id}"
    assert f"Status: {link}" in final
    assert meshbot.statuses(head, "meshbot/deploy/development")[-1]["target_url"] == link
    page = meshbot.client.get(f"/deployments/{deployment_id}", headers={"Authorization": "Bearer operator-token",
                                                                       "Accept": "text/html"})
    assert page.status_code == 200 and deployment_id in page.get_data(as_text=True)
