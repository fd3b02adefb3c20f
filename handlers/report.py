"""Job: a deployment a forge asked for has ended; tell that forge (commit status and deployment record).

A release stage's end also moves the stages that wait for it (bot.forge.promotion.follow_up), and a promotion's end
is commented on its merge request.
"""

from __future__ import annotations

from rq import get_current_job

from bot.config import config_path, load_config
from bot.engine.access import queue_after_deployment
from bot.engine.runner import task_view
from bot.engine.store import Store
from bot.forge.links import deployment_url
from bot.forge.promotion import follow_up, needs_follow_up, report_promotion
from bot.forge.release import report_outcome
from bot.metrics import count_event
from policies.loader import policies_for
from vcs import factory
from vcs.locations import ForgeLocations
from vcs.tally import CallTally


def deployment_ended(deployment_id: str) -> str:
    """Report a finished deployment to the forge named in its record."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    deployment = Store(job.connection).load(deployment_id)
    if deployment is None or not deployment.report_to:
        return "nothing to report"
    queue_after_deployment(job.connection, deployment)  # a successful deploy: its ACLs follow the access files
    target = deployment.report_to
    forge = str(target["forge"])
    client = CallTally(factory.forge(forge))
    followed: list[str] = []
    try:
        repository = client.repository(str(target["project"]))
        report_outcome(repository, deployment, task_view(Store(job.connection), deployment_id))
        report_promotion(repository, deployment)
        config = load_config(config_path(None))
        if needs_follow_up(deployment, config):  # the release stages that wait for this one
            followed = follow_up(repository, job.connection, deployment, config=config,
                                 policies=policies_for(config, connection=job.connection),
                                 remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "deployment_report", client.api_calls, client.take_rate_limit_waits())
    return f"reported {deployment.state} to {forge}:{target['project']}" + "".join(f"; {line}" for line in followed)


def deployment_progress(deployment_id: str) -> str:
    """Edit the comment that follows a running deployment: the plan with each task's state so far."""
    from bot.forge.comment_commands import REPLY_MARKER
    from bot.forge.merge_request_deploy import progress_reply

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    store = Store(job.connection)
    deployment = store.load(deployment_id)
    comment = (deployment.report_to or {}).get("comment") if deployment else None
    if deployment is None or not comment or deployment.state.finished:
        return "nothing to update"  # the report of the end writes the final table
    target = deployment.report_to or {}
    forge = str(target["forge"])
    client = CallTally(factory.forge(forge))
    try:
        repository = client.repository(str(target["project"]))
        repository.edit_comment(int(comment["number"]), str(comment["id"]), REPLY_MARKER + "\n" + progress_reply(
            deployment, task_view(store, deployment_id), deployment_url(target, deployment_id)))
        latest = store.load(deployment_id)
        if latest is not None and latest.state.finished:  # it ended while we wrote: the final table goes last
            repository.edit_comment(int(comment["number"]), str(comment["id"]), REPLY_MARKER + "\n" + progress_reply(
                latest, task_view(store, deployment_id), deployment_url(target, deployment_id)))
    finally:
        count_event(job.connection, forge, "deployment_progress", client.api_calls, client.take_rate_limit_waits())
    return f"updated the progress of {deployment_id}"
