"""Forge API calls per catch-up sweep for N repositories, each with a few open merge requests and tags.

Runs `bot.forge.catch_up.sweep` with the real `GitHubForge` and `GitLabForge` against the local test servers
(real HTTP). Each repository has `--merge-requests` open merge requests (half of them already reviewed) and
`--tags` release tags (the newest not deployed), and on GitHub one meshbot webhook with a failed delivery. Each
sweep is counted twice, by the clients' `api_calls` and by the server's request log, which must agree; the
figures are split by endpoint. A second sweep (after the first one's reviews would have run) shows the steady
state. The bound: per repository 1 (merge requests) + its open merge requests + 1 (tags) + 1 (the newest release
tag's statuses), plus on GitHub 1 (hooks) + 1 per meshbot hook (deliveries) + 1 per redelivery.
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
from bot.config import CatchUpSettings, ServerConfig  # noqa: E402
from bot.forge.catch_up import sweep  # noqa: E402
from bot.forge.review import STATUS_CONTEXT  # noqa: E402
from tests.servers.github import github_server  # noqa: E402
from tests.servers.gitlab import gitlab_server  # noqa: E402
from vcs.base import CommitState  # noqa: E402
from vcs.github import GitHubForge  # noqa: E402
from vcs.gitlab import GitLabForge  # noqa: E402


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
    for label in ("first", "second"):
        start = logged()
        began = time.perf_counter()
        found = sweep(forges, config, since)
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
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    results = {"github": bench_github(arguments.repositories, arguments.merge_requests, arguments.tags),
               "gitlab": bench_gitlab(arguments.repositories, arguments.merge_requests, arguments.tags)}
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
            for endpoint, count in sweep_figures["by_endpoint"].items():
                print(f"    {count:5d}  {endpoint}")


if __name__ == "__main__":
    main()
