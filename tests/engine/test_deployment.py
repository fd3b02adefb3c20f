"""The deploy engine's pure rules: a component's state after its task, the product status, the outcome."""

from __future__ import annotations

import pytest

from bot.engine.deployment import (
    DeploymentState,
    Operation,
    ProductStatus,
    TaskState,
    component_state_after,
    deployment_outcome,
    product_status,
)

DEPLOY, UNDEPLOY = Operation.DEPLOY, Operation.UNDEPLOY


@pytest.mark.parametrize(("operation", "task", "before", "after"), [
    # a completed task leaves the component deployed (deploy) or removed (undeploy), whatever it was
    (DEPLOY, TaskState.COMPLETED, None, "DEPLOYED"),
    (DEPLOY, TaskState.COMPLETED, "FAILED", "DEPLOYED"),
    (DEPLOY, TaskState.COMPLETED, "NOT_DEPLOYED", "DEPLOYED"),
    (UNDEPLOY, TaskState.COMPLETED, "DEPLOYED", "NOT_DEPLOYED"),
    (UNDEPLOY, TaskState.COMPLETED, "FAILED", "NOT_DEPLOYED"),
    (UNDEPLOY, TaskState.COMPLETED, None, "NOT_DEPLOYED"),
    # a failed task, or one cut off while RUNNING, leaves it in an unknown state
    (DEPLOY, TaskState.FAILED, None, "FAILED"),
    (DEPLOY, TaskState.FAILED, "DEPLOYED", "FAILED"),
    (UNDEPLOY, TaskState.FAILED, "DEPLOYED", "FAILED"),
    (DEPLOY, TaskState.RUNNING, "DEPLOYED", "FAILED"),
    (UNDEPLOY, TaskState.RUNNING, None, "FAILED"),
    # a task that never ran leaves it as it was (never deployed when unknown)
    (DEPLOY, TaskState.SKIPPED, "DEPLOYED", "DEPLOYED"),
    (DEPLOY, TaskState.SKIPPED, "FAILED", "FAILED"),
    (DEPLOY, TaskState.SKIPPED, None, "NOT_DEPLOYED"),
    (UNDEPLOY, TaskState.SKIPPED, "DEPLOYED", "DEPLOYED"),
    (UNDEPLOY, TaskState.SKIPPED, None, "NOT_DEPLOYED"),
    (DEPLOY, TaskState.PENDING, "DEPLOYED", "DEPLOYED"),
    (DEPLOY, TaskState.PENDING, None, "NOT_DEPLOYED"),
    (UNDEPLOY, TaskState.PENDING, "NOT_DEPLOYED", "NOT_DEPLOYED"),
])
def test_component_state_after_each_task_state(operation, task, before, after):
    assert component_state_after(operation, task, before) == after


def test_component_state_after_covers_every_operation_and_task_state():
    for operation in Operation:
        for task in TaskState:
            assert component_state_after(operation, task, "DEPLOYED") in ("DEPLOYED", "NOT_DEPLOYED", "FAILED")


@pytest.mark.parametrize(("components", "corrupt", "status"), [
    ({}, False, ProductStatus.NOT_DEPLOYED),
    ({"a": "NOT_DEPLOYED"}, False, ProductStatus.NOT_DEPLOYED),
    ({"a": "NOT_DEPLOYED", "b": "NOT_DEPLOYED"}, False, ProductStatus.NOT_DEPLOYED),
    ({"a": "DEPLOYED"}, False, ProductStatus.DEPLOYED),
    ({"a": "DEPLOYED", "b": "DEPLOYED"}, False, ProductStatus.DEPLOYED),
    ({"a": "DEPLOYED", "b": "NOT_DEPLOYED"}, False, ProductStatus.PARTIALLY_DEPLOYED),
    ({"a": "FAILED"}, False, ProductStatus.CORRUPT),
    ({"a": "DEPLOYED", "b": "FAILED"}, False, ProductStatus.CORRUPT),
    ({"a": "NOT_DEPLOYED", "b": "FAILED"}, False, ProductStatus.CORRUPT),
    ({"a": "DEPLOYED", "b": "NOT_DEPLOYED", "c": "FAILED"}, False, ProductStatus.CORRUPT),
    # corrupt=True (an outcome known to be unknown) wins over anything the components say
    ({}, True, ProductStatus.CORRUPT),
    ({"a": "DEPLOYED"}, True, ProductStatus.CORRUPT),
    ({"a": "NOT_DEPLOYED"}, True, ProductStatus.CORRUPT),
    ({"a": "DEPLOYED", "b": "NOT_DEPLOYED"}, True, ProductStatus.CORRUPT),
])
def test_product_status(components, corrupt, status):
    assert product_status(components, corrupt=corrupt) is status


