"""Forge HTTP requests per merge request event for a data product of 50 components, on GitHub and GitLab.

Runs the merge request job's work (`bot.forge.review.review_merge_request`) with the real `GitHubForge` and
`GitLabForge` against the local test servers (real HTTP): a first review that creates meshbot's comment, then,
after a push, a second that edits it. Each event is counted twice, by the repository's `api_calls` and by the
server's own request log, which must agree, and broken down by endpoint. Three ways of reading the repository
in the same run: `snapshot` (meshbot now: one archive gives the listing and every file), `tree+archive` (before:
tree listing, then the catalog files out of one archive) and `file-by-file` (the issue's baseline: tree listing,
then one call per file). Target: at most 6 requests per merge request event.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import ServerConfig  # noqa: E402
from bot.descriptor.files import MAX_FILE_BYTES  # noqa: E402
from bot.forge.review import Governance, review_merge_request  # noqa: E402
from policies.loader import load_policies  # noqa: E402
from tests.builders import SYSTEM, component  # noqa: E402
from tests.servers.github import github_server  # noqa: E402
from tests.servers.gitlab import gitlab_server  # noqa: E402
from vcs.base import Forge, Repository  # noqa: E402
from vcs.github import GitHubForge  # noqa: E402
from vcs.gitlab import GitLabForge  # noqa: E402

TARGET = 6
MODES = ("snapshot", "tree+archive", "file-by-file")
BRANCH = "change"


def product(components: int) -> dict[str, bytes]:
    """A data product: the system, each component in its own folder, and files assembly never reads."""
    files = {"catalog-info.yaml": SYSTEM.encode(), "README.md": b"# cashflow\n", "docs/design.md": b"x\n" * 2000}
    for index in range(components):
        folder = f"components/c{index:02}"
        files[f"{folder}/catalog-info.yaml"] = component(f"c{index:02}").encode()
        files[f"{folder}/sql/model.sql"] = f"select {index} as id\n".encode()
    return files


class _OldReading:
    """A repository read as before this change: no snapshot; file-by-file also reads every file on its own."""

    def __init__(self, repository: Repository, file_by_file: bool) -> None:
        self._repository, self._file_by_file = repository, file_by_file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repository, name)

    def snapshot(self, ref: str, max_total_bytes: int) -> dict[str, bytes] | None:
        """Never a snapshot: the reader lists the tree."""
        return None

    def read_files(self, ref: str, paths: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
        """The forge's batch read, or (file by file) one read_file call per path."""
        if not self._file_by_file:
            return self._repository.read_files(ref, paths, max_bytes)
        found = {}
        for path in paths:  # the reader asks only for listed paths; read_file answers absent ones from the listing
            try:
                found[path] = self._repository.read_file(ref, path, max_bytes)
            except FileNotFoundError:
                continue
        return found


class _Counting:
    """The forge as the job sees it, remembering its repositories (and reading them the old way when asked)."""

    def __init__(self, forge: Forge, mode: str) -> None:
        self.forge, self.mode = forge, mode
        self.name, self.web_url = forge.name, forge.web_url
        self.repositories: list[Any] = []

    def repository(self, project: str) -> Repository:
        """The forge's repository, wrapped for the old reading modes."""
        repository = self.forge.repository(project)
        self.repositories.append(repository)
        if self.mode == "snapshot":
            return repository
        return cast(Repository, _OldReading(repository, self.mode == "file-by-file"))

    def bot_username(self) -> str:
        """The forge's bot user."""
        return self.forge.bot_username()

    def calls(self) -> tuple[int, int]:
        """(HTTP requests, REST API calls) of the repositories handed out so far."""
        return (sum(repository.api_calls for repository in self.repositories),
                sum(repository.rest_calls for repository in self.repositories))


def _governance() -> Governance:
    return ServerConfig(), load_policies()


def _endpoint_github(method: str, path: str, project: str) -> str:
    if path.startswith("/_codeload/"):
        return "GET codeload download"
    path = path.removeprefix(f"/repos/{project}")
    path = re.sub(r"/[0-9a-f]{40}", "/{sha}", path)
    path = re.sub(r"/tarball/.*", "/tarball/{ref}", path)
    path = re.sub(r"/git/trees/.*", "/git/trees/{ref}", path)
    return f"{method} {re.sub(r'/[0-9]+', '/{n}', path)}"


def _endpoint_gitlab(method: str, path: str, project: str) -> str:
    path = re.sub(r"^/projects/[0-9]+", "", path.removeprefix(f"/projects/{project}"))  # keyset next-page links
    path = re.sub(r"/repository/files/.*", "/repository/files/{path}", path)
    path = re.sub(r"/[0-9a-f]{40}", "/{sha}", path)
    return f"{method} {re.sub(r'/[0-9]+', '/{n}', path)}"


