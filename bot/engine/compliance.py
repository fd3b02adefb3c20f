"""Compliance of what is deployed: today's policies re-evaluated on each deployed descriptor, kept with history.

A result names the data product, the environment, when it was checked, the fingerprint of the policy set it was
checked with, and every failing (or not evaluated) result. `compliant` means no failure blocks; failures of a
grace policy of severity error are "grace" (they block from their `grace_until` date) and, like blocking ones,
need the team's attention (the compliance issue lists both). Breaking-change policies compare with a previous
descriptor, which a deployed descriptor checked on its own has not: they stay `not_evaluated`, never passed.

Redis keys (under bot.engine.store.PREFIX): `compliance:latest:<product>:<env>` (the latest result),
`compliance:history:<product>:<env>` (newest first, at most HISTORY_LIMIT, a new entry only when the outcome
changed or the newest is a day old), `compliance:round` (the fingerprint and time of the last full check) and
`compliance:products` and `compliance:environments:<product>` (where there is a latest result, so that an
environment or a data product no longer deployed is checked once more, and its issue closed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import redis

from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed
from bot.engine.store import PREFIX, as_text
from policies.engine import evaluate
from policies.model import Policy, PolicyResult, effective_status
from policies.report import category_of

HISTORY_LIMIT = 50  # history entries kept per data product and environment
HISTORY_REPEAT_SECONDS = 86400  # an unchanged outcome is recorded again after this long
MESSAGE_LIMIT = 20  # messages kept per failing result
MESSAGE_LENGTH = 500  # characters kept per message
PREVIOUS_MISSING = "a compliance check compares with no earlier descriptor"
COMPLIANT, GRACE, NON_COMPLIANT, UNKNOWN = "compliant", "grace", "non_compliant", "unknown"
UNANSWERED = "unanswered"  # the category of a remote policy whose engine gave no answer
ROUND_KEY = f"{PREFIX}:compliance:round"
PRODUCTS_KEY = f"{PREFIX}:compliance:products"


def latest_key(data_product: str, environment: str) -> str:
    """Where the latest compliance result of a data product in an environment is kept."""
    return f"{PREFIX}:compliance:latest:{data_product}:{environment}"


def history_key(data_product: str, environment: str) -> str:
    """Where the compliance history of a data product in an environment is kept (a list, newest first)."""
    return f"{PREFIX}:compliance:history:{data_product}:{environment}"


# ---------------------------------------------------------------- the policy set


def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def fingerprint(policies: Iterable[Policy], today: date) -> str:
    """sha256 over the sorted (id, file content hash, effective status, grace_until) of the policies."""
    rows = sorted((policy.id, _file_hash(policy.file), str(effective_status(policy, today)),
                   policy.grace_until.isoformat() if policy.grace_until else "") for policy in policies)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


# ---------------------------------------------------------------- one result


@dataclass(frozen=True, slots=True)
class Finding:
    """A result that failed, or that could not be evaluated, on a deployed descriptor."""

    policy: str
    resource: str
    severity: str
    status: str
    outcome: str  # failed | not_evaluated
    category: str  # blocking | grace | warning | info | not_evaluated | unanswered
    blocking: bool
    grace_until: str | None = None
    messages: tuple[str, ...] = ()

    @property
    def blocks_from(self) -> str | None:
        """`blocks from DATE` for a grace failure with a date."""
        return f"blocks from {self.grace_until}" if self.grace_until and self.category == GRACE else None

    def as_json(self) -> dict[str, Any]:
        """The finding as stored and as the console's JSON shows it."""
        return {"policy": self.policy, "resource": self.resource, "severity": self.severity, "status": self.status,
                "outcome": self.outcome, "category": self.category, "blocking": self.blocking,
                "graceUntil": self.grace_until, "messages": list(self.messages)}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Finding:
        """The inverse of as_json."""
        return cls(str(document["policy"]), str(document["resource"]), str(document["severity"]),
                   str(document["status"]), str(document["outcome"]), str(document["category"]),
                   bool(document["blocking"]), document.get("graceUntil"),
                   tuple(str(message) for message in document.get("messages") or ()))


