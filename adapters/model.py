"""What the tech adapter client returns: one result type per kind of operation, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DESCRIPTOR_KIND_DATA_PRODUCT = "DATAPRODUCT_DESCRIPTOR"
DESCRIPTOR_KIND_COMPONENT = "COMPONENT_DESCRIPTOR"


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A request body already encoded as JSON, for requests assembled from parts encoded once."""

    data: bytes


Request = dict[str, Any] | JsonBody  # what the client sends: plain data, or the same already encoded


class Outcome(StrEnum):
    """How an operation ended."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(slots=True)
class AdapterResult:
    """The end of a provision, unprovision or updateacl call, successful or not.

    message is the adapter's own result text when it completed, otherwise what went wrong, written for
    a person; details holds extra lines (validation errors, problems, solutions, the field at fault).
    """

    outcome: Outcome
    message: str
    info: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    http_status: int | None = None

    @property
    def ok(self) -> bool:
        """True when the adapter completed the operation."""
        return self.outcome is Outcome.COMPLETED

    def as_json(self) -> dict[str, Any]:
        """Plain data for storage and reports."""
        return {
            "status": str(self.outcome),
            "message": self.message,
            "info": self.info,
            "logs": self.logs,
            "details": self.details,
            "httpStatus": self.http_status,
        }


@dataclass(slots=True)
class ValidationOutcome:
    """What an adapter's validate said: valid, refused (its errors), or failed (it could not validate at all).

    failed covers every answer that is not a verdict: no connection, a timeout, HTTP 5xx, 404, 422, a malformed
    body; reachable is False only when no answer came at all. valid is False whenever the answer is not yes.
    """

    valid: bool
    errors: list[str] = field(default_factory=list)
    message: str = ""
    reachable: bool = True
    failed: bool = False
    http_status: int | None = None

    @property
    def refused(self) -> bool:
        """The adapter answered with a verdict, and it was no (valid: false, or HTTP 400 with errors)."""
        return not self.valid and not self.failed


@dataclass(slots=True)
class ReverseProvisioningResult:
    """The updates a reverse provisioning proposes for a catalog-info.yaml, or why there are none."""

    outcome: Outcome
    updates: dict[str, Any] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    details: list[str] = field(default_factory=list)
    unsupported: bool = False  # the adapter has no reverse provisioning (HTTP 404, 405 or 501 on its path)

    @property
    def ok(self) -> bool:
        """True when the adapter completed and returned its updates."""
        return self.outcome is Outcome.COMPLETED
