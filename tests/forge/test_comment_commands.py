"""Merge request comments with commands, on the in-memory forge: acknowledgement, replies, refusals, help."""

from __future__ import annotations

import pytest

from bot.config import ServerConfig
from bot.forge.comment_commands import REPLY_MARKER, run_comment
from vcs.base import ForgeError, Permission
from vcs.memory import MemoryForge, MemoryRepository
from vcs.reader import RevisionReader

CONFIG = ServerConfig(environments={"development": {}, "staging": {}, "production": {}})


@pytest.fixture
def repository() -> MemoryRepository:
    repository = MemoryForge().add("acme/cashflow", {"catalog-info.yaml": b"kind: System\n"})
    repository.create_branch("change", repository.branch_head("main"))
    repository.add_merge_request("change")
    repository.permissions.update({"writer": Permission.WRITE, "reader": Permission.READ,
                                   "owner": Permission.ADMIN})
    return repository


def replies(repository: MemoryRepository) -> list[str]:
    return [comment.body.removeprefix(REPLY_MARKER + "\n") for comment in repository.comment_threads[1]]


def test_a_comment_without_commands_gets_no_reply_and_no_reaction(repository):
    assert run_comment(repository, CONFIG, "github", 1, "c1", "Looks good!", "writer") == []
    assert repository.reactions == [] and repository.comment_threads[1] == []


def test_each_command_is_acknowledged_once_and_answered_in_order(repository):
    run_comment(repository, CONFIG, "github", 1, "c1", "/help\n/deplyo staging\n/undeploy", "writer")
    assert repository.reactions == [(1, "c1", "eyes")]
    help_reply, typo, usage = replies(repository)
    assert help_reply.startswith("**meshbot commands**")
    assert typo == "@writer `/deplyo` is not a meshbot command: did you mean `/deploy`? (`/help` lists them)"
    assert usage == "@writer `/undeploy`: name exactly one environment.\n\nUsage: `/undeploy ENV [--remove-data]`"


def test_rights_refusals_say_which_rule_and_what_would_allow_it(repository):
    run_comment(repository, CONFIG, "gitlab", 1, "c1", "/deploy staging", "reader")
    run_comment(repository, CONFIG, "github", 1, "c2", "/deploy production", "owner")
    run_comment(repository, CONFIG, "github", 1, "c3", "/deploy qa", "writer")
    reader, production, unknown = replies(repository)
    assert reader.startswith("@reader `/deploy` refused: /deploy in `staging` needs the Developer role or higher")
    assert "`production` takes no deploys from merge requests" in production
    assert unknown == ("@writer `/deploy` refused: environment 'qa' is not in the server configuration "
                       "\\(known: development, staging, production\\)")  # Markdown-escaped


def test_a_fork_can_never_deploy(repository):
    repository.create_branch("fork-change", repository.branch_head("main"))
    repository.add_merge_request("fork-change", from_fork=True)
    run_comment(repository, CONFIG, "github", 2, "c1", "/deploy", "owner")
    [reply] = [comment.body for comment in repository.comment_threads[2]]
    assert "merge requests from forks can never deploy or import" in reply


def test_help_lists_what_the_commenter_may_run_here(repository):
    run_comment(repository, CONFIG, "github", 1, "c1", "/help", "writer")
    [text] = replies(repository)
    for usage in ("/deploy [ENV] [--dry-run]", "/import COMPONENT [key=value ...]", "/undeploy ENV [--remove-data]",
                  "/rollback ENV [VERSION]"):
        assert usage in text
    assert "(role: write)" in text
    assert "- `development`: `/deploy`, `/rollback`\n" in text and "- `production`: nothing\n" in text
    assert text.endswith("- `/import`: yes\n- `/request-access`: yes (anyone, here or in an issue)")
    assert "| `/request-access OUTPUT_PORT [--group GROUP_PATH]` |" in text


def test_user_text_is_escaped_in_replies(repository):
    run_comment(repository, CONFIG, "github", 1, "c1", "/import <script>alert(1)</script> 'a=@everyone'", "reader")
    [reply] = replies(repository)
    assert "<script>" not in reply


