"""Compliance end to end on GitHub: `/deploy` through the real path (reference SQLite adapter, real RQ workers), then
an enabled policy the deployed product fails is added to the server's policy folder: the next compliance round
opens one issue on the GitHub test server; a round with nothing new edits nothing; the policy removed, the next
round closes the issue with a comment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rq import Queue
from rq.serializers import JSONSerializer

from bot.engine import compliance
from bot.engine.periodic import COMPLIANCE_JOB
from bot.engine.runner import QUEUE_NAME
from bot.forge.compliance_issue import marker
from tests.cli.test_deploy import adapters_config
from tests.e2e.test_commands_github import replies, say
from tests.e2e.test_drift_forges import issues
from tests.e2e.test_github import PROJECT, Bot, BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.engine.test_compliance import policy_folder
from tests.servers.reference_adapter import running_adapter

PRODUCT = "urn:dmb:dp:finance:cashflow:1"


def compliance_round(meshbot: Bot) -> str:
    """Run one compliance round as the schedule would, and wait until the checks it queued have ended."""
    connection = meshbot.engine.redis
    job = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer).enqueue(COMPLIANCE_JOB)
    meshbot.until(lambda: job.get_status(refresh=True) in ("finished", "failed"), "the compliance round")
    assert job.get_status() == "finished", meshbot.diagnosis()
    meshbot.until(lambda: not list(connection.scan_iter(match="meshbot:compliance-pending:*")),
                  "the compliance checks")
    return str(job.return_value())


def test_a_new_enabled_policy_opens_one_issue_and_its_removal_closes_it(
        bot: BotFactory, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    with running_adapter(tmp_path / "adapter.db") as adapter:
        meshbot = bot(adapters_config(adapter.url, extra="policies: [policies]\n"))
        meshbot.repository.set_permission("writer", "write")
        number, _ = meshbot.open_pull_request("change", {"README.md": b"a change\n"})
        say(meshbot, number, "/deploy development", "writer")
        meshbot.until(lambda: any("**DEPLOYED**" in text for text in replies(meshbot, number)), "the deploy")

    assert compliance_round(meshbot) == "first check: 1 data product(s), 1 compliance check(s) queued"
    first = compliance.load(meshbot.engine.redis, PRODUCT, "development")
    assert first is not None and first.outcome == "compliant", first
    assert first.of("not_evaluated"), "breaking-change policies are not evaluated on a deployed descriptor alone"
    assert issues(meshbot) == []  # compliant: no issue, and no issue listing either
    assert meshbot.github.requests_to("GET", f"/repos/{PROJECT}/issues*") == []

    policy_folder(folder)  # the platform team enables a policy the deployed product fails
    assert compliance_round(meshbot) == "the policies changed: 1 data product(s), 1 compliance check(s) queued"
    [opened] = issues(meshbot)
    assert (opened["title"], opened["user"], opened["state"]) == (
        f"meshbot: {PRODUCT} no longer complies with governance policies", "meshbot", "open")
    assert opened["body"].startswith(marker(PRODUCT) + "\n")
    assert "#### `development`: non compliant: 1 blocking" in opened["body"]
    assert f"- **blocks** · policy `owner-team` on `{PRODUCT}` (severity error)" in opened["body"]
    assert "  - missing required field 'ownerTeam'" in opened["body"]

    assert compliance_round(meshbot).startswith("policies unchanged: 0")
    (folder / "owner.yaml").write_text((folder / "owner.yaml").read_text() + "# reworded\n")  # the same failures
    assert compliance_round(meshbot).startswith("the policies changed")
    assert meshbot.github.requests_to("PATCH", f"/repos/{PROJECT}/issues/{opened['number']}") == []
    assert len(meshbot.github.requests_to("POST", f"/repos/{PROJECT}/issues")) == 1

    (folder / "owner.yaml").unlink()  # the policy is removed: the product complies again
    compliance_round(meshbot)
    [closed] = issues(meshbot)
    assert (closed["number"], closed["state"]) == (opened["number"], "closed")
    [comment] = meshbot.repository.comment_bodies(opened["number"])
    assert comment.startswith(f"✅ `{PRODUCT}` complies with today's governance policies again in every environment "
                              "where it is deployed (`development`)")
    history = compliance.history(meshbot.engine.redis, PRODUCT, "development")
    assert [entry.outcome for entry in history] == ["compliant", "non_compliant", "compliant"]
    failed: list[Any] = [job for job, status in meshbot.engine.jobs().items() if status == "failed"]
    assert failed == [], meshbot.diagnosis()
