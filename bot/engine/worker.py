"""meshbot's RQ worker: jobs run in the worker process, heartbeats come from a thread, and a reaper
notices dead workers within seconds, keeps the leases of running deployments, and starts queued ones.

The worker rides out Redis outages: its connection retries each command for ~40 s (redis-py's Retry, see
redis_connection.outage_retry), and a connection error that still escapes never ends it (RQ's work loop quits on
any exception): it logs, waits until Redis answers and goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers, format_exc_info
from rq.queue import Queue
from rq.registry import ReadyJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from bot.engine.deployment import DeploymentState
from bot.engine.locks import Locks
from bot.engine.periodic import SWEEPS_DUE_LOOK_SECONDS, start_due_sweeps, start_periodic_jobs
from bot.engine.recovery import GRACE_SECONDS, Repair, current_need, repair, stuck_key
from bot.engine.redis_connection import ride_out_outages, seconds_since_redis_failed
from bot.engine.runner import QUEUE_NAME, start_next
from bot.engine.store import ACTIVE_KEY, PREFIX, Store, as_text, deployment_key
from bot.logs import log_context

HEARTBEAT_SECONDS = 1.0
HEARTBEAT_TTL = 4  # seconds without a heartbeat before a job counts as abandoned
REAPER_SECONDS = 1.0
REAPER_LOCK = f"{PREFIX}:reaper"
# How long RQ's command thread blocks before it checks whether to stop (RQ's own value is 60 s).
COMMAND_POLL_SECONDS = 0.2
# RQ's worker key lives WORKER_TTL + 60 s past the last heartbeat (RQ's default TTL is 420 s): a killed worker leaves
# the registry (rq:workers) within 90 s. The reaper thread beats every round, so a live worker's beat is < 2 s old.
WORKER_TTL = 30
WAIT_FOR_REDIS_SECONDS = 1.0
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)  # TimeoutError is a ConnectionError; named for clarity

log = logging.getLogger("meshbot.worker")


class MeshbotWorker(SimpleWorker):
    """A SimpleWorker (no fork per job: low latency) that heartbeats while a job runs, and every reaper round."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registered = False
        self._failure: BaseException | None = None

    def register_birth(self) -> None:
        """RQ's registration; from now on beat() keeps the worker's heartbeat fresh."""
        super().register_birth()
        self._registered = True

    def register_death(self) -> None:
        """RQ's unregistration, beat() stopped first. A beat racing it only touches a key RQ's registry no longer
        lists (and that holds the death), so no dead worker is ever counted."""
        self._registered = False
        super().register_death()

    def beat(self) -> None:
        """A heartbeat between registration and death (from the reaper thread): readiness counts fresh beats."""
        if self._registered:
            self.heartbeat()

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
        try:
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
        except REDIS_ERRORS as error:
            # Not run again here: it may have been carried out. Its heartbeat lapses and the reaper retries it.
            log.error("worker %s lost Redis around job %s (%s); the reaper retries the job once Redis is back",
                      self.name, job.id, error)
            self.wait_for_redis()

    def perform_job(self, job: Job, queue: Queue, execution: Any) -> bool:
        """RQ's perform_job inside the job's log context, with one line as it starts and one as it ends."""
        with log_context(**job_log_context(job)):
            function = _function(job)
            log.info("job %s started", function, extra={"event": "job_started"})
            self._failure = None
            started = time.monotonic()
            succeeded = super().perform_job(job, queue, execution)
            duration = round(time.monotonic() - started, 3)
            outcome = _outcome(job, succeeded)
            extra: dict[str, Any] = {"event": "job_ended", "outcome": outcome, "duration_s": duration}
            if outcome == "ok":
                log.info("job %s ok in %.3f s", function, duration, extra=extra)
                return succeeded
            failure = self._failure
            reason = f"{type(failure).__name__}: {failure}" if failure is not None else "returned a retry"
            if failure is not None:
                extra.update(error_type=type(failure).__name__, error=str(failure))
            log.log(logging.WARNING if outcome == "retrying" else logging.ERROR, "job %s %s after %.3f s: %s",
                    function, outcome, duration, reason, extra=extra)
            return succeeded

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's exception handlers, the traceback only at DEBUG: perform_job writes the one ERROR line."""
        self._failure = exc_info[1]
        log.debug("job %s (%s) raised:\n%s", job.id, _function(job), format_exc_info(exc_info))
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's suspension check; through a Redis outage, wait for Redis instead of quitting."""
        try:
            super().check_for_suspension(burst)
        except REDIS_ERRORS as error:
            log.error("worker %s cannot reach Redis (%s); waiting for it", self.name, error)
            self.wait_for_redis()

    def run_maintenance_tasks(self) -> None:
        """RQ's registry clean-ups; skipped (tried again next round) when Redis does not answer."""
        try:
            super().run_maintenance_tasks()
        except REDIS_ERRORS as error:
            log.warning("worker %s skipped its maintenance round: %s", self.name, error)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat; a failed one is logged (the next one comes within seconds), never fatal."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return
        try:
            super().heartbeat(timeout)
        except REDIS_ERRORS as error:
            log.warning("worker %s: heartbeat failed: %s", self.name, error)

    def set_state(self, state: Any, pipeline: Any = None) -> None:
        """RQ's worker state; a failed update is logged, never fatal (RQ calls it outside its retry loop)."""
        if pipeline is not None:
            super().set_state(state, pipeline=pipeline)
            return
        try:
            super().set_state(state)
        except REDIS_ERRORS as error:
            log.warning("worker %s: could not record its state %s: %s", self.name, state, error)

    def teardown(self) -> None:
        """RQ's teardown (its death recorded, its command channel closed), without riding out an outage: a worker
        told to stop while Redis is away stops now; its registration then lapses with its key (RQ's worker TTL)."""
        riding_out = self.connection.get_retry()
        self.connection.set_retry(Retry(NoBackoff(), 1))
        try:
            super().teardown()
        except REDIS_ERRORS as error:
            log.warning("worker %s stops without recording it in Redis: %s", self.name, error)
        finally:
            if riding_out is not None:
                self.connection.set_retry(riding_out)

    def wait_for_redis(self) -> None:
        """Return once Redis answers PING (each PING retries for ~40 s); a stop request (SIGTERM) ends the wait."""
        while not self._stop_requested:
            try:
                self.connection.ping()
            except REDIS_ERRORS as error:
                log.error("worker %s: Redis still does not answer (%s); waiting", self.name, error)
                time.sleep(WAIT_FOR_REDIS_SECONDS)  # in case PING failed at once (a client without retries)
            else:
                log.warning("worker %s: Redis answers again; resuming", self.name)
                return

    def _beat(self, job: Job, execution: Any, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError:
                log.warning("heartbeat for job %s failed; retrying", job.id)


# Jobs whose first argument is a deployment id.
DEPLOYMENT_JOBS = frozenset({f"bot.engine.runner.{name}" for name in ("prepare", "run_task", "join", "finish")}
                            | {"handlers.report.deployment_ended", "handlers.report.deployment_progress",
                               "handlers.marketplace.deliver"})


def _function(job: Job) -> str:
    try:
        return str(job.func_name)
    except Exception:  # a job that cannot be deserialized
        return "<unreadable job>"


def _outcome(job: Job, succeeded: bool) -> str:
    """ok, failed, or retrying (RQ scheduled or queued the job again: a Retry returned, or retries left)."""
    if job.get_status(refresh=False) in (JobStatus.SCHEDULED, JobStatus.QUEUED):
        return "retrying"
    return "ok" if succeeded else "failed"


def job_log_context(job: Job) -> dict[str, str | None]:
    """What a job's log lines carry: its id and function, the delivery and forge it came from, its project.

    Forge jobs (handlers/) take the forge and the project as their first two arguments.
    """
    meta = job.meta or {}
    fields: dict[str, str | None] = {"job_id": job.id, "job": _function(job), "delivery_id": meta.get("delivery"),
                                     "forge": meta.get("forge")}
    try:
        args = job.args
    except Exception:
        args = ()
    if len(args) >= 2 and isinstance(args[0], str) and args[0] in ("github", "gitlab") and isinstance(args[1], str):
        fields.update(forge=args[0], project=args[1])
    elif fields["job"] in DEPLOYMENT_JOBS and args and isinstance(args[0], str):
        fields["deployment_id"] = args[0]  # the job adds the data product and environment once it has loaded it
    return fields


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
    # Right after Redis comes back, running jobs' heartbeats (missed during the outage) look lapsed until their
    # workers beat again: wait that long before counting any job as abandoned.
    if seconds_since_redis_failed() > HEARTBEAT_TTL + HEARTBEAT_SECONDS:
        # The reaper is a thread: failure callbacks must not time out through SIGALRM, which needs the main thread.
        StartedJobRegistry(queue=queue, death_penalty_class=TimerDeathPenalty).cleanup()
    # RQ leaves a dependent whose enqueue lost a WATCH race in the ready registry, for a cleanup that workers
    # only run every 10 minutes: enqueue such jobs now, or a deployment would wait that long.
    ReadyJobRegistry(queue=queue).cleanup()
    enqueue_due_retries(queue)
    store, locks = Store(connection), Locks(connection)
    for deployment_id in store.active():
        state = connection.hget(deployment_key(deployment_id), "state")
        place = _place(store, deployment_id) if state is not None else None
        if state is None or place is None:  # dropped: nothing can run it, and its lock lapses with its lease
            connection.srem(ACTIVE_KEY, deployment_id)
            continue
        locks.renew(*place, deployment_id)
        current = DeploymentState(as_text(state))
        if not current.finished and current_need(connection, deployment_id, current) is Repair.NONE:
            connection.delete(stuck_key(deployment_id))  # what repair() does then, without reading the record
            continue
        deployment = store.load(deployment_id)  # a repair may need all of it (its tasks, to enqueue them)
        repaired = repair(connection, deployment, grace) if deployment is not None else Repair.NONE
        if repaired is not Repair.NONE:
            log.warning("deployment %s was stuck (%s): repaired", deployment_id, repaired)
    for data_product, environment in locks.waiting_queues():
        start_next(connection, data_product, environment)


# deployment id -> (data product, environment), which never change: the reaper reads each record once per process,
# not every second (a record holds the descriptor: 1.5 MB of JSON at 1,000 components).
_PLACES: dict[str, tuple[str, str]] = {}


def _place(store: Store, deployment_id: str) -> tuple[str, str] | None:
    place = _PLACES.get(deployment_id)
    if place is None:
        deployment = store.load_static(deployment_id)
        if deployment is None:
            return None
        if len(_PLACES) >= 1024:
            _PLACES.clear()
        place = _PLACES[deployment_id] = (deployment.data_product, deployment.environment)
    return place


def start_reaper(connection: redis.Redis, stop: threading.Event,
                 beat: Callable[[], None] | None = None,
                 recheck: Callable[[], object] | None = None,
                 look_seconds: float = SWEEPS_DUE_LOOK_SECONDS) -> threading.Thread:
    """Run beat (the worker's heartbeat) and reap_once every REAPER_SECONDS in a daemon thread until stop is set;
    recheck (starting the periodic sweeps that have become due) every look_seconds."""
    def loop() -> None:
        next_recheck = time.monotonic() + look_seconds
        while not stop.wait(REAPER_SECONDS):
            try:
                if beat is not None:
                    beat()
                reap_once(connection)
                if recheck is not None and time.monotonic() >= next_recheck:
                    next_recheck = time.monotonic() + look_seconds
                    recheck()
            except redis.RedisError as error:
                log.warning("reaper round failed: %s", error)

    thread = threading.Thread(target=loop, name="meshbot-reaper", daemon=True)
    thread.start()
    return thread


def run_worker(connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    """Work on meshbot's queue (with the reaper alongside) until stopped; burst: until the queue is empty.

    connection is set to retry through Redis outages (ride_out_outages), whoever opened it.
    """
    ride_out_outages(connection)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    worker = MeshbotWorker([queue], connection=connection, serializer=JSONSerializer, name=name,
                           worker_ttl=WORKER_TTL)
    stop = threading.Event()
    # A long-running worker starts the periodic jobs (the catch-up sweep when configured, the drift and compliance
    # sweeps when something is deployed), and looks every minute whether those should start (a first deploy since):
    # the first deployment of a fresh installation is checked for drift and compliance within about a minute.
    start_reaper(connection, stop, worker.beat, recheck=None if burst else partial(start_due_sweeps, queue))
    if not burst:
        start_periodic_jobs(queue)
    try:
        return bool(worker.work(burst=burst, logging_level="WARNING", with_scheduler=False))
    finally:
        stop.set()
