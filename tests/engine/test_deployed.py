"""What is deployed, read from a real Redis: the latest successful deployment's descriptor per environment."""

from __future__ import annotations

import pytest

from bot.engine.deployed import (
    DEPLOYED_FIELD,
    Deployed,
    FixedDeployed,
    NothingDeployed,
    RedisDeployedStates,
    deployed_record,
)

DP = "urn:dmb:dp:finance:cashflow:1"
DESCRIPTOR = {"id": DP, "version": "1.0.0", "components": [{"id": f"{DP.replace(':dp:', ':cmp:')}:ledger"}]}


@pytest.fixture
def states(redis_engine) -> RedisDeployedStates:
    return RedisDeployedStates(redis_engine.redis)


def test_nothing_recorded_is_nothing_deployed(states):
    assert states.deployed(DP, "production") is None


def test_the_recorded_deployment_per_environment(redis_engine, states):
    record = deployed_record(DESCRIPTOR, "1.0.0", "d1", "2026-12-05T10:00:00Z", "PARTIALLY_DEPLOYED")
    redis_engine.store.set_product(DP, "production", status="PARTIALLY_DEPLOYED", **{DEPLOYED_FIELD: record})
    assert states.deployed(DP, "production") == Deployed(DP, "production", DESCRIPTOR, "1.0.0", "d1",
                                                         "2026-12-05T10:00:00Z", "PARTIALLY_DEPLOYED")
    assert states.deployed(DP, "development") is None


def test_a_failed_deploy_after_a_success_keeps_the_successful_descriptor(redis_engine, states):
    record = deployed_record(DESCRIPTOR, "1.0.0", "d1", "t1", "DEPLOYED")
    redis_engine.store.set_product(DP, "qa", status="CORRUPT", deployment="d2", **{DEPLOYED_FIELD: record})
    found = states.deployed(DP, "qa")
    assert found is not None and (found.deployment, found.descriptor) == ("d1", DESCRIPTOR)


def test_records_written_before_the_deployed_field(redis_engine, states):
    redis_engine.store.set_product(DP, "qa", status="DEPLOYED", version="0.9.0", deployment="d0",
                                   updatedAt="t0", descriptor=DESCRIPTOR)
    assert states.deployed(DP, "qa") == Deployed(DP, "qa", DESCRIPTOR, "0.9.0", "d0", "t0", "DEPLOYED")
    redis_engine.store.set_product(DP, "qa", status="NOT_DEPLOYED")  # undeployed since: the old field is stale
    assert states.deployed(DP, "qa") is None


def test_the_api_document_round_trips():
    deployed = Deployed(DP, "production", DESCRIPTOR, "1.0.0", "d1", "t1", "DEPLOYED")
    assert Deployed.from_json(deployed.as_json()) == deployed
    with pytest.raises(ValueError, match="no descriptor"):
        Deployed.from_json({"dataProduct": DP})


def test_nothing_and_a_fixed_descriptor():
    assert NothingDeployed().deployed(DP, "production") is None
    given = FixedDeployed(DESCRIPTOR).deployed(DP, "production")
    assert given is not None and (given.descriptor, given.environment, given.version) == (DESCRIPTOR, "production",
                                                                                           "1.0.0")
