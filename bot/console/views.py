"""The console's Flask blueprint: the pages, their JSON twins under /api/v1, and the operator sign-in."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import redis
from flask import Blueprint, Flask, g, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from itsdangerous import URLSafeTimedSerializer

from bot.config import ServerConfig, config_path, load_config
from bot.console import data
from bot.console.access import (
    OPERATOR,
    SESSION_COOKIE,
    Viewer,
    api_token,
    bearer_token,
    prefers_html,
    safe_next,
    session_secret,
    token_fingerprint,
    token_valid,
    visible_products,
)
from bot.console.policy_impact import impact_document
from bot.console.signin import VIEWER_SESSION_KEY, RedisViewers, configured_forges, signed_in_viewer, signin_blueprint
from policies.loader import policies_for
from policies.model import Policy

logger = logging.getLogger(__name__)

ConnectionSource = Callable[[], redis.Redis]
ConfigSource = Callable[[], ServerConfig]


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, keyed by session_secret() read at each request (no key: no session)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """A serializer signing with the console's session secret, or None when there is none."""
        secret = session_secret()
        if secret is None:
            return None
        return URLSafeTimedSerializer(secret, salt=self.salt, serializer=self.serializer,
                                      signer_kwargs={"key_derivation": self.key_derivation,
                                                     "digest_method": self.digest_method})


def default_config() -> ServerConfig:
    """The server configuration meshbot serve was given ($MESHBOT_CONFIG), else the defaults."""
    return load_config(config_path(None))


