"""The webhook secret of a first run: generated once, kept private in meshbot's state folder, reused after."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot.home import meshbot_home

GITHUB_SECRET_VARIABLE = "MESHBOT_GITHUB_WEBHOOK_SECRET"
GITLAB_SECRET_VARIABLE = "MESHBOT_GITLAB_WEBHOOK_SECRET"
SECRET_FILE = "webhook-secret"


def configured_secrets() -> dict[str, str]:
    """The forges whose webhook secret the environment sets, by forge name."""
    found = {"github": os.environ.get(GITHUB_SECRET_VARIABLE, ""), "gitlab": os.environ.get(GITLAB_SECRET_VARIABLE, "")}
    return {forge: secret for forge, secret in found.items() if secret}


def generated_secret(home: Path | None = None) -> tuple[str, bool]:
    """The secret kept in the state folder, creating it (mode 0600) on first use; (secret, whether it is new)."""
    path = (home or meshbot_home()) / SECRET_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if secret:
            return secret, False
        path.unlink()  # an empty file left by a crash: make a new secret
        return generated_secret(home)
    secret = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secret + "\n")
    return secret, True


def use_secret_when_none_is_set(home: Path | None = None) -> tuple[str, bool] | None:
    """With no webhook secret in the environment, set both forges' to the state folder's; (secret, new) or None."""
    if configured_secrets():
        return None
    secret, new = generated_secret(home)
    os.environ[GITHUB_SECRET_VARIABLE] = secret
    os.environ[GITLAB_SECRET_VARIABLE] = secret
    return secret, new
