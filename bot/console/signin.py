"""Sign-in with the forge: GitHub OAuth and GitLab OAuth applications; a viewer sees the repositories they can read."""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

import redis
import requests
from flask import Blueprint, Response, abort, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from bot.console.access import Viewer, safe_next

logger = logging.getLogger(__name__)

GITHUB = "github"
GITLAB = "gitlab"
GITHUB_CLIENT_ID_VARIABLE = "MESHBOT_GITHUB_CLIENT_ID"
GITHUB_CLIENT_SECRET_VARIABLE = "MESHBOT_GITHUB_CLIENT_SECRET"
GITLAB_CLIENT_ID_VARIABLE = "MESHBOT_GITLAB_CLIENT_ID"
GITLAB_CLIENT_SECRET_VARIABLE = "MESHBOT_GITLAB_CLIENT_SECRET"
GITHUB_API_URL_VARIABLE = "MESHBOT_GITHUB_API_URL"  # the same variables the forge clients read (vcs/)
GITLAB_URL_VARIABLE = "MESHBOT_GITLAB_URL"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_GITLAB_URL = "https://gitlab.com"
STATE_SESSION_KEY = "meshbot_oauth"  # the pending sign-in: forge, state and where to go next
VIEWER_SESSION_KEY = "meshbot_viewer"  # the id of the signed-in viewer's record (RedisViewers)
VIEWER_TTL_SECONDS = 8 * 3600  # what a user could read is checked again at the next sign-in
TIMEOUT_SECONDS = 10.0
MAX_PAGES = 50  # 5,000 repositories at 100 a page


class SignInFailed(Exception):
    """The forge refused the sign-in, or answered something unexpected."""


@dataclass(frozen=True, slots=True)
class OAuthForge:
    """One forge's OAuth application as the server configures it."""

    name: str
    web_url: str  # where the browser signs in (github.com, the GitLab host)
    api_url: str  # where meshbot reads the user and their repositories
    client_id: str
    client_secret: str

    @property
    def authorize_url(self) -> str:
        """The forge's authorization page."""
        return f"{self.web_url}/login/oauth/authorize" if self.name == GITHUB else f"{self.web_url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        """Where the code becomes an access token."""
        return f"{self.web_url}/login/oauth/access_token" if self.name == GITHUB else f"{self.web_url}/oauth/token"


def github_web_url(api_url: str) -> str:
    """GitHub's web host for its API root: api.github.com -> github.com, GHES's HOST/api/v3 -> HOST, else itself."""
    api_url = api_url.rstrip("/")
    if api_url == DEFAULT_GITHUB_API_URL:
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


def configured_forge(name: str) -> OAuthForge | None:
    """The forge's OAuth application from the environment; None when its client id or secret is unset."""
    if name == GITHUB:
        client_id = os.environ.get(GITHUB_CLIENT_ID_VARIABLE)
        client_secret = os.environ.get(GITHUB_CLIENT_SECRET_VARIABLE)
        api_url = (os.environ.get(GITHUB_API_URL_VARIABLE) or DEFAULT_GITHUB_API_URL).rstrip("/")
        web_url = github_web_url(api_url)
    elif name == GITLAB:
        client_id = os.environ.get(GITLAB_CLIENT_ID_VARIABLE)
        client_secret = os.environ.get(GITLAB_CLIENT_SECRET_VARIABLE)
        web_url = (os.environ.get(GITLAB_URL_VARIABLE) or DEFAULT_GITLAB_URL).rstrip("/")
        api_url = f"{web_url}/api/v4"
    else:
        return None
    if not client_id or not client_secret:
        return None
    return OAuthForge(name, web_url, api_url, client_id, client_secret)


def configured_forges() -> list[OAuthForge]:
    """The forges a user can sign in with, GitHub first."""
    return [forge for forge in (configured_forge(GITHUB), configured_forge(GITLAB)) if forge is not None]


def repository_key(forge: str, project: str) -> str:
    """How a repository is named in a Viewer, as the console names a deployment's origin: "forge:owner/name"."""
    return f"{forge}:{project}"


