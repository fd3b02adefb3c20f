"""The Flask application factory for meshbot's web service: health, and the GitHub and GitLab webhook intake.

A webhook is verified, parsed into our own event, routed to jobs, de-duplicated and enqueued on meshbot's RQ
queue, and answered within the forge's 10 s: the work itself runs on RQ workers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from bot import __version__
from bot.engine.runner import queue
from bot.forge.deliveries import DeliveryCount, DeliveryIntake
from bot.forge.events import GITHUB, GITLAB, Event, Ignored, github_event, gitlab_event, parse_json
from bot.forge.router import JobRequest, route
from bot.forge.signatures import github_signature_valid, gitlab_token_valid
from bot.logs import bind_log_context, log_context
from bot.metrics import delivery_field

logger = logging.getLogger(__name__)

GITHUB_SECRET_VARIABLE = "MESHBOT_GITHUB_WEBHOOK_SECRET"
GITLAB_SECRET_VARIABLE = "MESHBOT_GITLAB_WEBHOOK_SECRET"
API_TOKEN_VARIABLE = "MESHBOT_API_TOKEN"  # guards /status and /metrics
BOT_USERNAME_VARIABLE = "MESHBOT_BOT_USERNAME"
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MiB
WEBHOOK_PATHS = {"/webhooks/github": GITHUB, "/webhooks/gitlab": GITLAB}
EVENT_HEADERS = {GITHUB: "X-GitHub-Event", GITLAB: "X-Gitlab-Event"}
# meshbot_webhook_deliveries_total's answer label by HTTP status; the 200s and no_secret are set where decided.
DELIVERY_ANSWERS = {202: "queued", 200: "ignored", 400: "not_json", 401: "unauthorized", 413: "too_large",
                    503: "unavailable"}


class _Redis:
    """The Redis connection, given or opened on first use (REDIS_URL, else the embedded server)."""

    def __init__(self, connection: redis.Redis | None) -> None:
        self._connection = connection
        self._intake: DeliveryIntake | None = None
        self._lock = threading.Lock()

    def get(self) -> redis.Redis:
        """The connection, opened now if it was not given."""
        with self._lock:
            if self._connection is None:
                from bot.engine.redis_connection import connect  # starting the embedded server is not for import time

                self._connection = connect()
            return self._connection

    def intake(self) -> DeliveryIntake:
        """The delivery intake on meshbot's RQ queue, built once (RQ checks its serializer on every construction)."""
        client = self.get()
        with self._lock:
            if self._intake is None or self._intake.connection is not client:
                self._intake = DeliveryIntake(queue(client))
            return self._intake


