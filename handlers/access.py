"""RQ jobs: a merge request was merged (grant what its access files ask); a deployment succeeded (its environment
follows the default branch's access files); an access run ended (report it)."""

from __future__ import annotations

from rq import get_current_job

from bot.config import config_path, load_config
from bot.engine.access import run_record
from bot.engine.store import Store
from bot.forge.access_grant import grant_after_deployment, grant_on_merge, report_run
from bot.metrics import count_event
from vcs import factory
from vcs.locations import ForgeLocations
from vcs.tally import CallTally


def grant(forge: str, project: str, number: int, target_branch: str, merge_sha: str, merged_by: str) -> str:
    """Compare the access files at the merge commit with the refs applied and queue the updateacl calls."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    config = load_config(config_path(None))
    client = CallTally(factory.forge(forge))
    try:
        outcome = grant_on_merge(client.repository(project), job.connection, forge=forge, project=project,
                                 number=number, target_branch=target_branch, merge_sha=merge_sha,
                                 merged_by=merged_by, config=config, remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "access", client.api_calls, client.take_rate_limit_waits())
    return f"{project}!{number}: {outcome}"


def after_deployment(deployment_id: str) -> str:
    """Bring the ACLs of a successful deployment's environment to the default branch head's access files."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    deployment = Store(job.connection).load(deployment_id)
    if deployment is None or not deployment.report_to:
        return "unknown deployment, or no forge asked for it"
    forge, project = str(deployment.report_to["forge"]), str(deployment.report_to["project"])
    config = load_config(config_path(None))
    client = CallTally(factory.forge(forge))
    try:
        outcome = grant_after_deployment(client.repository(project), job.connection, deployment, config=config,
                                         remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "access", client.api_calls, client.take_rate_limit_waits())
    return f"{project} after deployment {deployment_id}: {outcome}"


def report(run_id: str) -> str:
    """Comment the outcome of a finished access run on its merge request."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    record = run_record(job.connection, run_id)
    if record is None:
        return "unknown access run"
    origin = record["origin"]
    if not origin.get("forge") or origin.get("number") is None:
        return "no merge request to report to"  # after a release tag's deployment: the console shows the outcome
    client = CallTally(factory.forge(str(origin["forge"])))
    try:
        return report_run(client.repository(str(origin["project"])), record)
    finally:
        count_event(job.connection, str(origin["forge"]), "access_report", client.api_calls,
                    client.take_rate_limit_waits())
