"""Policy impact: which deployed data products a policy would fail, before it is switched on (domain.md §9).

Shared by `meshbot policies test DIR` and the console's /policies/impact page. Draft policies are evaluated as if
enabled; what a policy would do follows its real status, its grace date and its severity. A deployed descriptor
carries no file positions, so where its deployment record names the repository and commit it came from, the
descriptor is assembled again from that commit (through the forge clients of vcs) and, when it is the one
deployed, evaluated instead: its failures then say file, line and column. Otherwise the stored descriptor is
evaluated and the reason there is no position is kept. One unreachable repository never stops the rest.

The decisions (verdict, change, trial, comparison, grouping) are pure; `deployed_descriptors` reads Redis and
`Positions` reads repositories, only for the products whose stored descriptor fails a policy (`assess`).

`impact_json` (`meshbot policies test --format json`, `/api/v1/policies/impact`), version 1:
    {"version": 1, "today": "YYYY-MM-DD", "environment": str|null, "deployed": int, "failing": int,
     "policies": [{"id", "description", "file", "status", "severity", "target", "change": "new|changed|unchanged"|null,
                   "would": "would block|would warn", "graceUntil": "YYYY-MM-DD"|null,
                   "failing": [{"dataProduct", "environment", "version", "resource",
                                "repository": {"forge", "project", "sha"}|null, "noPosition": str|null,
                                "errors": [{"message", "path", "file", "line", "column"}]}]}],
     "notes": [str]}
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors
from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.drift import deployed_products
from bot.engine.store import Store
from policies.engine import evaluate
from policies.model import Failure, Policy, Severity, Status, effective_status

JSON_VERSION = 1
WOULD_BLOCK, WOULD_WARN = "would block", "would warn"
NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"
PREVIOUS_MISSING = "a policy impact compares with no earlier descriptor"


@dataclass(frozen=True, slots=True)
class Origin:
    """The repository and commit a deployment was made from."""

    forge: str
    project: str
    sha: str

    def as_json(self) -> dict[str, str]:
        """Plain data."""
        return {"forge": self.forge, "project": self.project, "sha": self.sha}

    def __str__(self) -> str:
        return f"{self.forge}:{self.project}@{self.sha[:8]}"


@dataclass(frozen=True, slots=True)
class Evaluated:
    """A deployed data product in one environment, and the descriptor its policies are evaluated on."""

    deployed: Deployed
    descriptor: Descriptor
    origin: Origin | None = None  # set when the descriptor was assembled from this repository (it has positions)
    no_position: str | None = None  # why not, otherwise


@dataclass(frozen=True, slots=True)
class ProductFailure:
    """One resource of one deployed data product failing a policy."""

    data_product: str
    environment: str
    version: str
    resource: str
    errors: tuple[Failure, ...]
    origin: Origin | None
    no_position: str | None

    def as_json(self) -> dict[str, Any]:
        """Plain data (see the module docstring)."""
        return {"dataProduct": self.data_product, "environment": self.environment, "version": self.version,
                "resource": self.resource, "repository": self.origin.as_json() if self.origin else None,
                "noPosition": self.no_position, "errors": [error.as_json() for error in self.errors]}


@dataclass(frozen=True, slots=True)
class PolicyImpact:
    """One policy, what it would do, and every deployed resource it would fail."""

    policy: Policy
    would: str
    failing: tuple[ProductFailure, ...]
    change: str | None = None  # new | changed | unchanged against the server's policies (None: not compared)

    def as_json(self) -> dict[str, Any]:
        """Plain data (see the module docstring)."""
        policy = self.policy
        return {"id": policy.id, "description": policy.description, "file": policy.file, "status": str(policy.status),
                "severity": str(policy.severity), "target": str(policy.target), "change": self.change,
                "would": self.would, "graceUntil": policy.grace_until.isoformat() if policy.grace_until else None,
                "failing": [failure.as_json() for failure in self.failing]}


# ---------------------------------------------------------------- decisions (pure)


def verdict(policy: Policy, today: date) -> str:
    """What a failure of policy would do once switched on: a draft as if enabled, a grace policy by its date."""
    status = Status.ENABLED if policy.status is Status.DRAFT else effective_status(policy, today)
    return WOULD_BLOCK if status is Status.ENABLED and policy.severity is Severity.ERROR else WOULD_WARN


def change(policy_id: str, text: bytes, server: Mapping[str, bytes]) -> str:
    """new (no server policy has the id), changed (its file differs) or unchanged."""
    if policy_id not in server:
        return NEW
    return UNCHANGED if server[policy_id] == text else CHANGED


def trial(policies: Iterable[Policy]) -> list[Policy]:
    """The policies to evaluate: drafts as if enabled, the others as they are."""
    return [dataclasses.replace(policy, status=Status.ENABLED) if policy.status is Status.DRAFT else policy
            for policy in policies]


def same_descriptor(assembled: Mapping[str, Any], deployed: Mapping[str, Any]) -> bool:
    """Whether a descriptor assembled now is the one deployed (compared as the JSON the engine stored)."""
    return bool(json.loads(json.dumps(assembled, default=str)) == json.loads(json.dumps(deployed, default=str)))


def origin_of(report_to: Mapping[str, Any] | None) -> Origin | str:
    """The repository and commit a deployment record names; else why it names none."""
    if not report_to:
        return "the deployment names no repository (deployed from the command line)"
    forge, project, sha = (report_to.get(key) for key in ("forge", "project", "sha"))
    if not (isinstance(forge, str) and isinstance(project, str) and isinstance(sha, str) and forge and project
            and sha):
        return "the deployment record names no repository and commit"
    return Origin(forge, project, sha)


def impacts(policies: Sequence[Policy], evaluated: Sequence[Evaluated], today: date,
            changes: Mapping[str, str] | None = None) -> list[PolicyImpact]:
    """Each policy (in order) with the deployed resources that fail it, drafts evaluated as if enabled."""
    tried = trial(policies)
    wanted = {policy.id for policy in policies}
    failing: dict[str, list[ProductFailure]] = {policy.id: [] for policy in policies}
    for item in evaluated:
        for result in evaluate(item.descriptor, tried, previous_missing=PREVIOUS_MISSING, today=today):
            if result.errors and result.policy in wanted:
                failing[result.policy].append(ProductFailure(
                    data_product=item.deployed.data_product, environment=item.deployed.environment,
                    version=item.deployed.version, resource=result.resource, errors=tuple(result.errors),
                    origin=item.origin, no_position=item.no_position))
    return [PolicyImpact(policy=policy, would=verdict(policy, today), failing=tuple(failing[policy.id]),
                         change=(changes or {}).get(policy.id)) for policy in policies]


def failing_products(found: Iterable[PolicyImpact]) -> set[tuple[str, str]]:
    """The (data product, environment) pairs failing any policy."""
    return {(failure.data_product, failure.environment) for impact in found for failure in impact.failing}


def impact_json(found: Sequence[PolicyImpact], today: date, environment: str | None, deployed: int,
                notes: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON document (shape in the module docstring)."""
    return {"version": JSON_VERSION, "today": today.isoformat(), "environment": environment, "deployed": deployed,
            "failing": len(failing_products(found)), "policies": [impact.as_json() for impact in found],
            "notes": list(notes)}