@dataclass(frozen=True, slots=True)
class ComplianceResult:
    """Today's policies on what is deployed of a data product in an environment."""

    data_product: str
    environment: str
    checked_at: str
    fingerprint: str
    version: str = ""
    deployment: str = ""
    findings: tuple[Finding, ...] = ()
    passed: int = 0
    policies: int = 0

    def of(self, *categories: str) -> list[Finding]:
        """The findings of these categories."""
        return [finding for finding in self.findings if finding.category in categories]

    @property
    def compliant(self) -> bool:
        """No failure blocks."""
        return not self.of("blocking")

    @property
    def outcome(self) -> str:
        """non_compliant (something blocks), grace (only grace failures need attention), unknown (nothing fails but a
        remote policy engine gave no answer) or compliant."""
        if not self.compliant:
            return NON_COMPLIANT
        if self.of(GRACE):
            return GRACE
        return UNKNOWN if self.of(UNANSWERED) else COMPLIANT

    @property
    def needs_attention(self) -> bool:
        """Something blocks now or will block from its grace date (what the compliance issue is about)."""
        return bool(self.of("blocking", GRACE))

    def signature(self) -> str:
        """What makes two results the same outcome for the history (not the time, fingerprint or deployment)."""
        rows = sorted((f.policy, f.resource, f.category, f.grace_until or "", list(f.messages))
                      for f in self.findings)
        return hashlib.sha256(json.dumps([self.outcome, self.version, rows]).encode()).hexdigest()

    def summary(self) -> str:
        """`compliant`, `compliant, in grace: 1 grace` or `non compliant: 2 blocking, 1 not evaluated` and the like."""
        counts = [(len(self.of(category)), category.replace("_", " "))
                  for category in ("blocking", GRACE, "warning", "info", "not_evaluated", UNANSWERED)]
        details = ", ".join(f"{count} {label}" for count, label in counts if count)
        head = {COMPLIANT: "compliant", GRACE: "compliant, in grace", NON_COMPLIANT: "non compliant",
                UNKNOWN: "unknown"}[self.outcome]
        return f"{head}: {details}" if details else head

    def as_json(self) -> dict[str, Any]:
        """The result as stored and as the console's JSON shows it."""
        return {"dataProduct": self.data_product, "environment": self.environment, "checkedAt": self.checked_at,
                "fingerprint": self.fingerprint, "version": self.version, "deployment": self.deployment,
                "outcome": self.outcome, "compliant": self.compliant, "summary": self.summary(),
                "passed": self.passed, "policies": self.policies,
                "findings": [finding.as_json() for finding in self.findings]}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ComplianceResult:
        """The inverse of as_json; KeyError, TypeError or ValueError when it is not one."""
        return cls(str(document["dataProduct"]), str(document["environment"]), str(document["checkedAt"]),
                   str(document["fingerprint"]), str(document.get("version") or ""),
                   str(document.get("deployment") or ""),
                   tuple(Finding.from_json(item) for item in document.get("findings") or ()),
                   int(document.get("passed") or 0), int(document.get("policies") or 0))


def finding_of(result: PolicyResult) -> Finding | None:
    """A failed, unanswered or not evaluated result as a finding; None when it passed.

    A remote policy whose engine gave no answer blocks a deploy (fail closed), but says nothing about what is
    deployed: here it is `unanswered`, never blocking, and leaves an open compliance issue as it is.
    """
    outcome = result.outcome
    if outcome == "passed":
        return None
    messages = tuple(failure.message[:MESSAGE_LENGTH] for failure in result.errors[:MESSAGE_LIMIT])
    engine_error = result.engine_error
    if outcome == "error" and engine_error is not None:
        return Finding(result.policy, result.resource, str(result.severity), str(result.status), outcome,
                       UNANSWERED, False, None, (str(engine_error)[:MESSAGE_LENGTH],))
    if not result.evaluated:
        messages = (result.note or PREVIOUS_MISSING,)
        category = "not_evaluated"
    else:
        category = category_of(result)
    grace = result.grace_until.isoformat() if result.grace_until is not None else None
    return Finding(result.policy, result.resource, str(result.severity), str(result.status), outcome,
                   category, result.blocking, grace, messages)


