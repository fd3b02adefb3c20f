"""meshbot's own log lines on stderr: what each process receives and does, at MESHBOT_LOG_LEVEL (INFO by default).

MESHBOT_LOG_FORMAT=json writes one JSON object per line (python-json-logger) with the time, level, logger, message,
process and the context known where the line was written: the webhook delivery, the RQ job, the deployment, its
data product and environment, the forge and project. The context is set once where it becomes known
(log_context / bind_log_context, kept in a contextvar) and added to every record by ContextFilter.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_LEVEL_VARIABLE = "MESHBOT_LOG_LEVEL"
LOG_FORMAT_VARIABLE = "MESHBOT_LOG_FORMAT"
DEFAULT_LEVEL = "INFO"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
DEFAULT_FORMAT = "text"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
# The context fields a JSON line carries when they are known, in this order.
CONTEXT_FIELDS = ("delivery_id", "forge", "project", "job_id", "job", "deployment_id", "data_product", "environment")

# The access log's request, from gunicorn's atoms: method, path, status, response size, duration (seconds).
ACCESS_FIELDS = {"method": "m", "path": "U", "status": "s", "bytes": "B", "duration_s": "L"}

_context: ContextVar[Mapping[str, str]] = ContextVar("meshbot_log_context",
                                                      default=MappingProxyType({}))


def log_format() -> str:
    """The format MESHBOT_LOG_FORMAT asks for: text (the default) or json; anything else counts as text."""
    wanted = os.environ.get(LOG_FORMAT_VARIABLE, "").strip().lower() or DEFAULT_FORMAT
    return wanted if wanted in FORMATS else DEFAULT_FORMAT


def json_logs() -> bool:
    """Whether MESHBOT_LOG_FORMAT=json is set."""
    return log_format() == "json"


def _cleaned(fields: Mapping[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in fields.items() if value is not None and value != ""}


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add fields (None and "" left out) to every log line written inside the with block, in this thread or task."""
    token = _context.set({**_context.get(), **_cleaned(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: object) -> None:
    """Add fields to the current context until the enclosing log_context ends (an RQ job: until it ends)."""
    _context.set({**_context.get(), **_cleaned(fields)})


def current_log_context() -> dict[str, str]:
    """The context fields set now."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Adds the current context fields to each record (a field the record already has is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True: the record is only enriched."""
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class MeshbotJsonFormatter(JsonFormatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, process, then the extras."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message", "process"],
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's time in UTC, ISO 8601 with milliseconds."""
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        """python-json-logger's fields (an exception as exc_info, one string), without the job arguments RQ adds."""
        super().add_fields(log_data, record, message_dict)
        # RQ passes these extras with its own failure line; they repeat the job's arguments
        for noisy in ("arguments", "kwargs", "func", "queue", "color_message"):
            log_data.pop(noisy, None)
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):  # gunicorn's request atoms
            atoms = record.args
            for field, atom in ACCESS_FIELDS.items():
                value = atoms.get(atom)
                if value not in (None, "-"):
                    log_data[field] = _number(value)


def _number(value: Any) -> Any:
    """value as an int or float when it is one written as text (gunicorn's status and duration), else value."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def formatter() -> logging.Formatter:
    """The formatter MESHBOT_LOG_FORMAT asks for."""
    return MeshbotJsonFormatter() if json_logs() else logging.Formatter(LOG_FORMAT)


def configure_logging(stream: TextIO | None = None) -> None:
    """Send log records at the configured level and above to stream (stderr); an operator's own setup is kept.

    An unknown MESHBOT_LOG_LEVEL falls back to INFO with a warning, rather than stopping the service; so does an
    unknown MESHBOT_LOG_FORMAT (to text).
    """
    root = logging.getLogger()
    if root.handlers:  # configured already (by the embedding program, or an earlier call)
        return
    wanted = os.environ.get(LOG_LEVEL_VARIABLE, "").strip().upper() or DEFAULT_LEVEL
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(wanted if wanted in LEVELS else DEFAULT_LEVEL)
    if json_logs():
        logging.captureWarnings(True)  # Python's warnings as JSON lines too, not bare text on stderr
    if wanted not in LEVELS:
        logging.getLogger("meshbot").warning("%s=%r is not one of %s: logging at %s", LOG_LEVEL_VARIABLE, wanted,
                                             ", ".join(LEVELS), DEFAULT_LEVEL)
    chosen = os.environ.get(LOG_FORMAT_VARIABLE, "").strip().lower()
    if chosen and chosen not in FORMATS:
        logging.getLogger("meshbot").warning("%s=%r is not one of %s: logging as %s", LOG_FORMAT_VARIABLE, chosen,
                                             ", ".join(FORMATS), DEFAULT_FORMAT)


def gunicorn_logger_class() -> type:
    """gunicorn's logger, its error and access lines in meshbot's JSON format, on stderr (MESHBOT_LOG_FORMAT=json)."""
    from gunicorn.glogging import Logger

    class JsonGunicornLogger(Logger):  # type: ignore[misc]
        """gunicorn's handlers as configured, each with meshbot's JSON formatter; the access log on stderr."""

        def setup(self, cfg: Any) -> None:
            """gunicorn's set-up, then meshbot's formatter and context on each of its handlers."""
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(MeshbotJsonFormatter())
                    handler.addFilter(ContextFilter())
                    if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                        handler.setStream(sys.stderr)  # logs on stderr, the banner alone on stdout

    return JsonGunicornLogger
