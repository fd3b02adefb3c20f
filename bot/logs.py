"""meshbot's own log lines on stderr: what each process receives and does, at MESHBOT_LOG_LEVEL (INFO by default)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LOG_LEVEL_VARIABLE = "MESHBOT_LOG_LEVEL"
DEFAULT_LEVEL = "INFO"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def configure_logging(stream: TextIO | None = None) -> None:
    """Send log records at the configured level and above to stream (stderr); an operator's own setup is kept.

    An unknown MESHBOT_LOG_LEVEL falls back to INFO with a warning, rather than stopping the service.
    """
    root = logging.getLogger()
    if root.handlers:  # configured already (by the embedding program, or an earlier call)
        return
    wanted = os.environ.get(LOG_LEVEL_VARIABLE, "").strip().upper() or DEFAULT_LEVEL
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(wanted if wanted in LEVELS else DEFAULT_LEVEL)
    if wanted not in LEVELS:
        logging.getLogger("meshbot").warning("%s=%r is not one of %s: logging at %s", LOG_LEVEL_VARIABLE, wanted,
                                             ", ".join(LEVELS), DEFAULT_LEVEL)