def _get(url: str, token: str, params: dict[str, Any] | None = None) -> requests.Response:
    response = requests.get(url, params=params, timeout=TIMEOUT_SECONDS,
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    if response.status_code != 200:
        raise SignInFailed(f"{url} answered {response.status_code}")
    return response


def _pages(url: str, token: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item of a paginated listing (both forges send Link rel="next")."""
    next_url: str | None = url
    for _ in range(MAX_PAGES):
        if next_url is None:
            return
        response = _get(next_url, token, params if next_url == url else None)
        yield from response.json()
        next_url = response.links.get("next", {}).get("url")
    logger.warning("sign-in: stopped listing %s after %d pages", url, MAX_PAGES)


def github_viewer(api_url: str, token: str) -> Viewer:
    """The GitHub user of token and every repository they can read (permissions.pull)."""
    login = str(_get(f"{api_url}/user", token).json()["login"])
    repositories = frozenset(
        repository_key(GITHUB, str(item["full_name"]))
        for item in _pages(f"{api_url}/user/repos", token, {"per_page": 100})
        if (item.get("permissions") or {}).get("pull", True))
    return Viewer(name=f"{GITHUB}:{login}", repositories=repositories)


def gitlab_viewer(api_url: str, token: str) -> Viewer:
    """The GitLab user of token and every project they can read the code of (Reporter and above)."""
    username = str(_get(f"{api_url}/user", token).json()["username"])
    repositories = frozenset(
        repository_key(GITLAB, str(item["path_with_namespace"]))
        for item in _pages(f"{api_url}/projects", token,
                           {"membership": "true", "min_access_level": 20, "simple": "true", "per_page": 100}))
    return Viewer(name=f"{GITLAB}:{username}", repositories=repositories)


def exchange_code(forge: OAuthForge, code: str, redirect_uri: str) -> str:
    """The access token for an authorization code (the forge's token endpoint)."""
    form = {"client_id": forge.client_id, "client_secret": forge.client_secret, "code": code,
            "redirect_uri": redirect_uri}
    if forge.name == GITLAB:
        form["grant_type"] = "authorization_code"
    response = requests.post(forge.token_url, data=form, headers={"Accept": "application/json"},
                             timeout=TIMEOUT_SECONDS)
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if response.status_code != 200 or not token:
        # GitHub answers 200 with {"error": "bad_verification_code"}; GitLab 400 with {"error": "invalid_grant"}
        raise SignInFailed(f"{forge.name} refused the code ({response.status_code} "
                           f"{answer.get('error', '') if isinstance(answer, dict) else ''})".rstrip() + ")")
    return str(token)


def viewer_of(forge: OAuthForge, token: str) -> Viewer:
    """The Viewer a forge token stands for."""
    return github_viewer(forge.api_url, token) if forge.name == GITHUB else gitlab_viewer(forge.api_url, token)


class RedisViewers:
    """Signed-in forge users, kept in Redis for VIEWER_TTL_SECONDS (a cookie could not hold thousands of names)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def save(self, viewer: Viewer) -> str:
        """Keep viewer; its random id."""
        viewer_id = secrets.token_urlsafe(24)
        self.redis.set(f"meshbot:console:viewer:{viewer_id}", json.dumps(
            {"name": viewer.name, "repositories": sorted(viewer.repositories)}), ex=VIEWER_TTL_SECONDS)
        return viewer_id

    def load(self, viewer_id: str) -> Viewer | None:
        """The viewer kept under viewer_id, or None once expired or unknown."""
        raw = self.redis.get(f"meshbot:console:viewer:{viewer_id}")
        if raw is None:
            return None
        data = json.loads(raw)
        return Viewer(name=data["name"], repositories=frozenset(data["repositories"]))

    def forget(self, viewer_id: str) -> None:
        """Sign out."""
        self.redis.delete(f"meshbot:console:viewer:{viewer_id}")


def signed_in_viewer(viewers: RedisViewers) -> Viewer | None:
    """The forge user of this browser session, if one signed in (and has not expired)."""
    viewer_id = session.get(VIEWER_SESSION_KEY)
    return viewers.load(viewer_id) if isinstance(viewer_id, str) else None


def signin_blueprint(viewers: Callable[[], RedisViewers], public_url: Callable[[], str | None] = lambda: None
                     ) -> Blueprint:
    """`/login/github`, `/login/gitlab` and `/auth/<forge>/callback` (the callback URL to register on the forge).

    The Flask app must have a secret key (signed session cookies): the state against CSRF lives in the session.
    public_url, when it gives one, is the URL the browser reaches meshbot at (behind a reverse proxy)."""
    blueprint = Blueprint("signin", __name__)

    def callback_url(forge: str) -> str:
        base = public_url()
        path = url_for("signin.callback", forge=forge)
        return base.rstrip("/") + path if base else url_for("signin.callback", forge=forge, _external=True)

    @blueprint.get("/login/<forge>")
    def start(forge: str) -> ResponseReturnValue:
        configured = configured_forge(forge)
        if configured is None:
            abort(404)
        state = secrets.token_urlsafe(32)
        session[STATE_SESSION_KEY] = {"forge": forge, "state": state, "next": safe_next(request.args.get("next"))}
        query = {"client_id": configured.client_id, "redirect_uri": callback_url(forge), "state": state}
        if forge == GITHUB:
            query["scope"] = "repo"  # private repositories are listed only with it (nothing is written with it)
        else:
            query.update(response_type="code", scope="read_api")
        return redirect(f"{configured.authorize_url}?{urlencode(query)}")

    @blueprint.get("/auth/<forge>/callback")
    def callback(forge: str) -> ResponseReturnValue:
        configured = configured_forge(forge)
        if configured is None:
            abort(404)
        pending = session.pop(STATE_SESSION_KEY, None)
        given = request.args.get("state", "")
        if not isinstance(pending, dict) or pending.get("forge") != forge or not hmac.compare_digest(
                str(pending.get("state", "")).encode(), given.encode()):
            return _refused("the sign-in expired or did not start here (state mismatch): sign in again", 400)
        if request.args.get("error"):
            reason = request.args.get("error_description") or request.args["error"]
            return _refused(f"{forge} did not sign you in: {reason}", 403)
        try:
            token = exchange_code(configured, request.args.get("code", ""), callback_url(forge))
            viewer = viewer_of(configured, token)
        except (SignInFailed, requests.RequestException, KeyError, ValueError) as error:
            logger.warning("sign-in with %s failed: %s", forge, error)
            return _refused(f"signing in with {forge} failed: {error}", 502)
        session[VIEWER_SESSION_KEY] = viewers().save(viewer)
        logger.info("console: %s signed in (%d repositories readable)", viewer.name, len(viewer.repositories))
        return redirect(str(pending.get("next") or "/"))

    return blueprint


def _refused(message: str, status: int) -> Response:
    return Response(f"<!doctype html><title>Sign-in failed</title><h1>Sign-in failed</h1><p>{escape(message)}</p>"
                    '<p><a href="/login">Sign in again</a></p>', status, content_type="text/html; charset=utf-8")
