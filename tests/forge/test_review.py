"""Governance on merge requests and pushes, against the in-memory forge: one comment, one commit status."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import ServerConfig
from bot.descriptor.errors import InputError, InputErrors
from bot.descriptor.files import MAX_FILE_BYTES
from bot.engine.deployed import Deployed
from bot.forge.review import (
    COMMENT_LIMIT,
    MARKER,
    STATUS_CONTEXT,
    Governance,
    publish_merge_request_review,
    review,
    review_merge_request,
    review_push,
)
from policies.loader import load_policies
from tests.builders import SYSTEM, component
from vcs.base import Comment, CommitState, MergeRequest
from vcs.memory import MemoryForge, MemoryRepository

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finance-cashflow"
PROJECT = "finance/cashflow"
LEDGER = "components/ledger/catalog-info.yaml"


def example_files() -> dict[str, bytes]:
    """The bundled example data product, as a repository's files."""
    return {path.relative_to(EXAMPLE).as_posix(): path.read_bytes() for path in EXAMPLE.rglob("*") if path.is_file()}


class CountingRepository(MemoryRepository):
    """A memory repository that also counts comment edits."""

    def __init__(self, project: str, files: dict[str, bytes]) -> None:
        super().__init__(project, files)
        self.edits = 0

    def edit_comment(self, number: int, comment_id: str, body: str) -> None:
        self.edits += 1
        super().edit_comment(number, comment_id, body)


def setup_forge(files: dict[str, bytes] | None = None) -> tuple[MemoryForge, CountingRepository]:
    forge = MemoryForge(user="meshbot[bot]")
    repository = CountingRepository(PROJECT, files if files is not None else example_files())
    repository.user = forge.user
    forge.repositories[PROJECT] = repository
    return forge, repository


def builtin() -> Governance:
    """The built-in policies, with a commit status per environment as well as the aggregate."""
    return ServerConfig(environment_statuses=True), load_policies()


def with_policy(folder: Path, text: str) -> Governance:
    (folder / "policy.yaml").write_text(textwrap.dedent(text))
    return ServerConfig(policy_folders=[folder], environment_statuses=True), load_policies([folder])


def open_merge_request(repository: MemoryRepository, change: dict[str, bytes]) -> tuple[int, str]:
    """A branch with one change on top of main and a merge request from it; (number, head sha)."""
    repository.create_branch("change", repository.branches["main"])
    sha = repository.push("change", change)
    return repository.add_merge_request("change").number, sha


def meshbot_comments(repository: MemoryRepository, number: int) -> list[Comment]:
    return [comment for comment in repository.comment_threads[number] if comment.author == "meshbot[bot]"]


def assert_one_line_description(repository: MemoryRepository, sha: str) -> str:
    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None
    assert "\n" not in status.description and 0 < len(status.description) <= 140
    return status.description


PLATFORM_POLICY = """\
    id: platform-sqlite-only
    description: Storage runs on the platform's PostgreSQL
    target: component
    severity: error
    status: enabled
    selector: {kind: [storage]}
    schema:
      properties:
        platform:
          const: PostgreSQL
          x-message: storage components must use PostgreSQL
"""


# ---------------------------------------------------------------- merge requests


def test_passing_data_product_gets_success_and_one_comment():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"cash flow\n"})

    summary = review_merge_request(forge, PROJECT, number, sha, load=builtin)

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.SUCCESS
    # Nothing is deployed anywhere: the breaking-change check is not evaluated, never "passed".
    assert status.description == "development, production: 3 of 4 policies pass, 1 not evaluated"
    assert status.target_url == repository.merge_requests[number].url
    for environment in ("development", "production"):
        gate = repository.status(sha, f"{STATUS_CONTEXT}/{environment}")
        assert gate is not None and gate.state is CommitState.SUCCESS
        assert gate.description == "3 of 4 policies pass, 1 not evaluated; plan: nothing deployed: 3 to add"
    [comment] = repository.comment_threads[number]
    assert comment.body.startswith(MARKER + "\n### meshbot review: ✅ passed")
    assert "| `development` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 3 to add |" in comment.body
    assert "| `production` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 3 to add |" in comment.body
    assert "not evaluated: nothing deployed in production" in comment.body
    assert sha[:8] in comment.body and "urn:dmb:dp:finance:cashflow:1" in comment.body
    assert summary.startswith(f"{PROJECT}!{number} at {sha[:8]}: success")