def console_blueprint(connection: ConnectionSource, config: ConfigSource = default_config) -> Blueprint:
    """The console's pages and API routes, reading Redis through connection and the policies through config."""
    console = Blueprint("console", __name__, template_folder="templates", static_folder="static",
                        static_url_path="/console-static")

    def viewer() -> Viewer | None:
        """Who is asking: the operator (bearer token or signed session), or nobody."""
        if token_valid(bearer_token(request.headers.get("Authorization", ""))):
            return Viewer(name=OPERATOR, operator=True)
        fingerprint = token_fingerprint()
        if fingerprint is not None and session.get(OPERATOR) == fingerprint:
            return Viewer(name=OPERATOR, operator=True)
        return signed_in_viewer(RedisViewers(connection()))  # a forge user (bot/console/signin.py), or nobody

    def policies() -> list[Policy]:
        """The server's policies and the built-ins, loaded once per request."""
        if "console_policies" not in g:
            g.console_policies = policies_for(config(), connection=connection())
        return list(g.console_policies)

    def refusal(api: bool) -> ResponseReturnValue:
        if api or not prefers_html(request.accept_mimetypes.best_match(["application/json", "text/html"])):
            closed = api_token() is None
            message = ("the console and its API are closed: set MESHBOT_API_TOKEN on meshbot" if closed else
                       "missing or wrong 'Authorization: Bearer <token>' (or sign in at /login)")
            return jsonify(error=message), 401
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))

    def visible(who: Viewer, found: dict[str, Any]) -> set[str]:
        return visible_products(who, {row["id"]: row["repositories"] for row in found["products"]})

    def mesh_data(who: Viewer) -> dict[str, Any]:
        found = data.mesh(connection())
        args = request.args
        return data.mesh_document(found, visible(who, found), domain=args.get("domain", ""),
                                  environment=args.get("environment", ""), status=args.get("status", ""),
                                  query=args.get("q", "").strip())

    def product_data(who: Viewer, data_product: str) -> dict[str, Any] | None:
        found = data.product(connection(), data_product, policies())
        if found is None or data_product not in visible_products(who, {data_product: found["repositories"]}):
            return None  # unseen and unknown look the same
        return found

    def deployment_data(who: Viewer, deployment_id: str) -> dict[str, Any] | None:
        found = data.deployment(connection(), deployment_id)
        if found is None:
            return None
        repositories = [found["origin"]["repository"]] if found["origin"]["repository"] else []
        return found if visible_products(who, {found["dataProduct"]: repositories}) else None

    def policies_data(who: Viewer) -> dict[str, Any]:
        found = data.mesh(connection())
        return data.policies_document(connection(), policies(), visible(who, found))

    def impact_data(who: Viewer) -> dict[str, Any]:
        found = data.mesh(connection())
        return impact_document(connection(), policies(), visible(who, found))

    def signed_in(api: bool) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
        """A view given the signed-in viewer; without one, the login page (pages) or a 401 (the API)."""
        def wrap(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
            @functools.wraps(view)
            def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
                who = viewer()
                return refusal(api=api) if who is None else view(who, *args, **kwargs)
            return guarded
        return wrap

    @console.get("/")
    @signed_in(api=False)
    def mesh_page(who: Viewer) -> ResponseReturnValue:
        return render_template("console/mesh.html", mesh=mesh_data(who), viewer=who, statuses=STATUSES,
                               url_for=link_builder())  # 4,000 links for 1,000 data products

    @console.get("/api/v1/products")
    @signed_in(api=True)
    def mesh_api(who: Viewer) -> ResponseReturnValue:
        return jsonify(mesh_data(who))

    @console.get("/products/<data_product>")
    @signed_in(api=False)
    def product_page(who: Viewer, data_product: str) -> ResponseReturnValue:
        found = product_data(who, data_product)
        if found is None:
            return render_template("console/missing.html", what="data product", name=data_product, viewer=who), 404
        focus = request.args.get("env") or found["current"]
        return render_template("console/product.html", product=found, focus=focus, viewer=who)

    @console.get("/api/v1/products/<data_product>")
    @signed_in(api=True)
    def product_api(who: Viewer, data_product: str) -> ResponseReturnValue:
        found = product_data(who, data_product)
        if found is None:
            return jsonify(error="no such data product", dataProduct=data_product), 404
        return jsonify(found)

    @console.get("/deployments/<deployment_id>")
    @signed_in(api=False)
    def deployment_page(who: Viewer, deployment_id: str) -> ResponseReturnValue:
        found = deployment_data(who, deployment_id)
        if found is None:
            return render_template("console/missing.html", what="deployment", name=deployment_id, viewer=who), 404
        return render_template("console/deployment.html", deployment=found, viewer=who)

    @console.get("/api/v1/deployments/<deployment_id>")
    @signed_in(api=True)
    def deployment_api(who: Viewer, deployment_id: str) -> ResponseReturnValue:
        found = deployment_data(who, deployment_id)
        if found is None:
            return jsonify(error="no such deployment (or dropped from history)", deployment=deployment_id), 404
        return jsonify(found)

    @console.get("/policies")
    @signed_in(api=False)
    def policies_page(who: Viewer) -> ResponseReturnValue:
        return render_template("console/policies.html", policies=policies_data(who)["policies"], viewer=who)

    @console.get("/api/v1/policies")
    @signed_in(api=True)
    def policies_api(who: Viewer) -> ResponseReturnValue:
        return jsonify(policies_data(who))

    @console.get("/policies/impact")
    @signed_in(api=False)
    def policy_impact_page(who: Viewer) -> ResponseReturnValue:
        return render_template("console/policy_impact.html", impact=impact_data(who), viewer=who)

    @console.get("/api/v1/policies/impact")
    @signed_in(api=True)
    def policy_impact_api(who: Viewer) -> ResponseReturnValue:
        return jsonify(impact_data(who))

    @console.route("/login", methods=["GET", "POST"])
    def login() -> ResponseReturnValue:
        target = safe_next(request.values.get("next"))
        if request.method == "GET":
            return render_template("console/login.html", next=target, error=None, viewer=None,
                                   closed=api_token() is None, forges=[forge.name for forge in configured_forges()])
        if not token_valid(request.form.get("token")):
            logger.warning("console sign-in refused: wrong operator token")
            return render_template("console/login.html", next=target, error="That is not the operator token.",
                                   viewer=None, closed=api_token() is None,
                                   forges=[forge.name for forge in configured_forges()]), 401
        session.clear()
        session[OPERATOR] = token_fingerprint()
        return redirect(target)

    @console.post("/logout")
    def logout() -> ResponseReturnValue:
        viewer_id = session.get(VIEWER_SESSION_KEY)
        if isinstance(viewer_id, str):
            RedisViewers(connection()).forget(viewer_id)
        session.clear()
        return redirect(url_for("console.login"))

    return console


PLACEHOLDER = "meshbot-link-placeholder"
LINKED = {"console.product_page": "data_product", "console.deployment_page": "deployment_id"}  # default converters


def link_builder() -> Callable[..., str]:
    """url_for for pages with thousands of links: each LINKED endpoint's URL built once, then each value quoted
    as its route's default converter quotes it (werkzeug's BaseConverter.to_url); anything else goes to url_for."""
    built: dict[str, str] = {}

    def link(endpoint: str, **values: Any) -> str:
        name = LINKED.get(endpoint)
        if name is None or list(values) != [name]:
            return url_for(endpoint, **values)
        if endpoint not in built:
            placeholder: dict[str, Any] = {name: PLACEHOLDER}
            built[endpoint] = url_for(endpoint, **placeholder)
        return built[endpoint].replace(PLACEHOLDER, quote(str(values[name]), safe="!$&'()*+,/:;=@"))
    return link


STATUSES = ("DEPLOYED", "PARTIALLY_DEPLOYED", "IN_PROGRESS", "CORRUPT", "NOT_DEPLOYED")


def register_console(app: Flask, connection: ConnectionSource, config: ConfigSource = default_config) -> None:
    """Add the console to app: its blueprint, its signed session cookie, and autoescaped templates."""
    app.session_interface = ConsoleSessions()
    app.config.update(SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    app.register_blueprint(console_blueprint(connection, config))
    app.register_blueprint(signin_blueprint(lambda: RedisViewers(connection()), lambda: config().public_url))


def status_page_redirect(data_product: str, environment: str | None) -> ResponseReturnValue:
    """Where a browser following a /status/<id>?env= link goes: the data product's page, at that environment."""
    return redirect(url_for("console.product_page", data_product=data_product, env=environment or None), code=303)


def wants_page() -> bool:
    """Whether the request asks for HTML (a browser) rather than JSON (a script)."""
    return prefers_html(request.accept_mimetypes.best_match(["application/json", "text/html"]))


