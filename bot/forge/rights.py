"""Who may run which merge request command where: the platform's rules per environment (pure decisions).

The rules come from the server configuration (`environments: {NAME: {...}}`, read by bot.config), never from
a repository. Every refusal names the rule that refused and what would allow the command.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import EnvironmentRules
from vcs.base import Permission

# How each forge names a level, for refusals people understand.
ROLE_NAMES = {
    "github": {Permission.READ: "read", Permission.WRITE: "write", Permission.MAINTAIN: "maintain",
               Permission.ADMIN: "admin"},
    "gitlab": {Permission.READ: "Reporter", Permission.WRITE: "Developer", Permission.MAINTAIN: "Maintainer",
               Permission.ADMIN: "Owner"},
}

@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, from where."""

    username: str
    permission: Permission
    from_fork: bool
    approved: bool


def refusal(command: str, rules: EnvironmentRules, requester: Requester, forge: str) -> str | None:
    """Why `command` ("deploy", "undeploy", "rollback" or "import") may not run in this environment, or None.

    A rollback redeploys a descriptor the environment already ran, never the merge request's content: it needs
    what a deploy needs (deploy_permission, an approval where approval_required), but `merge_request_deploys:
    false` does not refuse it.
    """
    roles = ROLE_NAMES.get(forge, ROLE_NAMES["github"])
    if requester.from_fork:
        return ("merge requests from forks can never deploy or import (the rule protects the platform's "
                "adapters and credentials): push the branch to the repository itself and comment there")
    if command in ("deploy", "import") and not rules.merge_request_deploys:
        return (f"`{rules.name}` takes no deploys from merge requests (`merge_request_deploys: false`): it is "
                "deployed by release tags; a platform admin can allow merge request deploys in the server "
                "configuration")
    needed = rules.undeploy_permission if command == "undeploy" else rules.deploy_permission
    if requester.permission < needed:
        have = roles.get(requester.permission, "no access") if requester.permission > Permission.NONE \
            else "no access"
        return (f"/{command} in `{rules.name}` needs the {roles[needed]} role or higher on this repository; "
                f"@{requester.username} has {have}. A maintainer can grant it, or run it themselves")
    if command in ("deploy", "rollback") and rules.approval_required and not requester.approved:
        return (f"`{rules.name}` requires an approved merge request before /{command} (`approval_required: true`): "
                "ask a reviewer to approve it, then comment again")
    return None
