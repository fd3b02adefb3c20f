"""`meshbot github-app manifest`: valid JSON in GitHub's manifest format, every event meshbot handles, and each
permission tied to the forge calls that need it (and each forge call to a permission)."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from bot.cli.github_app import EVENTS, NOT_GRANTED, PERMISSIONS, AppPermission, manifest
from bot.cli.main import main
from bot.forge import events
from tests.paths import ROOT
from vcs.github import GitHubRepository

URL = "https://meshbot.example.com"
# The REST paths in GitHubRepository's code: string literals from "/" on (possibly after {self._url}), and ""
# (the repository itself) after a verb
PATH_LITERAL = re.compile(r'f?"(?:\{self\._url\})?(/[a-z][^"]*)"')
REPOSITORY_ITSELF = re.compile(r'"GET",\s*""')


def test_the_manifest_is_json_in_githubs_format(capsys):
    assert main(["github-app", "manifest", "--url", URL + "/", "--name", "meshbot-acme"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "meshbot-acme" and printed["url"] == URL
    assert printed["hook_attributes"] == {"url": URL + "/webhooks/github", "active": True}
    assert printed["callback_urls"] == [URL + "/auth/github/callback"]
    assert printed["redirect_url"] == URL + "/" and printed["public"] is False
    assert printed["default_permissions"] == {"contents": "write", "pull_requests": "write", "issues": "write",
                                              "statuses": "write", "deployments": "write", "metadata": "read"}
    assert set(printed["default_events"]) == {"push", "pull_request", "issue_comment"}
    assert set(printed) <= {"name", "url", "description", "hook_attributes", "redirect_url", "callback_urls",
                            "setup_url", "public", "default_permissions", "default_events", "setup_on_update",
                            "request_oauth_on_install"}  # GitHub's manifest parameters


def test_the_url_comes_from_the_configuration_else_it_is_asked_for(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MESHBOT_CONFIG", raising=False)
    assert main(["github-app", "manifest"]) == 2
    assert "--url PUBLIC_URL" in capsys.readouterr().err
    config = tmp_path / "meshbot.yaml"
    config.write_text(f"public_url: {URL}\n")
    assert main(["github-app", "manifest", "--config", str(config), "--redirect-url", "http://localhost:9/"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["hook_attributes"]["url"] == URL + "/webhooks/github"
    assert printed["redirect_url"] == "http://localhost:9/"
    assert main(["github-app", "manifest", "--url", "meshbot.example.com"]) == 2
    assert "not an http(s) address" in capsys.readouterr().err


def test_the_events_are_every_github_event_meshbot_handles():
    handled = set(re.findall(r'event_name == "([a-z_]+)"', inspect.getsource(events.github_event))) - {"ping"}
    assert [event.name for event in EVENTS] == sorted(handled, key=[event.name for event in EVENTS].index)
    assert set(manifest(URL)["default_events"]) == handled
    granted = {permission.name for permission in PERMISSIONS}
    assert all(event.needs in granted for event in EVENTS)  # GitHub refuses an event without its permission


@pytest.mark.parametrize("permission", PERMISSIONS, ids=lambda permission: permission.name)
def test_each_permission_is_used_by_the_forge_calls_it_names(permission):
    assert permission.level in ("read", "write") and permission.why and permission.methods
    for name in permission.methods:
        paths = _rest_paths(_code(name))
        assert any(_grants(permission, path) for path in paths), f"{name} calls none of {permission.paths}"
    writes = [name for name in permission.methods if re.search(r'"(POST|PATCH|PUT|DELETE)"', _code(name))]
    assert bool(writes) == (permission.level == "write"), "write exactly when some call writes"


def test_every_rest_call_of_the_github_forge_has_a_permission():
    paths = _rest_paths(inspect.getsource(GitHubRepository))
    assert len(paths) > 20
    orphans = sorted(path for path in paths if not any(_grants(permission, path) for permission in PERMISSIONS)
                     and not any(path.startswith(prefix) for prefix in NOT_GRANTED))
    assert orphans == []


def test_docs_explain_every_permission_and_event():
    page = (ROOT / "docs" / "running.md").read_text()
    for permission in PERMISSIONS:
        assert f"`{permission.name}`" in page and f"| {permission.level} |" in page
    for event in EVENTS:
        assert f"`{event.name}`" in page
    for trigger in ("Push events", "Tag push events", "Merge request events", "Comments"):
        assert trigger in page  # GitLab's webhook triggers, one per hook gitlab_event handles
    handled = set(re.findall(r'"([A-Z][a-z]+(?: [A-Z][a-z]+)* Hook)"', inspect.getsource(events.gitlab_event)))
    assert handled == {"Push Hook", "Tag Push Hook", "Merge Request Hook", "Note Hook"}


def _grants(permission: AppPermission, path: str) -> bool:
    """Whether a permission covers a REST path under /repos/OWNER/REPO ("" is the repository itself)."""
    return any(path == prefix if prefix == "" else path.startswith(prefix) for prefix in permission.paths)


def _code(method: str) -> str:
    """A GitHubRepository method's source with that of the private helpers it calls (_tree, _pages, _listing)."""
    source = inspect.getsource(getattr(GitHubRepository, method))
    helpers = set(re.findall(r"self\.(_[a-z]\w*)\(", source)) - {"_call"}
    return "\n".join([source, *(inspect.getsource(getattr(GitHubRepository, helper)) for helper in sorted(helpers)
                                if hasattr(GitHubRepository, helper))])


def _rest_paths(source: str) -> set[str]:
    """The REST paths (under /repos/OWNER/REPO) a piece of GitHubRepository's code calls."""
    paths = {path for path in PATH_LITERAL.findall(source) if not path.startswith("/repos/")}  # the base, self._url
    return paths | ({""} if REPOSITORY_ITSELF.search(source) else set())
