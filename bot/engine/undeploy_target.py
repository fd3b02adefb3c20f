"""What an undeploy removes: the descriptor the adapters last provisioned in that environment, never a working tree's.

That is the descriptor of the latest successful deployment (domain.md section 8). One case has none although
something may be provisioned: a first deploy that failed (the product is CORRUPT and was never deployed before);
then the descriptor that deploy sent, so that what it left behind can be removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from bot.engine.deployed import Deployed, RedisDeployedStates
from bot.engine.deployment import ProductStatus
from bot.engine.store import Deployment, Store


def choose_target(deployed: Deployed | None, product: Mapping[str, Any], latest: Deployment | None) -> Deployed | None:
    """The deployed state, else the latest deployment's descriptor when the product is CORRUPT, else None.

    product is the data product's status record in the environment; latest the deployment it names.
    """
    if deployed is not None:
        return deployed
    if product.get("status") != ProductStatus.CORRUPT or latest is None:
        return None
    return Deployed(data_product=latest.data_product, environment=latest.environment, descriptor=latest.descriptor,
                    version=latest.version, deployment=latest.id, status=str(ProductStatus.CORRUPT))


def undeploy_target(connection: redis.Redis, data_product: str, environment: str) -> Deployed | None:
    """What an undeploy of the data product in environment removes now, or None when nothing is deployed there."""
    deployed = RedisDeployedStates(connection).deployed(data_product, environment)
    if deployed is not None:
        return deployed
    store = Store(connection)
    product = store.product(data_product, environment)
    latest_id = product.get("deployment")
    latest = store.load_static(str(latest_id)) if product.get("status") == ProductStatus.CORRUPT and latest_id \
        else None
    return choose_target(None, product, latest)