def check(deployed: Deployed, policies: Sequence[Policy], policy_fingerprint: str, now: datetime,
          today: date | None = None) -> ComplianceResult:
    """Evaluate the policies on a deployed descriptor (pure, apart from the policies' own checks)."""
    descriptor = Descriptor(data=dict(deployed.descriptor), environment=deployed.environment)
    results = evaluate(descriptor, policies, previous=None, previous_missing=PREVIOUS_MISSING,
                       today=today or now.date())
    findings = tuple(finding for finding in map(finding_of, results) if finding is not None)
    return ComplianceResult(deployed.data_product, deployed.environment, iso(now), policy_fingerprint,
                            deployed.version, deployed.deployment, findings,
                            passed=sum(1 for result in results if result.outcome == "passed"),
                            policies=len({result.policy for result in results}))


def iso(moment: datetime) -> str:
    """UTC time as `2026-05-01T12:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(earlier: str | None, now: datetime) -> float | None:
    """Seconds from an ISO time to now (None: no time, or it cannot be read)."""
    if not earlier:
        return None
    try:
        return (now - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


def record_history(latest_in_history: ComplianceResult | None, result: ComplianceResult) -> bool:
    """Whether result becomes a new history entry: the outcome changed, or the newest entry is a day old (pure)."""
    if latest_in_history is None or latest_in_history.signature() != result.signature():
        return True
    age = seconds_between(latest_in_history.checked_at, datetime.fromisoformat(
        result.checked_at.replace("Z", "+00:00")))
    return age is None or age >= HISTORY_REPEAT_SECONDS


# ---------------------------------------------------------------- Redis


def _result(value: Any) -> ComplianceResult | None:
    if value is None:
        return None
    try:
        return ComplianceResult.from_json(json.loads(as_text(value)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def save(connection: redis.Redis, result: ComplianceResult) -> bool:
    """Keep result as the latest, and in the history when record_history says so; whether it went into history."""
    key = history_key(result.data_product, result.environment)
    newest = _result(connection.lindex(key, 0))
    recorded = record_history(newest, result)
    text = json.dumps(result.as_json())
    with connection.pipeline() as pipeline:
        pipeline.set(latest_key(result.data_product, result.environment), text)
        pipeline.sadd(PRODUCTS_KEY, result.data_product)
        pipeline.sadd(environments_key(result.data_product), result.environment)
        if recorded:
            pipeline.lpush(key, text)
            pipeline.ltrim(key, 0, HISTORY_LIMIT - 1)
        pipeline.execute()
    return recorded


def load(connection: redis.Redis, data_product: str, environment: str) -> ComplianceResult | None:
    """The latest compliance result of a data product in an environment, if any."""
    return _result(connection.get(latest_key(data_product, environment)))


def history(connection: redis.Redis, data_product: str, environment: str,
            limit: int = HISTORY_LIMIT) -> list[ComplianceResult]:
    """The compliance history, newest first."""
    found = (_result(value) for value in connection.lrange(history_key(data_product, environment), 0, limit - 1))
    return [result for result in found if result is not None]


def forget(connection: redis.Redis, data_product: str, environment: str) -> None:
    """Drop the latest result of an environment where nothing is deployed any more (its history stays)."""
    with connection.pipeline() as pipeline:
        pipeline.delete(latest_key(data_product, environment))
        pipeline.srem(environments_key(data_product), environment)
        pipeline.execute()


def environments_key(data_product: str) -> str:
    """Where the environments with a latest compliance result of a data product are kept (a set)."""
    return f"{PREFIX}:compliance:environments:{data_product}"


def checked_environments(connection: redis.Redis, data_product: str) -> set[str]:
    """The environments of a data product with a latest compliance result."""
    return {as_text(value) for value in connection.smembers(environments_key(data_product))}


def checked_products(connection: redis.Redis) -> set[str]:
    """Data products with a compliance result (deployed or not any more)."""
    return {as_text(value) for value in connection.smembers(PRODUCTS_KEY)}


def checked_pairs(connection: redis.Redis) -> list[tuple[str, str]]:
    """Every (data product, environment) with a latest compliance result."""
    products = sorted(checked_products(connection))
    with connection.pipeline(transaction=False) as pipeline:
        for data_product in products:
            pipeline.smembers(environments_key(data_product))
        values = pipeline.execute()
    return sorted((product, as_text(environment)) for product, found in zip(products, values, strict=True)
                  for environment in found)


def drop_product(connection: redis.Redis, data_product: str) -> None:
    """A data product deployed nowhere, its issue closed: no longer checked."""
    connection.srem(PRODUCTS_KEY, data_product)


# ---------------------------------------------------------------- the round


@dataclass(frozen=True, slots=True)
class RoundState:
    """The fingerprint and time of the last full check."""

    fingerprint: str = ""
    checked_at: str = ""


def round_state(connection: redis.Redis) -> RoundState:
    """The last full check (empty when there was none)."""
    values = connection.hmget(ROUND_KEY, ["fingerprint", "checkedAt"])
    return RoundState(as_text(values[0]) if values[0] else "", as_text(values[1]) if values[1] else "")


def save_round(connection: redis.Redis, state: RoundState) -> None:
    """Remember the last full check."""
    connection.hset(ROUND_KEY, mapping={"fingerprint": state.fingerprint, "checkedAt": state.checked_at})


def deployed_deployments(connection: redis.Redis, products: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The deployment id of what is deployed of each (data product, environment)."""
    from bot.engine.deployed import DEPLOYED_FIELD
    from bot.engine.store import product_key

    with connection.pipeline(transaction=False) as pipeline:
        for data_product, environment in products:
            pipeline.hmget(product_key(data_product, environment), [DEPLOYED_FIELD, "deployment"])
        values = pipeline.execute()
    found = {}
    for product, (entry, deployment) in zip(products, values, strict=True):
        record = _json(entry)
        found[product] = str(record.get("deployment") or "") if isinstance(record, dict) else str(_json(deployment))
    return found


