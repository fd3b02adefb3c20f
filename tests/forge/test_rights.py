"""Who may run which merge request command where, and what each refusal says."""

from __future__ import annotations

import pytest

from bot.config import EnvironmentRules, load_config, rules_for
from bot.descriptor.errors import InputErrors
from bot.forge.rights import Requester, refusal
from vcs.base import Permission

WRITER = Requester("jane", Permission.WRITE, from_fork=False, approved=False)


def test_defaults_are_open_for_development_and_strict_for_production():
    assert rules_for("development", None) == EnvironmentRules("development", Permission.WRITE, Permission.ADMIN,
                                                              True, False)
    assert rules_for("production", {}) == EnvironmentRules("production", Permission.MAINTAIN, Permission.ADMIN,
                                                           False, True, prune="confirm")
    assert rules_for("PROD", {"merge_request_deploys": True}).merge_request_deploys is True
    # undeploy never needs less than deploy
    assert rules_for("qa", {"deploy_permission": "admin"}).undeploy_permission is Permission.ADMIN


def test_a_writer_may_deploy_to_development():
    assert refusal("deploy", rules_for("development", None), WRITER, "github") is None


@pytest.mark.parametrize(("command", "environment", "requester", "forge", "expected"), [
    ("deploy", "development", Requester("bob", Permission.READ, False, False), "github",
     "/deploy in `development` needs the write role or higher on this repository; @bob has read"),
    ("deploy", "development", Requester("bob", Permission.READ, False, False), "gitlab",
     "/deploy in `development` needs the Developer role or higher on this repository; @bob has Reporter"),
    ("deploy", "development", Requester("eve", Permission.NONE, False, False), "github",
     "/deploy in `development` needs the write role or higher on this repository; @eve has no access"),
    ("undeploy", "development", WRITER, "gitlab",
     "/undeploy in `development` needs the Owner role or higher on this repository; @jane has Developer"),
    ("deploy", "production", Requester("ann", Permission.ADMIN, False, True), "github",
     "`production` takes no deploys from merge requests (`merge_request_deploys: false`)"),
    ("import", "development", Requester("ann", Permission.ADMIN, True, True), "github",
     "merge requests from forks can never deploy or import"),
])
def test_refusals_name_the_rule_and_the_way_out(command, environment, requester, forge, expected):
    reason = refusal(command, rules_for(environment, None), requester, forge)
    assert reason is not None and reason.startswith(expected), reason


def test_an_approval_can_be_required():
    rules = rules_for("staging", {"approval_required": True})
    assert "requires an approved merge request" in refusal("deploy", rules, WRITER, "github")
    approved = Requester("jane", Permission.WRITE, from_fork=False, approved=True)
    assert refusal("deploy", rules, approved, "github") is None


def test_the_configuration_carries_the_rules(tmp_path):
    path = tmp_path / "meshbot.yaml"
    path.write_text("environments:\n  staging: {deploy_permission: maintain, approval_required: true}\n"
                    "  production:\n")
    config = load_config(str(path))
    assert config.rules("staging").deploy_permission is Permission.MAINTAIN
    assert config.rules("staging").approval_required is True
    assert config.rules("production").merge_request_deploys is False
    path.write_text("environments:\n  staging: {deploy_permission: superuser}\n")
    with pytest.raises(InputErrors) as raised:
        load_config(str(path))
    assert "environments.staging.deploy_permission: 'superuser' is not one of" in str(raised.value.errors[0])


def test_a_rollback_needs_what_a_deploy_needs_except_merge_request_deploys():
    production = rules_for("production", None)  # maintain, approval required, no merge request deploys
    maintainer = Requester("max", Permission.MAINTAIN, from_fork=False, approved=False)
    approved = Requester("max", Permission.MAINTAIN, from_fork=False, approved=True)
    assert "takes no deploys from merge requests" in refusal("deploy", production, approved, "github")
    assert refusal("rollback", production, approved, "github") is None  # it redeploys what production ran
    assert refusal("rollback", production, maintainer, "github") == (
        "`production` requires an approved merge request before /rollback (`approval_required: true`): ask a "
        "reviewer to approve it, then comment again")
    assert refusal("rollback", production, WRITER, "gitlab").startswith(
        "/rollback in `production` needs the Maintainer role or higher on this repository; @jane has Developer")
    assert refusal("rollback", rules_for("development", None), WRITER, "github") is None
    fork = Requester("max", Permission.ADMIN, from_fork=True, approved=True)
    assert refusal("rollback", production, fork, "github").startswith("merge requests from forks can never")