def _event(forge: _Counting, log: Callable[[], list[tuple[str, str]]], endpoint: Callable[[str, str, str], str],
           project: str, number: int, sha: str) -> dict[str, Any]:
    """One merge request event: the job's review, with its requests by both counts and by endpoint."""
    start, (http_before, rest_before) = len(log()), forge.calls()
    summary = review_merge_request(cast(Forge, forge), project, number, sha, load=_governance)
    http, rest = (after - before for after, before in zip(forge.calls(), (http_before, rest_before), strict=True))
    received = log()[start:]
    if len(received) != http:
        raise SystemExit(f"api_calls {http} != server log {len(received)} for {project}!{number}")
    if "failure" in summary or "error" in summary:
        raise SystemExit(f"the review did not pass: {summary}")
    return {"http_requests": http, "rest_calls": rest, "server_log": len(received),
            "endpoints": dict(Counter(endpoint(method, path, project) for method, path in received))}


def run_github(components: int) -> dict[str, list[dict[str, Any]]]:
    """Both events in each mode on the GitHub test server."""
    results: dict[str, list[dict[str, Any]]] = {}
    with github_server() as server:
        real = GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None)
        real.bot_username()  # once per worker process (the forge is cached): not part of an event
        for mode in MODES:
            origin = server.create_repository(f"acme/cashflow-{mode.replace('+', '-')}", product(components))
            sha = origin.push(BRANCH, {"components/c00/sql/model.sql": b"select 0\n"}, start="main")
            number = origin.open_pull_request(BRANCH)
            forge = _Counting(real, mode)

            def log() -> list[tuple[str, str]]:
                return [(item.method, item.path) for item in list(server.requests)]

            first = _event(forge, log, _endpoint_github, origin.full_name, number, sha)
            sha = origin.push(BRANCH, {"components/c01/sql/model.sql": b"select 1\n"})
            second = _event(forge, log, _endpoint_github, origin.full_name, number, sha)
            assert len(origin.comment_bodies(number)) == 1
            results[mode] = [first, second]
    return results


def run_gitlab(components: int) -> dict[str, list[dict[str, Any]]]:
    """Both events in each mode on the GitLab test server."""
    results: dict[str, list[dict[str, Any]]] = {}
    with gitlab_server() as server:
        real = GitLabForge(server.token, server.url)
        real.bot_username()
        for mode in MODES:
            path = f"acme/cashflow-{mode.replace('+', '-')}"
            project = server.create_project(path, product(components))
            server.push(project, BRANCH, {"components/c00/sql/model.sql": b"select 0\n"})
            record = server.open_merge_request(project, BRANCH)
            forge = _Counting(real, mode)

            def log() -> list[tuple[str, str]]:
                return [(item.method, item.path) for item in list(server.requests)]

            sha = project.branches[BRANCH]
            first = _event(forge, log, _endpoint_gitlab, path, record.iid, sha)
            server.push(project, BRANCH, {"components/c01/sql/model.sql": b"select 1\n"})
            second = _event(forge, log, _endpoint_gitlab, path, record.iid, project.branches[BRANCH])
            assert len([note for note in record.notes if not note.system]) == 1
            results[mode] = [first, second]
    return results


def main() -> None:
    """Run, then print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the test servers' access logs
    results = {"github": run_github(args.components), "gitlab": run_gitlab(args.components)}
    report = {"components": args.components, "target": TARGET, "python": platform.python_version(),
              "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.components} components; target: at most {TARGET} requests per merge request event\n")
    print(f"{'forge':<7} {'reading':<13} {'event':<14} {'HTTP':>5} {'REST':>5} {'log':>5}  verdict")
    for forge_name, modes in results.items():
        for mode, events in modes.items():
            for label, event in zip(("create comment", "edit comment"), events, strict=True):
                verdict = "meets" if event["http_requests"] <= TARGET else "over"
                print(f"{forge_name:<7} {mode:<13} {label:<14} {event['http_requests']:>5} {event['rest_calls']:>5} "
                      f"{event['server_log']:>5}  {verdict}")
    print("\nBy endpoint (second event: push, then edit):")
    for forge_name, modes in results.items():
        for mode, events in modes.items():
            parts = ", ".join(f"{name} x{count}" for name, count in sorted(events[1]["endpoints"].items()))
            print(f"  {forge_name} {mode}: {parts}")


if __name__ == "__main__":
    main()
