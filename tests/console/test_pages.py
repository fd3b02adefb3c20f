"""The console's pages and their JSON twins, on a real Redis holding deployments the real engine ran."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import create_app
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.drift import ComponentDrift, ComponentState, Difference, DriftReport, save_report
from bot.engine.runner import request_deployment
from bot.engine.store import Deployment
from tests.deploy_harness import Engine, adapters_for, component_id, generated_descriptor, scripted_adapter
from tests.deploy_harness import redis_engine as redis_engine  # the fixtures, also without tests/conftest.py
from tests.deploy_harness import start as start
from tests.servers.tech_adapter import Reply

TOKEN = "console-operator-token"
SECRET_PATH = "/var/lib/secret/ledger.db"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
POLICY = """id: needs-a-description
description: Every data product says what it is
target: dataproduct
severity: warning
status: draft
schema:
  required: [description]
"""


@dataclass
class Mesh:
    """A served console over an engine holding two data products: one deployed, one corrupt."""

    engine: Engine
    client: FlaskClient
    good: Deployment
    bad: Deployment


@pytest.fixture
def mesh(start: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mesh]:
    """Deploy diamond from a merge request (publicInfo and privateInfo on a), then fail chain's f from a tag."""
    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "description.yaml").write_text(POLICY)
    (tmp_path / "meshbot.yaml").write_text("policies: [policies]\n")
    monkeypatch.setenv("MESHBOT_CONFIG", str(tmp_path / "meshbot.yaml"))
    running: Engine = start(1)  # type: ignore[operator]
    good_descriptor, bad_descriptor = generated_descriptor("diamond"), generated_descriptor("chain")
    with scripted_adapter() as adapter:
        adapter.script(component_id(good_descriptor, "a"), "/v1/provision", Reply(200, {
            "status": "COMPLETED", "result": "ledger <ready>",
            "info": {"publicInfo": {"table": {"type": "string", "label": "Table", "value": "ledger_<a1>"}},
                     "privateInfo": {"path": SECRET_PATH}},
            "logs": [{"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "message": "created ledger_a1"}]}))
        adapter.script(component_id(bad_descriptor, "f"), "/v1/provision",
                       Reply(200, {"status": "FAILED", "result": "the view <f> exists already"}))
        good_id, _ = running.request(good_descriptor, adapters_for(good_descriptor, adapter.url), report_to={
            "forge": "github", "project": "acme/diamond", "sha": "a" * 40, "context": "meshbot/deploy/development",
            "comment": 7, "command": "deploy"})
        good = running.wait(good_id)
        bad_id, _ = request_deployment(running.redis, bad_descriptor, Operation.DEPLOY,
                                       adapters_for(bad_descriptor, adapter.url), "gitlab:acme/chain@v1.0.0",
                                       report_to={"forge": "gitlab", "project": "acme/chain", "sha": "b" * 40,
                                                  "tag": "v1.0.0", "context": "meshbot/deploy/development"})
        bad = running.wait(bad_id)
    assert (good.state, bad.state) == (DeploymentState.DEPLOYED, DeploymentState.CORRUPT)
    save_report(running.redis, DriftReport(
        data_product=good.data_product, environment="development", deployment=good.id, version="1.0.0",
        checked_at="2026-01-01T00:00:00Z", components=(ComponentDrift(
            id=component_id(good_descriptor, "a"), name="a", kind="storage", state=ComponentState.DRIFTED,
            differences=(Difference(path="dataContract.schema", kind="added", summary="a column was added",
                                    parts=(("a column was added", False),)),)),)))
    yield Mesh(running, create_app(redis_connection=running.redis).test_client(), good, bad)


def signed_in(client: FlaskClient) -> FlaskClient:
    """The client after signing in with the operator token through the login form."""
    response = client.post("/login", data={"token": TOKEN, "next": "/"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    return client


def text(response: object) -> str:
    """A response's body as text."""
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def test_without_a_token_pages_send_to_the_login_form_and_the_api_answers_401(mesh: Mesh) -> None:
    client = mesh.client
    for page in ("/", f"/products/{mesh.good.data_product}", f"/deployments/{mesh.good.id}", "/policies"):
        response = client.get(page, headers=HTML)
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/login?next=")
    for api in ("/api/v1/products", f"/api/v1/products/{mesh.good.data_product}", f"/api/v1/deployments/{mesh.good.id}",
                "/api/v1/policies"):
        assert client.get(api).status_code == 401, api
        assert client.get(api, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(api, headers=BEARER).status_code == 200
    assert client.get("/", headers={"Accept": "application/json"}).status_code == 401


def test_the_login_form_signs_in_with_the_token_only_and_goes_back_where_asked(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mesh.client
    form = client.get("/login?next=/policies")
    assert form.status_code == 200 and 'name="token"' in text(form) and 'value="/policies"' in text(form)
    refused = client.post("/login", data={"token": "guess", "next": "/policies"})
    assert refused.status_code == 401 and "not the operator token" in text(refused)
    assert client.get("/", headers=HTML).status_code == 302
    away = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert away.headers["Location"] == "/"
    cookie = client.get_cookie("meshbot_session")
    assert cookie is not None and cookie.http_only
    assert client.get("/", headers=HTML).status_code == 200
    monkeypatch.setenv("MESHBOT_SESSION_SECRET", "a fixed secret")  # a new key: the old cookie no longer verifies
    assert client.get("/", headers=HTML).status_code == 302
    signed_in(client)
    monkeypatch.setenv("MESHBOT_API_TOKEN", "rotated")  # a new token ends every session, whatever the key
    assert client.get("/", headers=HTML).status_code == 302
    client.post("/logout")
    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    assert client.get("/", headers=HTML).status_code == 302


def test_the_console_is_closed_without_a_configured_token(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHBOT_API_TOKEN")
    assert mesh.client.get("/api/v1/products", headers={"Authorization": "Bearer "}).status_code == 401
    assert "closed" in text(mesh.client.get("/login"))
    assert mesh.client.post("/login", data={"token": ""}).status_code == 401


def test_the_mesh_shows_every_product_by_domain_with_its_status_matrix(mesh: Mesh) -> None:
    page = text(signed_in(mesh.client).get("/", headers=HTML))
    assert mesh.good.data_product in page and mesh.bad.data_product in page
    assert "DEPLOYED" in page and "CORRUPT" in page and "development" in page
    assert f"/deployments/{mesh.good.id}" in page and f"/products/{mesh.good.data_product}" in page
    document = mesh.client.get("/api/v1/products", headers=BEARER).get_json()
    assert document["environments"] == ["development"]
    assert document["byDomain"] == {"gen": [mesh.bad.data_product, mesh.good.data_product]}
    good = next(row for row in document["products"] if row["id"] == mesh.good.data_product)
    cell = good["environments"]["development"]
    assert (cell["status"], cell["version"], cell["deployment"], cell["deploymentState"]) == (
        "DEPLOYED", "1.0.0", mesh.good.id, "DEPLOYED")
    assert cell["by"] == "tests" and cell["when"]
    assert good["repositories"] == ["github:acme/diamond"]


def test_the_mesh_filters_and_searches(mesh: Mesh) -> None:
    client = signed_in(mesh.client)

    def ids(query: str) -> list[str]:
        return [row["id"] for row in client.get(f"/api/v1/products?{query}").get_json()["products"]]

    assert ids("status=corrupt") == [mesh.bad.data_product]
    assert ids("status=DEPLOYED&environment=development") == [mesh.good.data_product]
    assert ids("environment=production") == []
    assert ids("q=DIAMOND") == [mesh.good.data_product]
    assert ids("domain=gen") == [mesh.bad.data_product, mesh.good.data_product]
    assert ids("domain=finance") == []
    page = text(client.get("/?q=chain", headers=HTML))
    assert mesh.bad.data_product in page and mesh.good.data_product not in page
    escaped = text(client.get("/?q=%3Cscript%3Ealert(1)%3C/script%3E", headers=HTML))
    assert "<script>alert(1)" not in escaped and "&lt;script&gt;alert(1)" in escaped


def test_the_product_page_shows_public_info_and_never_private_info(mesh: Mesh) -> None:
    client = signed_in(mesh.client)
    page = text(client.get(f"/products/{mesh.good.data_product}?env=development", headers=HTML))
    document = client.get(f"/api/v1/products/{mesh.good.data_product}").get_json()
    for shown in (page, json.dumps(document)):
        assert SECRET_PATH not in shown and "privateInfo" not in shown
    assert "ledger_&lt;a1&gt;" in page and "ledger_<a1>" not in page  # public info, escaped
    assert 'class="graph"' in page and "<svg" in page
    assert "a column was added" in page and "drift" in page
    assert f"/deployments/{mesh.good.id}" in page
    assert "needs-a-description" not in page  # a draft is not part of the deployed product's results
    assert "data-product-specification" in page
    (environment,) = document["environments"]
    assert environment["environment"] == "development" and environment["status"] == "DEPLOYED"
    component = next(item for item in environment["components"] if item["id"].endswith(":a"))
    assert component == {"id": component["id"], "status": "DEPLOYED", "message": "ledger <ready>",
                         "publicInfo": {"table": {"type": "string", "label": "Table", "value": "ledger_<a1>"}}}
    assert len(environment["components"]) == 10
    assert environment["graph"]["stages"][0][0].endswith(":a")
    assert [entry["id"] for entry in environment["history"]] == [mesh.good.id]
    assert environment["history"][0]["origin"]["kind"] == "merge request"
    assert environment["governance"]["evaluated"] is True and environment["drift"]["status"] == "drift"
    assert client.get("/api/v1/products/urn:dmb:dp:gen:nothing:1").status_code == 404
    assert client.get("/products/urn:dmb:dp:gen:nothing:1", headers=HTML).status_code == 404


def test_the_deployment_page_shows_the_timeline_tasks_and_where_it_came_from(mesh: Mesh) -> None:
    client = signed_in(mesh.client)
    page = text(client.get(f"/deployments/{mesh.bad.id}", headers=HTML))
    assert 'class="timeline"' in page and "the view &lt;f&gt; exists already" in page
    assert "tag" in page and "v1.0.0" in page and "gitlab:acme/chain" in page
    document = client.get(f"/api/v1/deployments/{mesh.bad.id}").get_json()
    assert document["state"] == "CORRUPT" and document["origin"]["kind"] == "tag"
    states = {task["id"].rsplit(":", 1)[1]: task["state"] for task in document["tasks"]}
    assert states["f"] == "FAILED" and states["g"] == "SKIPPED" and states["e"] == "COMPLETED"
    completed = next(task for task in document["tasks"] if task["id"].endswith(":e"))
    assert completed["startedAt"] and completed["finishedAt"] and completed["durationSeconds"] >= 0
    good = text(client.get(f"/deployments/{mesh.good.id}", headers=HTML))
    assert "created ledger_a1" in good and "merge request" in good and SECRET_PATH not in good
    assert SECRET_PATH not in json.dumps(client.get(f"/api/v1/deployments/{mesh.good.id}").get_json())
    assert client.get("/api/v1/deployments/0-nothing").status_code == 404


def test_the_policies_page_names_the_deployed_products_that_fail_each_policy_now(mesh: Mesh) -> None:
    client = signed_in(mesh.client)
    document = client.get("/api/v1/policies").get_json()
    policies = {policy["id"]: policy for policy in document["policies"]}
    draft = policies["needs-a-description"]
    assert (draft["status"], draft["severity"]) == ("draft", "warning")
    assert {failure["dataProduct"] for failure in draft["failing"]} == {mesh.good.data_product}  # chain is not deployed
    assert policies["data-product-id"]["failing"] == []
    page = text(client.get("/policies", headers=HTML))
    assert "needs-a-description" in page and "Every data product says what it is" in page
    assert f"/products/{mesh.good.data_product}?env=development" in page


def test_status_links_open_the_console_for_a_browser_and_stay_json_for_scripts(mesh: Mesh) -> None:
    client = mesh.client
    link = f"/status/{mesh.good.data_product}?env=development"
    browser = client.get(link, headers=HTML)
    assert browser.status_code == 303
    assert browser.headers["Location"] == f"/products/{mesh.good.data_product}?env=development"
    assert client.get(browser.headers["Location"], headers=HTML).status_code == 302  # to the login form first
    script = client.get(link, headers=BEARER)
    assert script.status_code == 200 and script.get_json()["status"] == "DEPLOYED"
    assert client.get(link).status_code == 401  # a script without the token, as before
    page = text(signed_in(client).get(browser.headers["Location"], headers=HTML))
    assert SECRET_PATH not in page and re.search(r"development: <span class=\"status s-deployed\">", page)


def test_the_login_form_offers_the_configured_forges_and_sign_out_forgets_a_forge_user(
    redis_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.console.access import Viewer
    from bot.console.signin import VIEWER_SESSION_KEY, RedisViewers

    monkeypatch.setenv("MESHBOT_API_TOKEN", TOKEN)
    monkeypatch.delenv("MESHBOT_GITLAB_CLIENT_ID", raising=False)
    monkeypatch.setenv("MESHBOT_GITHUB_CLIENT_ID", "client")
    monkeypatch.setenv("MESHBOT_GITHUB_CLIENT_SECRET", "secret")
    client = create_app(redis_connection=redis_engine.redis).test_client()
    form = text(client.get("/login?next=/policies"))
    assert "/login/github?next=/policies" in form and "GitHub" in form and "/login/gitlab" not in form
    viewers = RedisViewers(redis_engine.redis)
    viewer_id = viewers.save(Viewer("github:alice", repositories=frozenset({"github:acme/cash"})))
    with client.session_transaction() as session:
        session[VIEWER_SESSION_KEY] = viewer_id
    assert client.get("/api/v1/products").get_json()["products"] == []  # signed in, sees nothing of nothing
    client.post("/logout")
    assert viewers.load(viewer_id) is None
    assert client.get("/api/v1/products").status_code == 401
