"""`meshbot deploy` through Redis outages: it follows through a blip, and says so (exit 3) when contact is lost.

A real redis-server (killed and started again), a real `meshbot worker`, a scripted adapter that takes a while per
call, and `meshbot deploy` as a subprocess following the deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_deploy import EXAMPLE, adapters_config
from tests.deploy_harness import ROOT, scripted_adapter, wait_for
from tests.engine.test_redis_outage import server as server
from tests.engine.test_redis_outage import start_worker


def deploy(server, home: Path, config: Path, retries: int | None) -> subprocess.Popen[str]:
    """`meshbot deploy EXAMPLE` on server's Redis, following the deployment."""
    environment = {key: value for key, value in os.environ.items() if key != "MESHBOT_CONFIG"}
    environment.update({"REDIS_URL": server.url, "MESHBOT_HOME": str(home), "NO_COLOR": "1"})
    if retries is not None:
        environment["MESHBOT_REDIS_OUTAGE_RETRIES"] = str(retries)
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "deploy", EXAMPLE, "--config", str(config)], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_deploy_follows_through_a_redis_blip_and_ends_deployed(server, tmp_path):
    home = tmp_path / "home"
    worker = start_worker(server, home, "w0")
    try:
        with scripted_adapter(delay=1.0) as adapter:
            config = tmp_path / "meshbot.yaml"
            config.write_text(adapters_config(adapter.url))
            following = deploy(server, home, config, retries=None)
            wait_for(lambda: adapter.requests("/v1/provision"), 30, "a provision call in flight")
            server.kill()
            time.sleep(2.0)  # the blip under test
            server.start()
            out, err = following.communicate(timeout=60)
        assert following.returncode == 0, out + err
        assert "DEPLOYED: 3 completed" in out
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)


def test_deploy_that_loses_redis_exits_3_and_says_how_to_follow_the_deployment(server, tmp_path):
    home = tmp_path / "home"
    worker = start_worker(server, home, "w0")
    try:
        with scripted_adapter(delay=2.0) as adapter:
            config = tmp_path / "meshbot.yaml"
            config.write_text(adapters_config(adapter.url))
            following = deploy(server, home, config, retries=2)  # gives up after about 0.15 s of outage
            wait_for(lambda: adapter.requests("/v1/provision"), 30, "a provision call in flight")
            server.kill()
            out, err = following.communicate(timeout=60)
        assert following.returncode == 3, out + err
        assert "meshbot: lost contact with Redis at unix://" in err
        assert "may still be running: follow it with `meshbot status urn:dmb:dp:finance:cashflow:1 --env " \
               "development` once Redis answers" in err
    finally:
        worker.kill()
        worker.wait(20)
