"""Deployments recorded straight into the engine's store, as a release from a forge repository leaves them."""

from __future__ import annotations

import redis

from bot.engine.deployment import Operation
from bot.engine.store import Deployment, PlannedTask, Store, new_deployment_id


def record_deployment(connection: redis.Redis, data_product: str, forge: str, project: str,
                      environment: str = "production", version: str = "1.0.0") -> str:
    """A deployment of data_product reported to forge:project (its repository); its id."""
    domain = data_product.split(":")[3] if data_product.count(":") >= 4 else "finance"
    descriptor = {"id": data_product, "domain": domain, "name": data_product.split(":")[-2], "version": version,
                  "description": f"{data_product} for the browser tests", "components": [
                      {"id": f"{data_product}:storage", "kind": "storage"},
                      {"id": f"{data_product}:output", "kind": "outputport", "dependsOn": [f"{data_product}:storage"]}]}
    deployment = Deployment(
        id=new_deployment_id(), data_product=data_product, environment=environment, version=version,
        operation=Operation.DEPLOY, descriptor=descriptor,
        tasks=[PlannedTask(f"{data_product}:storage", "storage", []),
               PlannedTask(f"{data_product}:output", "outputport", [f"{data_product}:storage"])],
        started_by=f"{forge}:{project}@v{version}",
        report_to={"forge": forge, "project": project, "sha": "0" * 40, "context": f"meshbot/deploy/{environment}"})
    Store(connection).create(deployment)
    return deployment.id