def test_an_approval_is_asked_of_the_forge_only_where_required(repository, redis_engine):
    config = ServerConfig(environments={"development": {}, "staging": {"approval_required": True}})
    run_comment(repository, config, "github", 1, "c1", "/deploy staging", "writer", connection=redis_engine.redis)
    assert "requires an approved merge request" in replies(repository)[-1]
    repository.approvals[1] = True
    run_comment(repository, config, "github", 1, "c2", "/deploy staging", "writer", connection=redis_engine.redis)
    # past the rights checks: the deploy itself now runs (and stops at this repository's broken descriptor)
    assert "cannot be assembled" in replies(repository)[-1]
    calls = repository.api_calls
    run_comment(repository, config, "github", 1, "c3", "/deploy development", "writer", connection=redis_engine.redis)
    assert "approved" not in replies(repository)[-1]
    assert repository.api_calls - calls < 10


def test_a_deploy_queued_behind_another_says_so(redis_engine):
    from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
    from bot.config import AdapterSettings
    from tests.vcs.test_reader import example_files

    repository = MemoryForge().add("acme/cashflow", example_files())
    repository.create_branch("change", repository.branch_head("main"))
    repository.add_merge_request("change")
    repository.permissions["writer"] = Permission.WRITE
    product = "urn:dmb:dp:finance:cashflow:1"
    redis_engine.locks.enqueue(product, "development", "another-deployment")
    assert redis_engine.locks.take_next(product, "development") == "another-deployment"
    config = ServerConfig(adapters=[AdapterSettings(STORAGE_TEMPLATE_ID, "http://127.0.0.1:9/a"),
                                    AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, "http://127.0.0.1:9/a")],
                          public_url="https://meshbot.example.com")
    [reply] = run_comment(repository, config, "github", 1, "c1", "/deploy", "writer", project="acme/cashflow",
                          connection=redis_engine.redis)
    assert "queued behind 1 other deployment of `urn:dmb:dp:finance:cashflow:1` in `development`" in reply
    [deployment_id] = [item for item in redis_engine.store.history(product, "development")]
    deployment = redis_engine.store.load(deployment_id)
    assert deployment.report_to["comment"] == {"number": "1", "id": repository.comment_threads[1][-1].id}
    assert deployment.report_to["statusUrl"] == (
        "https://meshbot.example.com/status/urn:dmb:dp:finance:cashflow:1?env=development")


def _example_merge_request(files_changed: dict[str, bytes], removed: tuple[str, ...] = ()) -> MemoryRepository:
    """The example data product on main, and merge request 1 whose head changes it so."""
    from tests.vcs.test_reader import example_files

    repository = MemoryForge().add("acme/cashflow", example_files())
    main = repository.commits[repository.branches["main"]]
    repository.commits["head"] = {path: content for path, content in {**main, **files_changed}.items()
                                  if path not in removed}  # a commit whose files the test chose (some removed)
    repository.create_branch("change", "head")
    repository.add_merge_request("change")
    repository.permissions["owner"] = Permission.ADMIN
    return repository


def _adapters_config() -> ServerConfig:
    from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
    from bot.config import AdapterSettings

    return ServerConfig(adapters=[AdapterSettings(STORAGE_TEMPLATE_ID, "http://127.0.0.1:9/a"),
                                  AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, "http://127.0.0.1:9/a")])


def test_undeploy_of_what_was_never_deployed_says_so_and_records_nothing(redis_engine):
    repository = _example_merge_request({})
    product = "urn:dmb:dp:finance:cashflow:1"
    [reply] = run_comment(repository, _adapters_config(), "github", 1, "c1", "/undeploy development --remove-data",
                          "owner", project="acme/cashflow", connection=redis_engine.redis)
    assert reply == f"`/undeploy` of `{product}`: nothing deployed in `development`, so nothing was undeployed."
    assert replies(repository) == [reply]
    assert redis_engine.store.history(product, "development") == []
    assert redis_engine.store.product(product, "development") == {}


