"""Sign-in with the forge end to end: the console, the local GitHub and GitLab servers, OAuth over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.console.browser import Console
from tests.console.records import record_deployment
from tests.servers.github import GitHubServer, github_server
from tests.servers.gitlab import GitLabServer, gitlab_server

SHOP = "urn:dmb:dp:finance:shop:1"
SECRET = "urn:dmb:dp:hr:payroll:1"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    """The local GitHub with an OAuth app meshbot is configured for; alice reads acme/shop, not acme/payroll."""
    with github_server() as server:
        server.add_oauth_app("gh-client", "gh-secret")
        server.create_repository("acme/shop").set_permission("alice", "read")
        server.create_repository("acme/payroll").set_permission("bob", "write")
        server.sign_in("alice")
        monkeypatch.setenv("MESHBOT_GITHUB_CLIENT_ID", "gh-client")
        monkeypatch.setenv("MESHBOT_GITHUB_CLIENT_SECRET", "gh-secret")
        monkeypatch.setenv("MESHBOT_GITHUB_API_URL", server.api_url)
        yield server


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitLabServer]:
    """The local GitLab with an OAuth application; alice is a Reporter of data/shop, a Guest of data/payroll."""
    with gitlab_server() as server:
        server.add_oauth_application("gl-client", "gl-secret")
        server.set_member(server.create_project("data/shop"), "alice", 20)
        server.set_member(server.create_project("data/payroll"), "alice", 10)  # a Guest cannot read the code
        server.sign_in("alice")
        monkeypatch.setenv("MESHBOT_GITLAB_CLIENT_ID", "gl-client")
        monkeypatch.setenv("MESHBOT_GITLAB_CLIENT_SECRET", "gl-secret")
        monkeypatch.setenv("MESHBOT_GITLAB_URL", server.url)
        yield server


def products_seen(session: requests.Session, console: Console) -> list[str]:
    """The ids the session's viewer gets from /api/v1/products."""
    response = session.get(f"{console.url}/api/v1/products", timeout=10)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["products"]]


def test_github_sign_in_shows_the_products_of_the_repositories_the_user_reads(console: Console,
                                                                              github: GitHubServer) -> None:
    record_deployment(console.redis, SHOP, "github", "acme/shop")
    record_deployment(console.redis, SECRET, "github", "acme/payroll")
    session = requests.Session()

    page = session.get(f"{console.url}/login/github?next=/products/{SHOP}", timeout=10)

    assert page.status_code == 200, page.text
    assert urlsplit(page.url).path == f"/products/{SHOP}"  # back where the sign-in started
    authorize = github.requests_to("GET", "/login/oauth/authorize")[0]
    assert authorize.query["client_id"] == "gh-client" and len(authorize.query["state"]) >= 32
    assert authorize.query["redirect_uri"] == f"{console.url}/auth/github/callback"
    exchange = github.requests_to("POST", "/login/oauth/access_token")
    assert len(exchange) == 1 and exchange[0].status == 200
    listing = github.requests_to("GET", "/user/repos")[0]
    assert listing.headers["Authorization"].startswith("Bearer gho_")
    assert products_seen(session, console) == [SHOP]
    assert session.get(f"{console.url}/api/v1/products/{SECRET}", timeout=10).status_code == 404


def test_gitlab_sign_in_shows_the_projects_the_user_can_read(console: Console, gitlab: GitLabServer) -> None:
    record_deployment(console.redis, SHOP, "gitlab", "data/shop")
    record_deployment(console.redis, SECRET, "gitlab", "data/payroll")
    session = requests.Session()

    page = session.get(f"{console.url}/login/gitlab", timeout=10)

    assert page.status_code == 200, page.text
    assert urlsplit(page.url).path == "/"
    token_request = next(item for item in gitlab.requests if item.path == "/user")
    assert token_request.headers["Authorization"].startswith("Bearer glo-")
    listing = next(item for item in gitlab.requests if item.path == "/projects")
    assert listing.query["membership"] == "true" and listing.query["min_access_level"] == "20"
    assert products_seen(session, console) == [SHOP]


def test_a_callback_with_another_state_is_refused(console: Console, github: GitHubServer) -> None:
    session = requests.Session()
    started = session.get(f"{console.url}/login/github", allow_redirects=False, timeout=10)
    assert started.status_code == 302
    authorize = parse_qs(urlsplit(started.headers["Location"]).query)
    forged = session.get(f"{console.url}/auth/github/callback", params={"code": "code-1", "state": "forged"},
                         timeout=10)
    assert forged.status_code == 400 and "state" in forged.text
    # the real state is spent as well: the pending sign-in was consumed by the refused callback
    replay = requests.get(authorize["redirect_uri"][0], params={"code": "x", "state": authorize["state"][0]},
                          timeout=10)
    assert replay.status_code == 400
    assert github.requests_to("POST", "/login/oauth/access_token") == []
    assert session.get(f"{console.url}/api/v1/products", timeout=10).status_code == 401


def test_a_refused_authorization_signs_nobody_in(console: Console, github: GitHubServer) -> None:
    github.oauth_denied = True
    session = requests.Session()
    page = session.get(f"{console.url}/login/github", timeout=10)
    assert page.status_code == 403 and "denied" in page.text
    assert session.get(f"{console.url}/api/v1/products", timeout=10).status_code == 401


def test_a_forge_without_client_credentials_has_no_sign_in(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHBOT_GITHUB_CLIENT_ID", raising=False)
    assert requests.get(f"{console.url}/login/github", allow_redirects=False, timeout=10).status_code == 404
    assert requests.get(f"{console.url}/login/bitbucket", allow_redirects=False, timeout=10).status_code == 404
