"""`/request-access` in a GitHub issue, end to end: a signed issue_comment webhook, real RQ workers, and the GitHub
test server's new branch, access file, pull request and reply on the issue."""

from __future__ import annotations

import copy
from typing import Any

from bot.descriptor.access_file import Consumer, read_consumers
from tests.e2e.test_github import PROJECT, Bot, BotFactory, bot, github  # noqa: F401  (fixtures)
from tests.forge.test_events import fixture

REPLY_MARKER = "<!-- meshbot:command -->"
BRANCH = "meshbot/access/transactions/user-alice"
PATH = "access/transactions.yaml"


def issue_comment_payload(number: int, comment_id: int, body: str, user: str) -> dict[str, Any]:
    """GitHub's issue_comment delivery for a new comment on issue number (no `pull_request` key: an issue)."""
    payload = copy.deepcopy(fixture("github", "issue_comment_issue"))
    issue = payload["issue"]
    issue.update(number=number, url=f"https://api.github.com/repos/{PROJECT}/issues/{number}",
                 html_url=f"https://github.com/{PROJECT}/issues/{number}")
    assert "pull_request" not in issue
    payload["comment"].update(id=comment_id, body=body, user={**payload["comment"]["user"], "login": user},
                              html_url=f"https://github.com/{PROJECT}/issues/{number}#issuecomment-{comment_id}")
    payload["repository"]["full_name"] = PROJECT
    payload["sender"] = {**payload["sender"], "login": user}
    return payload


def say(meshbot: Bot, number: int, body: str, user: str) -> None:
    """A person comments on the issue (the server records it) and GitHub delivers the webhook."""
    comment_id = meshbot.repository.add_comment(number, body, user)
    meshbot.accepted("issue_comment", issue_comment_payload(number, comment_id, body, user))


def replies(meshbot: Bot, number: int) -> list[str]:
    return [comment["body"].removeprefix(REPLY_MARKER + "\n") for comment in meshbot.comments(number)
            if comment["user"] == "meshbot" and comment["body"].startswith(REPLY_MARKER)]


def access_pulls(meshbot: Bot) -> list[dict[str, Any]]:
    with meshbot.github.lock:
        return [dict(pull) for pull in meshbot.repository.pulls.values() if pull["head"].startswith("meshbot/access/")]


def test_request_access_in_an_issue_opens_one_pull_request_and_a_second_request_links_it(
        bot: BotFactory) -> None:  # noqa: F811
    meshbot = bot("environments: [development, production]\n")
    issue = meshbot.repository.open_issue("Access to the transactions port", author="alice")

    say(meshbot, issue, "/request-access transactions", "alice")
    first = meshbot.until(lambda: next(iter(replies(meshbot, issue)), None), "the reply on the issue")
    [pull] = access_pulls(meshbot)
    assert (pull["head"], pull["base"], pull["state"], pull["user"]) == (BRANCH, "main", "open", "meshbot")
    assert pull["title"] == "Access to transactions for user:alice"
    assert "@alice asks for access to the output port `transactions`" in pull["body"]
    assert f"in a comment on #{issue}." in pull["body"] and "Closing without merging declines" in pull["body"]
    assert "it is deployed in no environment yet" in pull["body"]
    files = meshbot.repository.files_at(BRANCH)
    assert read_consumers(files[PATH], PATH) == [Consumer("user", "alice")]
    assert PATH not in meshbot.repository.files_at("main")  # never merged by meshbot
    link = f"[#{pull['number']}](https://github.com/{PROJECT}/pull/{pull['number']})"
    assert first == (f"@alice `/request-access`: opened pull request {link} that adds `user:alice` to the consumers "
                     "of the output port `transactions`. Its owners grant the access by merging it, or decline by "
                     "closing it.")

    say(meshbot, issue, "/request-access transactions", "alice")  # again: the open one is linked
    second = meshbot.until(lambda: replies(meshbot, issue)[1] if len(replies(meshbot, issue)) > 1 else None,
                           "the second reply")
    assert link in second and "is still open: nothing new was opened" in second

    say(meshbot, issue, "/deploy production", "alice")  # other commands work on pull requests only
    third = meshbot.until(lambda: replies(meshbot, issue)[2] if len(replies(meshbot, issue)) > 2 else None,
                          "the third reply")
    assert third.startswith("@alice `/deploy` works on pull requests only")
    meshbot.idle()
    assert len(access_pulls(meshbot)) == 1
    assert meshbot.engine.store.history("urn:dmb:dp:finance:cashflow:1", "production") == []


def test_an_unknown_port_is_answered_with_the_known_ones(bot: BotFactory) -> None:  # noqa: F811
    meshbot = bot("")
    issue = meshbot.repository.open_issue("Access", author="bob")
    say(meshbot, issue, "/request-access transaction --group acme/finance", "bob")
    reply = meshbot.until(lambda: next(iter(replies(meshbot, issue)), None), "the reply on the issue")
    meshbot.idle()
    assert "did you mean `transactions`?" in reply and "Its output ports: `daily-cashflow`, `transactions`." in reply
    assert access_pulls(meshbot) == []
