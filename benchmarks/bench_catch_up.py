"""Forge API calls per catch-up sweep for N repositories, each with a few open merge requests and tags.

Runs `bot.forge.catch_up.sweep` with the real `GitHubForge` and `GitLabForge` against the local test servers
(real HTTP). Each repository has `--merge-requests` open merge requests (half of them already reviewed) and
`--tags` release tags (the newest not deployed), and on GitHub one meshbot webhook with a failed delivery. Each
sweep is counted twice, by the clients' `api_calls` and by the server's request log, which must agree; the
figures are split by endpoint. A second sweep (after the first one's reviews would have run) shows the steady
state. The bound: per repository 1 (merge requests) + its open merge requests + 1 (tags) + 1 (the newest release
tag's statuses), plus on GitHub 1 (hooks) + 1 per meshbot hook (deliveries) + 1 per redelivery.

Against the forges' rate limits (issue 18), per forge and sweep: the calls an hour at the configured interval
(`catch_up.interval_seconds`, --interval, 600 s by default) as a share of the hourly budget, and the shortest
interval the budget allows: GitHub 5,000 requests an hour for a token, and for a GitHub App installation 5,000
plus 50 per repository above 20 (at most 12,500; 15,000 on GitHub Enterprise Cloud); GitLab.com 2,000 authenticated
API requests a minute per user (self-managed: what the operator set).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402
from bot.config import DEFAULT_CATCH_UP_INTERVAL, CatchUpSettings, ServerConfig  # noqa: E402
from bot.forge.catch_up import sweep  # noqa: E402
from bot.forge.review import STATUS_CONTEXT  # noqa: E402
from tests.servers.github import github_server  # noqa: E402
from tests.servers.gitlab import gitlab_server  # noqa: E402
from vcs.base import CommitState  # noqa: E402
from vcs.github import GitHubForge  # noqa: E402
from vcs.gitlab import GitLabForge  # noqa: E402

RATE_LIMITS = {  # forge -> (requests, per seconds): the budget a sweep's calls come out of
    "github": (5000, 3600),  # a personal or OAuth token (and a GitHub App on a small installation)
    "gitlab": (2000, 60),  # GitLab.com, authenticated API traffic per user
}


def app_installation_limit(repositories: int) -> int:
    """A GitHub App installation's hourly limit: 5,000, 50 more per repository above 20, at most 12,500."""
    return min(12_500, 5000 + 50 * max(0, repositories - 20))


def budget(forge: str, calls: int, interval: int, limit: tuple[int, int] | None = None) -> dict[str, Any]:
    """A sweep's calls against the forge's rate limit: share used at interval, and the shortest interval allowed."""
    allowed, window = limit or RATE_LIMITS[forge]
    per_hour = calls * 3600 / interval
    share = per_hour / (allowed * 3600 / window)
    return {"limit": f"{allowed:,} per {'hour' if window == 3600 else 'minute'}", "interval_seconds": interval,
            "calls_per_hour": round(per_hour), "share_of_limit": round(share, 3),
            "shortest_interval_seconds": round(calls * window / allowed, 1),
            "within": share <= 1 and calls <= allowed}  # on average, and one whole sweep inside one window


def _endpoint(path: str) -> str:
    path = re.sub(r"/repos/[^/]+/[^/]+", "/repos/O/R", path)
    path = re.sub(r"/projects/.*?/(?=merge_requests|repository)", "/projects/P/", path)
    return re.sub(r"/(\d+|[0-9a-f]{40})(?=/|$)", "/ID", path)


def bench_github(repositories: int, merge_requests: int, tags: int) -> dict[str, Any]:
    """Two sweeps of the GitHub test server's repositories."""
    with github_server() as server:
        forge = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None)
        names = []
        for index in range(repositories):
            name = f"acme/product-{index:03d}"
            names.append(name)
            repository = server.create_repository(name, {"README.md": b"hi"})
            client = forge.repository(name)
            for number in range(merge_requests):
                head = repository.push(f"feature-{number}", {"f": str(number).encode()}, start="main")
                repository.open_pull_request(f"feature-{number}")
                if number % 2:
                    client.set_commit_status(head, STATUS_CONTEXT, CommitState.SUCCESS, "reviewed")
            for tag in range(tags):
                repository.create_tag(f"v1.{tag}.0", "main")
            hook = repository.add_hook("https://meshbot.example.com/webhooks/github")
            repository.add_delivery(hook, 503)
        config = ServerConfig(catch_up=CatchUpSettings(repositories={"github": tuple(names)}))
        return _two_sweeps({"github": forge}, config, lambda: len(server.requests),
                           lambda start: [_endpoint(item.path) for item in server.requests[start:]])


