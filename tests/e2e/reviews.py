"""What the end-to-end review tests on both forges share: the changes, the platform's files, reading the comment,
meshbot's web application over real HTTP, and `meshbot diff` run as a real command.

The scenario (meshbot issue 12): v1.0.0 of the bundled example is released to production; merge requests then drop
an output port column, add a component, or lower an SLA that a production-only policy guards, and each is reviewed
per environment against what is deployed there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import make_server

from bot.forge.review import STATUS_CONTEXT
from tests.cli.test_deploy import adapters_config
from tests.deploy_harness import EXAMPLE, ROOT
from tests.forge.test_review import PORT, dropping_a_column

PRODUCT = "urn:dmb:dp:finance:cashflow:1"
COMPONENT = "urn:dmb:cmp:finance:cashflow:1:"
API_TOKEN = "e2e-reviews-api-token"
RELEASED = "1.0.0"
POLICY_ID = "production-uptime"
POLICY_MESSAGE = "production output ports promise an uptime of at least 99.5%"
NEW_PORT = "components/bookings/catalog-info.yaml"

# A policy of the platform's own folder that only production selects: its output ports keep their uptime promise.
PRODUCTION_POLICY = f"""\
id: {POLICY_ID}
description: Output ports in production promise an uptime of at least 99.5%
target: component
severity: error
status: enabled
selector: {{kind: [outputport], environment: [production]}}
schema:
  properties:
    dataContract:
      properties:
        SLA:
          properties:
            upTime:
              enum: ["99.5%", "99.9%", "99.99%"]
              x-message: {POLICY_MESSAGE}
"""


def server_config(directory: Path, adapter_url: str) -> str:
    """The server configuration's text (both adapters, releases to production, a commit status per reviewed
    environment, and the policy folder `policies` beside it, written into directory with its one policy)."""
    (directory / "policies").mkdir()
    (directory / "policies" / f"{POLICY_ID}.yaml").write_text(PRODUCTION_POLICY)
    return adapters_config(adapter_url, extra="environments: [development, production]\n"
                                              "releases:\n  environments: [production]\n"
                                              "policies: [policies]\n"
                                              "merge_requests:\n  environment_statuses: true\n")


# ---------------------------------------------------------------------- the merge requests' changes


def example_text(path: str) -> str:
    """A file of the example as released."""
    return (EXAMPLE / path).read_text()


def line_of(text: str, line: str) -> int:
    """The 1-based number of the line of text that is exactly line (there must be one)."""
    lines = text.splitlines()
    assert lines.count(line) == 1, (line, text)
    return lines.index(line) + 1


def adding_a_component() -> dict[str, bytes]:
    """A new output port, `bookings`, over the ledger's daily cash-flow table (a copy of daily-cashflow's setup)."""
    text = example_text(PORT)
    # metadata and spec.mesh both carry the title and description (Witboost reads spec.mesh alone)
    for old, new, times in (("finance.cashflow.1.daily-cashflow", "finance.cashflow.1.bookings", 1),
                            ("title: Daily cash flow", "title: Bookings per day", 1),
                            ("name: Daily cash flow", "name: Bookings per day", 1),
                            ("version 1 - Daily cash flow", "version 1 - Bookings per day", 1),
                            ("description: Net cash flow per business unit and day",
                             "description: What was booked, per day", 2),
                            ("viewName: daily_cashflow_v", "viewName: bookings_v", 1)):
        assert text.count(old) == times, old
        text = text.replace(old, new)
    return {NEW_PORT: text.encode()}


def lowering_the_uptime() -> dict[str, bytes]:
    """daily-cashflow promises 99% uptime instead of 99.5% (no column changes: no breaking change)."""
    text = example_text(PORT)
    assert text.count("upTime: 99.5%") == 1
    return {PORT: text.replace("upTime: 99.5%", "upTime: 99%").encode()}


# ---------------------------------------------------------------------- reading meshbot's comment


def summary_rows(comment: str) -> list[str]:
    """The rows of the comment's environment table (before any details)."""
    head = comment[: comment.index("<details>")]
    return [line for line in head.splitlines() if line.startswith("| `")]


def details(comment: str, environment: str) -> str:
    """The body of environment's folded details: from its summary line to its closing tag."""
    start = comment.index(f"<details><summary>{environment}: ")
    plan = comment.index(f"### meshbot plan for `{environment}`", start)
    return comment[start: comment.index("\n\n</details>", plan)]


def plan_block(comment: str, environment: str) -> str:
    """The plan section of environment's details, exactly as the comment shows it."""
    section = details(comment, environment)
    return section[section.index(f"### meshbot plan for `{environment}`"):]


