"""Each tech adapter's read-only `/v1/validate` of a descriptor, its errors mapped back to the repository's files.

An adapter answers with a verdict (valid, or refused with errors) or fails (unreachable, 5xx, 404, 422, a
malformed answer): a failure judges nothing. Each error is filed under the component its descriptor path names
(`components[1].x` from the storage adapter is the output port's), at the file:line:col it was written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from adapters.error_paths import locate
from adapters.model import ValidationOutcome
from adapters.payloads import component_request, data_product_request
from adapters.registry import AdapterRegistry, AdapterTarget
from bot.config import AdapterSettings
from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from bot.engine.plan import build_plan

VALIDATE_TIMEOUT = 30.0  # a review waits at most this long for one adapter
PARALLEL = 8


@dataclass(frozen=True, slots=True)
class AdapterError:
    """One error an adapter gave, where in the repository it points, and whose adapter said it."""

    message: str
    position: SourcePosition | None = None
    path: str = ""  # the descriptor path it names, as people read it
    said_by: str = ""  # the task whose adapter gave it, when that is another task

    @property
    def lines(self) -> list[str]:
        """The message's lines (a multi-line text is shown as a block, never in a table row)."""
        return [line.rstrip() for line in self.message.strip().splitlines() if line.strip()] or [""]

    @property
    def block(self) -> str:
        """The message as a fenced block indented under a markdown list item."""
        return fenced_block(self.message, 2)


def fenced_block(text: str, indent: int = 0) -> str:
    """User text, several lines, as a fenced code block that nothing inside can close or format (indented by indent)."""
    lines = [line.rstrip() for line in str(text).strip("\n").splitlines()]
    longest = max((len(run) for run in re.findall(r"`{3,}", str(text))), default=2)
    fence = "`" * (longest + 1)
    pad = " " * indent
    return "\n".join(f"{pad}{line}" if line else "" for line in [f"{fence}text", *lines, fence])


@dataclass(frozen=True, slots=True)
class AdapterVerdict:
    """What one task's adapter said of the descriptor, or why it could not say; errors are those filed here."""

    task: str
    kind: str
    valid: bool
    reachable: bool = True
    errors: list[AdapterError] = field(default_factory=list)
    message: str = ""
    failed: bool = False
    adapter: str = ""  # its URL
    said: int = 0  # how many errors this task's adapter gave, wherever they are filed

    @property
    def refused(self) -> bool:
        """The adapter answered, and said no (an adapter that failed refuses nothing)."""
        return not self.valid and not self.failed

    @property
    def status(self) -> str:
        """valid, refused or failed."""
        return "valid" if self.valid else "failed" if self.failed else "refused"


def validate_with_adapters(descriptor: Descriptor, adapters: list[AdapterSettings]) -> list[AdapterVerdict]:
    """Every task's verdict in stage order; a task no adapter serves in this environment is refused, saying so."""
    registry = AdapterRegistry(adapters)
    plan = build_plan(descriptor)
    return ask_adapters(descriptor, registry.resolve_all(descriptor),
                        [task_id for stage in plan.stages for task_id in stage])


def ask_adapters(descriptor: Descriptor, targets: Mapping[str, AdapterTarget], task_ids: Sequence[str],
                 timeout: float = VALIDATE_TIMEOUT, parallel: int = PARALLEL) -> list[AdapterVerdict]:
    """The verdicts of the adapters of task_ids (at most parallel at a time), errors filed where they point."""
    kinds = {task.id: task.kind for task in build_plan(descriptor).tasks}

    def ask(task_id: str) -> ValidationOutcome | None:
        if task_id not in targets:
            return None
        request = data_product_request(descriptor.data) if kinds.get(task_id) == "dataproduct" else \
            component_request(descriptor.data, task_id)
        return targets[task_id].client(timeout=timeout).validate(request)

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(task_ids)))) as pool:
        outcomes = dict(zip(task_ids, pool.map(ask, task_ids), strict=True))
    filed: dict[str, list[AdapterError]] = {task_id: [] for task_id in task_ids}
    said: dict[str, int] = {}
    for task_id, outcome in outcomes.items():
        if outcome is None or not outcome.refused:
            continue
        placed = locate(descriptor, task_id, outcome.errors, task_ids)
        said[task_id] = len(placed)
        for error in placed:
            filed[error.task].append(AdapterError(error.message, error.position, error.where,
                                                  task_id if error.task != task_id else ""))
    verdicts = []
    for task_id in task_ids:
        outcome = outcomes[task_id]
        kind = kinds.get(task_id, "")
        if outcome is None:
            verdicts.append(AdapterVerdict(task_id, kind, valid=False, errors=filed[task_id], message=(
                f"no tech adapter serves this task in `{descriptor.environment}` (server configuration `adapters`)")))
            continue
        verdicts.append(AdapterVerdict(
            task_id, kind, valid=outcome.valid, reachable=outcome.reachable, errors=filed[task_id],
            message=outcome.message, failed=outcome.failed, adapter=targets[task_id].url, said=said.get(task_id, 0)))
    return verdicts
