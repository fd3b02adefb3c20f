"""The chaos suite, short: one fault of each kind into a real `meshbot serve` under load, and every invariant."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.deploy_harness import ROOT


def load_chaos() -> ModuleType:
    """benchmarks/chaos.py as a module (benchmarks/ is scripts, not a package the tests depend on)."""
    if "chaos_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("chaos_run", ROOT / "benchmarks" / "chaos.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["chaos_run"] = module  # its dataclasses look their module up while being defined
        spec.loader.exec_module(module)
    return sys.modules["chaos_run"]


def test_a_short_chaos_run_loses_nothing_and_leaves_nothing_stuck(tmp_path: Path) -> None:
    """Six faults (worker SIGKILL, Redis restart and SIGKILL, adapter 500 and hang, slow clients) under load."""
    chaos = load_chaos()
    report = chaos.run(chaos.Options(faults=len(chaos.KINDS), seed=11, gap=(0.5, 1.5), release_every=3.0,
                                     catch_up_seconds=5, settle_timeout=150.0, folder=tmp_path))
    figures = report.figures
    assert report.violations == [], chaos.summary(report)
    assert sorted(figures["faultsByKind"]) == sorted(chaos.KINDS)
    assert (figures["lost"], figures["stuck"], figures["duplicateComments"], figures["locksLeft"]) == (0, 0, 0, 0)
    assert figures["readyAfterSeconds"]["max"] <= 10.0, chaos.summary(report)
    assert figures["deliveries"]["accepted"] >= 5 and figures["releasesAccepted"] >= 1, chaos.summary(report)
    assert figures["finalRelease"]["status"] == "DEPLOYED", chaos.summary(report)
