"""RQ job: one round of the catch-up sweep (bot.forge.catch_up), then the next round scheduled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue, get_current_job

from bot.config import ServerConfig, config_path, load_config
from bot.engine.periodic import CATCH_UP, begin_round, end_round, schedule_next
from bot.forge import catch_up
from bot.forge.deliveries import DeliveryIntake
from bot.forge.router import CATCH_UP as CATCH_UP_JOB
from bot.metrics import count_event
from vcs.base import Forge

log = logging.getLogger("meshbot.catch_up")

KEY = "meshbot:catch-up"
REDELIVERY_WINDOW = timedelta(days=3)  # GitHub redelivers deliveries of the last three days only
OVERLAP = timedelta(minutes=10)  # deliveries are looked at again a little before the last sweep
HOOKS_REFUSED_SECONDS = 86400  # a repository whose webhooks meshbot may not read is asked again a day later
SETTLED_KEY = f"{KEY}:settled"  # the open merge request heads and newest tags last seen needing nothing
SETTLED_SECONDS = 7 * 86400


def sweep() -> str:
    """One round: claim the round lock, schedule the next round, sweep, queue what is missing; a summary."""
    job = get_current_job()
    assert job is not None, "meshbot jobs run on RQ workers"
    connection: redis.Redis = job.connection
    config = load_config(config_path(None))
    if not config.catch_up.enabled:
        return "catch-up sweep off (catch_up in the server configuration)"
    if not begin_round(connection, CATCH_UP, job.id):
        return "skipped: another catch-up sweep is running"
    try:
        queue = Queue(job.origin, connection=connection, serializer=job.serializer)
        # Scheduled first: a worker dying in the middle of this round still leaves the next one due.
        schedule_next(queue, CATCH_UP, CATCH_UP_JOB, config.catch_up.interval_seconds)
        return run_sweep(queue, config, _forges(config))
    finally:
        end_round(connection, CATCH_UP, job.id)


def run_sweep(queue: Queue, config: ServerConfig, forges: dict[str, Forge], now: datetime | None = None) -> str:
    """Sweep these forges and enqueue the missing jobs (each once per de-duplication window); a summary."""
    connection = queue.connection
    now = now or datetime.now(UTC)
    last = connection.get(f"{KEY}:last")
    since = now - REDELIVERY_WINDOW
    if last:
        since = max(since, datetime.fromtimestamp(float(last), UTC) - OVERLAP)
    refused = frozenset(_refused(key.decode()) for key in connection.scan_iter(f"{KEY}:hooks-refused:*"))
    settled = frozenset(m.decode() if isinstance(m, bytes) else m for m in connection.smembers(SETTLED_KEY))
    found = catch_up.sweep(forges, config, since, skip_hooks=refused, settled=settled)
    queued = _enqueue(queue, config, found)
    _remember_settled(connection, found.settled)
    for forge, project in found.hooks_refused:
        connection.set(f"{KEY}:hooks-refused:{forge}:{project}", "1", ex=HOOKS_REFUSED_SECONDS)
    if found.hooks_refused:
        log.warning("catch-up: the forge will not show meshbot the webhooks of %d repositories (e.g. %s); their "
                    "failed deliveries are not redelivered (needs admin rights or the App's Webhooks permission)",
                    len(found.hooks_refused), ":".join(found.hooks_refused[0]))
    for problem in found.problems:
        log.warning("catch-up: %s", problem)
    connection.set(f"{KEY}:last", str(now.timestamp()))
    for forge, calls in found.calls.items():
        count_event(connection, forge, "catch_up", calls)
    return (f"swept {found.repositories} repositories in {found.api_calls} forge API calls: {queued} job(s) queued, "
            f"{len(found.redelivered)} delivery(ies) redelivered, {len(found.problems)} problem(s)")


def _remember_settled(connection: redis.Redis, settled: set[str]) -> None:
    """Keep only what this sweep saw settled: heads of merge requests closed since, and older tags, drop out."""
    with connection.pipeline() as pipeline:
        pipeline.delete(SETTLED_KEY)
        if settled:
            pipeline.sadd(SETTLED_KEY, *sorted(settled))
            pipeline.expire(SETTLED_KEY, SETTLED_SECONDS)
        pipeline.execute()


def _enqueue(queue: Queue, config: ServerConfig, found: catch_up.Sweep) -> int:
    """Enqueue the requests as the webhook intake does; the same request within the window is enqueued once."""
    window = max(3 * config.catch_up.interval_seconds, 3600)
    intake = DeliveryIntake(queue, ttl_seconds=window)
    queued = 0
    for forge, request in found.requests:
        delivery = "catch-up:" + ":".join(str(part) for part in (request.function, *request.args))
        if intake.accept(forge, delivery, [request]) is not None:
            queued += 1
    return queued


def _forges(config: ServerConfig) -> dict[str, Forge]:
    """The clients of the forges with repositories to sweep (a forge without credentials is logged and left out)."""
    from vcs.factory import forge as forge_client

    names = {name for name, projects in config.catch_up.repositories.items() if projects}
    if config.catch_up.github_app_installations:
        names.add("github")
    forges: dict[str, Forge] = {}
    for name in sorted(names):
        try:
            forges[name] = forge_client(name)
        except Exception as error:  # missing or unreadable credentials: the other forges are still swept
            log.warning("catch-up: skipping %s: %s", name, error)
    return forges


def _refused(key: str) -> tuple[str, str]:
    """(forge, project) of a hooks-refused key (`meshbot:catch-up:hooks-refused:github:owner/name`)."""
    forge, _, project = key.removeprefix(f"{KEY}:hooks-refused:").partition(":")
    return forge, project
