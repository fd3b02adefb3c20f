"""The chaos suite, short: one fault of each kind into a real `meshbot serve` under load, and every invariant."""

from __future__ import annotations

from pathlib import Path

from benchmarks.chaos import KINDS, Options, run, summary


def test_a_short_chaos_run_loses_nothing_and_leaves_nothing_stuck(tmp_path: Path) -> None:
    """Six faults (worker SIGKILL, Redis restart and SIGKILL, adapter 500 and hang, slow clients) under load."""
    report = run(Options(faults=len(KINDS), seed=11, gap=(0.5, 1.5), release_every=3.0, catch_up_seconds=5,
                         settle_timeout=150.0, folder=tmp_path))
    figures = report.figures
    assert report.violations == [], summary(report)
    assert sorted(figures["faultsByKind"]) == sorted(KINDS)
    assert (figures["lost"], figures["stuck"], figures["duplicateComments"], figures["locksLeft"]) == (0, 0, 0, 0)
    assert figures["readyAfterSeconds"]["max"] <= 10.0, summary(report)
    assert figures["deliveries"]["accepted"] >= 5 and figures["releasesAccepted"] >= 1, summary(report)
    assert figures["finalRelease"]["status"] == "DEPLOYED", summary(report)
