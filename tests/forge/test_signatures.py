"""Webhook authenticity checks: GitHub's body signature and GitLab's token."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.forge.signatures import github_signature_valid, gitlab_token_valid

BODY = b'{"zen": "Design for failure.", "hook_id": 481234567}'


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature_of_the_raw_body():
    assert github_signature_valid("s3cret", BODY, sign("s3cret", BODY))


@pytest.mark.parametrize("header", [
    None, "", "sha256=", sign("other", BODY), sign("s3cret", BODY + b" "),
    sign("s3cret", BODY).replace("sha256=", "sha1="), sign("s3cret", BODY)[:-1], "sha256=" + "é" * 64,
])
def test_github_wrong_or_missing_signature(header):
    assert not github_signature_valid("s3cret", BODY, header)


def test_github_no_secret_refuses_even_a_signature_made_with_an_empty_secret():
    assert not github_signature_valid("", BODY, sign("", BODY))


def test_github_non_ascii_secret():
    assert github_signature_valid("clé-secrète", BODY, sign("clé-secrète", BODY))


def test_gitlab_token():
    assert gitlab_token_valid("t0ken", "t0ken")
    for header in (None, "", "t0ken ", "T0KEN", "t0ke", "tökén"):
        assert not gitlab_token_valid("t0ken", header)


def test_gitlab_no_secret_refuses_an_empty_token():
    assert not gitlab_token_valid("", "")
    assert not gitlab_token_valid("", None)
