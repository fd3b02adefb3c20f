"""The status document: what is provisioned, and the newest deployment that started, from a real Redis."""

from __future__ import annotations

from bot.engine.deployment import DeploymentState, TaskState
from bot.engine.status import environments, product_environments, product_status, status_text
from bot.engine.store import PAIRS_COMPLETE_KEY, PAIRS_KEY
from tests.engine.test_store import DP, LEDGER, PORT, make_deployment

ENV = "development"


def test_a_refused_deployment_shows_while_the_provisioned_state_stays(redis_engine):
    store = redis_engine.store
    deployed = make_deployment(version="1.2.0")
    store.create(deployed)
    store.set_state(deployed.id, DeploymentState.VALIDATING)
    store.update_task(deployed.id, LEDGER, state=TaskState.COMPLETED, message="table ready",
                      info={"publicInfo": {"table": "ledger"}}, logs=[{"level": "INFO", "message": "created"}])
    store.update_task(deployed.id, PORT, state=TaskState.COMPLETED, message="view ready")
    store.set_state(deployed.id, DeploymentState.DEPLOYED, "2 completed")
    store.set_product(DP, ENV, status="DEPLOYED", version="1.2.0", deployment=deployed.id,
                      components={LEDGER: {"status": "DEPLOYED", "message": "table ready"},
                                  PORT: {"status": "DEPLOYED", "message": "view ready"}})
    refused = make_deployment(version="1.3.0")
    store.create(refused)
    store.set_state(refused.id, DeploymentState.VALIDATING)
    store.set_state(refused.id, DeploymentState.REFUSED, "the tech adapters refused the descriptor")
    store.create(make_deployment(version="1.4.0"))  # queued behind: not started, not shown

    document, _ = product_status(redis_engine.redis, DP, ENV)
    assert (document["status"], document["version"]) == ("DEPLOYED", "1.2.0")
    deployment = document["deployment"]
    assert (deployment["id"], deployment["state"], deployment["version"]) == (refused.id, "REFUSED", "1.3.0")
    assert deployment["descriptor"] == refused.descriptor and deployment["startedBy"] == "user:jane"
    assert document["components"] == [
        {"id": LEDGER, "status": "DEPLOYED", "message": "table ready", "info": {"publicInfo": {"table": "ledger"}},
         "logs": [{"level": "INFO", "message": "created"}]},
        {"id": PORT, "status": "DEPLOYED", "message": "view ready", "info": None, "logs": []},
    ]
    text = status_text(document, [])
    assert f"{DP} 1.2.0 in {ENV}: DEPLOYED" in text
    assert f"last deployment {refused.id}: deploy 1.3.0 REFUSED" in text


def test_never_deployed(redis_engine):
    document, waiting = product_status(redis_engine.redis, DP, "production")
    assert (document["status"], document["deployment"], document["components"], waiting) == (
        "NOT_DEPLOYED", None, [], [])


def _commands(connection) -> set[str]:
    """The Redis commands run since the last CONFIG RESETSTAT (INFO commandstats)."""
    return {name.removeprefix("cmdstat_") for name in connection.info("commandstats")}


def test_environments_come_from_the_index_not_a_scan_of_every_key(redis_engine):
    store, connection = redis_engine.store, redis_engine.redis
    for environment in ("production", "development"):
        store.create(make_deployment(environment=environment))
    store.set_product(DP, "qa", status="NOT_DEPLOYED")  # a status record with no history
    beta = make_deployment(environment="production")
    beta.data_product = f"{DP}:beta"  # a longer id with the same start
    store.create(beta)
    assert environments(connection, DP) == ["development", "production", "qa"]
    connection.config_resetstat()

    assert environments(connection, DP) == ["development", "production", "qa"]
    assert environments(connection, f"{DP}:beta") == ["production"]
    assert (DP, "qa") in product_environments(connection) and (f"{DP}:beta", "production") in product_environments(
        connection)
    assert "scan" not in _commands(connection) and "sscan" in _commands(connection)


def test_records_written_before_the_index_are_found_by_one_scan(redis_engine):
    store, connection = redis_engine.store, redis_engine.redis
    store.create(make_deployment(environment="production"))
    store.set_product(DP, "qa", status="DEPLOYED")
    connection.delete(PAIRS_KEY, PAIRS_COMPLETE_KEY)  # as an older meshbot left them: no index
    connection.config_resetstat()

    assert environments(connection, DP) == ["production", "qa"]
    assert "scan" in _commands(connection) and connection.exists(PAIRS_COMPLETE_KEY)
    store.create(make_deployment(environment="development"))  # written with the index from now on
    connection.config_resetstat()
    assert product_environments(connection) == [(DP, "development"), (DP, "production"), (DP, "qa")]
    assert "scan" not in _commands(connection)
