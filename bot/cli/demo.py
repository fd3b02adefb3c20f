"""`meshbot run`: check, plan and deploy the bundled example data product on this machine, embedded defaults."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bot.descriptor.yamldump import dump_yaml
from bot.home import meshbot_home

STORAGE_TEMPLATE = "urn:dmb:itm:sqlite-storage-provisioner:0"
OUTPUT_PORT_TEMPLATE = "urn:dmb:itm:sqlite-outputport-provisioner:0"


@contextmanager
def reference_adapter(database: Path) -> Iterator[str]:
    """The reference SQLite adapter in a child process on a free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "adapter", "serve", "--port", "0", "--db", str(database)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        match = re.search(r"listening on (\S+)", process.stdout.readline())
        if match is None:
            raise RuntimeError("the reference adapter did not start")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def demo_config(folder: Path, adapter_url: str) -> Path:
    """A server configuration that sends the example's SQLite templates to the reference adapter."""
    path = folder / "demo-config.yaml"
    path.write_text(dump_yaml({"adapters": [
        {"infrastructureTemplateId": STORAGE_TEMPLATE, "url": adapter_url, "timeout": 60},
        {"infrastructureTemplateId": OUTPUT_PORT_TEMPLATE, "url": adapter_url, "timeout": 60},
    ]}))
    return path


def deploy_example(example: Path, environment: str, run: Callable[[Sequence[str]], int]) -> int:
    """Deploy the example through `meshbot deploy` with the embedded Redis and local workers."""
    home = meshbot_home()
    database = home / "demo" / "reference-adapter.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    print(f"\nDeploying it to a reference SQLite tech adapter (database {database}):\n", flush=True)
    with reference_adapter(database) as url:
        config = demo_config(database.parent, url)
        return run(["deploy", str(example), "--env", environment, "--config", str(config), "--workers", "2"])
