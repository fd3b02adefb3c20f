"""`/request-access` in a GitLab issue, end to end: an issue Note Hook, real RQ workers, and the GitLab test server's
new branch, access file, merge request and reply note on the issue."""

from __future__ import annotations

import copy

from bot.descriptor.access_file import Consumer, read_consumers
from tests.e2e.test_gitlab import PATH, Bot, bot  # noqa: F401  (fixtures)
from tests.forge.test_events import fixture
from tests.servers.gitlab import IssueRecord, MergeRequestRecord

REPLY_MARKER = "<!-- meshbot:command -->"
ACCESS_FILE = "access/daily-cashflow.yaml"


def say(meshbot: Bot, issue: IssueRecord, body: str, username: str) -> None:
    """A person adds a note to the issue (the server records it) and GitLab delivers the Note Hook."""
    note = meshbot.server.add_issue_note(meshbot.project, issue.iid, body, author=username)
    payload = copy.deepcopy(fixture("gitlab", "note_issue"))
    payload["user"] |= {"username": username, "name": username.title()}
    payload["project_id"] = meshbot.project.id
    payload["project"] |= {"id": meshbot.project.id, "path_with_namespace": PATH,
                           "web_url": f"{meshbot.server.url}/{PATH}", "default_branch": meshbot.project.default_branch}
    payload["object_attributes"] |= {"id": note.id, "note": body, "description": body, "noteable_type": "Issue",
                                     "noteable_id": issue.id, "project_id": meshbot.project.id, "action": "create",
                                     "system": False,
                                     "url": f"{meshbot.server.url}/{PATH}/-/issues/{issue.iid}#note_{note.id}"}
    payload["issue"] |= {"id": issue.id, "iid": issue.iid, "title": issue.title, "project_id": meshbot.project.id,
                         "description": issue.description, "state": "opened"}
    response = meshbot.deliver("Note Hook", payload)
    assert response.status_code == 202, response.get_json()


def replies(meshbot: Bot, issue: IssueRecord) -> list[str]:
    return [note.body.removeprefix(REPLY_MARKER + "\n") for note in list(issue.notes)
            if note.author.username == meshbot.server.bot.username and note.body.startswith(REPLY_MARKER)]


def access_requests(meshbot: Bot) -> list[MergeRequestRecord]:
    return [record for record in list(meshbot.project.merge_requests.values())
            if record.source_branch.startswith("meshbot/access/")]


def test_request_access_for_a_group_in_an_issue_opens_one_merge_request_and_a_second_request_links_it(
        bot: Bot) -> None:  # noqa: F811
    issue = bot.server.open_issue(bot.project, "Access for the finance analysts", author="carla")
    bot.server.push(bot.project, "main", {ACCESS_FILE: b"# readers of the daily cash flow\nconsumers:\n"
                                                       b"  - user: dora  # the controller\n"}, message="Readers")

    say(bot, issue, "/request-access daily-cashflow --group finance/analysts", "carla")
    first = bot.until(lambda: next(iter(replies(bot, issue)), None), "the reply on the issue")
    [record] = access_requests(bot)
    assert record.source_branch.startswith("meshbot/access/daily-cashflow/group-finance-analysts-")
    assert (record.target_branch, record.state, record.author.username) == ("main", "opened", "meshbot")
    assert record.title == "Access to daily-cashflow for group:finance/analysts"
    assert "@carla asks for access on behalf of `group:finance/analysts`" in record.description
    assert f"in a comment on #{issue.iid}." in record.description
    assert "- `group:finance/analysts`\n- `user:dora`" in record.description
    content = bot.server.files_at(bot.project, record.source_branch)[ACCESS_FILE]
    assert read_consumers(content, ACCESS_FILE) == [Consumer("group", "finance/analysts"), Consumer("user", "dora")]
    assert b"# readers of the daily cash flow\n" in content and b"# the controller" in content  # kept as written
    link = f"[!{record.iid}]({bot.server.url}/{PATH}/-/merge_requests/{record.iid})"
    assert first.startswith(f"@carla `/request-access`: opened merge request {link} that adds "
                            "`group:finance/analysts`")

    say(bot, issue, "/request-access daily-cashflow --group finance/analysts", "carla")
    second = bot.until(lambda: replies(bot, issue)[1] if len(replies(bot, issue)) > 1 else None, "the second reply")
    assert link in second and "is still open: nothing new was opened" in second

    say(bot, issue, "/request-access daily-cashflow", "dora")  # listed already: nothing to ask
    third = bot.until(lambda: replies(bot, issue)[2] if len(replies(bot, issue)) > 2 else None, "the third reply")
    assert "`user:dora` already has access to the output port `daily-cashflow`" in third
    bot.settle()
    assert len(access_requests(bot)) == 1
    assert bot.server.files_at(bot.project, "main")[ACCESS_FILE].count(b"- ") == 1  # never merged by meshbot


def test_an_invalid_access_file_is_named_with_its_position(bot: Bot) -> None:  # noqa: F811
    issue = bot.server.open_issue(bot.project, "Access", author="erin")
    bot.server.push(bot.project, "main", {ACCESS_FILE: b"consumers:\n  - team: x\n"}, message="Broken")
    say(bot, issue, "/request-access daily-cashflow", "erin")
    reply = bot.until(lambda: next(iter(replies(bot, issue)), None), "the reply on the issue")
    bot.settle()
    assert "`access/daily-cashflow.yaml` on `main` is not a valid access file" in reply
    assert "- access/daily-cashflow.yaml:2:5: field 'consumers.0'" in reply
    assert access_requests(bot) == []
