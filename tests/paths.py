"""Where tests find the repository and the shared reference folder that sits beside it (../shared/reference)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
