"""A 20 MB tech adapter answer through the real engine: the deployment ends, and Redis keeps a bounded record."""

from __future__ import annotations

from bot.engine.answer_bounds import MAX_PART_BYTES, json_size
from bot.engine.deployment import DeploymentState
from bot.engine.status import product_status, status_text
from bot.engine.store import deployment_key, product_key, tasks_key
from tests.deploy_harness import ENVIRONMENT, adapters_for, component_id, generated_descriptor, scripted_adapter
from tests.servers.tech_adapter import Reply

MIB = 1024 * 1024


def twenty_megabytes(target: str) -> dict:
    """A COMPLETED status of about 20 MB: a 4 MB result, 4 MB of privateInfo and 12 MB of logs."""
    return {
        "status": "COMPLETED", "result": f"provisioned {target}: " + "r" * 4_000_000,
        "info": {"publicInfo": {"table": {"type": "string", "label": "Table", "value": "big_j1"}},
                 "privateInfo": {"dump": "p" * 4_000_000}},
        "logs": [{"timestamp": f"2026-12-05T10:00:{index % 60:02d}Z", "level": "INFO",
                  "message": f"row {index} " + "l" * 2000} for index in range(6000)],
    }


def test_a_20_mb_answer_ends_its_deployment_and_keeps_under_1_mib_with_the_notes(start):
    descriptor = generated_descriptor("big")
    j = component_id(descriptor, "j")
    answer = twenty_megabytes(j)
    assert json_size(answer) > 20_000_000
    with scripted_adapter() as adapter:
        adapter.script(j, "/v1/provision", Reply(202))
        adapter.script(j, "/status", Reply(200, answer))  # polled: the answer arrives on a status GET
        running = start(2)
        deployment_id, _ = running.request(descriptor, adapters_for(descriptor, adapter.url, timeout=60))
        deployment = running.wait(deployment_id, 60)
    assert (deployment.state, deployment.message) == (DeploymentState.DEPLOYED, "10 completed")

    memory = {key: running.redis.memory_usage(key, samples=0) for key in (
        tasks_key(deployment_id), deployment_key(deployment_id), product_key(descriptor.id, ENVIRONMENT))}
    assert memory[tasks_key(deployment_id)] < MIB, memory  # ten task records, one of them the 20 MB answer's
    assert running.redis.hstrlen(tasks_key(deployment_id), j) <= 3 * MAX_PART_BYTES + 1000
    assert memory[product_key(descriptor.id, ENVIRONMENT)] < MIB, memory  # its message is copied there
    assert memory[deployment_key(deployment_id)] < MIB, memory

    document, _ = product_status(running.redis, descriptor.id, ENVIRONMENT)
    shown = next(component for component in document["components"] if component["id"] == j)
    assert shown["status"] == "DEPLOYED"
    assert shown["message"].startswith(f"provisioned {j}: rrrr")
    assert shown["message"].endswith("bytes more; the adapter's full answer was not kept)")
    assert shown["info"] == {"publicInfo": answer["info"]["publicInfo"],
                             "meshbot": f"info was {json_size(answer['info'])} bytes, over the 256 KiB meshbot "
                                        "keeps; not stored: privateInfo"}
    note, *newest = shown["logs"]
    assert note["level"] == "WARNING" and note["message"].startswith("meshbot dropped ")
    assert newest == answer["logs"][-len(newest):] and 100 < len(newest) < 200  # the newest 200 of 6000 are too many
    assert "the adapter's full answer was not kept)" in status_text(document, [])
    running.assert_clean((descriptor.id, ENVIRONMENT))