def bench_gitlab(repositories: int, merge_requests: int, tags: int) -> dict[str, Any]:
    """Two sweeps of the GitLab test server's projects."""
    with gitlab_server() as server:
        forge = GitLabForge(server.token, server.url)
        names = []
        for index in range(repositories):
            name = f"data/product-{index:03d}"
            names.append(name)
            project = server.create_project(name, {"README.md": b"hi"})
            client = forge.repository(name)
            for number in range(merge_requests):
                head = server.push(project, f"feature-{number}", {"f": str(number).encode()})
                server.open_merge_request(project, f"feature-{number}")
                if number % 2:
                    client.set_commit_status(head, STATUS_CONTEXT, CommitState.SUCCESS, "reviewed")
            for tag in range(tags):
                server.create_tag(project, f"v1.{tag}.0", "main")
        config = ServerConfig(catch_up=CatchUpSettings(repositories={"gitlab": tuple(names)}))
        return _two_sweeps({"gitlab": forge}, config, lambda: len(server.requests),
                           lambda start: [_endpoint(item.path) for item in server.requests[start:]])


def _two_sweeps(forges: dict[str, Any], config: ServerConfig, logged: Any, paths: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    since = datetime.now(UTC) - timedelta(hours=1)
    settled: frozenset[str] = frozenset()
    for label in ("first", "second"):
        start = logged()
        began = time.perf_counter()
        found = sweep(forges, config, since, settled=settled)  # the second remembers what the first saw settled
        settled = frozenset(found.settled)
        seconds = time.perf_counter() - began
        requests = paths(start)
        assert found.api_calls == len(requests), (found.api_calls, len(requests))
        figures[label] = {"api_calls": found.api_calls, "server_requests": len(requests),
                          "jobs": len(found.requests), "redelivered": len(found.redelivered),
                          "seconds": round(seconds, 2), "by_endpoint": dict(Counter(requests).most_common())}
    return figures


def main() -> None:
    """Run both forges and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--merge-requests", type=int, default=4)
    parser.add_argument("--tags", type=int, default=3)
    parser.add_argument("--interval", type=int, default=DEFAULT_CATCH_UP_INTERVAL,
                        help="seconds between sweeps, for the rate-limit budget")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    results = {"github": bench_github(arguments.repositories, arguments.merge_requests, arguments.tags),
               "gitlab": bench_gitlab(arguments.repositories, arguments.merge_requests, arguments.tags)}
    for forge, figures in results.items():
        for sweep_figures in figures.values():
            sweep_figures["budget"] = budget(forge, sweep_figures["api_calls"], arguments.interval)
            if forge == "github":
                app = (app_installation_limit(arguments.repositories), 3600)
                sweep_figures["budget_app"] = budget(forge, sweep_figures["api_calls"], arguments.interval, app)
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {cpu_model()}; {arguments.repositories} repositories, {arguments.merge_requests} open merge "
          f"requests (half reviewed) and {arguments.tags} release tags each")
    for forge, figures in results.items():
        for label, sweep_figures in figures.items():
            print(f"{forge} {label} sweep: {sweep_figures['api_calls']} API calls "
                  f"({sweep_figures['api_calls'] / arguments.repositories:.1f} per repository, server saw "
                  f"{sweep_figures['server_requests']}), {sweep_figures['jobs']} jobs, "
                  f"{sweep_figures['redelivered']} redelivered, {sweep_figures['seconds']} s")
            for name in ("budget", "budget_app"):
                found = sweep_figures.get(name)
                if found:
                    verdict = "within" if found["within"] else "OVER"
                    print(f"    rate limit {found['limit']}: {found['calls_per_hour']} calls an hour every "
                          f"{found['interval_seconds']} s = {found['share_of_limit']:.0%} of it ({verdict}); "
                          f"shortest interval {found['shortest_interval_seconds']} s")
            for endpoint, count in sweep_figures["by_endpoint"].items():
                print(f"    {count:5d}  {endpoint}")


if __name__ == "__main__":
    main()
