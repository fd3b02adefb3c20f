"""The bodies the Tech Adapter API answers with, and the log entries they carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

RUNNING, COMPLETED, FAILED = "RUNNING", "COMPLETED", "FAILED"


class Logs:
    """Log entries of one operation: {timestamp (ISO 8601), level, message, phase}."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.entries: list[dict[str, Any]] = []

    def add(self, level: str, message: str) -> None:
        """Record one entry now."""
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.entries.append({"timestamp": timestamp, "level": level, "message": message, "phase": self.phase})

    def info(self, message: str) -> None:
        """Record what was done."""
        self.add("INFO", message)

    def warning(self, message: str) -> None:
        """Record something a person should look at."""
        self.add("WARNING", message)

    def error(self, message: str) -> None:
        """Record why the operation failed."""
        self.add("ERROR", message)


class BadRequest(Exception):
    """A request the adapter refuses: answered 400 RequestValidationError."""

    def __init__(self, message: str, errors: list[str], field: str | None = None,
                 solutions: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.errors, self.field = message, errors, field
        self.solutions = solutions or []

    def body(self) -> dict[str, Any]:
        """The RequestValidationError body."""
        body: dict[str, Any] = {"errors": self.errors, "userMessage": self.message}
        if self.field:
            body["inputErrorField"] = self.field
        body["moreInfo"] = {"problems": self.errors, "solutions": self.solutions}
        return body


def provisioning_status(status: str, result: str, logs: Logs | None = None,
                        info: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ProvisioningStatus."""
    body: dict[str, Any] = {"status": status, "result": result}
    if info is not None:
        body["info"] = info
    if logs is not None:
        body["logs"] = logs.entries
    return body


def completed(result: str, logs: Logs, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """A COMPLETED ProvisioningStatus whose last log entry is the result."""
    logs.info(result)
    return provisioning_status(COMPLETED, result, logs, info)


def failed(result: str, logs: Logs) -> dict[str, Any]:
    """A FAILED ProvisioningStatus whose last log entry (ERROR) is the reason."""
    logs.error(result)
    return provisioning_status(FAILED, result, logs)


def info(public: dict[str, str], private: dict[str, Any]) -> dict[str, Any]:
    """An Info object; each public value becomes a string field the marketplace can show."""
    return {
        "publicInfo": {key: {"type": "string", "label": label, "value": value}
                       for key, (label, value) in _labelled(public).items()},
        "privateInfo": private,
    }


def _labelled(public: dict[str, str]) -> dict[str, tuple[str, str]]:
    labels = {"database": "SQLite database", "tables": "Tables", "view": "View", "sourceTable": "Source table"}
    return {key: (labels.get(key, key), value) for key, value in public.items()}


def validation_result(errors: list[str]) -> dict[str, Any]:
    """A ValidationResult: valid when there are no errors."""
    if not errors:
        return {"valid": True}
    return {"valid": False, "error": {"errors": errors}}


def reverse_status(status: str, updates: dict[str, Any], logs: Logs) -> dict[str, Any]:
    """A ReverseProvisioningStatus."""
    return {"status": status, "updates": updates, "logs": logs.entries}


def system_error(message: str) -> dict[str, Any]:
    """A SystemError body."""
    return {"error": message, "userMessage": message}
