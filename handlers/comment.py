"""RQ job: the commands of a new merge request comment (bot.forge.comment_commands)."""

from __future__ import annotations

from rq import get_current_job

from bot.config import config_path, load_config
from bot.forge.comment_commands import run_comment
from bot.metrics import count_event


def commands(forge: str, project: str, number: int, comment_id: str, body: str, author: str) -> str:
    """Acknowledge and answer each command of the comment; a one-line summary for the job result."""
    from vcs.factory import forge as forge_client
    from vcs.tally import CallTally

    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    from policies.loader import policies_for
    from vcs.locations import ForgeLocations

    client = CallTally(forge_client(forge))
    config = load_config(config_path(None))
    try:
        replies = run_comment(client.repository(project), config, forge, number, comment_id, body, author,
                              project=project, connection=job.connection,
                              policies=policies_for(config, connection=job.connection),
                              remote=ForgeLocations(client, client.web_url))
    finally:
        count_event(job.connection, forge, "comment", client.api_calls, client.take_rate_limit_waits())
    return f"{project}!{number} comment {comment_id}: {len(replies)} command(s) answered"