def test_ten_pushes_edit_one_comment_in_place():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"0\n"})
    review_merge_request(forge, PROJECT, number, sha, load=builtin)
    [first] = repository.comment_threads[number]

    for push in range(1, 11):
        sha = repository.push("change", {"README.md": f"{push}\n".encode()})
        review_merge_request(forge, PROJECT, number, sha, load=builtin)

    [comment] = repository.comment_threads[number]
    assert comment.id == first.id
    assert repository.edits == 10
    assert f"commit {sha[:8]}" in comment.body
    assert all(status.state is CommitState.SUCCESS for status in repository.statuses)
    assert len({status.sha for status in repository.statuses}) == 11


def test_newest_push_wins_over_the_event_sha():
    forge, repository = setup_forge()
    number, old = open_merge_request(repository, {"README.md": b"old\n"})
    new = repository.push("change", {"README.md": b"new\n"})

    review_merge_request(forge, PROJECT, number, old, load=builtin)

    assert repository.status(new, STATUS_CONTEXT) is not None
    assert repository.status(old, STATUS_CONTEXT) is None
    assert f"commit {new[:8]}" in repository.comment_threads[number][0].body


def test_a_comment_of_someone_else_with_the_marker_is_not_taken_over():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    quoted = f"{MARKER}\nI copied meshbot's comment"
    repository.comment_threads[number].append(Comment(id="human-1", body=quoted, author="mallory"))

    review_merge_request(forge, PROJECT, number, sha, load=builtin)
    review_merge_request(forge, PROJECT, number, sha, load=builtin)

    thread = repository.comment_threads[number]
    assert thread[0] == Comment(id="human-1", body=quoted, author="mallory")
    assert len(meshbot_comments(repository, number)) == 1
    assert repository.edits == 0  # the second run found its own comment already up to date


def test_duplicate_meshbot_comments_are_retired():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    first = repository.create_comment(number, f"{MARKER}\nold")
    second = repository.create_comment(number, f"{MARKER}\nalso old")

    comment_id = publish_merge_request_review(repository, number, review(repository, sha, *builtin()),
                                              forge.bot_username())

    assert comment_id == first.id
    bodies = {comment.id: comment.body for comment in repository.comment_threads[number]}
    assert bodies[first.id].startswith(MARKER) and MARKER not in bodies[second.id]


def test_blocking_policy_failure_names_file_and_line(tmp_path):
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})

    review_merge_request(forge, PROJECT, number, sha, load=lambda: with_policy(tmp_path, PLATFORM_POLICY))

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.FAILURE
    assert status.description == "development, production: 1 blocking failure"
    body = repository.comment_threads[number][0].body
    assert "### meshbot review: ❌ blocked in development, production" in body
    assert "`platform-sqlite-only`" in body
    assert f"`{LEDGER}` line 18" in body and "storage components must use PostgreSQL" in body


def test_malformed_yaml_is_an_error_naming_file_line_and_column():
    forge, repository = setup_forge()
    broken = b"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: [unclosed\n"
    number, sha = open_merge_request(repository, {LEDGER: broken})

    review_merge_request(forge, PROJECT, number, sha, load=builtin)

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.ERROR
    assert re.match(rf"{re.escape(LEDGER)}:\d+:\d+: ", status.description), status.description
    body = repository.comment_threads[number][0].body
    assert body.startswith(MARKER + "\n### meshbot governance: ❗ error")
    assert re.search(rf"`{re.escape(LEDGER)}` line \d+, column \d+: \S", body), body
    assert f"commit {sha[:8]}" in body


