"""`meshbot github-app manifest`: the GitHub App manifest with exactly the permissions and events meshbot uses.

Each permission names the REST paths (under `/repos/OWNER/REPO`) of vcs/github.py's `GitHubRepository` that need
it, and the methods calling them: tests/cli/test_github_app.py checks both ways, so that a new forge call without
a permission here (or a permission no call needs) fails the tests. docs/running.md explains every line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

EXIT_OK, EXIT_INPUT = 0, 2
WEBHOOK_PATH = "/webhooks/github"  # app.py's GitHub intake
OAUTH_CALLBACK_PATH = "/auth/github/callback"  # the console's sign-in with GitHub


@dataclass(frozen=True, slots=True)
class AppPermission:
    """One repository permission of the App: its level, why meshbot needs it, and the calls that use it."""

    name: str  # GitHub's key in default_permissions
    level: str  # read | write (write includes read)
    why: str
    paths: tuple[str, ...]  # REST path prefixes under /repos/OWNER/REPO ("" is the repository itself)
    methods: tuple[str, ...]  # vcs.github.GitHubRepository methods that call them


PERMISSIONS: tuple[AppPermission, ...] = (
    AppPermission(
        "contents", "write",
        "read the data product's files at a commit (git trees and blobs, the tarball); /import and promotion commit "
        "their change on a new branch (git blobs, trees, commits, refs); never the default branch: a human merges",
        ("/git/", "/tarball/"),
        ("list_files", "read_file", "_download_archive", "branch_head", "create_branch", "commit_files")),
    AppPermission(
        "pull_requests", "write",
        "read a pull request, its reviews (approval rules) and the open ones (catch-up); open and update the "
        "/import and promotion pull requests",
        ("/pulls",),
        ("merge_request", "approved", "open_merge_requests", "find_merge_request", "open_merge_request",
         "update_merge_request")),
    AppPermission(
        "issues", "write",
        "the review comment, /deploy progress comments and reactions (a pull request's conversation is GitHub's "
        "issue comments API), and the drift issues it opens, updates and closes",
        ("/issues",),
        ("comments", "create_comment", "edit_comment", "add_reaction", "open_issues", "create_issue",
         "update_issue", "close_issue", "issue_comments", "create_issue_comment")),
    AppPermission(
        "statuses", "write",
        "the meshbot/governance and meshbot/deploy/<env> commit statuses, and reading them back (catch-up)",
        ("/statuses/", "/commits/"),
        ("set_commit_status", "commit_statuses")),
    AppPermission(
        "deployments", "write",
        "a GitHub deployment record per release and /deploy, with its statuses",
        ("/deployments",),
        ("create_deployment", "set_deployment_state")),
    AppPermission(
        "metadata", "read",
        "every App has it: the default branch, the tags (catch-up of releases) and a commenter's role on the "
        "repository (who may /deploy where)",
        ("", "/tags", "/collaborators/"),
        ("default_branch", "list_tags", "permission")),
)

# Paths GitHubRepository can call that the App is deliberately not granted, and why.
NOT_GRANTED: dict[str, str] = {
    "/hooks": "repository webhooks (Webhooks permission, which also lets an App change every webhook): an App's "
              "deliveries come through its own webhook, which the catch-up sweep redelivers with the App's JWT "
              "(/app/hook/deliveries, no permission needed); only a token set-up reads repository webhooks",
}


@dataclass(frozen=True, slots=True)
class AppEvent:
    """One webhook event the App subscribes to, and what meshbot does with it."""

    name: str  # GitHub's event name (X-GitHub-Event)
    needs: str  # the permission GitHub requires for the subscription
    why: str


EVENTS: tuple[AppEvent, ...] = (
    AppEvent("push", "contents",
             "a branch push reviews that head; a tag push releases (GitHub sends tags as push, so no create/delete)"),
    AppEvent("pull_request", "pull_requests",
             "opened, synchronize and reopened review the pull request; a merged promotion pull request deploys its "
             "environment"),
    AppEvent("issue_comment", "issues",
             "/deploy, /undeploy, /import, /rollback, /help... written or edited on a pull request"),
)


def manifest(public_url: str, name: str = "meshbot", redirect_url: str | None = None) -> dict[str, Any]:
    """GitHub's App manifest for a meshbot reached at public_url."""
    base = public_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "description": "meshbot: GitOps for data products (reviews, releases, /deploy and /import on pull requests)",
        "hook_attributes": {"url": base + WEBHOOK_PATH, "active": True},
        "redirect_url": redirect_url or base + "/",
        "callback_urls": [base + OAUTH_CALLBACK_PATH],
        "request_oauth_on_install": False,
        "public": False,
        "default_permissions": {permission.name: permission.level for permission in PERMISSIONS},
        "default_events": [event.name for event in EVENTS],
    }


def register(commands: argparse._SubParsersAction) -> None:
    """Add `meshbot github-app manifest` to the command line."""
    group = commands.add_parser("github-app", help="the GitHub App meshbot acts as: its manifest")
    actions = group.add_subparsers(metavar="ACTION")
    command = actions.add_parser(
        "manifest", help="print the GitHub App manifest (JSON) with the permissions and events meshbot needs",
        description="Print GitHub's App manifest for meshbot: the webhook at URL/webhooks/github, the console's "
                    "sign-in callback, and exactly the repository permissions and events meshbot uses "
                    "(docs/running.md says why each one, and how to create the App from it).")
    command.add_argument("--url", metavar="PUBLIC_URL",
                         help="the https address forges and people reach meshbot at (default: public_url of the "
                              "server configuration)")
    command.add_argument("--name", default="meshbot",
                         help="the App's name, unique on GitHub (default: meshbot; e.g. meshbot-acme)")
    command.add_argument("--redirect-url", metavar="URL",
                         help="where GitHub sends the browser with the code after creating the App (default: "
                              "PUBLIC_URL/)")
    command.add_argument("--config", metavar="FILE", help="the server configuration (default: $MESHBOT_CONFIG)")
    command.set_defaults(handler=_manifest_command)


def _manifest_command(arguments: argparse.Namespace) -> int:
    url = arguments.url or _configured_public_url(arguments.config)
    if not url:
        print("meshbot github-app manifest: give --url PUBLIC_URL (or set public_url in the server configuration)",
              file=sys.stderr)
        return EXIT_INPUT
    if not url.startswith(("https://", "http://")):
        print(f"meshbot github-app manifest: {url!r} is not an http(s) address", file=sys.stderr)
        return EXIT_INPUT
    sys.stdout.write(json.dumps(manifest(url, arguments.name, arguments.redirect_url), indent=2) + "\n")
    return EXIT_OK


def _configured_public_url(path: str | None) -> str | None:
    """public_url of the server configuration, when one is named (--config or MESHBOT_CONFIG)."""
    from bot.config import config_path, load_config

    chosen = config_path(path)
    return load_config(chosen).public_url if chosen else None
