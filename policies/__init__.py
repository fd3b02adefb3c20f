"""Governance: policy files, the engine that evaluates them, and the built-in checks."""
