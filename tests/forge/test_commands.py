"""Commands read from merge request comments: words, shell-like arguments, usage errors, typos, what is not one."""

from __future__ import annotations

import pytest

from bot.forge.commands import (
    MAX_COMMANDS,
    Deploy,
    Help,
    Import,
    Malformed,
    RequestAccess,
    Typo,
    Undeploy,
    read_commands,
)
from bot.forge.commands import Rollback as RollbackCommand


@pytest.mark.parametrize(("body", "expected"), [
    ("/deploy", [Deploy(None, False, 1)]),
    ("/deploy staging", [Deploy("staging", False, 1)]),
    ("/deploy staging --dry-run", [Deploy("staging", True, 1)]),
    ("/deploy --dry-run", [Deploy(None, True, 1)]),
    ("  /DEPLOY qa  ", [Deploy("qa", False, 1)]),
    ("/undeploy staging --remove-data", [Undeploy("staging", True, 1)]),
    ("/undeploy staging", [Undeploy("staging", False, 1)]),
    ("/import ledger", [Import("ledger", {}, 1)]),
    ("/import ledger table=cash 'where=a = 1' empty=", [Import("ledger", {"table": "cash", "where": "a = 1",
                                                                           "empty": ""}, 1)]),
    ('/import urn:dmb:cmp:finance:cashflow:1:ledger schema.name="My Schema"',
     [Import("urn:dmb:cmp:finance:cashflow:1:ledger", {"schema.name": "My Schema"}, 1)]),
    ("/help", [Help(1)]),
    ("/request-access transactions", [RequestAccess("transactions", None, 1)]),
    ("/Request-Access urn:dmb:cmp:finance:cashflow:1:transactions",
     [RequestAccess("urn:dmb:cmp:finance:cashflow:1:transactions", None, 1)]),
    ("/request-access sales-view --group acme/finance-analysts",
     [RequestAccess("sales-view", "acme/finance-analysts", 1)]),
    ("/request-access --group=data/sales/readers sales-view", [RequestAccess("sales-view", "data/sales/readers", 1)]),
])
def test_commands_and_their_arguments(body, expected):
    assert read_commands(body) == expected


def test_several_commands_run_in_order_and_prose_is_ignored():
    body = "Looks good.\n/deploy staging\nthen\n/import ledger table=cash\n/help\n"
    assert read_commands(body) == [Deploy("staging", False, 2), Import("ledger", {"table": "cash"}, 4), Help(5)]


@pytest.mark.parametrize(("body", "word", "problem"), [
    ("/deploy staging production", "deploy", "one environment at most, got 2: staging, production"),
    ("/deploy --force", "deploy", "unknown option --force"),
    ("/deploy 'prod env'", "deploy", "'prod env' is not an environment name"),
    ("/undeploy", "undeploy", "name exactly one environment"),
    ("/undeploy --remove-data", "undeploy", "name exactly one environment"),
    ("/undeploy staging --delete", "undeploy", "unknown option --delete"),
    ("/import", "import", "name the component first (its name or id)"),
    ("/import table=cash", "import", "name the component first (its name or id)"),
    ("/import ledger cash", "import", "'cash' is not key=value"),
    ("/import ledger a=1 a=2", "import", "'a' is given twice"),
    ("/import ledger 'unclosed", "import", "cannot split the arguments: No closing quotation"),
    ("/help me", "help", "/help takes no arguments"),
    ("/deploy, please", "deploy", "unknown command '/deploy,'"),
    ("/request-access", "request-access", "name exactly one output port"),
    ("/request-access a b", "request-access", "one output port, got 2: a, b"),
    ("/request-access a --group", "request-access", "--group needs a group path (a GitHub org/team, a GitLab group)"),
    ("/request-access a --group x --group y", "request-access", "one --group at most"),
    ("/request-access a --user bob", "request-access", "unknown option --user"),
    ("/request-access '<b>x</b>'", "request-access", "'<b>x</b>' is not an output port name"),
    ("/request-access a --group acme//x", "request-access",
     "'acme//x' is not a group path (letters, digits, '_', '.', '@', '-', parts separated by '/')"),
    ("/request-access a --group 'a b'", "request-access",
     "'a b' is not a group path (letters, digits, '_', '.', '@', '-', parts separated by '/')"),
])
def test_malformed_commands_say_what_is_wrong_and_their_usage(body, word, problem):
    [reading] = read_commands(body)
    assert reading == Malformed(word, problem, 1)
    assert reading.usage.startswith(f"/{word}")


