"""Rollback: redeploy a descriptor kept in an environment's deployment history (issue 14).

`choose_rollback` decides which kept deployment a rollback redeploys, or refuses with a message a person can act
on (pure). The descriptor it chose goes through the normal deploy (bot.engine.runner.request_deployment), so the
environment's prune mode, only_changed and the reconciliation with what is deployed apply as for any deploy.
Governance is the callers' (bot.forge.rollback_command, bot.cli.rollback): they evaluate today's policies against
the old descriptor, with what is deployed now as the previous descriptor, before `request_rollback`.

Only the deployments the history keeps (`deployments.history` per data product and environment) can be rolled
back to, and only within the deployed major version: component ids carry the major version, so another major is
another data product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from adapters.registry import AdapterTarget
from bot.descriptor.errors import InputError
from bot.descriptor.model import Descriptor, major_version
from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.reconcile import Scope
from bot.engine.runner import request_deployment
from bot.engine.store import DEFAULT_HISTORY, Deployment, Store
from bot.engine.undeploy import AdapterResolver


class RollbackRefused(Exception):
    """A rollback that cannot run, and why (the message is shown to people as it is)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def plain_version(version: str | None) -> str:
    """A version as compared here: without a leading `v` (`v1.2.0` and `1.2.0` are one version)."""
    return (version or "").strip().removeprefix("v")


def successful(deployment: Deployment) -> bool:
    """Whether a deployment can be rolled back to: a deploy that ended DEPLOYED and provisioned everything."""
    return (deployment.operation is Operation.DEPLOY and deployment.state is DeploymentState.DEPLOYED
            and not (deployment.reconciliation or {}).get("partial"))


def choose_rollback(history: Sequence[Deployment], deployed: Deployed | None, version: str | None, *,
                    environment: str = "", kept: int = DEFAULT_HISTORY) -> Deployment:
    """The kept deployment a rollback redeploys (history newest first); RollbackRefused says why there is none.

    Without version: the newest successful deployment older than the deployed one whose version differs from
    the deployed version. With version: the newest successful deployment of that version, older or newer.
    """
    where = environment or (deployed.environment if deployed else "") or "this environment"
    if deployed is None:
        raise RollbackRefused(f"nothing deployed in {where}: there is nothing to roll back")
    current = plain_version(deployed.version)
    wanted = plain_version(version) if version else None
    if wanted is not None and wanted == current:
        raise RollbackRefused(f"version {wanted} is already deployed in {where} (deployment {deployed.deployment})")
    candidates = [deployment for deployment in history if successful(deployment)]
    if wanted is None:
        older = _older_than(candidates, deployed.deployment)
        target = next((deployment for deployment in older if plain_version(deployment.version) != current), None)
        if target is None:
            raise RollbackRefused(
                f"no earlier successful deployment of a version other than {current or 'the deployed one'} is kept "
                f"in the history of {where} (meshbot keeps the last {kept} deployments of a data product per "
                "environment: `deployments.history` in the server configuration)")
    else:
        target = next((deployment for deployment in candidates if plain_version(deployment.version) == wanted), None)
        if target is None:
            versions = list(dict.fromkeys(plain_version(deployment.version) for deployment in candidates))
            known = ", ".join(versions) if versions else "none"
            raise RollbackRefused(
                f"version {wanted} is not among the successful deployments kept in the history of {where} "
                f"(kept: {known}; meshbot keeps the last {kept} deployments per environment: `deployments.history`)")
    _same_major(target, current)
    return target


def _older_than(candidates: list[Deployment], deployment_id: str) -> list[Deployment]:
    """The candidates older than the deployment deployment_id (ids sort by creation time)."""
    if not deployment_id:
        return candidates  # a record written before deployments were named: every kept one is older
    return [deployment for deployment in candidates if deployment.id < deployment_id]


def _same_major(target: Deployment, current: str) -> None:
    """Refuse a target of another major version than the deployed one."""
    old_major, new_major = major_version(plain_version(target.version)), major_version(current)
    if old_major is not None and new_major is not None and old_major != new_major:
        raise RollbackRefused(
            f"version {plain_version(target.version)} is major version {old_major}, but {current} (major "
            f"{new_major}) is deployed: component ids carry the major version, so rolling back across it would "
            "deploy a different data product; deploy that version's release instead")


def rollback_history(connection: redis.Redis, data_product: str, environment: str) -> list[Deployment]:
    """The deployments the history keeps for the data product in environment, newest first (full records)."""
    store = Store(connection)
    loaded = (store.load(deployment_id) for deployment_id in store.history(data_product, environment))
    return [deployment for deployment in loaded if deployment is not None]


@dataclass(frozen=True, slots=True)
class RollbackChoice:
    """What a rollback would redeploy: the kept deployment, and what is deployed now (the governance's previous)."""

    target: Deployment
    deployed: Deployed

    @property
    def descriptor(self) -> Descriptor:
        """The descriptor the rollback deploys: the one the kept deployment sent, for its environment."""
        return Descriptor(data=self.target.descriptor, environment=self.target.environment)

    @property
    def version(self) -> str:
        """The version rolled back to."""
        return self.target.version


def choose_from_redis(connection: redis.Redis, data_product: str, environment: str, version: str | None, *,
                      kept: int = DEFAULT_HISTORY) -> RollbackChoice:
    """What a rollback of the data product in environment redeploys now; RollbackRefused says why nothing."""
    deployed = RedisDeployedStates(connection).deployed(data_product, environment)
    history = rollback_history(connection, data_product, environment) if deployed is not None else []
    target = choose_rollback(history, deployed, version, environment=environment, kept=kept)
    assert deployed is not None  # choose_rollback refuses when nothing is deployed
    return RollbackChoice(target, deployed)


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """What asking for the rollback did: a deployment, or the tasks no configured adapter serves (nothing)."""

    deployment_id: str = ""
    ahead: int = 0
    unresolved: tuple[InputError, ...] = ()


def request_rollback(connection: redis.Redis, choice: RollbackChoice, adapters: AdapterResolver, started_by: str,
                     *, scope: Scope, marketplace: list[str] | None = None, history: int = DEFAULT_HISTORY,
                     report_to: Mapping[str, Any] | None = None) -> RollbackRequest:
    """Deploy the chosen descriptor as any deploy (scope: prune mode and --prune); nothing when an adapter lacks."""
    descriptor = choice.descriptor
    unresolved = adapters.unresolved(descriptor)
    if unresolved:
        return RollbackRequest(unresolved=tuple(unresolved))
    targets: dict[str, AdapterTarget] = adapters.resolve_all(descriptor)
    deployment_id, ahead = request_deployment(
        connection, descriptor, Operation.DEPLOY, targets, started_by, marketplace=marketplace, history=history,
        report_to=dict(report_to) if report_to is not None else None, scope=scope,
        resolve_removed=adapters.resolve_all,
    )
    return RollbackRequest(deployment_id, ahead)