def test_a_file_over_the_size_limit_is_an_error():
    forge, repository = setup_forge()
    huge = b"# padding\n" * (MAX_FILE_BYTES // 10 + 1)
    number, sha = open_merge_request(repository, {LEDGER: huge})

    review_merge_request(forge, PROJECT, number, sha, load=builtin)

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.ERROR
    assert LEDGER in status.description and "limit" in status.description
    assert f"`{LEDGER}`" in repository.comment_threads[number][0].body


def test_an_unreadable_commit_is_an_error_not_silence():
    forge, repository = setup_forge()

    result = review(repository, "0" * 40, *builtin())

    assert result.state is CommitState.ERROR
    assert "no commit" in result.description
    assert result.comment.startswith(MARKER) and "the repository could not be read" in result.comment


def test_a_huge_report_is_cut_under_the_limit_and_says_so(tmp_path):
    components = {f"c{index:03}": component(f"c{index:03}") for index in range(300)}
    files = {"catalog-info.yaml": SYSTEM.encode()}
    files.update({f"components/{name}/catalog-info.yaml": text.encode() for name, text in components.items()})
    forge, repository = setup_forge(files)
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    long_message = "every output port needs a data contract with a schema, an SLA and a terms of use; " * 3
    policy = f"""\
        id: contract-required
        description: Output ports carry a data contract
        target: component
        severity: error
        status: enabled
        schema:
          required: [dataContract]
          x-message: "{long_message.strip()}"
    """

    review_merge_request(forge, PROJECT, number, sha, load=lambda: with_policy(tmp_path, policy))

    body = repository.comment_threads[number][0].body
    assert len(body) <= COMMENT_LIMIT
    assert re.search(r"\d+ more failures were left out to fit the comment size limit", body)
    assert f"commit {sha[:8]}" in body
    description = assert_one_line_description(repository, sha)
    assert description.startswith("development, production: 300 blocking failures")
    summary = body[:body.index("<details>")]
    assert "| `development` 🔒 | ❌ 300 blocking" in summary and "| `production` 🔒 | ❌ 300 blocking" in summary


def test_user_text_is_escaped_in_the_comment(tmp_path):
    hostile = "<script>alert(1)</script> @everyone [click](http://evil.example)"
    files = example_files()
    files[LEDGER] = files[LEDGER].replace(
        b"  description: General-ledger transactions and the daily cash-flow aggregate, loaded nightly",
        f'  description: "{hostile}"'.encode())
    forge, repository = setup_forge(files)
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    policy = """\
        id: short-descriptions
        description: Component descriptions fit on a card
        target: component
        severity: warning
        status: enabled
        schema:
          properties:
            description: {maxLength: 20}
    """

    review_merge_request(forge, PROJECT, number, sha, load=lambda: with_policy(tmp_path, policy))

    body = repository.comment_threads[number][0].body
    assert "short-descriptions" in body and "&lt;script&gt;" in body
    assert "<script" not in body and "@everyone" not in body and "](http" not in body
    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.SUCCESS
    assert re.fullmatch(r"development, production: passed with \d+ warnings?", status.description)


def test_status_description_is_one_line_and_short_even_for_long_errors():
    forge, repository = setup_forge()
    path = "components/" + "very-long-folder-name/" * 10 + "catalog-info.yaml"
    number, sha = open_merge_request(repository, {path: b"kind: [\n"})

    review_merge_request(forge, PROJECT, number, sha, load=builtin)

    assert_one_line_description(repository, sha)


def test_an_invalid_server_configuration_is_reported_and_raised():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})

    def broken() -> Governance:
        raise InputErrors([InputError("policy folder not found")])

    with pytest.raises(InputErrors):
        review_merge_request(forge, PROJECT, number, sha, load=broken)

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.ERROR
    assert "server configuration" in status.description
    assert "meshbot's side" in repository.comment_threads[number][0].body


def test_a_closed_merge_request_is_not_reviewed():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    repository.merge_requests[number] = replace(repository.merge_requests[number], state="merged")

    assert "not reviewed" in review_merge_request(forge, PROJECT, number, sha, load=builtin)
    assert repository.statuses == [] and repository.comment_threads[number] == []


# ---------------------------------------------------------------- against what is deployed, per environment

PORT = "components/daily-cashflow/catalog-info.yaml"
DP = "urn:dmb:dp:finance:cashflow:1"


class DeployedIn:
    """Deployed descriptors by environment: an in-memory DeployedStates."""

    def __init__(self, **descriptors: dict) -> None:
        self.descriptors = descriptors

    def deployed(self, data_product: str, environment: str) -> Deployed | None:
        found = self.descriptors.get(environment)
        return None if found is None else Deployed(data_product, environment, found, str(found.get("version")))


def deployed_example(environment: str) -> dict:
    from bot.descriptor.assembly import assemble
    from bot.descriptor.files import DirectoryReader

    return json.loads(json.dumps(assemble(DirectoryReader(EXAMPLE), environment).data))


def dropping_a_column() -> dict[str, bytes]:
    text = (EXAMPLE / PORT).read_text()
    dropped = text.replace("        - name: net_amount\n          dataType: DECIMAL\n", "")
    assert dropped != text
    return {PORT: dropped.encode()}


