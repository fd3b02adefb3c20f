"""meshbot's RQ worker: jobs run in the worker process, heartbeats come from a thread, and a reaper
notices dead workers within seconds, keeps the leases of running deployments, and starts queued ones."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.registry import ReadyJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from bot.engine.locks import Locks
from bot.engine.periodic import start_periodic_jobs
from bot.engine.recovery import GRACE_SECONDS, Repair, repair
from bot.engine.runner import QUEUE_NAME, start_next
from bot.engine.store import ACTIVE_KEY, PREFIX, Store

HEARTBEAT_SECONDS = 1.0
HEARTBEAT_TTL = 4  # seconds without a heartbeat before a job counts as abandoned
REAPER_SECONDS = 1.0
REAPER_LOCK = f"{PREFIX}:reaper"
# How long RQ's command thread blocks before it checks whether to stop (RQ's own value is 60 s).
COMMAND_POLL_SECONDS = 0.2

log = logging.getLogger("meshbot.worker")


class MeshbotWorker(SimpleWorker):
    """A SimpleWorker (no fork per job: low latency) that heartbeats while a job runs."""

    def subscribe(self) -> None:
        """RQ's command channel (shutdown, stop-job), read by a thread that checks for a stop every poll time."""
        # At a stop RQ unsubscribes, then stops and joins this thread. The thread may read the unsubscribe reply
        # before it is told to stop, and then waits its poll time for a subscription that never comes: with RQ's
        # 60 s, and redis-py 8.2's PubSubWorkerThread.stop() joining without a timeout, a SIGTERMed worker took up
        # to a minute to exit. The same code as RQ's subscribe(), with our poll time.
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=COMMAND_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Short: a worker that stops heartbeating is dead within seconds, not minutes."""
        return HEARTBEAT_TTL

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job here, with a thread keeping its heartbeat and the worker's alive."""
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, execution, stop), daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beat.join()
        enqueue_ready_dependents(queue)
        self.set_state("idle")  # type: ignore[arg-type]

    def _beat(self, job: Job, execution: Any, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError:
                log.warning("heartbeat for job %s failed; retrying", job.id)


def enqueue_ready_dependents(queue: Queue, attempts: int = 5) -> None:
    """Enqueue the dependents RQ left in the ready registry, until none is left.

    RQ skips a ready dependent whose enqueue lost a WATCH race on the queue's ready registry (another
    worker touched it at the same moment, which is common with many workers) and leaves it for a
    cleanup: without this, a task whose dependencies are done could wait for the reaper's next round.
    RQ's enqueue is claim-checked, so two workers draining at once never enqueue a job twice.
    """
    registry = queue.ready_job_registry
    for _ in range(attempts):
        if not queue.connection.zcard(registry.key):
            return
        registry.cleanup()


def enqueue_due_retries(queue: Queue) -> None:
    """Enqueue scheduled jobs whose time has come (retries with an interval), as RQ's scheduler would.

    RQ's scheduler is a process per worker; this round of the reaper does its one step instead.
    """
    scheduler = RQScheduler([queue], connection=queue.connection, serializer=JSONSerializer,
                            logging_level="WARNING")
    if not scheduler.acquire_locks():
        return  # another scheduler (a worker started with one) holds the queue
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()


def reap_once(connection: redis.Redis, grace: float = GRACE_SECONDS) -> None:
    """One round: fail or retry jobs whose worker died, renew leases, repair stuck deployments, start queued ones."""
    if not connection.set(REAPER_LOCK, "1", nx=True, px=int(REAPER_SECONDS * 900)):
        return  # another worker did this round
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    # The reaper is a thread: failure callbacks must not time out through SIGALRM, which needs the main thread.
    StartedJobRegistry(queue=queue, death_penalty_class=TimerDeathPenalty).cleanup()
    # RQ leaves a dependent whose enqueue lost a WATCH race in the ready registry, for a cleanup that workers
    # only run every 10 minutes: enqueue such jobs now, or a deployment would wait that long.
    ReadyJobRegistry(queue=queue).cleanup()
    enqueue_due_retries(queue)
    store, locks = Store(connection), Locks(connection)
    for deployment_id in store.active():
        deployment = store.load(deployment_id)
        if deployment is None:  # dropped: nothing can run it, and its lock lapses with its lease
            connection.srem(ACTIVE_KEY, deployment_id)
            continue
        locks.renew(deployment.data_product, deployment.environment, deployment_id)
        repaired = repair(connection, deployment, grace)
        if repaired is not Repair.NONE:
            log.warning("deployment %s was stuck (%s): repaired", deployment_id, repaired)
    for data_product, environment in locks.waiting_queues():
        start_next(connection, data_product, environment)


def start_reaper(connection: redis.Redis, stop: threading.Event) -> threading.Thread:
    """Run reap_once every REAPER_SECONDS in a daemon thread until stop is set."""
    def loop() -> None:
        while not stop.wait(REAPER_SECONDS):
            try:
                reap_once(connection)
            except redis.RedisError as error:
                log.warning("reaper round failed: %s", error)

    thread = threading.Thread(target=loop, name="meshbot-reaper", daemon=True)
    thread.start()
    return thread


def run_worker(connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    """Work on meshbot's queue (with the reaper alongside) until stopped; burst: until the queue is empty."""
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    worker = MeshbotWorker([queue], connection=connection, serializer=JSONSerializer, name=name)
    stop = threading.Event()
    start_reaper(connection, stop)
    if not burst:  # a long-running worker starts the periodic jobs (the catch-up sweep, when configured)
        start_periodic_jobs(queue)
    try:
        return bool(worker.work(burst=burst, logging_level="WARNING", with_scheduler=False))
    finally:
        stop.set()
