"""The reference SQLite tech adapter served on 127.0.0.1 in the test process, with every exchange recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from adapters.client import TechAdapterClient
from adapters.reference.server import base_url, start


@dataclass
class Recorder:
    """Keeps every answer received through its sessions (each with the request that asked for it)."""

    responses: list[requests.Response] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self) -> requests.Session:
        """A requests session whose answers are recorded."""
        session = requests.Session()
        session.hooks["response"].append(self._record)
        return session

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        response.content  # noqa: B018 (read the body now: a streamed answer is gone once the session moves on)
        with self._lock:
            self.responses.append(response)

    def statuses(self, path_end: str) -> list[dict[str, Any]]:
        """The JSON bodies of the 200 answers to paths ending in path_end."""
        with self._lock:
            return [json.loads(item.text) for item in self.responses
                    if requests.utils.urlparse(item.url).path.endswith(path_end) and item.status_code == 200]


@dataclass
class RunningAdapter:
    """A reference adapter serving on 127.0.0.1, and a recording session to reach it."""

    url: str
    database: Path
    recorder: Recorder
    session: requests.Session

    def client(self, **options: Any) -> TechAdapterClient:
        """The real tech adapter client, through the recording session."""
        return TechAdapterClient(self.url, timeout=20, session=self.session, **options)

    def post(self, path: str, **options: Any) -> requests.Response:
        """A raw POST to an API path (e.g. /v1/provision)."""
        return self.session.post(self.url + path, timeout=20, **options)

    def get(self, path: str) -> requests.Response:
        """A raw GET of an API path."""
        return self.session.get(self.url + path, timeout=20)


@contextmanager
def running_adapter(database: Path, *, asynchronous: bool = False, async_delay: float = 0.05,
                    recorder: Recorder | None = None) -> Iterator[RunningAdapter]:
    """Serve the adapter on a free port (werkzeug's threaded server) for the duration of the block."""
    server = start(database, "127.0.0.1", 0, asynchronous=asynchronous, async_delay=async_delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    recorder = recorder or Recorder()
    try:
        yield RunningAdapter(base_url(server), database, recorder, recorder.session())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
