"""The Flask application factory."""

from app import create_app
from bot import __version__


def test_healthz_answers_ok():
    client = create_app().test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "version": __version__}


def test_unknown_route_is_404():
    assert create_app().test_client().get("/nope").status_code == 404
