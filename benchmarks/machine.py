"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import platform
import subprocess


def cpu_model() -> str:
    """The CPU model name as `lscpu` gives it (the processor string where lscpu is missing)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