def test_a_dropped_column_is_blocked_where_it_is_deployed_with_file_and_line():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, dropping_a_column())
    deployed = DeployedIn(production=deployed_example("production"))

    review_merge_request(forge, PROJECT, number, sha, load=builtin, deployed=deployed)

    production = repository.status(sha, f"{STATUS_CONTEXT}/production")
    development = repository.status(sha, f"{STATUS_CONTEXT}/development")
    assert production is not None and production.state is CommitState.FAILURE
    assert production.description == "1 blocking failure; plan: 0 to add, 1 to change, 0 to remove, 2 unchanged"
    assert development is not None and development.state is CommitState.SUCCESS
    aggregate = repository.status(sha, STATUS_CONTEXT)
    assert aggregate is not None and aggregate.state is CommitState.FAILURE
    assert aggregate.description == "production: 1 blocking failure"
    body = repository.comment_threads[number][0].body
    assert body.startswith(MARKER + "\n### meshbot review: ❌ blocked in production")
    assert ("| `production` 🔒 | ❌ 1 blocking | 0 to add, 1 to change, 0 to remove, 2 unchanged (deployed: `1.0.0`) |"
            in body)
    assert "| `development` 🔒 | ✅ passed, 1 not evaluated | nothing deployed: 3 to add |" in body
    details = body[body.index("<details><summary>production"):]
    assert "`no-breaking-changes`" in details and f"`{PORT}` line " in details
    assert "column `net_amount` removed" in details
    assert "not evaluated: nothing deployed in development" in body


def test_a_new_component_is_one_to_add_in_every_environment():
    forge, repository = setup_forge()
    extra = component("extra").encode()
    number, sha = open_merge_request(repository, {"components/extra/catalog-info.yaml": extra})
    deployed = DeployedIn(development=deployed_example("development"), production=deployed_example("production"))

    review_merge_request(forge, PROJECT, number, sha, load=builtin, deployed=deployed)

    body = repository.comment_threads[number][0].body
    for environment in ("development", "production"):
        row = (f"| `{environment}` 🔒 | ⚠️ 1 warning | 1 to add, 0 to change, 0 to remove, 3 unchanged "
               "(deployed: `1.0.0`) |")
        assert row in body
        status = repository.status(sha, f"{STATUS_CONTEXT}/{environment}")
        assert status is not None and status.state is CommitState.SUCCESS


def test_a_production_only_policy_blocks_only_the_production_row(tmp_path):
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {"README.md": b"x\n"})
    policy = """\
        id: production-needs-an-sla
        description: Output ports in production promise an uptime above 99.9%
        target: component
        severity: error
        status: enabled
        selector: {kind: [outputport], environment: [production]}
        schema:
          properties:
            dataContract:
              properties:
                SLA:
                  properties:
                    upTime: {const: "99.9%"}
    """

    review_merge_request(forge, PROJECT, number, sha, load=lambda: with_policy(tmp_path, policy))

    assert repository.status(sha, f"{STATUS_CONTEXT}/development").state is CommitState.SUCCESS
    assert repository.status(sha, f"{STATUS_CONTEXT}/production").state is CommitState.FAILURE
    body = repository.comment_threads[number][0].body
    assert "### meshbot review: ❌ blocked in production" in body
    assert "| `production` 🔒 | ❌ 2 blocking, 1 not evaluated |" in body
    assert "| `development` 🔒 | ✅ passed, 1 not evaluated |" in body


def test_only_gating_environments_get_a_status_and_decide_the_aggregate(tmp_path):
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, dropping_a_column())
    config = ServerConfig(merge_request_environments=["development", "qa", "production"],
                          gating_environments=["qa"], environment_statuses=True)
    deployed = DeployedIn(production=deployed_example("production"))

    review_merge_request(forge, PROJECT, number, sha, load=lambda: (config, load_policies()), deployed=deployed)

    contexts = {status.context for status in repository.statuses if status.sha == sha}
    assert contexts == {STATUS_CONTEXT, f"{STATUS_CONTEXT}/qa"}
    aggregate = repository.status(sha, STATUS_CONTEXT)
    assert aggregate is not None and aggregate.state is CommitState.SUCCESS  # production is shown, not gating
    body = repository.comment_threads[number][0].body
    assert "| `production` | ❌ 1 blocking |" in body and "| `qa` 🔒 |" in body
    assert body.index("`development`") < body.index("`qa`") < body.index("`production`")


