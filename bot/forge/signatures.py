"""Webhook authenticity: GitHub's HMAC signature of the body, GitLab's shared token, both compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

GITHUB_SIGNATURE_PREFIX = "sha256="


def _bytes(text: str) -> bytes:
    """text as bytes; surrogateescape keeps a secret read from a non-UTF-8 environment byte for byte."""
    return text.encode("utf-8", "surrogateescape")


def github_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether X-Hub-Signature-256 is `sha256=` the HMAC-SHA256 of the raw body with secret (never without a secret)."""
    if not secret or not header:
        return False
    expected = GITHUB_SIGNATURE_PREFIX + hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(_bytes(expected), _bytes(header.strip()))


def gitlab_token_valid(secret: str, header: str | None) -> bool:
    """Whether X-Gitlab-Token equals secret (never for no secret)."""
    if not secret or header is None:
        return False
    return hmac.compare_digest(_bytes(secret), _bytes(header))
