"""Deployments and statuses: the vocabulary of the deploy engine and the pure rules that decide outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Operation(StrEnum):
    """What a deployment does to the data product."""

    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"


class TaskState(StrEnum):
    """One task of a deployment."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class ProductStatus(StrEnum):
    """A data product in one environment (domain.md section 4)."""

    NOT_DEPLOYED = "NOT_DEPLOYED"
    IN_PROGRESS = "IN_PROGRESS"
    DEPLOYED = "DEPLOYED"
    PARTIALLY_DEPLOYED = "PARTIALLY_DEPLOYED"
    CORRUPT = "CORRUPT"


class DeploymentState(StrEnum):
    """One deployment: waiting, running, or how it ended."""

    QUEUED = "QUEUED"
    VALIDATING = "VALIDATING"
    IN_PROGRESS = "IN_PROGRESS"
    REFUSED = "REFUSED"  # an adapter's validate said no: nothing was provisioned
    FAILED = "FAILED"  # could not validate (an adapter unreachable, 5xx, a malformed answer): nothing was provisioned
    DEPLOYED = "DEPLOYED"
    NOT_DEPLOYED = "NOT_DEPLOYED"  # an undeploy that completed
    PARTIALLY_DEPLOYED = "PARTIALLY_DEPLOYED"
    CORRUPT = "CORRUPT"

    @property
    def finished(self) -> bool:
        """Whether the deployment has ended."""
        return self not in (DeploymentState.QUEUED, DeploymentState.VALIDATING, DeploymentState.IN_PROGRESS)


# What a component is, in the environment, after a task of each operation ended in each state.
_DEPLOYED, _NOT_DEPLOYED, _FAILED = "DEPLOYED", "NOT_DEPLOYED", "FAILED"


def component_state_after(operation: Operation, task: TaskState, before: str | None) -> str:
    """A component's state after its task: deployed, not deployed, failed, or unchanged when skipped."""
    if task is TaskState.COMPLETED:
        return _DEPLOYED if operation is Operation.DEPLOY else _NOT_DEPLOYED
    if task in (TaskState.FAILED, TaskState.RUNNING):
        return _FAILED  # a task that ended RUNNING was cut off: what it left behind is unknown
    return before or _NOT_DEPLOYED


def product_status(components: Mapping[str, str], corrupt: bool = False) -> ProductStatus:
    """The status of a data product from its components' states (pure)."""
    states = set(components.values())
    if corrupt or _FAILED in states:
        return ProductStatus.CORRUPT
    if not states or states == {_NOT_DEPLOYED}:
        return ProductStatus.NOT_DEPLOYED
    if states == {_DEPLOYED}:
        return ProductStatus.DEPLOYED
    return ProductStatus.PARTIALLY_DEPLOYED


def deployment_outcome(operation: Operation, status: ProductStatus) -> DeploymentState:
    """How a deployment ended, given the product status it left."""
    if status is ProductStatus.CORRUPT:
        return DeploymentState.CORRUPT
    if operation is Operation.UNDEPLOY and status is ProductStatus.NOT_DEPLOYED:
        return DeploymentState.NOT_DEPLOYED
    if status is ProductStatus.DEPLOYED:
        return DeploymentState.DEPLOYED
    if status is ProductStatus.NOT_DEPLOYED:
        return DeploymentState.NOT_DEPLOYED
    return DeploymentState.PARTIALLY_DEPLOYED
