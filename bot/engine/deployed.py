"""What is deployed: the descriptor of the latest successful deployment of a data product in an environment.

Reviews, plans and undeploys compare against it (desired versus deployed). The engine writes it when a deploy ends
DEPLOYED or PARTIALLY_DEPLOYED and clears it when an undeploy ends NOT_DEPLOYED; readers go through the small
`DeployedStates` interface, so the command line can read the same state from a remote meshbot (bot/cli/remote.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from bot.engine.deployment import ProductStatus
from bot.engine.store import Store

DEPLOYED_FIELD = "deployed"  # in the product record (bot.engine.store.product_key)
SUCCESSFUL = frozenset({str(ProductStatus.DEPLOYED), str(ProductStatus.PARTIALLY_DEPLOYED)})


@dataclass(frozen=True, slots=True)
class Deployed:
    """The latest successful deployment of a data product in an environment, with the exact descriptor it sent."""

    data_product: str
    environment: str
    descriptor: dict[str, Any]
    version: str = ""
    deployment: str = ""
    deployed_at: str = ""
    status: str = str(ProductStatus.DEPLOYED)

    def as_json(self) -> dict[str, Any]:
        """The document `GET /api/v1/products/<id>/environments/<env>/descriptor` answers."""
        return {"dataProduct": self.data_product, "environment": self.environment, "version": self.version,
                "deployment": self.deployment, "deployedAt": self.deployed_at, "status": self.status,
                "descriptor": self.descriptor}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Deployed:
        """The inverse of as_json; ValueError when the document is not one."""
        descriptor = document.get("descriptor")
        if not isinstance(descriptor, dict):
            raise ValueError("the document has no descriptor mapping")
        return cls(data_product=str(document.get("dataProduct") or descriptor.get("id") or ""),
                   environment=str(document.get("environment") or descriptor.get("environment") or ""),
                   descriptor=descriptor, version=str(document.get("version") or descriptor.get("version") or ""),
                   deployment=str(document.get("deployment") or ""), deployed_at=str(document.get("deployedAt") or ""),
                   status=str(document.get("status") or ProductStatus.DEPLOYED))


def deployed_record(descriptor: dict[str, Any], version: str, deployment: str, deployed_at: str,
                    status: str) -> dict[str, Any]:
    """The value the engine stores under DEPLOYED_FIELD when a deploy succeeds."""
    return {"descriptor": descriptor, "version": version, "deployment": deployment, "deployedAt": deployed_at,
            "status": status}


class DeployedStates(Protocol):
    """Where a review, a plan or an undeploy learns what is deployed."""

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """The latest successful deployment, or None when nothing is deployed there."""
        ...


class RedisDeployedStates:
    """What the engine recorded in Redis."""

    def __init__(self, connection: redis.Redis) -> None:
        self.store = Store(connection)

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """The latest successful deployment, or None when nothing is deployed there."""
        record = self.store.product(data_product, environment)
        entry = record.get(DEPLOYED_FIELD)
        if isinstance(entry, dict) and isinstance(entry.get("descriptor"), dict):
            return Deployed(data_product=data_product, environment=environment, descriptor=entry["descriptor"],
                            version=str(entry.get("version") or ""), deployment=str(entry.get("deployment") or ""),
                            deployed_at=str(entry.get("deployedAt") or ""), status=str(entry.get("status") or ""))
        legacy = record.get("descriptor")  # records written before DEPLOYED_FIELD existed
        if isinstance(legacy, dict) and record.get("status") in SUCCESSFUL:
            return Deployed(data_product=data_product, environment=environment, descriptor=legacy,
                            version=str(record.get("version") or ""), deployment=str(record.get("deployment") or ""),
                            deployed_at=str(record.get("updatedAt") or ""), status=str(record.get("status")))
        return None


class NothingDeployed:
    """No deployed state anywhere (a check with nothing to compare with)."""

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """Always None."""
        return None


class FixedDeployed:
    """One given deployed descriptor (`--against FILE`), whatever the environment asked for."""

    def __init__(self, descriptor: dict[str, Any]) -> None:
        self.descriptor = descriptor

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        """The given descriptor, as if deployed in environment."""
        return Deployed(data_product=data_product, environment=environment, descriptor=self.descriptor,
                        version=str(self.descriptor.get("version") or ""), status="GIVEN")