# ---------------------------------------------------------------- reading (I/O)


def deployed_descriptors(connection: redis.Redis, environment: str | None = None, visible: set[str] | None = None,
                         origins: bool = True) -> list[tuple[Deployed, Origin | str]]:
    """Every deployed descriptor (in environment, of the visible products), with where it came from or why unknown
    (without origins: no deployment record is read, and each says so)."""
    states, store = RedisDeployedStates(connection), Store(connection)
    found: list[tuple[Deployed, Origin | str]] = []
    for data_product, where in deployed_products(connection):
        if (environment and where != environment) or (visible is not None and data_product not in visible):
            continue
        deployed = states.deployed(data_product, where)
        if deployed is None:
            continue
        if not origins:
            found.append((deployed, "repositories not read"))
            continue
        record = store.load_static(deployed.deployment) if deployed.deployment else None
        if record is None:
            found.append((deployed, "the deployment record is no longer kept"))
        else:
            found.append((deployed, origin_of(record.report_to)))
    return found


DescriptorAt = Callable[[Origin, str], Descriptor]


def assemble_at(origin: Origin, environment: str) -> Descriptor:
    """The descriptor of origin's repository at its commit for environment, read through meshbot's forge client."""
    from vcs.factory import forge
    from vcs.locations import ForgeLocations
    from vcs.reader import RevisionReader

    client = forge(origin.forge)
    repository = client.repository(origin.project)
    return assemble(RevisionReader(repository, origin.sha), environment, ForgeLocations(client, client.web_url))


def stored(deployed: Deployed, no_position: str) -> Evaluated:
    """The deployed descriptor as stored (no positions), evaluable."""
    return Evaluated(deployed, Descriptor(data=dict(deployed.descriptor), environment=deployed.environment),
                     no_position=no_position)


class Positions:
    """Deployed descriptors made evaluable with positions: assembled again from their commit where reachable."""

    def __init__(self, read: DescriptorAt = assemble_at, max_repositories: int | None = None,
                 per: str = "per run") -> None:
        self.read, self.max_repositories, self.per = read, max_repositories, per
        self.repositories: set[tuple[str, str, str]] = set()
        self.skipped: set[tuple[str, str, str]] = set()

    def evaluable(self, deployed: Deployed, origin: Origin | str) -> Evaluated:
        """The descriptor to evaluate: the repository's (with positions) when it is the one deployed, else the
        stored one with the reason there are no positions."""
        if isinstance(origin, str):
            return stored(deployed, origin)
        key = (origin.forge, origin.project, origin.sha)
        if key not in self.repositories and self.max_repositories is not None \
                and len(self.repositories) >= self.max_repositories:
            self.skipped.add(key)
            return stored(deployed, f"repository not read: at most {self.max_repositories} repositories are read "
                                    f"{self.per}")
        self.repositories.add(key)
        try:
            assembled = self.read(origin, deployed.environment)
        except InputErrors as invalid:
            return stored(deployed, f"{origin} does not assemble: {invalid.errors[0]}")
        except Exception as error:  # any failure of a forge or its client leaves this one product without positions
            why = str(error)[:200] or type(error).__name__
            return stored(deployed, f"repository not reachable: {origin}: {why}")
        if not same_descriptor(assembled.data, deployed.descriptor):
            return stored(deployed, f"{origin} no longer assembles the deployed descriptor")
        return Evaluated(deployed, assembled, origin=origin)


def assess(policies: Sequence[Policy], found: Sequence[tuple[Deployed, Origin | str]], positions: Positions,
           today: date, changes: Mapping[str, str] | None = None) -> list[PolicyImpact]:
    """impacts on the deployed descriptors; a repository is read only for a product whose stored descriptor fails."""
    tried, wanted = trial(policies), {policy.id for policy in policies}
    failing = []
    for deployed, origin in found:
        results = evaluate(stored(deployed, "").descriptor, tried, previous_missing=PREVIOUS_MISSING, today=today)
        if any(result.errors and result.policy in wanted for result in results):
            failing.append(positions.evaluable(deployed, origin))
    return impacts(policies, failing, today, changes)
