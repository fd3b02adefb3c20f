"""`meshbot drift` for real: `python -m bot.cli` subprocesses on the embedded Redis, after a `meshbot deploy` to the
reference SQLite adapter over HTTP; exit 0 in sync, 1 drift, 2 input error, 3 could not check."""

from __future__ import annotations

import json

from tests.cli.test_deploy import EXAMPLE, PRODUCT, adapters_config
from tests.engine.test_drift import add_a_column_by_hand
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import adapter_server


def test_drift_in_sync_then_a_column_added_by_hand_then_an_adapter_down(meshbot, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        deployed = meshbot("deploy", EXAMPLE, "--config", config, "--workers", "2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr

        synced = meshbot("drift", PRODUCT, "--env", "development", "--config", config)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert synced.stdout.endswith("\nin sync: 3 in sync\n")

        add_a_column_by_hand(adapter.database)
        drifted = meshbot("drift", PRODUCT, "--env", "development", "--config", config)
        assert drifted.returncode == 1, drifted.stdout + drifted.stderr
        assert "~ urn:dmb:cmp:finance:cashflow:1:daily-cashflow (outputport): drifted\n" \
               "    column `currency` added (TEXT)\n" in drifted.stdout
        document = json.loads(meshbot("drift", PRODUCT, "--env", "development", "--config", config,
                                      "--format", "json").stdout)
        assert (document["status"], document["summary"]) == ("drift", "drift: 2 drifted, 1 in sync")

    with adapter_server() as unanswering:  # every adapter answers 404 now: nothing is checkable, no drift found
        gone = meshbot.config(adapters_config(unanswering.url), "gone.yaml")
        unchecked = meshbot("drift", PRODUCT, "--env", "development", "--config", gone)
    assert unchecked.returncode == 0, unchecked.stdout + unchecked.stderr
    assert unchecked.stdout.endswith("\nnothing checkable: 3 not checkable\n")
    down = meshbot.config(adapters_config("http://127.0.0.1:9"), "down.yaml")
    failed = meshbot("drift", PRODUCT, "--env", "development", "--config", down)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "could not check: 3 could not be checked" in failed.stdout


def test_drift_of_nothing_deployed_is_an_input_error(meshbot):
    result = meshbot("drift", "urn:dmb:dp:sales:orders:1", "--env", "qa")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "meshbot: nothing deployed of urn:dmb:dp:sales:orders:1 in qa\n"