def create_app(
    *,
    redis_connection: redis.Redis | None = None,
    bot_usernames: Iterable[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    ready_heartbeat_window: float | None = None,
) -> Flask:
    """meshbot's web application: `/healthz`, `/readyz` (ready_heartbeat_window: how fresh a worker heartbeat must
    be, 30 s by default), the two webhook endpoints, `/status/<data product>`, `/metrics`,
    the deployed descriptors (`/api/v1/products/<id>/environments/<env>/descriptor`) and the console (bot.console)."""
    app = Flask("meshbot")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    connection = _Redis(redis_connection)
    usernames = None if bot_usernames is None else tuple(bot_usernames)

    def bots() -> tuple[str, ...]:
        if usernames is not None:
            return usernames
        return tuple(name.strip() for name in os.environ.get(BOT_USERNAME_VARIABLE, "").split(",") if name.strip())

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok", version=__version__)

    probes: list[redis.Redis] = []  # /readyz's own client: short timeouts, no retries, its own pool

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        # No token: it says whether meshbot can work (Redis, worker count, queue depth), nothing secret.
        from bot.engine.health import HEARTBEAT_WINDOW_SECONDS, probe_client, readiness

        if not probes:
            probes.append(probe_client(connection.get()))
        found = readiness(probes[0], ready_heartbeat_window or HEARTBEAT_WINDOW_SECONDS)
        return jsonify(found.as_json()), 200 if found.ready else 503

    @app.get("/metrics")
    def metrics() -> ResponseReturnValue:
        refused = _api_refusal()
        if refused is not None:
            return refused
        from bot.engine.health import HEARTBEAT_WINDOW_SECONDS, probe_client, readiness
        from bot.engine.runner import QUEUE_NAME
        from bot.metrics import Gauge, render

        if not probes:
            probes.append(probe_client(connection.get()))
        found = readiness(probes[0], ready_heartbeat_window or HEARTBEAT_WINDOW_SECONDS)
        on_queue = (QUEUE_NAME,)
        gauges = [
            Gauge("meshbot_queue_depth", "Jobs waiting on the RQ queue.", ("queue",),
                  ((on_queue, float(found.queue_depth or 0)),)),
            Gauge("meshbot_queue_oldest_job_age_seconds", "How long the next job out of the queue has waited (0 when "
                  "it is empty).", ("queue",), ((on_queue, float(found.oldest_queued_seconds or 0.0)),)),
            Gauge("meshbot_workers", "RQ workers whose heartbeat is fresh.", (), (((), float(found.workers_alive)),)),
        ]
        return Response(render(connection.get(), gauges), mimetype="text/plain; version=0.0.4")

    @app.get("/status/<path:data_product>")
    def status(data_product: str) -> ResponseReturnValue:
        from bot.console.views import status_page_redirect, wants_page

        if wants_page() and "Authorization" not in request.headers:  # a browser following a link: the console page
            return status_page_redirect(data_product, request.args.get("env"))
        refused = _api_refusal()
        if refused is not None:
            return refused
        from bot.engine.status import environments, product_status

        client = connection.get()
        environment = request.args.get("env")
        if environment:
            document, waiting = product_status(client, data_product, environment)
            return jsonify({**document, "waiting": waiting})
        return jsonify([{**document, "waiting": waiting} for document, waiting in
                        (product_status(client, data_product, name) for name in environments(client, data_product))])

    @app.get("/api/v1/products/<data_product>/environments/<environment>/descriptor")
    def deployed_descriptor(data_product: str, environment: str) -> ResponseReturnValue:
        refused = _api_refusal()
        if refused is not None:
            return refused
        from bot.engine.deployed import RedisDeployedStates

        found = RedisDeployedStates(connection.get()).deployed(data_product, environment)
        if found is None:
            return jsonify(error=f"nothing deployed in {environment}", dataProduct=data_product,
                           environment=environment), 404
        return jsonify(found.as_json())

    @app.after_request
    def count_delivery(response: Response) -> Response:
        """Count every webhook delivery by forge, event and answer (the answer is never failed by counting)."""
        forge = WEBHOOK_PATHS.get(request.path)
        if forge is None or request.method != "POST" or g.get("delivery_counted"):
            return response  # a queued or duplicate delivery was counted by the intake's own script
        answer = g.get("delivery_answer") or DELIVERY_ANSWERS.get(response.status_code, "error")
        # An unverified event header is never a label: anyone may send any.
        event = "" if response.status_code in (401, 413) else request.headers.get(EVENT_HEADERS[forge], "")
        from bot.metrics import count_delivery

        try:
            count_delivery(connection.get(), forge, event, answer, response.status_code)
        except Exception as error:  # no Redis to count in (a 503 says so already)
            logger.warning("could not count a %s delivery: %s", forge, error)
        return response

    from bot.console.views import register_console

    register_console(app, connection.get)  # the operator console: /, /products/..., /deployments/..., /policies

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
        return jsonify(error=f"the body is larger than {max_body_bytes} bytes"), 413

    def whole_body() -> bytes:
        """The request body, all of it: past max_body_bytes, RequestEntityTooLarge (413), whatever its framing."""
        body = request.get_data(cache=True)  # a Content-Length past the limit is refused before anything is read
        # A chunked body has no length to check first: werkzeug stops reading it at the limit and returns that
        # much as if it were all. Whether the client sent more is one byte further (the WSGI server ends the
        # stream where the chunked body ends, so this read never waits for a next request).
        if len(body) >= max_body_bytes and request.content_length is None and request.input_stream.read(1):
            raise RequestEntityTooLarge()
        return body

    @app.post("/webhooks/github")
    def github() -> ResponseReturnValue:
        body = whole_body()  # never a signature over part of a body
        secret = _secret(GITHUB_SECRET_VARIABLE)
        if secret is None:
            return _no_secret(GITHUB_SECRET_VARIABLE)
        delivery = request.headers.get("X-GitHub-Delivery", "")
        with log_context(delivery_id=delivery, forge=GITHUB):
            if not github_signature_valid(secret, body, request.headers.get("X-Hub-Signature-256")):
                logger.warning("github delivery %r refused: missing or wrong X-Hub-Signature-256", delivery)
                return jsonify(error="missing or wrong X-Hub-Signature-256"), 401
            return _intake(GITHUB, body, request.headers.get("X-GitHub-Event", ""), delivery, github_event)

    @app.post("/webhooks/gitlab")
    def gitlab() -> ResponseReturnValue:
        body = whole_body()
        secret = _secret(GITLAB_SECRET_VARIABLE)
        if secret is None:
            return _no_secret(GITLAB_SECRET_VARIABLE)
        delivery = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID") or ""
        with log_context(delivery_id=delivery, forge=GITLAB):
            if not gitlab_token_valid(secret, request.headers.get("X-Gitlab-Token")):
                logger.warning("gitlab delivery %r refused: missing or wrong X-Gitlab-Token", delivery)
                return jsonify(error="missing or wrong X-Gitlab-Token"), 401
            return _intake(GITLAB, body, request.headers.get("X-Gitlab-Event", ""), delivery, gitlab_event)

    def _intake(
        forge: str, body: bytes, event_name: str, delivery: str, parse: Callable[[str, Any], Event]
    ) -> ResponseReturnValue:
        try:
            payload = parse_json(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return jsonify(error="the body is not JSON (set the webhook's content type to application/json)"), 400
        try:
            event = parse(event_name, payload)
            bind_log_context(project=getattr(event, "project", None))  # until the delivery's log_context ends
            routed = route(event, bots())
        except Exception:  # a payload must never earn a 500, whatever a parsing bug does
            logger.exception("could not read the %s %r event of delivery %r", forge, event_name, delivery)
            g.delivery_answer = "unreadable"
            return jsonify(ignored=f"meshbot could not read this {forge} {event_name!r} event (logged)"), 200
        if isinstance(routed, Ignored):
            logger.info("%s delivery %r (%s) ignored: %s", forge, delivery, event_name, routed.reason)
            g.delivery_answer = "ignored"
            return jsonify(ignored=routed.reason), 200
        return _enqueue(forge, delivery, event_name, routed)

    def _enqueue(forge: str, delivery: str, event_name: str, jobs: list[JobRequest]) -> ResponseReturnValue:
        if not delivery:
            logger.warning("a %s delivery without a delivery id cannot be de-duplicated", forge)
        try:
            job_ids = connection.intake().accept(forge, delivery, jobs, _delivery_count(forge, event_name))
            g.delivery_counted = True  # by the same script: no second round trip in count_delivery
        except Exception as error:  # Redis unreachable (or RQ failing): the forge redelivers on a 5xx
            logger.exception("could not enqueue the jobs of %s delivery %r", forge, delivery)
            return jsonify(error=f"meshbot cannot queue work right now ({type(error).__name__}); retry later"), 503
        if job_ids is None:
            logger.info("%s delivery %r ignored: received before", forge, delivery)
            g.delivery_answer = "duplicate"
            return jsonify(ignored=f"duplicate delivery {delivery}: it was received before"), 200
        logger.info("%s delivery %r queued jobs %s", forge, delivery, ", ".join(job_ids))
        return jsonify(jobs=job_ids, descriptions=[job.description for job in jobs]), 202

    return app



def _api_refusal() -> Response | None:
    """401 unless the request carries the API token (MESHBOT_API_TOKEN); without one configured, always 401."""
    token = os.environ.get(API_TOKEN_VARIABLE) or None
    if token is None:
        response = jsonify(error=f"the status and metrics API is closed: set {API_TOKEN_VARIABLE} on meshbot and send "
                                 "it as 'Authorization: Bearer <token>'")
    elif gitlab_token_valid(token, bearer_token(request.headers.get("Authorization", ""))):
        return None  # the same constant-time comparison as a GitLab webhook token
    else:
        response = jsonify(error="missing or wrong 'Authorization: Bearer <token>'")
    response.status_code = 401
    return response


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235); None otherwise."""
    scheme, space, token = authorization.partition(" ")
    return token if space and scheme.lower() == "bearer" and token else None


@lru_cache(maxsize=256)  # the same few forge and event names at every delivery
def _delivery_count(forge: str, event_name: str) -> DeliveryCount:
    """Where the intake counts a delivery it queues (202) or finds a duplicate (200), as count_delivery would."""
    key, queued = delivery_field(forge, event_name, DELIVERY_ANSWERS[202], 202)
    return DeliveryCount(key, queued, delivery_field(forge, event_name, "duplicate", 200)[1])


def _secret(variable: str) -> str | None:
    """The webhook secret in variable, read at each request; None when unset or empty."""
    return os.environ.get(variable) or None


def _no_secret(variable: str) -> Response:
    """401: without a configured secret nothing can be verified, so everything is refused."""
    logger.error("refusing a webhook: no secret is configured; set %s to the webhook's secret", variable)
    g.delivery_answer = "no_secret"
    response = jsonify(error=f"no webhook secret is configured on meshbot ({variable}): every delivery is refused")
    response.status_code = 401
    return response
