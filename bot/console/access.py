"""Who is looking at the console, and which data products they may see: the one place that decides it."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

API_TOKEN_VARIABLE = "MESHBOT_API_TOKEN"
SESSION_SECRET_VARIABLE = "MESHBOT_SESSION_SECRET"
SESSION_COOKIE = "meshbot_session"
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Viewer:
    """A person or script looking at the console: the operator (token), or a forge user and what they can read."""

    name: str
    operator: bool = False
    repositories: frozenset[str] = field(default_factory=frozenset)  # "forge:owner/name" they can read


def visible_products(viewer: Viewer, products: Mapping[str, Iterable[str]]) -> set[str]:
    """The data products viewer may see, of products (id -> the repositories "forge:project" it was deployed from)."""
    if viewer.operator:
        return set(products)
    return {product for product, repositories in products.items() if viewer.repositories & set(repositories)}


def api_token() -> str | None:
    """The operator token (MESHBOT_API_TOKEN), read at each request; None when unset or empty."""
    return os.environ.get(API_TOKEN_VARIABLE) or None


def token_valid(given: str | None) -> bool:
    """Whether given is the operator token (constant time); always False when no token is configured."""
    token = api_token()
    return bool(token and given) and hmac.compare_digest(str(given).encode(), str(token).encode())


def token_fingerprint() -> str | None:
    """A hash of the operator token, kept in a console session so that changing the token ends every session."""
    token = api_token()
    return None if token is None else hashlib.sha256(b"meshbot console session\0" + token.encode()).hexdigest()


def session_secret() -> str | None:
    """The key signing console session cookies: MESHBOT_SESSION_SECRET, else derived from the operator token."""
    explicit = os.environ.get(SESSION_SECRET_VARIABLE)
    if explicit:
        return explicit
    token = api_token()
    if token is None:
        return None  # no token: nobody can sign in, so nothing to sign
    return hmac.new(token.encode(), b"meshbot console session secret", hashlib.sha256).hexdigest()


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235); None otherwise."""
    scheme, space, token = authorization.partition(" ")
    return token if space and scheme.lower() == "bearer" and token else None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host), else the mesh page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def prefers_html(best_match: str | None) -> bool:
    """Whether content negotiation chose HTML (the caller passes accept_mimetypes.best_match of JSON and HTML)."""
    return best_match == "text/html"
