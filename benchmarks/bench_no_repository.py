"""Benchmark `meshbot check` on a big folder that holds no data product repository (issue 15).

Generates, into a temporary folder, --files small files spread over nested folders, with no `.git`
and no catalog-info.yaml anywhere, and times (median over --repeat runs, time.perf_counter):

  assembly     bot.cli.common.assemble_folder(FOLDER, "development")   (reading the folder, or refusing it)
  in-process   bot.cli.main.main(["check", FOLDER])   (what the command does after start-up, policy loading included)
  the CLI      `python -m bot.cli check FOLDER` as a subprocess (wall time, start-up included)
  start-up     `python -m bot.cli --version` (wall time), for comparison

and prints the exit code and the first line of what the command said on stderr.

    python benchmarks/bench_no_repository.py                # 20,000 files, 5 repeats
    python benchmarks/bench_no_repository.py --files 100000 --json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]


def generate(folder: Path, files: int, per_folder: int = 50) -> None:
    """files small text files, per_folder to a folder, folders nested three deep."""
    for index in range(files):
        group = index // per_folder
        directory = folder / f"d{group // 100:03d}" / f"e{group % 100:02d}" / "src"
        if index % per_folder == 0:
            directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:06d}.txt").write_text(f"file {index}\n")


def assembly(folder: Path) -> float:
    """Seconds of assemble_folder on the folder (it raises InputErrors: no data product)."""
    from bot.cli.common import assemble_folder
    from bot.descriptor.errors import InputErrors

    started = time.perf_counter()
    try:
        assemble_folder(str(folder), "development")
    except InputErrors:
        pass
    return time.perf_counter() - started


def in_process(folder: Path) -> tuple[float, int, str]:
    """Seconds, exit code and first stderr line of main(["check", folder]) in this process."""
    from bot.cli.main import main

    stderr = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", str(folder)])
    return time.perf_counter() - started, code, (stderr.getvalue().splitlines() or [""])[0]


def subprocess_wall(*arguments: str) -> tuple[float, int, str]:
    """Wall seconds, exit code and first stderr line of `python -m bot.cli ARGUMENTS`."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=ROOT, capture_output=True,
                               text=True, env={**os.environ, "NO_COLOR": "1"}, check=False)
    return time.perf_counter() - started, completed.returncode, (completed.stderr.splitlines() or [""])[0]


def main() -> int:
    """Generate the folder, time the command, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshbot-bench-norepo-") as temporary:
        folder = Path(temporary) / "big"
        folder.mkdir()
        generate(folder, arguments.files)
        assemblies = [assembly(folder) for _ in range(arguments.repeat)]
        runs = [in_process(folder) for _ in range(arguments.repeat)]
        cli = [subprocess_wall("check", str(folder)) for _ in range(arguments.repeat)]
        startup = [subprocess_wall("--version") for _ in range(arguments.repeat)]
    figures: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}, {platform.system()}",
        "files": arguments.files,
        "repeat": arguments.repeat,
        "assembly_ms": {"median": statistics.median(assemblies) * 1000, "min": min(assemblies) * 1000},
        "in_process_ms": {"median": statistics.median(r[0] for r in runs) * 1000,
                          "min": min(r[0] for r in runs) * 1000},
        "cli_ms": {"median": statistics.median(r[0] for r in cli) * 1000, "min": min(r[0] for r in cli) * 1000},
        "startup_ms": {"median": statistics.median(r[0] for r in startup) * 1000},
        "exit_code": runs[0][1],
        "stderr": runs[0][2],
    }
    if arguments.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{figures['date']}, {figures['machine']}")
        print(f"folder of {arguments.files:,} files, no .git, no catalog-info.yaml; {arguments.repeat} runs each")
        print(f"  assemble_folder(FOLDER): median {figures['assembly_ms']['median']:,.2f} ms, "
              f"min {figures['assembly_ms']['min']:,.2f} ms")
        print(f"  in-process main(['check', FOLDER]): median {figures['in_process_ms']['median']:,.1f} ms, "
              f"min {figures['in_process_ms']['min']:,.1f} ms")
        print(f"  CLI `python -m bot.cli check FOLDER` (wall): median {figures['cli_ms']['median']:,.0f} ms, "
              f"min {figures['cli_ms']['min']:,.0f} ms")
        print(f"  CLI start-up `python -m bot.cli --version` (wall): median {figures['startup_ms']['median']:,.0f} ms")
        print(f"  exit code {figures['exit_code']}; stderr: {figures['stderr']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