def test_undeploy_sends_the_deployed_descriptor_not_the_merge_requests(redis_engine):
    from bot.descriptor.assembly import assemble
    from bot.engine.deployed import DEPLOYED_FIELD, deployed_record
    from tests.vcs.test_reader import example_files

    # The head removes an output port and renames the other's view: neither may change what is undeployed.
    port = "components/daily-cashflow/catalog-info.yaml"
    renamed = example_files()[port].replace(b"viewName: daily_cashflow_v", b"viewName: cashflow_by_day")
    repository = _example_merge_request({port: renamed}, removed=("components/transactions/catalog-info.yaml",))
    head = assemble(RevisionReader(repository, "change"), "development")
    deployed = assemble(RevisionReader(repository, "main"), "development")
    assert [component["id"] for component in head.components] != [c["id"] for c in deployed.components]
    redis_engine.store.set_product(deployed.id, "development", status="DEPLOYED", deployment="d1", **{
        DEPLOYED_FIELD: deployed_record(deployed.data, "1.0.0", "d1", "2026-12-05T10:00:00Z", "DEPLOYED")})

    [reply] = run_comment(repository, _adapters_config(), "github", 1, "c1", "/undeploy development --remove-data",
                          "owner", project="acme/cashflow", connection=redis_engine.redis)
    [undeploy_id] = redis_engine.store.history(deployed.id, "development")
    assert reply == (f"`/undeploy` of `{deployed.id}` 1.0.0 from `development`, as deployment `d1` deployed it "
                     f"(whatever this merge request holds): deployment `{undeploy_id}` started.\n\n"
                     "removing data: the tech adapters are asked to delete it (`--remove-data`)")
    undeployment = redis_engine.store.load(undeploy_id)
    assert undeployment is not None and undeployment.descriptor == deployed.data
    assert sorted(task.id for task in undeployment.tasks) == sorted(c["id"] for c in deployed.components)
    assert all(task.adapter_url == "http://127.0.0.1:9/a" for task in undeployment.tasks)
    assert undeployment.remove_data and undeployment.report_to["command"] == "/undeploy"
    assert undeployment.report_to["comment"] == {"number": "1", "id": repository.comment_threads[1][-1].id}


def test_deploy_is_governed_against_what_is_deployed_in_its_environment(redis_engine):
    from bot.descriptor.assembly import assemble
    from bot.engine.deployed import DEPLOYED_FIELD, deployed_record
    from tests.vcs.test_reader import example_files

    port = "components/daily-cashflow/catalog-info.yaml"
    dropped = example_files()[port].replace(b"        - name: net_amount\n          dataType: DECIMAL\n", b"")
    repository = _example_merge_request({port: dropped})
    repository.permissions["writer"] = Permission.WRITE
    deployed = assemble(RevisionReader(repository, "main"), "development")
    redis_engine.store.set_product(deployed.id, "development", status="DEPLOYED", deployment="d1", **{
        DEPLOYED_FIELD: deployed_record(deployed.data, "1.0.0", "d1", "2026-12-05T10:00:00Z", "DEPLOYED")})

    from policies.loader import load_policies

    [reply] = run_comment(repository, _adapters_config(), "github", 1, "c1", "/deploy development", "writer",
                          project="acme/cashflow", connection=redis_engine.redis, policies=load_policies())

    assert "no-breaking-changes" in reply and "net\\_amount" in reply, reply
    assert redis_engine.store.history(deployed.id, "development") == []  # nothing was deployed


class _NoReactions(MemoryRepository):
    """A repository whose forge refuses reactions (a token without the reactions scope: 403; or a 500)."""

    def add_reaction(self, number: int, comment_id: str, reaction: str) -> None:
        raise ForgeError(f"reacting to comment {comment_id} on #{number}: HTTP 500", status=500)


def test_a_failed_reaction_is_logged_and_never_stops_the_commands(caplog):
    repository = _NoReactions("acme/cashflow", {"catalog-info.yaml": b"kind: System\n"})
    repository.create_branch("change", repository.branch_head("main"))
    repository.add_merge_request("change")
    repository.permissions["writer"] = Permission.WRITE
    with caplog.at_level("WARNING", logger="meshbot.commands"):
        answered = run_comment(repository, CONFIG, "github", 1, "c1", "/help\n/deplyo staging", "writer")
    assert len(answered) == 2 and answered[0].startswith("**meshbot commands**")
    assert [reply[:20] for reply in replies(repository)] == [text[:20] for text in answered]
    [record] = caplog.records
    assert record.getMessage() == ("could not acknowledge comment c1 on merge request 1 with `eyes` "
                                   "(reacting to comment c1 on #1: HTTP 500); running its commands anyway")
