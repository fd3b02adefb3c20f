"""Drift end to end on GitHub and GitLab: `/deploy` to the reference SQLite adapter, a column added to the
deployed view by hand, and the drift sweep's rounds (real RQ workers) opening, editing in place and closing one
issue."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.engine.drift import load_report
from bot.engine.periodic import DRIFT_JOB
from bot.engine.runner import QUEUE_NAME
from bot.forge.drift_issue import marker
from tests.cli.test_deploy import adapters_config
from tests.deploy_harness import Start
from tests.e2e.test_commands_github import replies, say
from tests.e2e.test_github import PROJECT, Bot, BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.servers.reference_adapter import running_adapter

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
ENVIRONMENTS = "environments:\n  development:\n    drift_interval_seconds: 1\n  production:\n"
VIEW = "CREATE VIEW daily_cashflow_v AS SELECT business_unit, booked_on, net_amount{extra} FROM daily_cashflow"


def issues(meshbot: Bot) -> list[dict[str, Any]]:
    """Every issue of the repository (pull requests are kept apart by the server)."""
    with meshbot.github.lock:
        return [dict(issue) for issue in meshbot.repository.issues.values()]


def sweep(meshbot: Any, until: Any, what: str) -> Any:
    """Run one sweep round as the schedule would, and wait until its check has made until() hold."""
    connection = meshbot.engine.redis
    checked = load_report(connection, PRODUCT, "development")
    time.sleep(1.1)  # the environment's drift interval (1 s) since the last check: due again
    Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer).enqueue(DRIFT_JOB)

    def done() -> Any:
        latest = load_report(connection, PRODUCT, "development")
        if latest is None or latest == checked or connection.exists(f"meshbot:drift-pending:{PRODUCT}:development"):
            return None
        return until()

    return meshbot.until(done, what)


def view(database: Path, *columns: str) -> None:
    """Change the deployed view (and its table) by hand: exactly these extra columns."""
    with sqlite3.connect(database) as connection:
        present = {row[1] for row in connection.execute("PRAGMA table_info(daily_cashflow)")}
        connection.execute("DROP VIEW daily_cashflow_v")
        for column in set(columns) - present:
            connection.execute(f"ALTER TABLE daily_cashflow ADD COLUMN {column} TEXT")
        for column in present - {"business_unit", "booked_on", "net_amount", *columns}:
            connection.execute(f"ALTER TABLE daily_cashflow DROP COLUMN {column}")
        connection.execute(VIEW.format(extra="".join(f", {column}" for column in columns)))


def test_a_column_added_by_hand_opens_one_issue_edited_in_place_and_closed_once_restored(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra=ENVIRONMENTS))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy development", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy")

        # nothing changed yet: a sweep finds no drift and opens nothing
        sweep(meshbot, lambda: True, "the first check")
        report = load_report(meshbot.engine.redis, PRODUCT, "development")
        assert report is not None and str(report.status) == "in sync", report
        assert issues(meshbot) == []

        view(database, "currency")  # a DBA adds a column to the deployed view
        [opened] = sweep(meshbot, lambda: issues(meshbot), "the drift issue")
        assert (opened["title"], opened["user"], opened["state"]) == ("meshbot: drift in development", "meshbot",
                                                                      "open")
        assert opened["body"].startswith(marker(PRODUCT, "development") + "\n")
        assert "#### `daily-cashflow` (outputport): drifted" in opened["body"]
        assert "- column `currency` added \\(TEXT\\)" in opened["body"]
        assert "comment `/import daily-cashflow` on a pull request" in opened["body"]
        assert "`/deploy development`" in opened["body"]

        view(database, "currency", "fx_rate")  # and another: the same issue, edited in place
        sweep(meshbot, lambda: "fx_rate" in issues(meshbot)[0]["body"], "the issue edited")
        [edited] = issues(meshbot)
        assert edited["number"] == opened["number"] and "- column `currency` added \\(TEXT\\)" in edited["body"]
        patches = meshbot.github.requests_to("PATCH", f"/repos/{PROJECT}/issues/{opened['number']}")
        posts = meshbot.github.requests_to("POST", f"/repos/{PROJECT}/issues")
        assert (len(patches), len(posts)) == (1, 1)

        sweep(meshbot, lambda: True, "a check of the same drift")  # nothing new: no call that writes
        assert len(meshbot.github.requests_to("PATCH", f"/repos/{PROJECT}/issues/{opened['number']}")) == 1

        view(database)  # restored: the issue is closed with a comment
        [closed] = sweep(meshbot, lambda: [issue for issue in issues(meshbot) if issue["state"] == "closed"],
                         "the issue closed")
    assert closed["number"] == opened["number"] and len(issues(meshbot)) == 1
    [comment] = meshbot.repository.comment_bodies(opened["number"])
    assert comment.startswith("✅ The drift of `urn:dmb:dp:finance:cashflow:1` in `development` is gone")
    failed = [job for job, status in meshbot.engine.jobs().items() if status == "failed"]
    assert failed == [], meshbot.diagnosis()


def test_on_gitlab_the_issue_is_opened_and_closed_and_a_person_issue_left_alone(
        start: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.e2e.test_commands_gitlab import replies as notes
    from tests.e2e.test_commands_gitlab import say as note
    from tests.e2e.test_gitlab import gitlab_bot, open_merge_request
    from tests.servers.gitlab import gitlab_server

    database = tmp_path / "adapter.db"
    with gitlab_server() as server, running_adapter(database) as adapter:
        meshbot = gitlab_bot(server, start, monkeypatch, tmp_path, adapters_config(adapter.url, extra=ENVIRONMENTS))
        project = meshbot.project
        server.set_member(project, "dev", 30)  # Developer
        people = server.open_issue(project, "meshbot: drift in development",
                                   marker(PRODUCT, "development") + "\ncopied by a person", author="jane")
        record = open_merge_request(meshbot)
        note(meshbot, record, "/deploy development", "dev")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in notes(meshbot, record)), "the deploy")

        view(database, "currency")

        def mine() -> list[Any]:
            return [issue for issue in project.issues.values() if issue.author.username == server.bot.username]

        [opened] = sweep(meshbot, mine, "the drift issue")
        assert (opened.title, opened.state) == ("meshbot: drift in development", "opened")
        assert "- column `currency` added \\(TEXT\\)" in opened.description
        assert "comment `/import daily-cashflow` on a merge request" in opened.description

        view(database)
        sweep(meshbot, lambda: [issue for issue in mine() if issue.state == "closed"], "the issue closed")
    assert [item.body for item in opened.notes if not item.system][0].startswith(
        "✅ The drift of `urn:dmb:dp:finance:cashflow:1` in `development` is gone")
    assert (people.state, people.description, people.notes) == (
        "opened", marker(PRODUCT, "development") + "\ncopied by a person", [])
    assert len(project.issues) == 2


def test_the_drift_issue_disappears_after_the_import_is_merged_and_deployed(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    """Issue 14's scenario: a column added by hand to a deployed view, imported, merged, deployed: no drift."""
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        meshbot = bot(adapters_config(adapter.url, extra=ENVIRONMENTS))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy development", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy")

        view(database, "currency")  # the view and its table gained a column
        [opened] = sweep(meshbot, lambda: issues(meshbot), "the drift issue")
        assert "#### `daily-cashflow` (outputport): drifted" in opened["body"]

        # a person imports both drifted components, and merges the import pull requests into the branch
        for component in ("ledger", "daily-cashflow"):
            say(meshbot, number, f"/import {component}", "writer")
            meshbot.until(lambda c=component: any(f"/import {c}" in text or (c in text and "opened" in text)
                                                  for text in replies(meshbot, number)[1:]), f"import of {component}")
        meshbot.until(lambda: len([p for p in meshbot.repository.pulls.values() if p["head"] != "change"]) == 2,
                      "two import pull requests")
        imported: dict[str, bytes] = {}
        for pull in meshbot.repository.pulls.values():
            if pull["head"] != "change":
                files = meshbot.repository.files_at(pull["head"])
                base = meshbot.repository.files_at("change")
                imported |= {path: content for path, content in files.items() if base.get(path) != content}
        assert set(imported) == {"components/ledger/catalog-info.yaml", "components/daily-cashflow/catalog-info.yaml"}
        meshbot.repository.push("change", imported, message="Merge the imports")

        say(meshbot, number, "/deploy development", "writer")  # the repository now says what the database holds
        meshbot.until(lambda: sum("**DEPLOYED**" in text for text in replies(meshbot, number)) == 2, "the redeploy")
        [closed] = sweep(meshbot, lambda: [issue for issue in issues(meshbot) if issue["state"] == "closed"],
                         "the issue closed")
    assert closed["number"] == opened["number"] and len(issues(meshbot)) == 1
    report = load_report(meshbot.engine.redis, PRODUCT, "development")
    assert report is not None and str(report.status) == "in sync", report