@pytest.mark.parametrize(("body", "suggestion"), [
    ("/deplyo staging", "/deploy"), ("/depoly", "/deploy"), ("/improt ledger", "/import"),
    ("/undeplo prod", "/undeploy"), ("/hlep", "/help"), ("/deployment", "/deploy"),
    ("/request-acces x", "/request-access"), ("/requestaccess x", "/request-access"),
])
def test_a_typo_of_ours_gets_a_did_you_mean(body, suggestion):
    [reading] = read_commands(body)
    assert isinstance(reading, Typo) and reading.suggestion == suggestion


@pytest.mark.parametrize("body", [
    "/assign @jane", "/cc @team", "/lgtm", "/approve", "please /deploy it",  # other bots' words, prose
    "> /deploy staging",  # a reply quoting an earlier command
    "```\n/deploy staging\n```", "~~~sh\n/undeploy prod\n~~~",  # code
    "/usr/bin/env python", "/ deploy", "/", "//deploy", "/1deploy",
])
def test_what_is_not_a_command_of_ours(body):
    assert read_commands(body) == []


def test_a_command_after_a_code_block_counts():
    assert read_commands("```\n/deploy a\n```\n/deploy b") == [Deploy("b", False, 4)]


def test_at_most_ten_commands_per_comment():
    readings = read_commands("\n".join(["/help"] * (MAX_COMMANDS + 2)))
    assert readings[:MAX_COMMANDS] == [Help(line) for line in range(1, MAX_COMMANDS + 1)]
    assert [type(reading) for reading in readings[MAX_COMMANDS:]] == [Malformed, Malformed]
    assert "at most 10 commands" in readings[-1].problem


def test_an_overlong_line_is_refused():
    [reading] = read_commands("/import ledger " + "a=" + "x" * 2000)
    assert isinstance(reading, Malformed) and "longer than 1000" in reading.problem


@pytest.mark.parametrize(("body", "expected"), [
    ("/deploy production --prune", Deploy("production", line=1, prune=True)),
    ("/deploy qa --component ledger --component=daily-cashflow --dry-run",
     Deploy("qa", dry_run=True, line=1, components=("ledger", "daily-cashflow"))),
    ("/deploy --component ledger --component ledger", Deploy(None, line=1, components=("ledger",))),
    ("/rollback production", RollbackCommand("production", None, 1)),
    ("/rollback production v1.4.2", RollbackCommand("production", "1.4.2", 1)),
    ("/rollback qa 2.0.0-rc.1", RollbackCommand("qa", "2.0.0-rc.1", 1)),
])
def test_deploy_options_and_rollback(body, expected):
    assert read_commands(body) == [expected]


@pytest.mark.parametrize(("body", "word", "problem"), [
    ("/deploy qa --component", "deploy", "--component needs a component name or id"),
    ("/deploy qa --component --prune", "deploy", "--component needs a component name or id"),
    ("/deploy qa --prune --component x", "deploy",
     "--prune and --component do not go together: a deploy of single components never removes any"),
    ("/rollback", "rollback", "name the environment"),
    ("/rollback qa 1.0.0 2.0.0", "rollback", "name the environment, and at most one version"),
    ("/rollback qa latest", "rollback", "'latest' is not a version (like 1.4.2)"),
    ("/rollback qa --force", "rollback", "unknown option --force"),
])
def test_deploy_options_and_rollback_written_wrong(body, word, problem):
    [reading] = read_commands(body)
    assert isinstance(reading, Malformed) and (reading.word, reading.problem) == (word, problem)
    assert reading.usage.startswith(f"/{word} ")
