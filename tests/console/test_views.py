"""The mesh page's link builder writes exactly the URLs url_for writes (issue 18: 4,000 links for 1,000 products)."""

from __future__ import annotations

import pytest
from flask import url_for

from app import create_app
from bot.console.views import link_builder

ODD = ["urn:dmb:dp:finance:cashflow:1", "1733450000000-abcd1234", "with space", "a/b", "per%cent", "q?x=1#f",
       "ünïcode", "semi;colon=@!$&'()*+,", "<script>", ""]


@pytest.mark.parametrize("value", ODD)
def test_links_are_the_ones_url_for_builds(value):
    app = create_app()
    with app.test_request_context("/", base_url="https://meshbot.example.com/console/"):
        link = link_builder()
        for endpoint, name in (("console.product_page", "data_product"), ("console.deployment_page", "deployment_id")):
            if value:
                assert link(endpoint, **{name: value}) == url_for(endpoint, **{name: value})
                assert link(endpoint, **{name: value}).startswith("/console/")  # the script root, as url_for
        assert link("console.mesh_page") == url_for("console.mesh_page")
        assert link("console.product_page", data_product="x", env="qa") == url_for(
            "console.product_page", data_product="x", env="qa")  # anything else: url_for itself
