"""Who may run which merge request command where: the platform's rules per environment (pure decisions).

The rules come from the server configuration (`environments: {NAME: {...}}`), never from a repository.
Every refusal names the rule that refused and what would allow the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vcs.base import Permission

PERMISSIONS = {"read": Permission.READ, "write": Permission.WRITE, "maintain": Permission.MAINTAIN,
               "admin": Permission.ADMIN}
PRODUCTION_NAMES = frozenset({"production", "prod", "prd"})
# How each forge names a level, for refusals people understand.
ROLE_NAMES = {
    "github": {Permission.READ: "read", Permission.WRITE: "write", Permission.MAINTAIN: "maintain",
               Permission.ADMIN: "admin"},
    "gitlab": {Permission.READ: "Reporter", Permission.WRITE: "Developer", Permission.MAINTAIN: "Maintainer",
               Permission.ADMIN: "Owner"},
}

ENVIRONMENT_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "deploy_permission": {"enum": list(PERMISSIONS)},
        "undeploy_permission": {"enum": list(PERMISSIONS)},
        "merge_request_deploys": {"type": "boolean"},
        "approval_required": {"type": "boolean"},
    },
}


@dataclass(frozen=True, slots=True)
class EnvironmentRules:
    """What an environment demands of merge request commands."""

    name: str
    deploy_permission: Permission = Permission.WRITE
    undeploy_permission: Permission = Permission.ADMIN
    merge_request_deploys: bool = True
    approval_required: bool = False


def rules_for(name: str, settings: dict[str, Any] | None) -> EnvironmentRules:
    """The rules of an environment from its configuration settings; production-like names are strict by default."""
    settings = settings or {}
    production = name.lower() in PRODUCTION_NAMES
    deploy = PERMISSIONS[settings.get("deploy_permission", "maintain" if production else "write")]
    undeploy = PERMISSIONS[settings.get("undeploy_permission", "admin")]  # removing is the most destructive
    return EnvironmentRules(
        name=name, deploy_permission=deploy, undeploy_permission=max(undeploy, deploy),
        merge_request_deploys=bool(settings.get("merge_request_deploys", not production)),
        approval_required=bool(settings.get("approval_required", production)),
    )


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, from where."""

    username: str
    permission: Permission
    from_fork: bool
    approved: bool


def refusal(command: str, rules: EnvironmentRules, requester: Requester, forge: str) -> str | None:
    """Why `command` ("deploy", "undeploy" or "import") may not run in this environment, or None when it may."""
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
    if command == "deploy" and rules.approval_required and not requester.approved:
        return (f"`{rules.name}` requires an approved merge request before /deploy (`approval_required: true`): "
                "ask a reviewer to approve it, then comment again")
    return None
