"""meshbot's domain: descriptor assembly, plans and the command line (no web or forge imports)."""

__version__ = "0.1.0"