def checked_deployments(connection: redis.Redis, products: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The deployment id each (data product, environment)'s latest compliance result was about (absent: none)."""
    with connection.pipeline(transaction=False) as pipeline:
        for data_product, environment in products:
            pipeline.get(latest_key(data_product, environment))
        values = pipeline.execute()
    return {product: result.deployment for product, result in zip(products, map(_result, values), strict=True)
            if result is not None}


def _json(value: Any) -> Any:
    if value is None:
        return None
    try:
        return json.loads(as_text(value))
    except ValueError:
        return None


def unchecked(deployed: dict[tuple[str, str], str], checked: dict[tuple[str, str], str],
              checked_elsewhere: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The data products (and environments) whose deployment changed since their last check, deployed or no longer
    deployed, so that a deploy or an undeploy is checked at the next round (pure)."""
    found: dict[str, list[str]] = {}
    for product, deployment in sorted(deployed.items()):
        if checked.get(product) != deployment:
            found.setdefault(product[0], []).append(product[1])
    for data_product, environment in sorted(checked_elsewhere):
        if (data_product, environment) not in deployed:
            found.setdefault(data_product, []).append(environment)
    return found


def full_check_due(last: RoundState, current_fingerprint: str, interval_seconds: int, now: datetime) -> str | None:
    """Why every deployed data product is checked now (None: not due) (pure)."""
    if not last.fingerprint:
        return "first check"
    if last.fingerprint != current_fingerprint:
        return "the policies changed"
    age = seconds_between(last.checked_at, now)
    if interval_seconds > 0 and (age is None or age >= interval_seconds):
        return f"the last check is older than {interval_seconds} s"
    return None


def document(connection: redis.Redis, data_product: str, environment: str, history_limit: int = 10) -> dict[str, Any]:
    """The latest compliance result and a short history, as the console shows them (None, [] when never checked)."""
    latest = load(connection, data_product, environment)
    return {"latest": latest.as_json() if latest is not None else None,
            "history": [{"checkedAt": entry.checked_at, "outcome": entry.outcome, "summary": entry.summary(),
                         "version": entry.version, "fingerprint": entry.fingerprint[:12]}
                        for entry in history(connection, data_product, environment, history_limit)]}
