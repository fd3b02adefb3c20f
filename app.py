"""The Flask application factory for meshbot's web service."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from bot import __version__


def create_app() -> Flask:
    """A meshbot web application; the webhook endpoints arrive with the webhook service."""
    app = Flask("meshbot")

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok", version=__version__)

    return app
