"""Remote policy engines (Witboost's Remote Engine API): the HTTP client and the cache of its definite answers.

meshbot POSTs `{"content": <YAML text>, "resourceType": "system" | "component", "resourceId": <id>}` to the URL the
server configuration gives the engine and reads `{"satisfiesPolicy": true | false, "errors": ["..."]}`. The policy
id and the environment travel as headers only (X-Meshbot-Policy, X-Meshbot-Environment): the body stays exactly
what existing engines expect. Anything but a definite answer raises EngineError with a reason that names the engine
and never its URL; only definite answers are cached.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.config import PolicyEngineSettings

# redis and requests are imported where a cache or an engine uses them: `meshbot check` without remote engines
# starts without them.
if TYPE_CHECKING:
    import redis
    import requests

MAX_ANSWER_BYTES = 1024 * 1024
MAX_ERRORS = 50
MAX_ERROR_LENGTH = 300
MEMORY_ENTRIES = 4096
REDIS_TTL_SECONDS = 24 * 3600
REDIS_PREFIX = "meshbot:policy-verdict:"
# Witboost's resource types: a data product is a Backstage System, a component a Component.
RESOURCE_TYPE_SYSTEM = "system"
RESOURCE_TYPE_COMPONENT = "component"
POLICY_HEADER = "X-Meshbot-Policy"
ENVIRONMENT_HEADER = "X-Meshbot-Environment"


class EngineError(Exception):
    """An engine gave no definite answer; str() is the reason people read (engine name, never its URL)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A definite answer: whether the resource satisfies the policy, and the engine's reasons when it does not."""

    satisfied: bool
    errors: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The verdict as stored in Redis."""
        return {"satisfied": self.satisfied, "errors": list(self.errors)}


@dataclass(frozen=True, slots=True)
class Question:
    """What one evaluation asks: which policy (and version) on which resource, with the resource's YAML text."""

    policy: str
    version: str
    resource_type: str
    resource_id: str
    content: str
    environment: str = ""

    def body(self) -> dict[str, str]:
        """The request body, exactly the three fields of the Remote Engine API."""
        return {"content": self.content, "resourceType": self.resource_type, "resourceId": self.resource_id}


class VerdictCache(Protocol):
    """Where definite verdicts are kept, by cache key."""

    def get(self, key: str) -> Verdict | None:
        """The verdict stored under key, or None."""

    def put(self, key: str, verdict: Verdict) -> None:
        """Keep verdict under key."""


