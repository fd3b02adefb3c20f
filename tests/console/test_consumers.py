"""The consumers of output ports on the data product page and in its JSON twin (a real Redis, the real engine)."""

from __future__ import annotations

from bot.engine.access import AccessStore, Applied
from tests.console.test_pages import HTML, Mesh, mesh, signed_in, text  # noqa: F401  (the mesh fixture)
from tests.deploy_harness import redis_engine as redis_engine  # the fixtures, also without tests/conftest.py
from tests.deploy_harness import start as start


def test_the_product_page_shows_each_output_ports_consumers_and_the_last_updateacl(mesh: Mesh) -> None:  # noqa: F811
    product = mesh.good.data_product
    access = AccessStore(mesh.engine.redis)
    access.record(product, "development", "sales", {"at": "2026-01-02T00:00:00Z", "status": "COMPLETED",
                                                    "refs": ["user:alice"], "message": "recorded"},
                  Applied(["user:alice"], "2026-01-02T00:00:00Z", 12, "owner", "acme/diamond", "recorded"))
    access.record(product, "development", "sales", {"at": "2026-01-03T00:00:00Z", "status": "FAILED",
                                                    "refs": [], "message": "catalog <down>"}, None)
    access.record(product, "development", "orders", {"at": "2026-01-04T00:00:00Z", "status": "FAILED",
                                                     "refs": ["group:finance"], "message": "boom"}, None)
    client = signed_in(mesh.client)
    document = client.get(f"/api/v1/products/{product}").get_json()
    (environment,) = document["environments"]
    assert environment["consumers"] == [
        {"port": "orders", "refs": [], "appliedAt": None, "mergeRequest": None, "mergedBy": None, "project": None,
         "status": "FAILED", "message": "boom", "attemptedAt": "2026-01-04T00:00:00Z",
         "attemptedRefs": ["group:finance"], "origin": None, "attemptOrigin": ""},
        {"port": "sales", "refs": ["user:alice"], "appliedAt": "2026-01-02T00:00:00Z", "mergeRequest": 12,
         "mergedBy": "owner", "project": "acme/diamond", "status": "FAILED", "message": "catalog <down>",
         "attemptedAt": "2026-01-03T00:00:00Z", "attemptedRefs": [], "origin": "", "attemptOrigin": ""}]
    page = text(client.get(f"/products/{product}?env=development", headers=HTML))
    assert "<h3>Consumers</h3>" in page and "acme/diamond !12 merged by owner" in page
    assert "catalog &lt;down&gt; (not applied: nobody)" in page and "catalog <down>" not in page  # escaped
    access.record(product, "development", "orders", {"at": "2026-01-05T00:00:00Z", "status": "COMPLETED",
                                                     "refs": ["group:finance"], "message": "recorded",
                                                     "origin": "after deployment d-7"},
                  Applied(["group:finance"], "2026-01-05T00:00:00Z", origin="after deployment d-7"))
    page = text(client.get(f"/products/{product}?env=development", headers=HTML))
    assert page.count("after deployment d-7") == 2  # who applied the refs, and the last attempt's origin
    bad = text(client.get(f"/products/{mesh.bad.data_product}?env=development", headers=HTML))
    assert "No access granted through access/ files here." in bad
