"""Who may see what in the console, and the pure shaping of its data (no Redis, no Flask)."""

from __future__ import annotations

import pytest

from bot.console.access import (
    Viewer,
    bearer_token,
    prefers_html,
    safe_next,
    session_secret,
    token_valid,
    visible_products,
)
from bot.console.data import domain_of, matches, origin, public_info, split_key

PRODUCTS = {"urn:dmb:dp:fin:cash:1": ["github:acme/cash"], "urn:dmb:dp:hr:pay:1": ["gitlab:acme/pay"],
            "urn:dmb:dp:ops:cli:1": []}


def test_the_operator_sees_every_product_and_a_forge_user_those_of_the_repositories_they_read() -> None:
    assert visible_products(Viewer("operator", operator=True), PRODUCTS) == set(PRODUCTS)
    alice = Viewer("github:alice", repositories=frozenset({"github:acme/cash", "github:acme/other"}))
    assert visible_products(alice, PRODUCTS) == {"urn:dmb:dp:fin:cash:1"}
    assert visible_products(Viewer("gitlab:bob"), PRODUCTS) == set()


def test_the_token_is_compared_only_when_one_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHBOT_API_TOKEN", raising=False)
    monkeypatch.delenv("MESHBOT_SESSION_SECRET", raising=False)
    assert not token_valid("") and not token_valid(None) and session_secret() is None
    monkeypatch.setenv("MESHBOT_API_TOKEN", "s3cret")
    assert token_valid("s3cret") and not token_valid("s3cre") and not token_valid(None)
    derived = session_secret()
    assert derived and "s3cret" not in derived
    monkeypatch.setenv("MESHBOT_SESSION_SECRET", "fixed")
    assert session_secret() == "fixed"
    assert bearer_token("bearer abc") == "abc" and bearer_token("Basic abc") is None and bearer_token("Bearer ") is None


@pytest.mark.parametrize(("given", "expected"), [
    ("/policies", "/policies"), ("/products/urn:dmb:dp:a:b:1?env=qa", "/products/urn:dmb:dp:a:b:1?env=qa"),
    (None, "/"), ("", "/"), ("https://evil.example/", "/"), ("//evil.example/", "/"), ("/\\evil.example", "/"),
])
def test_after_sign_in_only_local_paths_are_followed(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_content_negotiation() -> None:
    assert prefers_html("text/html") and not prefers_html("application/json") and not prefers_html(None)


def test_only_public_info_is_kept() -> None:
    assert public_info({"publicInfo": {"url": "x"}, "privateInfo": {"path": "/secret"}}) == {"url": "x"}
    assert public_info({"privateInfo": {"path": "/secret"}}) is None
    assert public_info("just text") is None and public_info(None) is None


def test_keys_domains_and_origins() -> None:
    assert split_key("meshbot:product:urn:dmb:dp:fin:cash:1:production", "meshbot:product:") == (
        "urn:dmb:dp:fin:cash:1", "production")
    assert split_key("meshbot:product:", "meshbot:product:") is None
    assert domain_of("urn:dmb:dp:fin:cash:1") == "fin"
    assert domain_of("urn:dmb:dp:fin:cash:1", {"domain": "finance"}) == "finance"
    assert domain_of("odd") == "(no domain)"
    merge_request = origin({"forge": "github", "project": "acme/cash", "sha": "a" * 40, "comment": 3},
                           "github:acme/cash!12 by @alice")
    assert (merge_request["kind"], merge_request["detail"], merge_request["repository"]) == (
        "merge request", "github:acme/cash!12", "github:acme/cash")
    tagged = origin({"forge": "gitlab", "project": "acme/pay", "tag": "v2.0.0"}, "gitlab:acme/pay@v2.0.0")
    assert (tagged["kind"], tagged["detail"]) == ("tag", "v2.0.0")
    release = origin({"forge": "github", "project": "acme/cash"}, "github:acme/cash@v1.0.0")
    assert (release["kind"], release["detail"]) == ("tag", "v1.0.0")
    assert origin(None, "cli:alice@laptop")["kind"] == "cli"
    assert origin(None, "rollback to 1.0.0 by alice (cli)")["kind"] == "cli"


def test_filters_and_search() -> None:
    row = {"id": "urn:dmb:dp:fin:cash:1", "name": "cash", "description": "Daily <cash> flows", "domain": "fin",
           "environments": {"qa": {"status": "DEPLOYED"}, "production": {"status": "CORRUPT"}}}
    assert matches(row)
    assert matches(row, domain="fin") and not matches(row, domain="hr")
    assert matches(row, environment="qa") and not matches(row, environment="development")
    assert matches(row, status="corrupt") and not matches(row, status="CORRUPT", environment="qa")
    assert matches(row, query="DAILY") and matches(row, query="fin:cash") and not matches(row, query="payroll")
