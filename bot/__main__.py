"""Run the meshbot command line as `python -m bot`."""

import sys

from bot.cli import main

sys.exit(main())
