"""Webhook de-duplication: forges redeliver, and a delivery must act once however many replicas receive it."""

from __future__ import annotations

import hashlib

import redis

DELIVERY_TTL_SECONDS = 7 * 24 * 3600  # GitHub redelivers up to 3 days back; GitLab retries within hours
KEY_PREFIX = "meshbot:webhook-delivery"
MAX_ID_LENGTH = 200


def delivery_key(forge: str, delivery_id: str) -> str:
    """The Redis key recording that a forge's delivery was received (long ids hashed, so keys stay small)."""
    if len(delivery_id) > MAX_ID_LENGTH:
        delivery_id = "sha256-" + hashlib.sha256(delivery_id.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{KEY_PREFIX}:{forge}:{delivery_id}"


def first_delivery(
    connection: redis.Redis, forge: str, delivery_id: str, ttl_seconds: int = DELIVERY_TTL_SECONDS
) -> bool:
    """Record the delivery and say whether this is its first arrival (atomic: SET NX EX)."""
    return bool(connection.set(delivery_key(forge, delivery_id), 1, nx=True, ex=ttl_seconds))


def forget_delivery(connection: redis.Redis, forge: str, delivery_id: str) -> None:
    """Drop the record of a delivery that could not be acted on, so that its redelivery is not a duplicate."""
    connection.delete(delivery_key(forge, delivery_id))