def test_by_default_only_the_aggregate_status_is_set():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, dropping_a_column())
    deployed = DeployedIn(production=deployed_example("production"))

    review_merge_request(forge, PROJECT, number, sha, load=lambda: (ServerConfig(), load_policies()),
                         deployed=deployed)

    assert [(status.context, status.state) for status in repository.statuses] == [
        (STATUS_CONTEXT, CommitState.FAILURE)]
    body = repository.comment_threads[number][0].body
    assert "🔒 gates this merge request (commit status `meshbot/governance`)." in body


def test_the_same_error_in_every_environment_is_listed_once():
    forge, repository = setup_forge()
    number, sha = open_merge_request(repository, {LEDGER: b"kind: [\n"})

    review_merge_request(forge, PROJECT, number, sha, load=builtin)

    body = repository.comment_threads[number][0].body
    assert len(re.findall(rf"`{re.escape(LEDGER)}` line \d+, column \d+", body)) == 1
    assert "for environments `development`, `production`" in body
    for environment in ("development", "production"):
        assert repository.status(sha, f"{STATUS_CONTEXT}/{environment}").state is CommitState.ERROR


# ---------------------------------------------------------------- pushes


def test_push_sets_only_the_commit_status(tmp_path):
    forge, repository = setup_forge()
    sha = repository.push("main", {"README.md": b"x\n"})

    summary = review_push(forge, PROJECT, "main", sha, load=lambda: with_policy(tmp_path, PLATFORM_POLICY))

    status = repository.status(sha, STATUS_CONTEXT)
    assert status is not None and status.state is CommitState.FAILURE
    assert summary == f"{PROJECT}@main {sha[:8]}: failure (development, production: 1 blocking failure)"
    assert repository.status(sha, f"{STATUS_CONTEXT}/production").state is CommitState.FAILURE
    assert repository.comment_threads == {}


class PushDuringReview(CountingRepository):
    """Someone pushes to the merge request's branch right after meshbot first reads the merge request."""

    pushed: str | None = None

    def merge_request(self, number: int) -> MergeRequest:
        request = super().merge_request(number)
        if self.pushed is None:
            self.pushed = self.push("change", {"README.md": b"pushed meanwhile\n"})
        return request


def test_a_push_during_the_review_is_reviewed_by_its_own_event_into_the_same_comment():
    forge = MemoryForge(user="meshbot[bot]")
    repository = PushDuringReview(PROJECT, example_files())
    repository.user = forge.user
    forge.repositories[PROJECT] = repository
    number, old = open_merge_request(repository, {"README.md": b"old\n"})

    review_merge_request(forge, PROJECT, number, old, load=builtin)
    assert repository.pushed is not None
    assert repository.status(old, STATUS_CONTEXT) is not None
    review_merge_request(forge, PROJECT, number, repository.pushed, load=builtin)  # the push's own event

    assert repository.status(repository.pushed, STATUS_CONTEXT) is not None
    [comment] = repository.comment_threads[number]
    assert f"commit {repository.pushed[:8]}" in comment.body


class SlowToList(CountingRepository):
    """Reading the comments takes a while: two unlocked reviews both see none and both would create one."""

    def comments(self, number: int) -> list[Comment]:
        found = super().comments(number)
        import time

        time.sleep(0.3)
        return found


def concurrent_reviews(redis_engine, lock_of) -> SlowToList:
    import threading

    forge = MemoryForge(user="meshbot[bot]")
    repository = SlowToList(PROJECT, example_files())
    repository.user = forge.user
    forge.repositories[PROJECT] = repository
    number, sha = open_merge_request(repository, {"README.md": b"change"})
    threads = [threading.Thread(target=review_merge_request, args=(forge, PROJECT, number, sha),
                                kwargs={"load": builtin, "lock": lock_of()}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return repository


def test_two_reviews_of_one_merge_request_at_once_leave_one_comment(redis_engine):
    def lock():
        return redis_engine.redis.lock("meshbot:review:test", timeout=30, blocking_timeout=30)

    repository = concurrent_reviews(redis_engine, lock)
    assert len(repository.comment_threads[1]) == 1


def test_without_the_lock_the_race_is_real(redis_engine):
    # The same scenario without a lock: proves the test above can fail.
    repository = concurrent_reviews(redis_engine, lambda: None)
    assert len(repository.comment_threads[1]) == 2
