"""The catch-up sweep: pure decisions, the sweep through the real clients on the GitHub and GitLab test servers,
and rounds run by real workers (reviews end with one comment, also when a webhook races the sweep)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rq import Queue
from rq.serializers import JSONSerializer

from bot.config import CatchUpSettings, ServerConfig, load_config
from bot.engine.periodic import CATCH_UP, begin_round, end_round, schedule_next
from bot.engine.runner import QUEUE_NAME
from bot.forge.catch_up import (
    needs_review,
    newest_release,
    settled_key,
    sweep,
    to_redeliver,
    unreleased_environments,
    version_key,
)
from bot.forge.release import deploy_context
from bot.forge.review import STATUS_CONTEXT
from bot.forge.router import CATCH_UP as CATCH_UP_JOB
from bot.forge.router import RELEASE, REVIEW
from handlers.catch_up import SETTLED_KEY, run_sweep
from tests.deploy_harness import Engine
from tests.e2e.test_github import (  # noqa: F401 - bot and github are fixtures
    PROJECT,
    Bot,
    BotFactory,
    bot,
    github,
    meshbot_comments,
    pull_request_payload,
)
from tests.servers.github import GitHubServer, ScriptedReply
from tests.servers.gitlab import gitlab_server
from vcs.base import CommitState, HookDelivery, MergeRequest, Tag
from vcs.github import GitHubForge
from vcs.gitlab import GitLabForge

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SINCE = datetime.now(UTC) - timedelta(days=1)


def request(head: str = "a" * 40, state: str = "open") -> MergeRequest:
    return MergeRequest(1, "t", "", "feature", "main", head, "jane", state, "u", False)


def attempt(guid: str, status: int, minutes: int = 0, number: int = 0) -> HookDelivery:
    return HookDelivery(str(number or minutes), guid, NOW + timedelta(minutes=minutes), status, "push", "7")


# ---------------------------------------------------------------------- decisions


def test_a_head_without_a_governance_status_needs_a_review():
    assert needs_review(request(), {})
    assert needs_review(request(), {"ci/build": CommitState.SUCCESS})
    assert not needs_review(request(), {STATUS_CONTEXT: CommitState.FAILURE})
    assert not needs_review(request(state="closed"), {})


def test_the_newest_release_tag_by_semantic_version():
    tags = [Tag("v1.9.0", "a"), Tag("v1.10.0-rc.1", "b"), Tag("v1.10.0", "c"), Tag("nightly", "d"),
            Tag("v2.0.0-alpha", "e"), Tag("v2.0.0-alpha.1", "f")]
    assert newest_release(tags, "v{version}") == Tag("v2.0.0-alpha.1", "f")
    assert newest_release(tags[:4], "v{version}") == Tag("v1.10.0", "c")
    assert newest_release([Tag("nightly", "d")], "v{version}") is None
    assert newest_release(tags, "release-{version}") is None
    assert version_key("1.0.0-rc.2") < version_key("1.0.0-rc.10") < version_key("1.0.0")


def test_release_environments_without_a_deploy_status():
    statuses = {deploy_context("staging"): CommitState.ERROR, STATUS_CONTEXT: CommitState.SUCCESS}
    assert unreleased_environments(statuses, ["staging", "production"]) == ["production"]
    assert unreleased_environments(statuses, ["staging"]) == []


def test_which_failed_deliveries_are_sent_again():
    attempts = [
        attempt("lost", 0, 1), attempt("lost", 503, 2),  # unreachable, then Redis down: the newest is sent again
        attempt("taken", 503, 3), attempt("taken", 202, 4),  # a redelivery was accepted
        attempt("refused", 401, 5),  # a bad signature: sending it again repeats the refusal
        attempt("busy", 429, 6),
        attempt("given-up", 0, 7), attempt("given-up", 0, 8), attempt("given-up", 0, 9),
        attempt("ok", 202, 10),
    ]
    assert [(item.guid, item.id) for item in to_redeliver(attempts)] == [("lost", "2"), ("busy", "6")]


def test_the_sweep_is_on_only_with_repositories_and_an_interval(tmp_path: Path):
    assert not CatchUpSettings().enabled
    assert CatchUpSettings(repositories={"github": ("a/b",)}).enabled
    assert not CatchUpSettings(interval_seconds=0, repositories={"github": ("a/b",)}).enabled
    path = tmp_path / "meshbot.yaml"
    path.write_text("catch_up:\n  interval_seconds: 60\n  repositories:\n    gitlab: [data/sales/orders]\n")
    settings = load_config(str(path)).catch_up
    assert settings == CatchUpSettings(60, {"gitlab": ("data/sales/orders",)}, False, True)


# ---------------------------------------------------------------------- one sweep through the real clients


def github_forge(server: GitHubServer) -> GitHubForge:
    return GitHubForge(token=server.token, api_url=server.api_url, seconds_between_writes=None)


def config_for(forge: str, *projects: str, **settings: object) -> ServerConfig:
    return ServerConfig(catch_up=CatchUpSettings(repositories={forge: projects}, **settings))  # type: ignore[arg-type]


def test_github_sweep_finds_unreviewed_merge_requests_and_an_undeployed_release(github: GitHubServer):  # noqa: F811
    repository = github.create_repository("acme/shop", {"README.md": b"hi"})
    repository.push("reviewed", {"a": b"1"}, start="main")
    reviewed = repository.open_pull_request("reviewed")
    unreviewed_head = repository.push("new", {"b": b"2"}, start="main")
    unreviewed = repository.open_pull_request("new")
    forge = github_forge(github)
    forge.repository("acme/shop").set_commit_status(repository.branch_head("reviewed") or "", STATUS_CONTEXT,
                                                    CommitState.SUCCESS, "ok")
    repository.create_tag("v1.0.0", "main")
    newest = repository.create_tag("v1.1.0", "main")
    repository.create_tag("nightly", "main")

    found = sweep({"github": forge}, config_for("github", "acme/shop"), SINCE)

    assert [(forge_name, item.function, item.args) for forge_name, item in found.requests] == [
        ("github", REVIEW, ("github", "acme/shop", unreviewed, unreviewed_head)),
        ("github", RELEASE, ("github", "acme/shop", "v1.1.0", newest)),
    ]
    assert reviewed != unreviewed and found.problems == [] and found.hooks_refused == []
    # pulls, a combined status per pull request, tags, the newest tag's statuses, the hooks
    assert found.api_calls == 1 + 2 + 1 + 1 + 1

    forge.repository("acme/shop").set_commit_status(newest, deploy_context("production"), CommitState.PENDING, "x")
    again = sweep({"github": forge}, config_for("github", "acme/shop"), SINCE)
    assert [item.function for _, item in again.requests] == [REVIEW]


def test_a_later_sweep_reads_no_status_of_what_an_earlier_one_saw_settled(github: GitHubServer):  # noqa: F811
    repository = github.create_repository("acme/shop", {"README.md": b"hi"})
    reviewed_head = repository.push("reviewed", {"a": b"1"}, start="main")
    repository.open_pull_request("reviewed")
    unreviewed_head = repository.push("new", {"b": b"2"}, start="main")
    unreviewed = repository.open_pull_request("new")
    tag = repository.create_tag("v1.0.0", "main")
    forge = github_forge(github)
    client = forge.repository("acme/shop")
    client.set_commit_status(reviewed_head, STATUS_CONTEXT, CommitState.SUCCESS, "ok")
    client.set_commit_status(tag, deploy_context("production"), CommitState.SUCCESS, "deployed")
    config = config_for("github", "acme/shop")

    first = sweep({"github": forge}, config, SINCE)
    assert first.settled == {settled_key("github", "acme/shop", reviewed_head),
                             settled_key("github", "acme/shop", tag, ["production"])}
    assert first.api_calls == 1 + 2 + 1 + 1 + 1  # pulls, two statuses, tags, the tag's statuses, the hooks

    second = sweep({"github": forge}, config, SINCE, settled=frozenset(first.settled))
    assert [(item.function, item.args) for _, item in second.requests] == [
        (REVIEW, ("github", "acme/shop", unreviewed, unreviewed_head))]
    assert second.api_calls == 1 + 1 + 1 + 1  # only the unreviewed head's statuses are read
    assert second.settled == first.settled
    # another release environment: the tag is not settled for it, so its statuses are read again
    widened = ServerConfig(catch_up=config.catch_up, release_environments=["qa", "production"])
    third = sweep({"github": forge}, widened, SINCE, settled=frozenset(first.settled))
    assert [item.function for _, item in third.requests] == [REVIEW, RELEASE]


def test_run_sweep_keeps_only_what_the_last_sweep_saw_settled(github: GitHubServer,  # noqa: F811
                                                              redis_engine: Engine):
    repository = github.create_repository("acme/shop", {"README.md": b"hi"})
    head = repository.push("reviewed", {"a": b"1"}, start="main")
    number = repository.open_pull_request("reviewed")
    forge = github_forge(github)
    forge.repository("acme/shop").set_commit_status(head, STATUS_CONTEXT, CommitState.SUCCESS, "ok")
    queue = Queue(QUEUE_NAME, connection=redis_engine.redis, serializer=JSONSerializer)
    config = config_for("github", "acme/shop")
    run_sweep(queue, config, {"github": forge})
    assert redis_engine.redis.smembers(SETTLED_KEY) == {settled_key("github", "acme/shop", head).encode()}
    repository.merge_pull_request(number)
    run_sweep(queue, config, {"github": forge})
    assert redis_engine.redis.smembers(SETTLED_KEY) == set()


def test_github_sweep_redelivers_failed_deliveries_of_meshbot_hooks_only(github: GitHubServer):  # noqa: F811
    repository = github.create_repository("acme/shop", {"README.md": b"hi"})
    hook = repository.add_hook("https://meshbot.example.com/webhooks/github")
    other = repository.add_hook("https://ci.example.com/hook")
    lost = repository.add_delivery(hook, 503)
    repository.add_delivery(hook, 202)
    repository.add_delivery(other, 500)
    old = repository.add_delivery(hook, 0, delivered_at=datetime.now(UTC) - timedelta(days=2))

    found = sweep({"github": github_forge(github)}, config_for("github", "acme/shop"), SINCE)

    assert repository.redeliveries == [(hook, lost)] and old != lost
    assert found.redelivered == [f"guid-{lost}"]
    again = sweep({"github": github_forge(github)}, config_for("github", "acme/shop"), SINCE)
    assert again.redelivered == []  # the redelivery was accepted (202)


def test_github_hooks_meshbot_may_not_read_are_noted_not_raised(github: GitHubServer):  # noqa: F811
    github.create_repository("acme/shop", {"README.md": b"hi"})
    github.script("GET", "/repos/acme/shop/hooks", ScriptedReply(404, {"message": "Not Found"}))
    found = sweep({"github": github_forge(github)}, config_for("github", "acme/shop"), SINCE)
    assert found.hooks_refused == [("github", "acme/shop")] and found.problems == []
    skipped = sweep({"github": github_forge(github)}, config_for("github", "acme/shop"), SINCE,
                    skip_hooks=frozenset({("github", "acme/shop")}))
    assert skipped.api_calls == found.api_calls - 1


def test_github_app_installations_and_app_hook_deliveries(github: GitHubServer):  # noqa: F811
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    app = github.create_app(42, public)
    for name in ("acme/one", "acme/two", "other/three"):
        repository = github.create_repository(name, {"README.md": b"hi"})
        repository.push("feature", {"a": b"1"}, start="main")
        repository.open_pull_request("feature")
    github.install_app(42, ["acme/one", "acme/two"])
    github.install_app(42, ["other/three"])
    lost = app.add_delivery(0)
    forge = GitHubForge(app_id=42, app_private_key=private, api_url=github.api_url, seconds_between_writes=None)
    config = ServerConfig(catch_up=CatchUpSettings(github_app_installations=True))

    found = sweep({"github": forge}, config, SINCE)

    assert sorted(item.args[1] for _, item in found.requests) == ["acme/one", "acme/two", "other/three"]
    assert app.redeliveries == [lost] and found.redelivered == [f"guid-{lost}"]
    assert found.repositories == 3
    # the App's manifest grants no Webhooks permission: its deliveries come through its own hook
    assert github.requests_to("GET", "/repos/*/hooks*") == [] and found.hooks_refused == []


def test_gitlab_sweep_finds_unreviewed_merge_requests_and_an_undeployed_release():
    with gitlab_server() as server:
        project = server.create_project("data/sales/orders", {"README.md": b"hi"})
        reviewed_head = server.push(project, "reviewed", {"a": b"1"})
        server.open_merge_request(project, "reviewed")
        head = server.push(project, "new", {"b": b"2"})
        unreviewed = server.open_merge_request(project, "new")
        released = server.create_tag(project, "v1.0.0", "main")
        forge = GitLabForge(server.token, server.url)
        repository = forge.repository("data/sales/orders")
        repository.set_commit_status(reviewed_head, STATUS_CONTEXT, CommitState.FAILURE, "blocked")
        repository.set_commit_status(released, deploy_context("production"), CommitState.SUCCESS, "deployed")

        found = sweep({"gitlab": forge}, config_for("gitlab", "data/sales/orders"), SINCE)
        assert [item.args for _, item in found.requests] == [("gitlab", "data/sales/orders", unreviewed.iid, head)]
        assert found.api_calls == 1 + 2 + 1 + 1  # merge requests, statuses of each head, tags, the tag's statuses

        newest = server.create_tag(project, "v1.1.0", "reviewed")
        found = sweep({"gitlab": forge}, config_for("gitlab", "data/sales/orders"), SINCE)
        assert [item.args for _, item in found.requests][-1] == ("gitlab", "data/sales/orders", "v1.1.0", newest)


def test_run_sweep_enqueues_the_normal_jobs_once_per_window(github: GitHubServer, redis_engine: Engine):  # noqa: F811
    repository = github.create_repository("acme/shop", {"README.md": b"hi"})
    head = repository.push("new", {"b": b"2"}, start="main")
    number = repository.open_pull_request("new")
    sha = repository.create_tag("v1.0.0", "main")
    queue = Queue(QUEUE_NAME, connection=redis_engine.redis, serializer=JSONSerializer)
    config = config_for("github", "acme/shop")

    summary = run_sweep(queue, config, {"github": github_forge(github)})

    assert "2 job(s) queued" in summary, summary
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    assert sorted((job.func_name, tuple(job.args)) for job in jobs if job) == [
        ("handlers.merge_request.review", ("github", "acme/shop", number, head)),
        ("handlers.tag.release", ("github", "acme/shop", "v1.0.0", sha)),
    ]
    assert "0 job(s) queued" in run_sweep(queue, config, {"github": github_forge(github)})
    assert len(queue.job_ids) == 2


def test_one_round_at_a_time_and_one_next_round(redis_engine: Engine):
    queue = Queue(QUEUE_NAME, connection=redis_engine.redis, serializer=JSONSerializer)
    assert begin_round(redis_engine.redis, CATCH_UP, "first")
    assert not begin_round(redis_engine.redis, CATCH_UP, "second")
    scheduled = schedule_next(queue, CATCH_UP, CATCH_UP_JOB, 600)
    assert scheduled is not None and schedule_next(queue, CATCH_UP, CATCH_UP_JOB, 600) is None
    assert queue.scheduled_job_registry.get_job_ids() == [scheduled]
    end_round(redis_engine.redis, CATCH_UP, "second")  # not its lock: nothing released
    assert not begin_round(redis_engine.redis, CATCH_UP, "third")
    end_round(redis_engine.redis, CATCH_UP, "first")
    assert begin_round(redis_engine.redis, CATCH_UP, scheduled)  # the scheduled round runs and clears its marker
    assert schedule_next(queue, CATCH_UP, CATCH_UP_JOB, 600) not in (None, scheduled)


# ---------------------------------------------------------------------- rounds on real workers


CATCH_UP_CONFIG = f"catch_up:\n  interval_seconds: 600\n  repositories:\n    github: [{PROJECT}]\n"


def quiet(meshbot: Bot) -> bool:
    """No job waits or runs (the next round, scheduled, may wait)."""
    return (not meshbot.engine.redis.llen(f"rq:queue:{QUEUE_NAME}")
            and all(status in ("finished", "failed", "scheduled") for status in meshbot.engine.jobs().values()))


def test_workers_sweep_on_start_and_a_second_sweep_changes_nothing(github: GitHubServer,  # noqa: F811
                                                                    bot: BotFactory):  # noqa: F811
    """A pull request opened while meshbot was down gets one review comment from the sweep when workers start."""
    repository = github.repositories[PROJECT.lower()]
    head = repository.push("feature/missed", {"README.md": b"# missed\n"}, start="main")
    number = repository.open_pull_request("feature/missed")

    meshbot = bot(CATCH_UP_CONFIG)

    meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), "the review queued by the sweep on start")
    meshbot.until(lambda: quiet(meshbot), "the jobs to finish")
    assert len(meshbot_comments(meshbot.comments(number))) == 1 and meshbot.comment_posts() == 1
    queue = Queue(QUEUE_NAME, connection=meshbot.engine.redis, serializer=JSONSerializer)
    assert len(queue.scheduled_job_registry.get_job_ids()) == 1  # the next round, once for both workers
    assert [status for status in meshbot.engine.jobs().values() if status == "failed"] == []

    summary = run_sweep(queue, load_config(os.environ["MESHBOT_CONFIG"]), {"github": github_forge(github)})
    assert "0 job(s) queued" in summary, summary
    assert len(meshbot_comments(meshbot.comments(number))) == 1 and meshbot.comment_posts() == 1


def test_a_webhook_and_a_sweep_racing_for_one_merge_request_end_with_one_comment(bot: BotFactory):  # noqa: F811
    meshbot = bot(CATCH_UP_CONFIG)
    meshbot.until(lambda: quiet(meshbot), "the round on start to finish")
    base = meshbot.repository.branch_head("main")
    assert base is not None
    number, head = meshbot.open_pull_request("feature/race", {"README.md": b"# race\n"})
    queue = Queue(QUEUE_NAME, connection=meshbot.engine.redis, serializer=JSONSerializer)
    sweeping = threading.Thread(target=run_sweep, args=(queue, load_config(os.environ["MESHBOT_CONFIG"]),
                                                       {"github": github_forge(meshbot.github)}))
    sweeping.start()
    meshbot.accepted("pull_request", pull_request_payload("opened", number, "feature/race", head, base))
    sweeping.join(30)
    assert not sweeping.is_alive()

    meshbot.until(lambda: meshbot.statuses(head, STATUS_CONTEXT), "a review")
    meshbot.until(lambda: quiet(meshbot), "every review job to finish")
    assert len(meshbot_comments(meshbot.comments(number))) == 1
    assert meshbot.comment_posts() == 1
    assert [status for status in meshbot.engine.jobs().values() if status == "failed"] == []
