"""The local workers' supervisor: how long it waits before replacing a worker that exited."""

from __future__ import annotations

from bot.engine.local_workers import MAX_BACKOFF_SECONDS, STABLE_SECONDS, restart_delay


def test_a_worker_that_keeps_dying_is_replaced_with_back_off():
    assert restart_delay(0.0, STABLE_SECONDS + 1) == 0.0  # after a long run: at once
    delays, previous = [], 0.0
    for _ in range(8):
        previous = restart_delay(previous, 0.5)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]
    assert restart_delay(MAX_BACKOFF_SECONDS, STABLE_SECONDS) == 0.0  # it ran long enough: the back-off resets
