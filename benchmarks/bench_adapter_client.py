"""Overhead of meshbot's tech adapter client per provision round trip, against raw HTTP calls in the same run.

Starts the reference SQLite adapter (`meshbot adapter serve`) in its own process, once synchronous and
once with --async (202 + token + polling), and times N provisions of the same storage component through
(a) TechAdapterClient.provision and (b) the bare minimum with requests: POST, then (async) GET the status
until it is not RUNNING, with the same poll schedule. Reports median and p99 of both and the client's
overhead (a - b).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.client import TechAdapterClient  # noqa: E402
from adapters.payloads import component_request  # noqa: E402

COMPONENT_ID = "urn:dmb:cmp:bench:client:1:ledger"
DESCRIPTOR = {
    "id": "urn:dmb:dp:bench:client:1",
    "kind": "dataproduct",
    "domain": "bench",
    "version": "1.0.0",
    "environment": "development",
    "components": [{
        "id": COMPONENT_ID,
        "kind": "storage",
        "name": "ledger",
        "version": "1.0.0",
        "infrastructureTemplateId": "urn:dmb:itm:sqlite-storage-provisioner:0",
        "specific": {"tables": [{"tableName": "transactions", "schema": [
            {"name": "transaction_id", "dataType": "TEXT", "constraint": "PRIMARY_KEY"},
            {"name": "amount", "dataType": "DECIMAL"},
            {"name": "booked_on", "dataType": "DATE", "constraint": "NOT_NULL"},
        ]}]},
    }],
}
POLL_INTERVAL = 0.005


def start_adapter(database: Path, asynchronous: bool) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "bot.cli", "adapter", "serve", "--port", "0", "--db", str(database)]
    if asynchronous:
        command += ["--async", "--async-delay", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"the adapter did not start: {line!r}")
    return process, match.group(1)


def raw_round_trip(session: requests.Session, url: str, body: dict) -> None:
    response = session.post(url + "/v1/provision", json=body, timeout=30)
    if response.status_code == 202:
        token = response.json()
        while True:
            status = session.get(f"{url}/v1/provision/{token}/status", timeout=30).json()
            if status["status"] != "RUNNING":
                break
            time.sleep(POLL_INTERVAL)
        assert status["status"] == "COMPLETED", status
    else:
        assert response.status_code == 200 and response.json()["status"] == "COMPLETED", response.text


def timed(call: Callable[[], None], count: int) -> list[float]:
    call()  # warm up: connection, first provision
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def measure(asynchronous: bool, count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_adapter(Path(folder) / "bench.db", asynchronous)
        try:
            body = component_request(DESCRIPTOR, COMPONENT_ID)
            client = TechAdapterClient(url, timeout=60, poll_interval=POLL_INTERVAL, poll_max_interval=POLL_INTERVAL)

            def through_client() -> None:
                result = client.provision(body)
                assert result.ok, result.message

            session = requests.Session()
            # Interleave the two so that machine noise hits both alike.
            client_samples: list[float] = []
            raw_samples: list[float] = []
            for _ in range(5):
                client_samples += timed(through_client, count // 5)
                raw_samples += timed(lambda: raw_round_trip(session, url, body), count // 5)
        finally:
            process.terminate()
            process.wait(10)
    return {"client": summary(client_samples), "raw": summary(raw_samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="round trips per mode and per variant (500)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    figures = {mode: measure(mode == "async", arguments.calls) for mode in ("sync", "async")}
    if arguments.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"tech adapter client overhead, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"command: python benchmarks/bench_adapter_client.py --calls {arguments.calls}")
    print(f"{'mode':<6} {'variant':<8} {'median ms':>10} {'p99 ms':>9}")
    for mode, variants in figures.items():
        for variant, numbers in variants.items():
            print(f"{mode:<6} {variant:<8} {numbers['median']:>10.2f} {numbers['p99']:>9.2f}")
        overhead = variants["client"]["median"] - variants["raw"]["median"]
        ratio = variants["client"]["median"] / variants["raw"]["median"]
        print(f"{mode:<6} overhead of the client: {overhead:+.2f} ms per call at the median (x{ratio:.2f} of raw)")


if __name__ == "__main__":
    main()