def section_lines(markdown: str, heading: str) -> list[str]:
    """The lines under a `#### heading` up to the next blank line after them (its list)."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 2  # the heading, then a blank line
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def at(path: str, line: int, column: int) -> str:
    """A position as the comment writes it."""
    return f"`{path}` line {line}, column {column}"


def component_head(local: str, name: str, kind: str, path: str, text: str) -> str:
    """A component's entry in a plan list; its position is the `mesh:` of its file's text (where its spec starts)."""
    return f"- `{COMPONENT}{local}` {name} ({kind}) · {at(path, line_of(text, '  mesh:'), 3)}"


# ---------------------------------------------------------------------- what each review must say

GOVERNANCE = STATUS_CONTEXT
DEVELOPMENT, PRODUCTION = f"{GOVERNANCE}/development", f"{GOVERNANCE}/production"
NOTHING_IN_DEVELOPMENT = "| `development` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 3 to add |"
BLOCKED_IN_PRODUCTION = ("| `production` 🔒 | ❌ 1 blocking | 0 to add, 1 to change, 0 to remove, 2 unchanged "
                         f"(deployed: `{RELEASED}`) |")
ONE_TO_CHANGE = "0 to add, 1 to change, 0 to remove, 2 unchanged"
# Five active policies: the four built-in ones and the platform's; development has nothing to compare with.
DEVELOPMENT_PASSES = "4 of 5 policies pass, 1 not evaluated"

Statuses = dict[str, tuple[str, str]]  # (state as GitLab names it: success or failed, description) by context


def check_descriptor_api(api: str, deployment: str) -> None:
    """The web application answers production's deployed descriptor (the release), 404 for development, 401
    without the token."""
    url = f"{api}/api/v1/products/{PRODUCT}/environments/%s/descriptor"
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    production = requests.get(url % "production", headers=bearer, timeout=10)
    assert production.status_code == 200, production.text
    answer = production.json()
    assert (answer["version"], answer["deployment"], answer["descriptor"]["id"]) == (RELEASED, deployment, PRODUCT)
    development = requests.get(url % "development", headers=bearer, timeout=10)
    assert (development.status_code, development.json()["error"]) == (404, "nothing deployed in development")
    assert requests.get(url % "production", timeout=10).status_code == 401


def check_dropped_column(comment: str, statuses: Statuses) -> None:
    """Production blocked by no-breaking-changes at the column list, its plan 1 to change naming the column;
    development (nothing deployed) passes with the breaking-change check not evaluated."""
    assert statuses == {
        DEVELOPMENT: ("success", f"{DEVELOPMENT_PASSES}; plan: nothing deployed: 3 to add"),
        PRODUCTION: ("failed", f"1 blocking failure; plan: {ONE_TO_CHANGE}"),
        GOVERNANCE: ("failed", "production: 1 blocking failure"),
    }
    assert "\n### meshbot review: ❌ blocked in production\n" in comment
    assert summary_rows(comment) == [NOTHING_IN_DEVELOPMENT, BLOCKED_IN_PRODUCTION]
    columns = at(PORT, line_of(dropping_a_column()[PORT].decode(), "      schema:"), 7)  # the data contract's list
    production = details(comment, "production")
    assert "| ❌ blocking | 1 |" in production
    assert section_lines(production, "#### ❌ Blocking failures") == [
        f"**`no-breaking-changes`** on `{PRODUCT}` (error, enabled): Output ports keep their columns and column "
        "types unless the major version changes",
    ]
    assert (f"- {columns} · `components[0].dataContract.schema`: column 'net\\_amount' was dropped from output "
            "port 'Daily cash flow'; that is a breaking change that needs version 2.0.0") in production.splitlines()
    plan = plan_block(comment, "production")
    assert plan.startswith(f"### meshbot plan for `production`: {ONE_TO_CHANGE}\n")
    assert section_lines(plan, "#### ✏️ To change (1)") == [
        component_head("daily-cashflow", "Daily cash flow", "outputport", PORT, dropping_a_column()[PORT].decode()),
        f"  - column `net_amount` removed · {columns}",
    ]
    development = details(comment, "development")
    assert section_lines(development, "#### ➖ Not evaluated") == [
        f"- **`no-breaking-changes`** on `{PRODUCT}`: not evaluated: nothing deployed in development",
    ]
    assert "| ❌ blocking | 0 |" in development and "#### ❌ Blocking failures" not in development


def check_new_component(comment: str, statuses: Statuses) -> None:
    """1 to add against production's release, every component to add where nothing is deployed; all success."""
    assert statuses == {
        DEVELOPMENT: ("success", f"{DEVELOPMENT_PASSES}; plan: nothing deployed: 4 to add"),
        PRODUCTION: ("success", "all 5 policies pass; plan: 1 to add, 0 to change, 0 to remove, 3 unchanged"),
        GOVERNANCE: ("success", f"development: {DEVELOPMENT_PASSES}; production: all 5 policies pass"),
    }
    assert "\n### meshbot review: ✅ passed\n" in comment
    assert summary_rows(comment) == [
        "| `development` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 4 to add |",
        f"| `production` 🔒 | ✅ passed | 1 to add, 0 to change, 0 to remove, 3 unchanged (deployed: `{RELEASED}`) |",
    ]
    added = component_head("bookings", "Bookings per day", "outputport", NEW_PORT,
                           adding_a_component()[NEW_PORT].decode())
    assert section_lines(plan_block(comment, "production"), "#### ➕ To add (1)") == [added]
    assert added in section_lines(plan_block(comment, "development"), "#### ➕ To add (4)")


