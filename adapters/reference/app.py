"""The Flask app serving the Tech Adapter API 2.2.0 under /datamesh.specificprovisioner.

Synchronous mode answers provision, unprovision, updateacl and reverse provisioning with 200; asynchronous
mode answers 202 with a task token (a JSON string, except unprovision's, which is plain text: clients
must accept both) and finishes in a background thread. /v2/validate always answers 202 with a token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from adapters.reference import URL_PREFIX, operations, reverse, sqlite
from adapters.reference.answers import (
    FAILED,
    RUNNING,
    BadRequest,
    Logs,
    failed,
    reverse_status,
    system_error,
    validation_result,
)
from adapters.reference.inputs import acl_request, check_envelope, json_body, reverse_request
from adapters.reference.tasks import TaskStore

MAX_BODY_BYTES = 8 * 1024 * 1024
PROVISIONING, REVERSE, VALIDATION = "provisioning", "reverse-provisioning", "validation"
EXTENSION = "meshbot.reference_adapter"
_LOG = logging.getLogger("meshbot.reference_adapter")


class AdapterState:
    """What the routes share: the database, the DDL lock, the mode and the task tokens."""

    def __init__(self, database: Path, asynchronous: bool, async_delay: float) -> None:
        self.adapter = operations.Adapter(database)
        self.asynchronous = asynchronous
        self.tasks = TaskStore(async_delay if asynchronous else 0.0)

    def run(self, kind: str, work: Callable[[], dict[str, Any]], phase: str, plain_token: bool = False) -> Response:
        """200 and the result now, or (asynchronous mode) 202 and the token of a task computing it."""
        if not self.asynchronous:
            return jsonify(work())
        token = self.tasks.submit(kind, work, _running(kind, phase), lambda error: _task_failed(kind, phase, error))
        if plain_token:
            return Response(token, status=202, mimetype="text/plain")
        return Response(json.dumps(token), status=202, mimetype="application/json")


def create_app(database: str | Path, *, asynchronous: bool = False, async_delay: float = 0.05) -> Flask:
    """The reference SQLite tech adapter; database is the SQLite file (created if missing)."""
    state = AdapterState(Path(database), asynchronous, async_delay)
    sqlite.prepare(state.adapter.database)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[EXTENSION] = state
    app.register_blueprint(_routes(state))
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(Exception, _unexpected)
    return app


def _routes(state: AdapterState) -> Blueprint:
    routes = Blueprint("tech_adapter", __name__, url_prefix=URL_PREFIX)
    adapter = state.adapter

    @routes.post("/v1/validate")
    def validate() -> Response:
        try:
            body = json_body(request.get_data())
        except BadRequest as bad:
            return jsonify(validation_result(bad.errors))
        return jsonify(operations.validate(adapter, body))

    @routes.post("/v2/validate")
    def validate_async() -> Response:
        body = json_body(request.get_data())
        check_envelope(body)

        def work() -> dict[str, Any]:
            return {"status": "COMPLETED", "info": {"publicInfo": operations.validate(adapter, body)}}

        if state.asynchronous:
            token = state.tasks.submit(VALIDATION, work, {"status": RUNNING}, lambda error: _task_failed(
                VALIDATION, "validate", error))
        else:
            token = state.tasks.finished(VALIDATION, work())
        return Response(json.dumps(token), status=202, mimetype="application/json")

    @routes.post("/v1/provision")
    def provision() -> Response:
        prepared = operations.prepare(json_body(request.get_data()))
        return state.run(PROVISIONING, lambda: operations.provision(adapter, prepared), "provision")

    @routes.post("/v1/unprovision")
    def unprovision() -> Response:
        prepared = operations.prepare(json_body(request.get_data()), for_removal=True)
        return state.run(PROVISIONING, lambda: operations.unprovision(adapter, prepared), "unprovision",
                         plain_token=True)

    @routes.post("/v1/updateacl")
    def update_acl() -> Response:
        acl = acl_request(json_body(request.get_data()))
        return state.run(PROVISIONING, lambda: operations.update_acl(adapter, acl), "updateacl")

    @routes.post("/v1/reverse-provisioning")
    def reverse_provisioning() -> Response:
        what = reverse.target(reverse_request(json_body(request.get_data())))
        return state.run(REVERSE, lambda: operations.reverse(adapter, what), "reverse-provisioning")

    @routes.get("/v1/provision/<token>/status")
    def provisioning_status(token: str) -> Response:
        return _status(state, PROVISIONING, token)

    @routes.get("/v1/reverse-provisioning/<token>/status")
    def reverse_provisioning_status(token: str) -> Response:
        return _status(state, REVERSE, token)

    @routes.get("/v2/validate/<token>/status")
    def validation_status(token: str) -> Response:
        return _status(state, VALIDATION, token)

    return routes


def _status(state: AdapterState, kind: str, token: str) -> Response:
    status = state.tasks.status(kind, token)
    if status is None:
        problem = f"unknown {kind} task token '{token[:80]}'"
        raise BadRequest(problem, [problem], "token", [
            "poll with the token the operation answered, on the status endpoint of that operation; tokens do not "
            "survive a restart of the adapter"])
    return jsonify(status)


def _running(kind: str, phase: str) -> dict[str, Any]:
    if kind == REVERSE:
        return {"status": RUNNING, "updates": {}}
    return {"status": RUNNING, "result": f"{phase} is running"}


def _task_failed(kind: str, phase: str, error: Exception) -> dict[str, Any]:
    _LOG.error("%s task failed", phase, exc_info=error)
    logs = Logs(phase)
    message = f"unexpected error in the adapter: {error!r}"
    if kind == REVERSE:
        logs.error(message)
        return reverse_status(FAILED, {}, logs)
    if kind == VALIDATION:
        return {"status": FAILED}
    return failed(message, logs)


def _bad_request(bad: BadRequest) -> tuple[Response, int]:
    return jsonify(bad.body()), 400


def _unexpected(error: Exception) -> Response | tuple[Response, int] | HTTPException:
    if isinstance(error, RequestEntityTooLarge):
        problem = f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB"
        return _bad_request(BadRequest(problem, [problem], solutions=["send a smaller descriptor"]))
    if isinstance(error, HTTPException):
        return error
    _LOG.error("unexpected error answering %s %s", request.method, request.path, exc_info=error)
    return jsonify(system_error(f"unexpected error in the SQLite tech adapter: {error!r}")), 500
