"""Which tech adapter serves which infrastructure template in which environment (server configuration)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from adapters.client import TechAdapterClient
from bot.config import AdapterSettings
from bot.descriptor.errors import InputError
from bot.descriptor.model import Descriptor
from bot.descriptor.yamlsafe import DataPath


class AdapterTarget(NamedTuple):
    """Where one task's adapter is reached: what a worker needs to call it with nothing else."""

    url: str
    timeout: float
    ca_bundle: str | None = None

    def client(self, timeout: float | None = None) -> TechAdapterClient:
        """A client for this adapter (timeout: a shorter bound than the adapter's own, e.g. for a review)."""
        return TechAdapterClient(self.url, timeout=self.timeout if timeout is None else min(timeout, self.timeout),
                                 ca_bundle=self.ca_bundle)


class AdapterRegistry:
    """Adapters by infrastructure template id; one client (one HTTP session) per adapter."""

    def __init__(self, adapters: Sequence[AdapterSettings]) -> None:
        self._adapters = list(adapters)
        self._clients: dict[AdapterSettings, TechAdapterClient] = {}

    def find(self, infrastructure_template_id: str, environment: str) -> AdapterSettings | None:
        """The adapter for the template in environment; one named for the environment wins over a catch-all."""
        candidates = [
            adapter for adapter in self._adapters
            if adapter.infrastructure_template_id == infrastructure_template_id and adapter.serves(environment)
        ]
        specific = [adapter for adapter in candidates if adapter.environments is not None]
        chosen = specific or candidates
        return chosen[0] if chosen else None

    def client(self, adapter: AdapterSettings) -> TechAdapterClient:
        """The client for an adapter, created once."""
        if adapter not in self._clients:
            self._clients[adapter] = TechAdapterClient(adapter.url, timeout=adapter.timeout,
                                                       ca_bundle=adapter.ca_bundle)
        return self._clients[adapter]

    def resolve_all(self, descriptor: Descriptor) -> dict[str, AdapterTarget]:
        """The adapter of every task that has one, by task id (see unresolved for the rest)."""
        resolved = {}
        resources = [descriptor.data] if descriptor.data.get("infrastructureTemplateId") else []
        resources += descriptor.components
        for resource in resources:
            template = resource.get("infrastructureTemplateId")
            adapter = self.find(template, descriptor.environment) if isinstance(template, str) else None
            if adapter is not None:
                resolved[str(resource.get("id"))] = AdapterTarget(adapter.url, adapter.timeout, adapter.ca_bundle)
        return resolved

    def unresolved(self, descriptor: Descriptor) -> list[InputError]:
        """Every task of the descriptor that no configured adapter serves, reported before anything runs."""
        environment = descriptor.environment
        errors = []
        targets: list[tuple[DataPath, dict[str, Any]]] = []
        if descriptor.data.get("infrastructureTemplateId"):
            targets.append(((), descriptor.data))
        targets += [(("components", index), component) for index, component in enumerate(descriptor.components)]
        for path, resource in targets:
            template = resource.get("infrastructureTemplateId")
            name = resource.get("id", "the data product")
            if not isinstance(template, str) or not template:
                errors.append(InputError(
                    f"component '{name}' has no infrastructureTemplateId, so no tech adapter can deploy it",
                    descriptor.position(path),
                ))
            elif self.find(template, environment) is None:
                errors.append(InputError(
                    f"no tech adapter serves infrastructureTemplateId '{template}' in environment "
                    f"'{environment}' (of '{name}'); {self._known(environment)}",
                    descriptor.position((*path, "infrastructureTemplateId")),
                ))
        return errors

    def _known(self, environment: str) -> str:
        served = sorted({a.infrastructure_template_id for a in self._adapters if a.serves(environment)})
        if not served:
            return f"the server configuration names no adapter for '{environment}'"
        return "the server configuration has adapters for: " + ", ".join(served)
