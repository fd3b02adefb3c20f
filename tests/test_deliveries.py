"""Webhook de-duplication in Redis: a redelivered webhook acts once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bot.deliveries import delivery_key, first_delivery, forget_delivery


def test_a_delivery_is_first_once(redis_engine):
    connection = redis_engine.redis
    assert first_delivery(connection, "github", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert not first_delivery(connection, "github", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first_delivery(connection, "gitlab", "72d3162e-cc78-11e3-81ab-4c9367dc0958")  # forges apart


def test_the_record_expires(redis_engine):
    connection = redis_engine.redis
    assert first_delivery(connection, "gitlab", "d1", ttl_seconds=120)
    assert 0 < connection.ttl(delivery_key("gitlab", "d1")) <= 120


def test_forgotten_delivery_is_first_again(redis_engine):
    connection = redis_engine.redis
    assert first_delivery(connection, "github", "d2")
    forget_delivery(connection, "github", "d2")
    assert first_delivery(connection, "github", "d2")


def test_concurrent_arrivals_act_once(redis_engine):
    connection = redis_engine.redis
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: first_delivery(connection, "github", "same"), range(32)))
    assert results.count(True) == 1


def test_long_ids_make_short_keys():
    key = delivery_key("gitlab", "x" * 10_000)
    assert len(key) < 120 and key != delivery_key("gitlab", "x" * 9_999)