def check_production_only_policy(comment: str, statuses: Statuses) -> None:
    """The platform's production-uptime policy fails the production row only; development, same files, passes."""
    assert statuses == {
        DEVELOPMENT: ("success", f"{DEVELOPMENT_PASSES}; plan: nothing deployed: 3 to add"),
        PRODUCTION: ("failed", f"1 blocking failure; plan: {ONE_TO_CHANGE}"),
        GOVERNANCE: ("failed", "production: 1 blocking failure"),
    }
    assert "\n### meshbot review: ❌ blocked in production\n" in comment
    assert summary_rows(comment) == [NOTHING_IN_DEVELOPMENT, BLOCKED_IN_PRODUCTION]
    uptime = at(PORT, line_of(lowering_the_uptime()[PORT].decode(), "        upTime: 99%"), 17)  # the value
    production = details(comment, "production")
    assert section_lines(production, "#### ❌ Blocking failures") == [
        f"**`{POLICY_ID}`** on `{COMPONENT}daily-cashflow` (error, enabled): Output ports in production promise "
        "an uptime of at least 99.5%",
    ]
    assert f"- {uptime} · `components[0].dataContract.SLA.upTime`: {POLICY_MESSAGE}" in production.splitlines()
    assert section_lines(plan_block(comment, "production"), "#### ✏️ To change (1)") == [
        component_head("daily-cashflow", "Daily cash flow", "outputport", PORT,
                       lowering_the_uptime()[PORT].decode()),
        f"  - dataContract.SLA.upTime `99.5%` → `99%` · {uptime}",
    ]
    assert POLICY_ID not in details(comment, "development")


def check_same_plan(comment: str, checkout: Path, api: str) -> None:
    """`meshbot diff --env production --server API` on checkout prints the comment's production plan, in markdown
    character for character, and in JSON the same counts, changes (with positions) and unchanged components."""
    block = plan_block(comment, "production")
    assert meshbot_diff(checkout, "production", api, "markdown").rstrip("\n") == block
    document: dict[str, Any] = json.loads(meshbot_diff(checkout, "production", api, "json"))
    assert (document["dataProduct"], document["environment"], document["nothingDeployed"]) == (
        PRODUCT, "production", False)
    assert document["counts"] == {"add": 0, "change": 1, "remove": 0, "unchanged": 2}
    [change] = [change for entry in document["components"] for change in entry["changes"]]
    assert (change["kind"], change["column"], change["before"], change["after"]) == (
        "removed", "net_amount", {"name": "net_amount", "dataType": "DECIMAL"}, None)
    assert markdown_from_json(document) == plan_listed(block)


# ---------------------------------------------------------------------- meshbot over HTTP, and its command line


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """meshbot's web application on 127.0.0.1 (werkzeug's threaded server, a free port); its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """A repository's files written under folder (a checkout of it); folder."""
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


def meshbot_diff(folder: Path, environment: str, server: str, output: str) -> str:
    """`python -m bot.cli diff FOLDER --env ENV --server URL --format OUTPUT` as a subprocess; what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "diff", str(folder), "--env", environment, "--server", server,
         "--format", output],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MESHBOT_API_TOKEN": API_TOKEN, "NO_COLOR": "1"},
    )
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)  # 1: a deploy would change things
    if output == "json":
        document = json.loads(done.stdout)
        counts = document["counts"]
        changes = counts["add"] or counts["change"] or counts["remove"] or document["product"]["action"] != "unchanged"
        assert done.returncode == (1 if changes else 0), (done.returncode, counts)
    return done.stdout


def markdown_from_json(document: dict[str, Any]) -> dict[str, Any]:
    """What the comment must list for the plan the JSON describes, written here from the JSON's fields alone."""
    def where(position: dict[str, Any]) -> str:
        return at(position["file"], position["line"], position["column"])

    changed = []
    for entry in document["components"]:
        if entry["action"] == "change":
            changed.append(f"- `{entry['id']}` {entry['name']} ({entry['kind']}) · {where(entry['position'])}")
            changed += [f"  - {change['summary']} · {where(change['position'])}" for change in entry["changes"]]
    unchanged = [f"`{entry['id']}`" for entry in document["components"] if entry["action"] == "unchanged"]
    counts = document["counts"]
    return {"heading": f"### meshbot plan for `{document['environment']}`: {document['summary']}",
            "counts": [f"| ➕ to add | {counts['add']} |", f"| ✏️ to change | {counts['change']} |",
                       f"| ➖ to remove | {counts['remove']} |", f"| ⚪ unchanged | {counts['unchanged']} |"],
            "changed": changed, "unchanged": f"⚪ {len(unchanged)} unchanged: {', '.join(unchanged)}"}


def plan_listed(block: str) -> dict[str, Any]:
    """The same fields read from the comment's plan block."""
    lines = block.splitlines()
    changes = [line for line in lines if line.startswith("#### ✏️ To change")]
    return {"heading": lines[0], "counts": [line for line in lines if line.startswith(("| ➕", "| ✏️", "| ➖", "| ⚪"))],
            "changed": section_lines(block, changes[0]) if changes else [],
            "unchanged": next((line for line in lines if line.startswith("⚪ ")), "")}

