"""`/request-access` on the in-memory forge: what it opens, and each reason it opens nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import ServerConfig
from bot.descriptor.access_file import Consumer, read_consumers
from bot.engine.deployed import Deployed, NothingDeployed
from bot.forge.access_request import (
    AccessStatus,
    Origin,
    access_branch,
    candidate_environments,
    consumer_for,
    deployed_environments,
    request_access,
)
from bot.forge.commands import RequestAccess
from bot.forge.comment_commands import REPLY_MARKER, run_comment, run_issue_comment
from tests.forge.test_review import example_files
from vcs.memory import MemoryForge, MemoryRepository

PROJECT = "acme-data/finance-cashflow"
PRODUCT = "urn:dmb:dp:finance:cashflow:1"
PORT_ID = "urn:dmb:cmp:finance:cashflow:1:transactions"
CONFIG = ServerConfig(environments={"development": {}, "production": {}})


class DeployedIn:
    """What is deployed: environment -> the component ids of its latest deployment of the example product."""

    def __init__(self, **components: list[str]) -> None:
        self.components = components

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """A deployment holding those components, or None."""
        if data_product != PRODUCT or environment not in self.components:
            return None
        return Deployed(data_product, environment, {"components": [{"id": item}
                                                                   for item in self.components[environment]]})


@pytest.fixture
def repository() -> MemoryRepository:
    return MemoryForge().add(PROJECT, example_files())


def ask(repository: MemoryRepository, port: str, *, author: str = "alice", group: str | None = None,
        on_issue: bool = True, deployed: object = None, config: ServerConfig = CONFIG):
    return request_access(repository, config, deployed or NothingDeployed(), command=RequestAccess(port, group),
                          origin=Origin("github", 12, on_issue=on_issue, author=author))


def test_a_request_opens_a_merge_request_that_adds_the_commenter(repository):
    outcome = ask(repository, "transactions", deployed=DeployedIn(production=[PORT_ID], development=["other"]))
    assert outcome.status is AccessStatus.OPENED and outcome.merge_request is not None
    request = repository.merge_requests[outcome.merge_request.number]
    assert (request.source_branch, request.target_branch, request.state) == (
        "meshbot/access/transactions/user-alice", "main", "open")
    assert request.title == "Access to transactions for user:alice"
    content = repository.read_file(request.source_branch, "access/transactions.yaml")
    assert read_consumers(content, "access/transactions.yaml") == [Consumer("user", "alice")]
    assert "access/transactions.yaml" not in repository.list_files("main")  # the bot never merges
    assert "@alice asks for access to the output port `transactions`" in request.description
    assert "today `production`" in request.description and "`development`" not in request.description
    assert "Closing without merging declines" in request.description
    assert f"[#{request.number}]({request.url})" in outcome.reply


def test_a_known_consumer_already_has_access_and_nothing_is_opened(repository):
    repository.push("main", {"access/transactions.yaml": b"# readers\nconsumers:\n  - user: alice\n"})
    outcome = ask(repository, "transactions")
    assert outcome.status is AccessStatus.ALREADY and "already has access" in outcome.reply
    assert repository.merge_requests == {} and list(repository.branches) == ["main"]


def test_a_second_request_links_the_open_one(repository):
    first = ask(repository, "transactions")
    second = ask(repository, "Transactions")  # the port's name in any case
    assert second.status is AccessStatus.EXISTING and second.merge_request == first.merge_request
    assert "is still open: nothing new was opened" in second.reply and len(repository.merge_requests) == 1


def test_a_request_after_a_declined_one_opens_again_on_the_same_branch(repository):
    first = ask(repository, "transactions")
    assert first.merge_request is not None
    repository.merge_requests[first.merge_request.number] = replace(first.merge_request, state="closed")  # declined
    again = ask(repository, "transactions")
    assert again.status is AccessStatus.OPENED and again.merge_request is not None
    assert again.merge_request.number != first.merge_request.number and again.branch == first.branch


def test_an_existing_file_keeps_its_comments_and_gets_the_consumer(repository):
    repository.push("main", {"access/transactions.yaml": b"# who reads the transactions\nconsumers:\n"
                                                          b"  - group: acme/finance  # the finance team\n"})
    outcome = ask(repository, "transactions", author="bob")
    assert outcome.merge_request is not None
    content = repository.read_file(outcome.merge_request.source_branch, "access/transactions.yaml").decode()
    assert content.startswith("# who reads the transactions\n") and "# the finance team" in content
    assert "- user: bob" in content
    assert "- `group:acme/finance`\n- `user:bob`" in repository.merge_requests[outcome.merge_request.number].description


def test_a_group_request_says_who_asked_for_whom(repository):
    outcome = ask(repository, "daily-cashflow", group="acme/Finance-Analysts")
    assert outcome.status is AccessStatus.OPENED and outcome.merge_request is not None
    request = repository.merge_requests[outcome.merge_request.number]
    assert request.title == "Access to daily-cashflow for group:acme/Finance-Analysts"
    assert request.source_branch.startswith("meshbot/access/daily-cashflow/group-acme-finance-analysts-")
    assert "@alice asks for access on behalf of `group:acme/Finance-Analysts`" in request.description
    assert "does not check that @alice belongs to" in request.description


def test_an_unknown_port_lists_the_known_ones_with_a_did_you_mean(repository):
    outcome = ask(repository, "transaction")
    assert outcome.status is AccessStatus.REFUSED and repository.merge_requests == {}
    assert "`transaction` is not an output port of `urn:dmb:dp:finance:cashflow:1`; did you mean `transactions`?" \
        in outcome.reply
    assert "Its output ports: `daily-cashflow`, `transactions`." in outcome.reply
    storage = ask(repository, "ledger")  # a component, not an output port
    assert "`ledger` is not an output port" in storage.reply


def test_a_port_named_by_its_id_is_the_port(repository):
    outcome = ask(repository, PORT_ID)
    assert outcome.status is AccessStatus.OPENED and outcome.branch == "meshbot/access/transactions/user-alice"


def test_an_invalid_access_file_is_named_with_its_position_and_nothing_opens(repository):
    repository.push("main", {"access/transactions.yaml": b"consumers:\n  - user: alice\n  - robot: r2d2\n"})
    outcome = ask(repository, "transactions", author="bob")
    assert outcome.status is AccessStatus.REFUSED and repository.merge_requests == {}
    assert "`access/transactions.yaml` on `main` is not a valid access file" in outcome.reply
    assert "- access/transactions.yaml:3:5: field 'consumers.1': expected" in outcome.reply


def test_untrusted_text_is_escaped_in_replies(repository):
    outcome = ask(repository, "<img src=x>", author="mal_lory*")
    assert outcome.reply.count("<img") == 1 and "`<img src=x>`" in outcome.reply  # inert in a code span only
    assert outcome.reply.startswith("@mal\\_lory\\* ")


def test_a_data_product_that_cannot_be_assembled_is_said(repository):
    repository.push("main", {"catalog-info.yaml": b"kind: [\n"})
    outcome = ask(repository, "transactions")
    assert outcome.status is AccessStatus.REFUSED and "cannot be assembled" in outcome.reply


def test_branch_names_are_safe_and_distinct():
    assert access_branch("p", consumer_for("alice", None)) == "meshbot/access/p/user-alice"
    assert access_branch("p", consumer_for("Alice", None)) == "meshbot/access/p/user-alice"  # logins ignore case
    assert access_branch("p", consumer_for("alice", "alice")) == "meshbot/access/p/group-alice"
    groups = {access_branch("p", consumer_for("x", name)) for name in ("a/b", "a-b", "a.b", "a--b")}
    assert len(groups) == 4 and all(".." not in name and " " not in name for name in groups)


def test_the_environments_a_port_is_deployed_in():
    deployed = DeployedIn(development=[PORT_ID], production=["urn:other"])
    assert deployed_environments(PRODUCT, PORT_ID, ["development", "production", "qa"], deployed) == ["development"]
    assert candidate_environments(ServerConfig()) == ["development", "production"]
    assert candidate_environments(CONFIG) == ["development", "production"]


def test_on_a_merge_request_the_command_replies_there(repository):
    repository.create_branch("change", repository.branch_head("main"))
    repository.add_merge_request("change")
    run_comment(repository, CONFIG, "github", 1, "c1", "/request-access transactions", "reader")
    [reply] = [comment.body for comment in repository.comment_threads[1]]
    assert reply.startswith(REPLY_MARKER) and "opened pull request [#2]" in reply
    assert repository.reactions == [(1, "c1", "eyes")]


def test_in_an_issue_only_request_access_acts(repository):
    issue = repository.add_issue("Access, please")
    body = "/request-access transactions --group acme/finance\n/deploy production\n/request-acces x\n/help"
    replies = run_issue_comment(repository, CONFIG, "gitlab", issue.number, body, "carla")
    assert [comment.body for comment in repository.issue_threads[issue.number]] == [
        f"{REPLY_MARKER}\n{text}" for text in replies]
    opened, deploy, typo, help_reply = replies
    assert "opened merge request [!1]" in opened
    assert deploy == ("@carla `/deploy` works on merge requests only: in an issue meshbot acts on "
                      "`/request-access OUTPUT_PORT [--group GROUP_PATH]` alone.")
    assert "did you mean `/request-access`?" in typo and "`/help` works on merge requests only" in help_reply
    assert "in a comment on #1." in repository.merge_requests[1].description  # GitLab: #N is an issue
    assert repository.comment_threads[1] == []  # nothing written on the opened merge request itself