class MemoryCache:
    """A bounded, thread-safe LRU of verdicts in this process."""

    def __init__(self, entries: int = MEMORY_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[str, Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Verdict | None:
        """The verdict under key (now the most recently used), or None."""
        with self._lock:
            verdict = self._items.get(key)
            if verdict is not None:
                self._items.move_to_end(key)
            return verdict

    def put(self, key: str, verdict: Verdict) -> None:
        """Keep verdict, dropping the least recently used entry beyond the bound."""
        with self._lock:
            self._items[key] = verdict
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class RedisCache:
    """Verdicts in Redis with a TTL, shared by every worker process; a Redis failure is a cache miss, never an error."""

    def __init__(self, connection: redis.Redis, ttl: int = REDIS_TTL_SECONDS) -> None:
        self.connection = connection
        self.ttl = ttl

    def get(self, key: str) -> Verdict | None:
        """The verdict stored under key, or None (also when Redis fails or holds something unreadable)."""
        import redis

        try:
            raw = self.connection.get(REDIS_PREFIX + key)
        except redis.RedisError:
            return None
        try:
            document = json.loads(raw) if raw is not None else None
            if isinstance(document, dict) and isinstance(document.get("satisfied"), bool):
                return Verdict(document["satisfied"], tuple(str(error) for error in document.get("errors") or ()))
        except (ValueError, TypeError):
            pass
        return None

    def put(self, key: str, verdict: Verdict) -> None:
        """Store verdict for the TTL (best effort)."""
        import redis

        try:
            self.connection.set(REDIS_PREFIX + key, json.dumps(verdict.as_json()), ex=self.ttl)
        except redis.RedisError:
            pass


class LayeredCache:
    """The process's LRU in front of Redis: a Redis hit is copied into the LRU."""

    def __init__(self, near: VerdictCache, far: VerdictCache) -> None:
        self.near, self.far = near, far

    def get(self, key: str) -> Verdict | None:
        """The near verdict, else the far one (remembered near)."""
        verdict = self.near.get(key)
        if verdict is None:
            verdict = self.far.get(key)
            if verdict is not None:
                self.near.put(key, verdict)
        return verdict

    def put(self, key: str, verdict: Verdict) -> None:
        """Keep verdict in both."""
        self.near.put(key, verdict)
        self.far.put(key, verdict)


PROCESS_CACHE = MemoryCache()


def cache_for(connection: redis.Redis | None, memory: VerdictCache = PROCESS_CACHE) -> VerdictCache:
    """The process's LRU, in front of Redis when a connection is known."""
    return memory if connection is None else LayeredCache(memory, RedisCache(connection))


def cache_key(url: str, question: Question) -> str:
    """sha256 over (engine URL, policy id, policy version, resourceType, sha256 of the content)."""
    content = hashlib.sha256(question.content.encode()).hexdigest()
    parts = [url, question.policy, question.version, question.resource_type, content]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class RemoteEngine:
    """One configured engine: asks it (with its timeout) unless the cache already knows the answer."""

    def __init__(self, settings: PolicyEngineSettings, cache: VerdictCache | None = None) -> None:
        self.settings = settings
        self.cache: VerdictCache = cache if cache is not None else PROCESS_CACHE

    @property
    def name(self) -> str:
        """The engine's name in the server configuration."""
        return self.settings.name

    def verdict(self, question: Question) -> Verdict:
        """The cached verdict, else the engine's (then cached); EngineError when the engine gives none."""
        key = cache_key(self.settings.url, question)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        verdict = self.ask(question)
        self.cache.put(key, verdict)
        return verdict

    def ask(self, question: Question) -> Verdict:
        """POST the question to the engine and read its answer (never cached here)."""
        import requests

        timeout = self.settings.timeout
        deadline = time.monotonic() + timeout
        headers = {POLICY_HEADER: question.policy}
        if question.environment:
            headers[ENVIRONMENT_HEADER] = question.environment
        try:
            with requests.post(self.settings.url, json=question.body(), headers=headers, timeout=(timeout, timeout),
                               stream=True, allow_redirects=False) as response:
                if response.status_code != 200:
                    raise self._error(f"answered HTTP {response.status_code}")
                body = self._read(response, deadline)
        except requests.Timeout:
            raise self._error(f"timed out after {timeout:g} s") from None
        except requests.ConnectionError as error:
            raise self._error(f"could not be reached ({connection_reason(error)})") from None
        except requests.RequestException as error:
            raise self._error(f"could not be asked ({type(error).__name__})") from None
        return self._verdict(body)

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise self._error(f"answered more than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB")
            if time.monotonic() > deadline:
                raise self._error(f"timed out after {self.settings.timeout:g} s")
            chunks.append(chunk)
        return b"".join(chunks)

    def _verdict(self, body: bytes) -> Verdict:
        try:
            document = json.loads(body)
        except ValueError:
            raise self._error("answered no JSON") from None
        verdict = parse_answer(document)
        if isinstance(verdict, str):
            raise self._error(verdict)
        return verdict

    def _error(self, reason: str) -> EngineError:
        return EngineError(f"policy engine '{self.settings.name}' {reason}")


def parse_answer(document: Any) -> Verdict | str:
    """The verdict of an answer document, or what is wrong with its shape (`answered no satisfiesPolicy`)."""
    if not isinstance(document, dict):
        return "answered no JSON object"
    satisfied = document.get("satisfiesPolicy")
    if not isinstance(satisfied, bool):
        return "answered no satisfiesPolicy" if satisfied is None else "answered a satisfiesPolicy that is no boolean"
    errors = document.get("errors")
    if errors is None:
        errors = []
    if not isinstance(errors, list) or not all(isinstance(error, str) for error in errors):
        return "answered errors that are not a list of texts"
    return Verdict(satisfied, tuple(_shorten(error) for error in errors[:MAX_ERRORS]))


def connection_reason(error: requests.ConnectionError) -> str:
    """`connection refused`, or the kind of connection failure, without the URL requests puts in its messages."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__ or (cause.args[0] if cause.args and isinstance(
            cause.args[0], BaseException) else None)
    text = str(error)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return "name not resolved"
    return "connection failed"


def engines_for(settings: Mapping[str, PolicyEngineSettings], cache: VerdictCache | None = None
                ) -> dict[str, RemoteEngine]:
    """A client per configured engine, sharing cache (default: the process's LRU)."""
    return {name: RemoteEngine(engine, cache) for name, engine in settings.items()}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"
