"""Asynchronous tasks: a token per task, its status while it runs and once it is done.

Each task runs in its own thread after a small configurable delay (so clients really poll). Tokens are
kept in memory while the adapter runs; the oldest finished ones are forgotten past a bound.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_FINISHED_TASKS = 10_000

Work = Callable[[], dict[str, Any]]
OnError = Callable[[Exception], dict[str, Any]]


@dataclass(slots=True)
class _Task:
    kind: str
    status: dict[str, Any]
    done: bool = False


class TaskStore:
    """Tasks by token; kind keeps a token to the status endpoint of its own operation."""

    def __init__(self, delay: float = 0.0, max_finished: int = MAX_FINISHED_TASKS) -> None:
        self.delay = delay
        self.max_finished = max_finished
        self._tasks: OrderedDict[str, _Task] = OrderedDict()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def submit(self, kind: str, work: Work, running: dict[str, Any], on_error: OnError) -> str:
        """Start work in a thread; its status is `running` until it returns (or on_error of what it raised)."""
        token = _new_token()
        thread = threading.Thread(target=self._run, args=(token, work, on_error), name=f"meshbot-task-{token[:13]}",
                                  daemon=True)
        with self._lock:
            self._tasks[token] = _Task(kind, running)
            self._threads.add(thread)
        thread.start()
        return token

    def finished(self, kind: str, status: dict[str, Any]) -> str:
        """A token for a result that is already there."""
        token = _new_token()
        with self._lock:
            self._tasks[token] = _Task(kind, status, done=True)
            self._forget_old()
        return token

    def status(self, kind: str, token: str) -> dict[str, Any] | None:
        """The task's current status, or None when the token is unknown (or of another kind)."""
        with self._lock:
            task = self._tasks.get(token)
            return task.status if task is not None and task.kind == kind else None

    def wait(self, timeout: float) -> bool:
        """Wait for running tasks to end (at shutdown); True when none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return True
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not any(thread.is_alive() for thread in self._threads)

    def _run(self, token: str, work: Work, on_error: OnError) -> None:
        try:
            if self.delay > 0:
                time.sleep(self.delay)
            try:
                status = work()
            except Exception as unexpected:  # a task reports its failure in its status
                status = on_error(unexpected)
            with self._lock:
                task = self._tasks.get(token)
                if task is not None:
                    task.status, task.done = status, True
                    self._forget_old()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _forget_old(self) -> None:
        finished = [token for token, task in self._tasks.items() if task.done]
        for token in finished[: max(0, len(finished) - self.max_finished)]:
            del self._tasks[token]


def _new_token() -> str:
    # Always starts with a letter: a plain-text token must never read as a JSON number.
    return f"t{uuid.uuid4().hex}"
