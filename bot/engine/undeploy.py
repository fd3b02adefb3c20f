"""Requesting an undeploy: the one place the command line and merge request commands decide what it removes.

An undeploy sends the adapters the descriptor they last provisioned (bot.engine.undeploy_target), resolved to
adapters as that descriptor says, so a component removed from the repository since is still unprovisioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import redis

from adapters.registry import AdapterTarget
from bot.descriptor.errors import InputError
from bot.descriptor.model import Descriptor
from bot.engine.deployed import Deployed
from bot.engine.deployment import Operation
from bot.engine.runner import request_deployment
from bot.engine.undeploy_target import undeploy_target


class AdapterResolver(Protocol):
    """Which tech adapter runs each task of a descriptor (adapters.registry.AdapterRegistry)."""

    def resolve_all(self, descriptor: Descriptor) -> dict[str, AdapterTarget]:
        """The adapter of every task an adapter serves, by task id."""
        ...

    def unresolved(self, descriptor: Descriptor) -> list[InputError]:
        """A problem for every task no adapter serves."""
        ...


@dataclass(frozen=True, slots=True)
class UndeployRequest:
    """What asking for an undeploy did: nothing (nothing deployed, or tasks without an adapter), or a deployment."""

    target: Deployed | None  # what the undeploy removes; None: nothing is deployed there
    deployment_id: str = ""
    ahead: int = 0  # deployments of the data product waiting before it
    unresolved: tuple[InputError, ...] = ()  # tasks of the deployed descriptor no configured adapter serves

    @property
    def nothing_deployed(self) -> bool:
        """Whether nothing is deployed there (no deployment was recorded)."""
        return self.target is None


def request_undeploy(
    connection: redis.Redis,
    data_product: str,
    environment: str,
    adapters: AdapterResolver,
    started_by: str,
    *,
    remove_data: bool = False,
    history: int = 50,
    report_to: dict[str, Any] | None = None,
) -> UndeployRequest:
    """Undeploy what is deployed of data_product in environment, or say that nothing is and record nothing."""
    target = undeploy_target(connection, data_product, environment)
    if target is None:
        return UndeployRequest(None)
    descriptor = Descriptor(data=target.descriptor, environment=environment)
    unresolved = adapters.unresolved(descriptor)
    if unresolved:
        return UndeployRequest(target, unresolved=tuple(unresolved))
    deployment_id, ahead = request_deployment(
        connection, descriptor, Operation.UNDEPLOY, adapters.resolve_all(descriptor), started_by,
        remove_data=remove_data, history=history, report_to=report_to,
    )
    return UndeployRequest(target, deployment_id, ahead)
