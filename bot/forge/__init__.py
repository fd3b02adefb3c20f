"""What meshbot does on forge events and merge request commands: reviews, releases, /deploy, /import.

Owns webhook parsing, signatures, de-duplication and routing, and the comments and statuses it writes.
Uses `bot.engine` and `bot.descriptor`, `vcs`, `policies` and `adapters`; never imports `bot.cli`.
"""
