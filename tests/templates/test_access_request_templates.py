"""The texts of /request-access as rendered: the merge request description and each reply (golden file)."""

from __future__ import annotations

from bot.descriptor.access_file import Consumer
from bot.forge.access_request import Origin, _reply, access_description, issue_only_reply
from tests.forge.test_review_comments import assert_golden
from vcs.base import MergeRequest

REQUEST = MergeRequest(number=7, title="Access to transactions for user:alice", description="",
                       source_branch="meshbot/access/transactions/user-alice", target_branch="main", head_sha="0" * 40,
                       author="meshbot", state="open", url="https://github.com/acme-data/finance-cashflow/pull/7",
                       from_fork=False)


def description(origin: Origin, consumer: Consumer, consumers: list[Consumer], environments: list[str]) -> str:
    return access_description(origin=origin, consumer=consumer, port="transactions",
                              component_id="urn:dmb:cmp:finance:cashflow:1:transactions",
                              data_product="urn:dmb:dp:finance:cashflow:1", path="access/transactions.yaml",
                              consumers=consumers, environments=environments, default_branch="main")


def test_the_access_request_texts_as_rendered():
    alice = Consumer("user", "alice")
    group = Consumer("group", "acme/finance_*team*")
    many = [Consumer("user", f"reader{index:02}") for index in range(52)]
    texts = [
        description(Origin("github", 12, on_issue=True, author="alice"), alice, [Consumer("group", "acme/x"), alice],
                    ["development", "production"]),
        description(Origin("gitlab", 4, on_issue=False, author="carla_m"), group, [group], []),
        description(Origin("gitlab", 4, on_issue=True, author="alice"), alice, many, ["qa"]),
        _reply("opened", author="alice", port="transactions", consumer="user:alice", request=REQUEST,
               reference="#7", term="pull request"),
        _reply("existing", author="alice", port="transactions", consumer="user:alice", request=REQUEST,
               reference="!7", term="merge request"),
        _reply("already", author="alice", port="transactions", consumer="user:alice",
               path="access/transactions.yaml", branch="main"),
        _reply("unknown_port", author="alice", port="transaction", data_product="urn:dmb:dp:finance:cashflow:1",
               known=["daily-cashflow", "transactions"], suggestion="transactions", several=False),
        _reply("unknown_port", author="alice", port="<b>x</b>", data_product="urn:dmb:dp:finance:cashflow:1",
               known=[], suggestion="", several=False),
        _reply("invalid_file", author="alice", port="transactions", path="access/transactions.yaml", branch="main",
               errors=["access/transactions.yaml:3:5: field 'consumers.1': expected 'user: LOGIN' or 'group: PATH'"]),
        _reply("unassembled", author="alice", port="transactions", branch="main",
               errors=["catalog-info.yaml:1:7: not valid YAML"]),
        _reply("bad_name", author="alice", port="transactions", reason="'a b' cannot be written in an access file"),
        _reply("unreadable", author="alice", port="transactions", reason="the pull request could not be opened: 502"),
        issue_only_reply("github", "alice", "deploy"),
        issue_only_reply("gitlab", "carla", "help"),
    ]
    assert_golden("access-request.md", "\n\n=====\n\n".join(texts) + "\n")
