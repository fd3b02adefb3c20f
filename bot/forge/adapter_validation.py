"""Each tech adapter's read-only `/v1/validate` of a descriptor, its errors mapped back to the repository's files."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from adapters.payloads import component_request, data_product_request
from adapters.registry import AdapterRegistry
from bot.config import AdapterSettings
from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from bot.descriptor.yamlsafe import DataPath
from bot.engine.plan import build_plan

VALIDATE_TIMEOUT = 30.0  # a review waits at most this long for one adapter
PARALLEL = 8
# A descriptor path inside an adapter's message: `components[0].specific.tables[1].schema`, `specific.viewName`.
_PATH = re.compile(r"(?<![\w.\[])((?:components\[\d+\]|specific|dataContract|dataSharingAgreement|dependsOn)"
                   r"(?:\.[A-Za-z_$][\w$-]*|\[\d+\])*)")
_STEP = re.compile(r"\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class AdapterError:
    """One error an adapter gave, with where in the repository it points when it names a descriptor path."""

    message: str
    position: SourcePosition | None = None


@dataclass(frozen=True, slots=True)
class AdapterVerdict:
    """What one task's adapter said of the descriptor (or why it could not be asked)."""

    task: str
    kind: str
    valid: bool
    reachable: bool = True
    errors: list[AdapterError] = field(default_factory=list)
    message: str = ""

    @property
    def refused(self) -> bool:
        """The adapter answered, and said no (an unreachable adapter refuses nothing)."""
        return self.reachable and not self.valid


def validate_with_adapters(descriptor: Descriptor, adapters: list[AdapterSettings]) -> list[AdapterVerdict]:
    """Every task's verdict in stage order; a task no adapter serves in this environment is refused, saying so."""
    registry = AdapterRegistry(adapters)
    resolved = registry.resolve_all(descriptor)
    plan = build_plan(descriptor)
    kinds = {task.id: task.kind for task in plan.tasks}
    tasks = [(task_id, kinds[task_id]) for stage in plan.stages for task_id in stage]

    def ask(task_id: str, kind: str) -> AdapterVerdict:
        if task_id not in resolved:
            return AdapterVerdict(task_id, kind, valid=False, message=f"no tech adapter serves this task in "
                                  f"`{descriptor.environment}` (server configuration `adapters`)")
        client = resolved[task_id].client(timeout=VALIDATE_TIMEOUT)
        request = data_product_request(descriptor.data) if kind == "dataproduct" else \
            component_request(descriptor.data, task_id)
        outcome = client.validate(request)
        base = _component_path(descriptor, task_id)
        errors = [AdapterError(error, _position(descriptor, base, error)) for error in outcome.errors]
        return AdapterVerdict(task_id, kind, valid=outcome.valid, reachable=outcome.reachable, errors=errors,
                              message=outcome.message)

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(lambda task: ask(*task), tasks))


def _component_path(descriptor: Descriptor, task_id: str) -> DataPath:
    for index, component in enumerate(descriptor.components):
        if component.get("id") == task_id:
            return ("components", index)
    return ()


def _position(descriptor: Descriptor, base: DataPath, message: str) -> SourcePosition | None:
    """Where the first descriptor path the message names was written (relative paths: within the task's own part)."""
    found = _PATH.search(message)
    if found is None:
        return None
    steps: list[str | int] = [int(index) if index else name for name, index in _STEP.findall(found.group(1))]
    path: DataPath = tuple(steps) if steps and steps[0] == "components" else (*base, *steps)
    return descriptor.position(path)
