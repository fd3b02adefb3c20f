"""meshbot's domain, in layers that import one way: cli -> forge -> engine -> descriptor.

Beside them sit the modules every layer may use: config, home, logs and metrics (pyproject.toml's import-linter
contracts enforce all of it).
"""

__version__ = "0.1.0"
