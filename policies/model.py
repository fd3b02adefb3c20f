"""Policies and their results."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.descriptor.errors import SourcePosition

if TYPE_CHECKING:
    from policies.remote import RemoteEngine


class Target(StrEnum):
    """What a policy is evaluated on."""

    DATA_PRODUCT = "dataproduct"
    COMPONENT = "component"


class Severity(StrEnum):
    """How serious a failure is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Status(StrEnum):
    """Lifecycle of a policy: draft is not run, grace only warns, enabled may block."""

    DRAFT = "draft"
    GRACE = "grace"
    ENABLED = "enabled"


SELECTOR_FIELDS = ("kind", "useCaseTemplateId", "infrastructureTemplateId", "environment")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which resources a policy applies to; each field holds accepted values or wildcards (None: any)."""

    kind: tuple[str, ...] | None = None
    useCaseTemplateId: tuple[str, ...] | None = None
    infrastructureTemplateId: tuple[str, ...] | None = None
    environment: tuple[str, ...] | None = None

    def matches(self, resource: dict[str, Any], environment: str) -> bool:
        """Whether the resource, in environment, is selected."""
        return (
            _accepts(self.environment, environment)
            and _accepts(self.kind, resource.get("kind"), fold_case=True)
            and _accepts(self.useCaseTemplateId, resource.get("useCaseTemplateId"))
            and _accepts(self.infrastructureTemplateId, resource.get("infrastructureTemplateId"))
        )


def _accepts(patterns: tuple[str, ...] | None, value: Any, fold_case: bool = False) -> bool:
    if patterns is None:
        return True
    if not isinstance(value, str):
        return False
    if fold_case:
        value = value.lower()
        return any(fnmatch.fnmatchcase(value, pattern.lower()) for pattern in patterns)
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


@dataclass(slots=True)
class Policy:
    """One governance policy, its check compiled once."""

    id: str
    description: str
    target: Target
    severity: Severity
    status: Status
    file: str
    selector: Selector = field(default_factory=Selector)
    schema: dict[str, Any] | None = None
    builtin: str | None = None
    validator: Any = None
    grace_until: date | None = None  # a grace policy blocks (as if enabled) from this date on
    remote: str | None = None  # the name of the remote policy engine that evaluates it
    engine: RemoteEngine | None = None  # that engine's client, set by the loader from the server configuration
    version: str = ""  # sha256 of the policy file's bytes (remote verdicts are cached per version)


def effective_status(policy: Policy, today: date) -> Status:
    """The status a policy is evaluated with on today: grace turns enabled once its grace_until has come."""
    if policy.status is Status.GRACE and policy.grace_until is not None and today >= policy.grace_until:
        return Status.ENABLED
    return policy.status


@dataclass(frozen=True, slots=True)
class Failure:
    """One reason a resource fails a policy, and where to fix it."""

    message: str
    path: str
    position: SourcePosition | None = None

    def as_json(self) -> dict[str, Any]:
        """The failure as in `meshbot check --format json`."""
        position = self.position
        return {
            "message": self.message,
            "path": self.path,
            "file": position.file if position else None,
            "line": position.line if position else None,
            "column": position.column if position else None,
        }


@dataclass(slots=True)
class PolicyResult:
    """The outcome of one policy on one resource (the data product or one component)."""

    policy: str
    description: str
    resource: str
    severity: Severity
    status: Status
    errors: list[Failure] = field(default_factory=list)
    note: str | None = None
    evaluated: bool = True  # False when there was nothing to evaluate against (e.g. nothing deployed yet)
    grace_until: date | None = None  # set while a grace policy's grace runs: it blocks from this date
    engine_error: str | None = None  # a remote engine gave no answer: the outcome is error, never passed

    @property
    def blocks_from(self) -> str | None:
        """`blocks from 2027-03-01` while the policy is in grace with a date; None otherwise."""
        if self.status is Status.GRACE and self.grace_until is not None:
            return f"blocks from {self.grace_until.isoformat()}"
        return None

    @property
    def outcome(self) -> str:
        """`passed`, `failed`, `error` (its engine gave no answer) or `not_evaluated` (never passed then)."""
        if self.engine_error is not None:
            return "error"
        if not self.evaluated:
            return "not_evaluated"
        return "failed" if self.errors else "passed"

    @property
    def blocking(self) -> bool:
        """Only a failed (or, failing closed, unanswered) enabled policy of severity error blocks."""
        failed = bool(self.errors) or self.engine_error is not None
        return failed and self.status is Status.ENABLED and self.severity is Severity.ERROR

    def as_json(self) -> dict[str, Any]:
        """The result as in `meshbot check --format json`."""
        errors, engine_error, status = self.errors, self.engine_error, self.status
        if errors or engine_error is not None:  # outcome and blocking inline: called once per result of a check
            result: dict[str, Any] = {
                "policy": self.policy, "resource": self.resource, "severity": str(self.severity), "status": str(status),
                "outcome": self.outcome, "blocking": self.blocking, "errors": [error.as_json() for error in errors],
            }
        else:
            result = {
                "policy": self.policy, "resource": self.resource, "severity": str(self.severity), "status": str(status),
                "outcome": "passed" if self.evaluated else "not_evaluated", "blocking": False, "errors": [],
            }
        if status is Status.GRACE and self.grace_until is not None:
            result["graceUntil"] = self.grace_until.isoformat()
        if engine_error is not None:
            result["engineError"] = engine_error
        if self.note:
            result["note"] = self.note
        return result
