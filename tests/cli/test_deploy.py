"""`meshbot deploy`, `undeploy`, `status` and `worker` for real: `python -m bot.cli` subprocesses on the embedded Redis
(MESHBOT_HOME in tmp_path, no REDIS_URL), local worker subprocesses, and the reference SQLite adapter over HTTP.

After every test no redis-server and no worker of the test's MESHBOT_HOME may be left running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.engine.local_workers import LocalWorkers
from bot.engine.redis_connection import connect, embedded_url, stop_embedded
from tests.servers.reference_adapter import running_adapter
from tests.servers.tech_adapter import Reply, adapter_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/finance-cashflow"  # relative to ROOT, where the commands run
PRODUCT = "urn:dmb:dp:finance:cashflow:1"
LEDGER = "urn:dmb:cmp:finance:cashflow:1:ledger"


@dataclass
class Meshbot:
    """Runs `python -m bot.cli ...` with its own MESHBOT_HOME and no REDIS_URL."""

    home: Path
    directory: Path

    def environment(self) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("REDIS_URL", "MESHBOT_CONFIG", "FORCE_COLOR")}
        return {**environment, "MESHBOT_HOME": str(self.home), "NO_COLOR": "1"}

    def __call__(self, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=ROOT, env=self.environment(),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def config(self, text: str, name: str = "meshbot.yaml") -> str:
        path = self.directory / name
        path.write_text(text)
        return str(path)


def adapters_config(url: str, storage: bool = True, outputport: bool = True, extra: str = "") -> str:
    entries = [(STORAGE_TEMPLATE_ID, storage), (OUTPUT_PORT_TEMPLATE_ID, outputport)]
    lines = ["adapters:"]
    for template, wanted in entries:
        if wanted:
            lines += [f"  - infrastructureTemplateId: {template}", f"    url: {url}", "    timeout: 20"]
    return "\n".join(lines) + "\n" + extra


def _processes_of(home: Path) -> list[psutil.Process]:
    """The redis-server and worker processes started for this MESHBOT_HOME."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if "bot worker" in cmdline and process.environ().get("MESHBOT_HOME") == str(home):
                found.append(process)
            elif (process.info["name"] or "").startswith("redis-server") and _serves(process, home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _serves(process: psutil.Process, home: Path) -> bool:
    """Whether a redis-server is the embedded server of home (its registry names its pid file)."""
    registry = home / "redis" / "meshbot.rdb.settings"
    try:
        pidfile = Path(json.loads(registry.read_text())["pidfile"])
        return int(pidfile.read_text().strip()) == process.pid
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture
def meshbot(tmp_path) -> Iterator[Meshbot]:
    home = tmp_path / "home"
    runner = Meshbot(home, tmp_path)
    yield runner
    # The embedded server stops with the last process holding it; kill whatever a failure left behind.
    deadline = time.monotonic() + 5
    left = _processes_of(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _processes_of(home)
    for process in left:
        process.send_signal(signal.SIGKILL)
    assert [process.cmdline() for process in left] == [], "processes left behind"


def sqlite_objects(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return {f"{kind} {name}" for kind, name in rows if not name.startswith(("sqlite_", "_meshbot_"))}


def test_deploy_then_status_in_a_new_process_then_undeploy(meshbot, tmp_path):
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        deployed = meshbot("deploy", EXAMPLE, "--config", config, "--workers", "2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        lines = deployed.stdout.splitlines()
        assert "validated; running 3 tasks" in lines
        ledger = next(line for line in lines if LEDGER in line)
        assert ledger.startswith("✓ storage ") and " s  storage component " in ledger
        assert sum(line.startswith("✓ ") for line in lines) == 3
        assert lines[-2] == "DEPLOYED: 3 completed"
        deployment_id = lines[-1].removeprefix("deployment ")
        assert sqlite_objects(database) == {"table transactions", "table daily_cashflow",
                                            "view daily_cashflow_v", "view transactions_v"}

        # A new process: the embedded server was stopped with the deploy and comes back from its files.
        status = meshbot("status", PRODUCT, "--env", "development", "--format", "json")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert list(document) == ["dataProduct", "environment", "status", "version", "deployment", "components"]
        assert (document["dataProduct"], document["environment"], document["status"], document["version"]) == (
            PRODUCT, "development", "DEPLOYED", "1.0.0")
        assert document["deployment"]["id"] == deployment_id
        assert document["deployment"]["state"] == "DEPLOYED"
        assert document["deployment"]["operation"] == "deploy"
        assert document["deployment"]["startedBy"].startswith("cli:")
        assert {"createdAt", "startedAt", "finishedAt", "message"} <= set(document["deployment"])
        assert {component["id"]: component["status"] for component in document["components"]} == {
            f"urn:dmb:cmp:finance:cashflow:1:{name}": "DEPLOYED" for name in ("daily-cashflow", "ledger",
                                                                             "transactions")}
        every = meshbot("status", PRODUCT, "--format", "json")
        assert [entry["environment"] for entry in json.loads(every.stdout)] == ["development"]

        # the data product's id alone: no repository is read
        undeployed = meshbot("undeploy", PRODUCT, "--config", config, "--remove-data", "--workers", "2",
                             "--format", "json")
        assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
        outcome = json.loads(undeployed.stdout)
        assert (outcome["state"], outcome["operation"], outcome["message"]) == ("NOT_DEPLOYED", "undeploy",
                                                                                "3 completed")
        assert [set(task) for task in outcome["tasks"]] == [
            {"id", "kind", "state", "message", "startedAt", "finishedAt", "attempts"}] * 3
        assert sqlite_objects(database) == set()

        text = meshbot("status", PRODUCT, "--env", "development")
        assert text.stdout.splitlines()[0] == f"{PRODUCT} 1.0.0 in development: NOT_DEPLOYED"
        assert text.returncode == 0  # deployed, then undeployed: known, and not deployed

        # Never deployed in production, nor anywhere under another id: exit 1, said on stderr or in the document.
        elsewhere = meshbot("status", PRODUCT, "--env", "production")
        assert (elsewhere.returncode, elsewhere.stdout, elsewhere.stderr) == (
            1, "", f"meshbot: no deployment of {PRODUCT} in production (it has records in: development)\n")
        unknown = "urn:dmb:dp:finance:cashflwo:1"
        anywhere = meshbot("status", unknown)
        assert (anywhere.returncode, anywhere.stdout, anywhere.stderr) == (
            1, "", f"meshbot: no deployment of {unknown} in any environment\n")
        document = meshbot("status", unknown, "--format", "json")
        assert document.returncode == 1 and document.stderr == ""
        assert json.loads(document.stdout) == {
            "dataProduct": unknown, "environment": None, "status": "NOT_DEPLOYED", "version": None,
            "deployment": None, "components": [], "message": f"no deployment of {unknown} in any environment"}


def test_undeploying_what_was_never_deployed_says_so_and_records_nothing(meshbot):
    with adapter_server() as adapter:  # answers nothing: no adapter may be called
        config = meshbot.config(adapters_config(adapter.url, extra="environments: [development, production]\n"))
        never = meshbot("status", PRODUCT, "--env", "production", "--format", "json")
        assert never.returncode == 1  # never deployed anywhere: unknown
        assert json.loads(never.stdout)["status"] == "NOT_DEPLOYED"
        assert json.loads(never.stdout)["deployment"] is None
        by_path = meshbot("undeploy", EXAMPLE, "--env", "production", "--config", config, "--remove-data")
        assert (by_path.returncode, by_path.stdout, by_path.stderr) == (
            0, f"{PRODUCT}: nothing deployed in production\n", "")
        by_id = meshbot("undeploy", PRODUCT, "--config", config, "--format", "json")
        assert by_id.returncode == 0, by_id.stdout + by_id.stderr
        assert json.loads(by_id.stdout) == {"dataProduct": PRODUCT, "environment": "development",
                                            "status": "NOT_DEPLOYED", "deployment": None,
                                            "message": "nothing deployed in development"}
        assert adapter.requests() == []
    for environment in ("production", "development"):
        status = meshbot("status", PRODUCT, "--env", environment, "--format", "json")
        assert status.returncode == 1  # no deployment recorded: still unknown
        assert (json.loads(status.stdout)["status"], json.loads(status.stdout)["deployment"]) == ("NOT_DEPLOYED", None)
    neither = meshbot("undeploy", "no/such/folder", "--config", config)
    assert (neither.returncode, neither.stderr) == (2, "meshbot: 'no/such/folder' is neither a data product "
                                                       "repository folder nor a data product id (urn:...)\n")


def test_undeploy_after_a_working_tree_edit_removes_what_was_deployed(meshbot, tmp_path):
    import shutil

    repository = tmp_path / "cashflow"
    shutil.copytree(ROOT / EXAMPLE, repository)
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        deployed = meshbot("deploy", str(repository), "--config", config, "--workers", "2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        deployment_id = deployed.stdout.splitlines()[-1].removeprefix("deployment ")
        assert sqlite_objects(database) == {"table transactions", "table daily_cashflow",
                                            "view daily_cashflow_v", "view transactions_v"}
        # The working tree moves on: an output port removed, the other's view renamed and a column changed.
        shutil.rmtree(repository / "components" / "transactions")
        port = repository / "components" / "daily-cashflow" / "catalog-info.yaml"
        port.write_text(port.read_text().replace("viewName: daily_cashflow_v", "viewName: cashflow_by_day")
                        .replace("- name: net_amount", "- name: net_cash"))

        # The deployed descriptor's output ports need their adapter, whatever the working tree holds.
        storage_only = meshbot.config(adapters_config(adapter.url, outputport=False), name="storage-only.yaml")
        refused = meshbot("undeploy", str(repository), "--config", storage_only)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.splitlines()[0] == (
            f"meshbot: cannot undeploy {PRODUCT} from development: the descriptor of deployment {deployment_id} "
            "has tasks no configured tech adapter serves")
        assert sum(f"'{OUTPUT_PORT_TEMPLATE_ID}'" in line for line in refused.stderr.splitlines()) == 2

        undeployed = meshbot("undeploy", str(repository), "--config", config, "--remove-data", "--workers", "2")
        assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
        lines = undeployed.stdout.splitlines()
        assert "removing data: the tech adapters are asked to delete it" in lines
        assert (f"undeploy of {PRODUCT} 1.0.0 in development (the descriptor of deployment {deployment_id}): "
                "deployment ") in undeployed.stdout
        assert lines[-2] == "NOT_DEPLOYED: 3 completed"
        assert sqlite_objects(database) == set()  # the working tree's descriptor would have left views behind
    status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
    assert (status["status"], status["deployment"]["operation"]) == ("NOT_DEPLOYED", "undeploy")
    again = meshbot("undeploy", PRODUCT, "--config", config)
    assert (again.returncode, again.stdout) == (0, f"{PRODUCT}: nothing deployed in development\n")


def test_a_deploy_that_drops_a_deployed_column_is_blocked_against_what_is_deployed(meshbot, tmp_path):
    import shutil

    repository = tmp_path / "cashflow"
    shutil.copytree(ROOT / EXAMPLE, repository)
    with running_adapter(tmp_path / "adapter.db") as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        first = meshbot("deploy", str(repository), "--config", config, "--workers", "1")
        assert first.returncode == 0, first.stdout + first.stderr
        port = repository / "components" / "daily-cashflow" / "catalog-info.yaml"
        port.write_text(port.read_text().replace("        - name: net_amount\n          dataType: DECIMAL\n", ""))
        second = meshbot("deploy", str(repository), "--config", config, "--workers", "1")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "BLOCKING  no-breaking-changes" in second.stdout and "'net_amount' was dropped" in second.stdout
    assert "nothing was deployed: a governance policy blocks" in second.stderr
    status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
    assert status["deployment"]["id"] == first.stdout.splitlines()[-1].removeprefix("deployment ")


def test_a_blocking_policy_deploys_nothing(meshbot, tmp_path):
    policies = tmp_path / "governance"
    policies.mkdir()
    (policies / "needs-sla.yaml").write_text(
        "id: needs-sla\ndescription: every data product states its SLA\ntarget: dataproduct\n"
        "severity: error\nstatus: enabled\nschema:\n  type: object\n  required: [sla]\n")
    config = meshbot.config(adapters_config("http://127.0.0.1:9/x", extra="policies: [governance]\n"))
    result = meshbot("deploy", EXAMPLE, "--config", config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "needs-sla" in result.stdout and "Result: BLOCKED" in result.stdout
    assert not (meshbot.home / "redis").exists()  # Redis was never even started


def test_an_unresolved_adapter_is_an_input_error_with_its_position(meshbot):
    config = meshbot.config(adapters_config("http://127.0.0.1:9/x", outputport=False))
    result = meshbot("deploy", EXAMPLE, "--config", config)
    assert result.returncode == 2
    errors = result.stderr.splitlines()
    assert errors == [
        f"{EXAMPLE}/components/{name}/catalog-info.yaml:14:31: no tech adapter serves infrastructureTemplateId "
        f"'{OUTPUT_PORT_TEMPLATE_ID}' in environment 'development' (of 'urn:dmb:cmp:finance:cashflow:1:{name}'); "
        f"the server configuration has adapters for: {STORAGE_TEMPLATE_ID}"
        for name in ("daily-cashflow", "transactions")
    ]
    undeploy = meshbot("undeploy", EXAMPLE, "--config", config)  # nothing deployed: no adapter is needed
    assert (undeploy.returncode, undeploy.stdout) == (0, f"{PRODUCT}: nothing deployed in development\n")


def test_an_unknown_environment_is_an_input_error(meshbot):
    config = meshbot.config(adapters_config("http://127.0.0.1:9/x", extra="environments: [development, production]\n"))
    result = meshbot("deploy", EXAMPLE, "--env", "staging", "--config", config)
    assert result.returncode == 2
    assert result.stderr.strip() == ("meshbot: environment 'staging' is not in the server configuration "
                                     "(known: development, production)")
    assert meshbot("status", PRODUCT, "--env", "staging", "--config", config).returncode == 2


def test_a_failing_adapter_leaves_the_product_corrupt(meshbot):
    with adapter_server() as adapter:
        adapter.reply("POST", "/v1/validate", Reply(200, {"valid": True, "error": {"errors": []}}))
        adapter.reply("POST", "/v1/provision", Reply(200, {"status": "FAILED", "result": "disk full"}))
        config = meshbot.config(adapters_config(adapter.url))
        result = meshbot("deploy", EXAMPLE, "--config", config, "--workers", "2", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["state"] == "CORRUPT"
    states = {task["id"]: task["state"] for task in outcome["tasks"]}
    assert states[LEDGER] == "FAILED"
    assert set(states.values()) == {"FAILED", "SKIPPED"}
    assert next(task for task in outcome["tasks"] if task["id"] == LEDGER)["message"] == "disk full"


def test_worker_burst_says_where_it_connects(meshbot):
    result = meshbot("worker", "--burst", "--name", "probe")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("meshbot worker probe: working on the embedded Redis unix://") for line in lines)
    assert any(" INFO bot.engine.redis_connection [" in line and "started the embedded Redis server" in line
               for line in lines)  # meshbot's log, on by default


def test_ctrl_c_stops_the_local_workers_but_not_the_deployment(meshbot):
    with adapter_server() as adapter:
        adapter.reply("POST", "/v1/validate", Reply(200, {"valid": True, "error": {"errors": []}}))
        adapter.reply("POST", "/v1/provision", Reply(200, {"status": "COMPLETED", "result": "ok"}, delay=1.0))
        config = meshbot.config(adapters_config(adapter.url))
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "deploy", EXAMPLE, "--config", config,
                                    "--workers", "1"], cwd=ROOT, env=meshbot.environment(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("validated"):
                break
        # SIGTERM takes the same path as Ctrl-C; SIGINT itself may be ignored when the test runner was started
        # in the background by a non-interactive shell (the child inherits that), SIGTERM never is.
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stdout + stderr
        assert "is not cancelled" in stderr and f"meshbot status {PRODUCT} --env development" in stderr
        assert not [p for p in _processes_of(meshbot.home) if "bot worker" in " ".join(p.cmdline())]

        # The deployment waits in Redis for a worker: one in burst mode takes it to its end.
        worker = meshbot("worker", "--burst")
        assert worker.returncode == 0, worker.stderr
        status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
        assert (status["status"], status["deployment"]["state"]) == ("DEPLOYED", "DEPLOYED")


# ---------------------------------------------------------------------- the local workers' stop

STOP_DEADLINE = 2.0  # seconds from SIGTERM to exit; process managers give 10-30 s before they SIGKILL


@pytest.fixture
def local_workers(meshbot, monkeypatch) -> Iterator[Callable[[int], LocalWorkers]]:
    """Starts LocalWorkers on the embedded Redis, held by this process as `meshbot run` and `serve` hold it."""
    monkeypatch.setenv("MESHBOT_HOME", str(meshbot.home))
    monkeypatch.delenv("REDIS_URL", raising=False)
    started: list[LocalWorkers] = []

    def start(count: int) -> LocalWorkers:
        url = embedded_url()
        workers = LocalWorkers(url, count)
        started.append(workers)
        workers.start()
        pids = [str(process.pid).encode() for process in workers.processes]
        deadline = time.monotonic() + 30
        # Idle in RQ's records (by then its signal handlers are set), and these processes' records, not older ones'
        while worker_fields(workers, "state") != [b"idle"] * count or worker_fields(workers, "pid") != pids:
            assert time.monotonic() < deadline and workers.alive() == count, (workers.log_path or Path()).read_text()
            time.sleep(0.05)
        return workers

    try:
        yield start
    finally:
        for workers in started:
            workers.stop(grace=0)
        stop_embedded()


def worker_fields(workers: LocalWorkers, name: str) -> list[bytes | None]:
    """A field of each local worker's hash in Redis (RQ's record of it)."""
    with connect(workers.url) as client:  # closed: a connection left open would keep the embedded server up
        return [client.hget(f"rq:worker:local-{os.getpid()}-{index}", name) for index in range(workers.count)]


def stop_seconds(workers: LocalWorkers) -> float:
    """SIGTERM the workers as `meshbot run` and `serve` do, SIGKILLing those still running after STOP_DEADLINE."""
    began = time.monotonic()
    workers.stop(grace=STOP_DEADLINE)
    return time.monotonic() - began


def test_idle_local_workers_stop_within_two_seconds_of_sigterm(local_workers):
    workers = local_workers(3)
    seconds = stop_seconds(workers)
    log = (workers.log_path or Path()).read_text()
    assert [process.returncode for process in workers.processes] == [0, 0, 0], log  # -9: killed at the deadline
    assert seconds < STOP_DEADLINE


def test_local_workers_stop_within_two_seconds_of_sigterm_between_jobs(meshbot, local_workers, tmp_path):
    workers = local_workers(3)

    def jobs_done() -> list[int]:
        return [int(count or 0) for count in worker_fields(workers, "successful_job_count")]

    with running_adapter(tmp_path / "adapter.db") as adapter:
        # redis_url: the deploy uses these workers, none of its own. Its five jobs may leave one idle: then again.
        config = meshbot.config(adapters_config(adapter.url, extra=f"redis_url: {workers.url}\n"))
        for operation in ("deploy", "undeploy", "deploy", "undeploy"):
            result = meshbot(operation, EXAMPLE, "--config", config)
            assert result.returncode == 0, result.stdout + result.stderr
            if all(jobs_done()):
                break
    assert all(jobs_done()), jobs_done()
    seconds = stop_seconds(workers)
    assert [process.returncode for process in workers.processes] == [0, 0, 0], (workers.log_path or Path()).read_text()
    assert seconds < STOP_DEADLINE
