"""Reading a repository into a data product descriptor, and editing its catalog-info.yaml files.

Owns safe YAML, entity discovery, assembly per environment, structure checks and source positions.
Imports nothing of `bot.engine`, `bot.forge`, `bot.cli`, nor of `vcs`, `policies` or `adapters`.
"""
