"""Where the command line learns what is deployed: a file, a remote meshbot's API, or the local engine's Redis."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES

if TYPE_CHECKING:  # the command line registers this module's arguments on every start: keep its imports light
    import requests

    from bot.engine.deployed import Deployed, DeployedStates

API_TOKEN_VARIABLE = "MESHBOT_API_TOKEN"
REMOTE_TIMEOUT = 15.0


def add_deployed_arguments(parser: argparse.ArgumentParser, flag_help: str) -> None:
    """--against FILE and --server URL (mutually exclusive), and --config for the local engine's Redis."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--against", metavar="FILE",
                        help="a deployed descriptor (YAML or JSON, or the API's JSON document) to compare with")
    source.add_argument("--server", metavar="URL",
                        help=f"a meshbot service to ask what is deployed ({API_TOKEN_VARIABLE} holds its API token); "
                             f"default: the local engine's Redis. {flag_help}")
    if not any(action.dest == "config" for action in parser._actions):
        parser.add_argument("--config", metavar="FILE", help="the server configuration (default: $MESHBOT_CONFIG)")


def deployed_source(arguments: argparse.Namespace) -> DeployedStates:
    """The source the arguments name; InputErrors when it cannot be read."""
    from bot.engine.deployed import FixedDeployed

    if getattr(arguments, "against", None):
        return FixedDeployed(load_deployed_file(arguments.against))
    if getattr(arguments, "server", None):
        return RemoteDeployedStates(arguments.server, os.environ.get(API_TOKEN_VARIABLE))
    return _LocalDeployedStates(getattr(arguments, "config", None))


def load_deployed_file(path: str, noun: str = "deployed descriptor") -> dict[str, Any]:
    """A deployed descriptor from a file: the descriptor itself, or the API's document holding it."""
    from bot.descriptor.yamlsafe import load_single  # the YAML parsers: `meshbot check` without --previous skips them

    file = Path(path)
    if not file.is_file():
        raise InputErrors([InputError(f"{noun} not found", SourcePosition(path))])
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InputErrors([InputError("file is over the 1 MiB limit", SourcePosition(path))])
    document = load_single(file.read_bytes(), path)  # JSON is YAML, so both formats load here
    if document is None or not isinstance(document.value, dict):
        raise InputErrors([InputError(f"the {noun} must be a mapping", SourcePosition(path, 1, 1))])
    value = document.value
    if isinstance(value.get("descriptor"), dict) and "components" not in value:
        return value["descriptor"]
    return value


class RemoteDeployedStates:
    """A meshbot service's `GET /api/v1/products/<id>/environments/<env>/descriptor`."""

    def __init__(self, server: str, token: str | None, session: requests.Session | None = None) -> None:
        import requests

        self.server, self.token = server.rstrip("/"), token
        self.session = session or requests.Session()

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """What the service says is deployed; InputErrors when it cannot be asked or refuses."""
        import requests

        from bot.engine.deployed import Deployed

        url = (f"{self.server}/api/v1/products/{quote(data_product, safe=':')}/environments/"
               f"{quote(environment, safe='')}/descriptor")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = self.session.get(url, headers=headers, timeout=REMOTE_TIMEOUT)
        except requests.RequestException as error:
            raise InputErrors([InputError(f"cannot reach {url}: {type(error).__name__}: {error}")]) from None
        if answer.status_code == 404:
            return None
        if answer.status_code == 401:
            hint = "" if self.token else f" (set {API_TOKEN_VARIABLE} to the service's API token)"
            raise InputErrors([InputError(f"{url}: the service refused the API token{hint}")])
        if answer.status_code != 200:
            raise InputErrors([InputError(f"{url}: HTTP {answer.status_code}: {answer.text[:200]}")])
        try:
            return Deployed.from_json(answer.json())
        except ValueError as error:
            raise InputErrors([InputError(f"{url}: not a deployed descriptor document: {error}")]) from None


class _LocalDeployedStates:
    """The engine's Redis on this machine (REDIS_URL, the configuration's redis_url, else the embedded server)."""

    def __init__(self, config: str | None) -> None:
        self.config = config

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """What the local engine recorded; InputErrors when its Redis cannot be reached."""
        from redis.exceptions import RedisError

        from bot.config import config_path, load_config
        from bot.engine.deployed import RedisDeployedStates
        from bot.engine.local_workers import choose_redis, shown_url
        from bot.engine.redis_connection import EmbeddedRedisError

        configured = load_config(config_path(self.config)).redis_url
        try:
            choice = choose_redis(configured)
        except (EmbeddedRedisError, OSError) as error:
            raise InputErrors([InputError(f"cannot open the local engine's Redis: {error}")]) from None
        try:
            return RedisDeployedStates(choice.connection).deployed(data_product, environment)
        except RedisError as error:
            raise InputErrors([InputError(f"cannot read {shown_url(choice.url)}: {error}")]) from None
