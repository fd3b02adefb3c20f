"""Plans and deployments: the DAG of tech adapter calls run as RQ jobs, their records and locks in Redis.

Owns the workers, the store, leases, recovery of stuck deployments and the status of what is deployed.
Imports `bot.descriptor` and `adapters`, never `bot.forge` or `bot.cli`.
"""
