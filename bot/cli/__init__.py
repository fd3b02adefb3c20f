"""The `meshbot` command: check, plan, deploy, serve, worker, templates and the demo.

The top layer: it may import every other part of meshbot, and nothing imports it.
"""