def test_product_status_is_not_corrupt_by_default():
    assert product_status({"a": "DEPLOYED"}) is ProductStatus.DEPLOYED


@pytest.mark.parametrize(("operation", "status", "outcome"), [
    (DEPLOY, ProductStatus.DEPLOYED, DeploymentState.DEPLOYED),
    (DEPLOY, ProductStatus.CORRUPT, DeploymentState.CORRUPT),
    (DEPLOY, ProductStatus.PARTIALLY_DEPLOYED, DeploymentState.PARTIALLY_DEPLOYED),
    (DEPLOY, ProductStatus.NOT_DEPLOYED, DeploymentState.NOT_DEPLOYED),
    (DEPLOY, ProductStatus.IN_PROGRESS, DeploymentState.PARTIALLY_DEPLOYED),
    (UNDEPLOY, ProductStatus.NOT_DEPLOYED, DeploymentState.NOT_DEPLOYED),
    (UNDEPLOY, ProductStatus.CORRUPT, DeploymentState.CORRUPT),
    (UNDEPLOY, ProductStatus.PARTIALLY_DEPLOYED, DeploymentState.PARTIALLY_DEPLOYED),
    (UNDEPLOY, ProductStatus.DEPLOYED, DeploymentState.DEPLOYED),  # an undeploy whose every task was skipped
    (UNDEPLOY, ProductStatus.IN_PROGRESS, DeploymentState.PARTIALLY_DEPLOYED),
])
def test_deployment_outcome(operation, status, outcome):
    assert deployment_outcome(operation, status) is outcome


def test_every_outcome_is_a_finished_state():
    for operation in Operation:
        for status in ProductStatus:
            assert deployment_outcome(operation, status).finished


@pytest.mark.parametrize(("state", "finished"), [
    (DeploymentState.QUEUED, False), (DeploymentState.VALIDATING, False), (DeploymentState.IN_PROGRESS, False),
    (DeploymentState.REFUSED, True), (DeploymentState.FAILED, True), (DeploymentState.DEPLOYED, True),
    (DeploymentState.NOT_DEPLOYED, True), (DeploymentState.PARTIALLY_DEPLOYED, True), (DeploymentState.CORRUPT, True),
])
def test_finished_states(state, finished):
    assert state.finished is finished


def test_a_deploy_then_undeploy_in_rules():
    """The rules chained as the final job chains them: deploy two components, one fails, then undeploy both."""
    after_deploy = {"a": component_state_after(DEPLOY, TaskState.COMPLETED, None),
                    "b": component_state_after(DEPLOY, TaskState.FAILED, None),
                    "c": component_state_after(DEPLOY, TaskState.SKIPPED, None)}
    assert after_deploy == {"a": "DEPLOYED", "b": "FAILED", "c": "NOT_DEPLOYED"}
    assert deployment_outcome(DEPLOY, product_status(after_deploy)) is DeploymentState.CORRUPT
    after_undeploy = {name: component_state_after(UNDEPLOY, TaskState.COMPLETED, state)
                      for name, state in after_deploy.items()}
    assert deployment_outcome(UNDEPLOY, product_status(after_undeploy)) is DeploymentState.NOT_DEPLOYED
