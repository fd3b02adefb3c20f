"""Job: a deployment a forge asked for has ended; tell that forge (commit status and deployment record)."""

from __future__ import annotations

from rq import get_current_job

from bot.metrics import count_event
from bot.release import report_outcome
from bot.store import Store
from vcs import factory
from vcs.tally import CallTally


def deployment_ended(deployment_id: str) -> str:
    """Report a finished deployment to the forge named in its record."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    deployment = Store(job.connection).load(deployment_id)
    if deployment is None or not deployment.report_to:
        return "nothing to report"
    target = deployment.report_to
    forge = str(target["forge"])
    client = CallTally(factory.forge(forge))
    try:
        report_outcome(client.repository(str(target["project"])), deployment)
    finally:
        count_event(job.connection, forge, "deployment_report", client.api_calls)
    return f"reported {deployment.state} to {forge}:{target['project']}"
