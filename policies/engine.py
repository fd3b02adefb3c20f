"""Evaluate policies on a descriptor: each compiled schema, built-in or remote engine, on each resource it selects."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from bot.descriptor.collector import collector_paused
from bot.descriptor.model import Descriptor, format_path
from bot.descriptor.yamldump import dump_yaml
from bot.descriptor.yamlsafe import DataPath
from policies.builtins import BUILTINS, CheckContext
from policies.model import Failure, Policy, PolicyResult, Severity, Status, Target, effective_status
from policies.remote import RESOURCE_TYPE_COMPONENT, RESOURCE_TYPE_SYSTEM, EngineError, Question

MAX_FAILURES_PER_RESULT = 50
MAX_MESSAGE_LENGTH = 300
REMOTE_CONCURRENCY = 8  # remote evaluations in flight at once, per evaluate() call
_T = TypeVar("_T")


def evaluate(
    descriptor: Descriptor, policies: Iterable[Policy], previous: dict[str, Any] | None = None,
    previous_missing: str = "no previous descriptor to compare with", today: date | None = None,
) -> list[PolicyResult]:
    """One result per (policy, selected resource), draft policies skipped; policy order, then resource order.

    `previous` is the deployed descriptor that breaking-change checks compare with; without it they report
    "not evaluated" with `previous_missing` as the reason (e.g. "nothing deployed in production").
    A grace policy whose `grace_until` is on or before `today` (default: the local date) runs as enabled.
    Remote policies are asked concurrently (at most REMOTE_CONCURRENCY at once); the order stays the same.
    """
    context = _Previous(previous, previous_missing, today or date.today())
    active = [policy for policy in policies if policy.status is not Status.DRAFT]
    with collector_paused():
        buckets, remote = _evaluate_all(descriptor, active, context)
        results = [result for bucket in buckets for result in bucket]
    _ask_engines(descriptor, remote)
    if descriptor.warnings:
        results.append(catalog_warnings(descriptor))
    return results


def _evaluate_all(
    descriptor: Descriptor, active: list[Policy], context: _Previous
) -> tuple[list[list[PolicyResult]], list[RemoteTask]]:
    """Each active policy's results (in resource order), evaluated component by component, and the remote tasks.

    Component-major: each component is validated against every policy selected for it while it is hot in the
    cache; the results land in their policy's bucket, so concatenating the buckets gives policy, then resource
    order without a sort.
    """
    buckets: list[list[PolicyResult]] = [[] for _ in active]
    remote: list[RemoteTask] = []
    statuses = [effective_status(policy, context.today) for policy in active]
    for position, policy in enumerate(active):
        if policy.target is Target.DATA_PRODUCT and policy.selector.matches(descriptor.data, descriptor.environment):
            task = (policy, (), descriptor.data)
            result = _run(policy, statuses[position], descriptor, (), descriptor.data, context)
            buckets[position].append(result)
            if policy.remote is not None:
                remote.append((task, result))
    # One step per component policy: its bucket, the policy, its id, description, severity, status and grace date,
    # and the compiled schema's is_valid when the policy is a plain schema check (the hot path), None otherwise.
    steps = [
        (buckets[position], policy, policy.id, policy.description, policy.severity, statuses[position],
         policy.grace_until if statuses[position] is Status.GRACE else None,
         policy.validator.is_valid if policy.validator is not None and policy.builtin is None
         and policy.remote is None else None)
        for position, policy in enumerate(active) if policy.target is Target.COMPONENT
    ]
    for index, component, selected in _select_components(descriptor, steps, lambda step: step[1]):
        resource = str(component.get("id", ""))
        for bucket, policy, policy_id, description, severity, status, grace_until, is_valid in selected:
            if is_valid is not None:
                result = PolicyResult(policy_id, description, resource, severity, status, [], None, True,
                                      grace_until, None)
                if not is_valid(component):
                    result.errors = _schema_failures(policy, descriptor, ("components", index), component)
            else:
                result = _run(policy, status, descriptor, ("components", index), component, context)
                if policy.remote is not None:
                    remote.append(((policy, ("components", index), component), result))
            bucket.append(result)
    return buckets, remote


RemoteTask = tuple[tuple[Policy, DataPath, Any], PolicyResult]


def _ask_engines(descriptor: Descriptor, remote: list[RemoteTask]) -> None:
    """Fill each remote policy's result from its engine: in a bounded thread pool when there are several."""
    if not remote:
        return
    contents: dict[DataPath, str] = {}
    questions = []
    for (policy, path, instance), result in remote:
        if path not in contents:
            contents[path] = dump_yaml(instance)
        questions.append(Question(
            policy=policy.id, version=policy.version, resource_id=result.resource, content=contents[path],
            resource_type=RESOURCE_TYPE_SYSTEM if policy.target is Target.DATA_PRODUCT else RESOURCE_TYPE_COMPONENT,
            environment=descriptor.environment,
        ))

    def ask(index: int) -> None:
        (policy, path, _), result = remote[index]
        _remote_outcome(policy, descriptor, path, questions[index], result)

    if len(remote) == 1:
        ask(0)
        return
    with ThreadPoolExecutor(max_workers=min(REMOTE_CONCURRENCY, len(remote)),
                            thread_name_prefix="policy-engine") as pool:
        list(pool.map(ask, range(len(remote))))


def _remote_outcome(policy: Policy, descriptor: Descriptor, path: DataPath, question: Question,
                    result: PolicyResult) -> None:
    """The engine's verdict as failures at the resource's position, or its failure to answer as engine_error."""
    if policy.engine is None:
        result.engine_error = f"policy engine '{policy.remote}' is not in the server configuration"
        return
    try:
        verdict = policy.engine.verdict(question)
    except EngineError as error:
        result.engine_error = str(error)
        return
    if verdict.satisfied:
        return
    messages = verdict.errors or (f"policy engine '{policy.remote}' found the policy not satisfied (no reason given)",)
    where, position = format_path(path), descriptor.position(path)
    result.errors = [Failure(message=message, path=where, position=position)
                     for message in messages[:MAX_FAILURES_PER_RESULT]]


CATALOG_POLICY = "catalog-entities"


def catalog_warnings(descriptor: Descriptor) -> PolicyResult:
    """Assembly's warnings (an unknown kind in a catalog file) as one non-blocking warning result."""
    return PolicyResult(
        policy=CATALOG_POLICY,
        description="Catalog files hold Backstage entities meshbot reads",
        resource=descriptor.id,
        severity=Severity.WARNING,
        status=Status.ENABLED,
        errors=[Failure(message=warning.message, path="kind", position=warning.position)
                for warning in descriptor.warnings],
    )


def _select_components(
    descriptor: Descriptor, candidates: list[_T], policy_of: Callable[[_T], Policy]
) -> Iterator[tuple[int, dict[str, Any], list[_T]]]:
    """(index, component, the candidates whose policy selects it) per component, in order.

    Selectors read only a component's kind and templates: they are matched once per distinct signature.
    """
    by_signature: dict[tuple[Any, ...], list[_T]] = {}
    environment = descriptor.environment
    for index, component in enumerate(descriptor.components):
        if not isinstance(component, dict):
            continue  # not a component at all: the specification policy reports it
        signature = (_text(component.get("kind")), _text(component.get("useCaseTemplateId")),
                     _text(component.get("infrastructureTemplateId")))
        matching = by_signature.get(signature)
        if matching is None:
            matching = [candidate for candidate in candidates
                        if policy_of(candidate).selector.matches(component, environment)]
            by_signature[signature] = matching
        if matching:
            yield index, component, matching


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class _Previous:
    descriptor: dict[str, Any] | None
    missing: str
    today: date


def _run(
    policy: Policy, status: Status, descriptor: Descriptor, path: DataPath, instance: Any, previous: _Previous
) -> PolicyResult:
    resource = str(instance.get("id", "")) if isinstance(instance, dict) else ""
    result = PolicyResult(
        policy=policy.id,
        description=policy.description,
        resource=resource,
        severity=policy.severity,
        status=status,
        grace_until=policy.grace_until if status is Status.GRACE else None,
    )
    if policy.validator is not None:
        if not policy.validator.is_valid(instance):
            result.errors = _schema_failures(policy, descriptor, path, instance)
    elif policy.builtin is not None:
        outcome = BUILTINS[policy.builtin](CheckContext(descriptor, path, previous.descriptor, previous.missing))
        result.errors, result.note = outcome.failures[:MAX_FAILURES_PER_RESULT], outcome.note
        result.evaluated = outcome.evaluated
    return result


def _schema_failures(policy: Policy, descriptor: Descriptor, base: DataPath, instance: Any) -> list[Failure]:
    failures: list[Failure] = []
    for error in policy.validator.iter_errors(instance):
        if len(failures) == MAX_FAILURES_PER_RESULT:
            failures.append(Failure(message=f"more failures of this policy were left out (limit "
                                            f"{MAX_FAILURES_PER_RESULT})", path=format_path(base),
                                    position=descriptor.position(base)))
            break
        relative = tuple(error.instance_path)
        kind_name = type(error.kind).__name__
        custom = _custom_message(policy.schema, list(error.evaluation_path))
        if kind_name == "Required":
            missing = str(error.kind.property)
            path = (*base, *relative, missing)
            message = custom or f"missing required field '{missing}'"
            position = descriptor.position((*base, *relative))
        else:
            path = (*base, *relative)
            message = custom or _shorten(error.message)
            position = descriptor.position(path)
        failures.append(Failure(message=message, path=format_path(path), position=position))
    return failures


def _custom_message(schema: Any, evaluation_path: list[Any]) -> str | None:
    """The x-message of the deepest subschema on the failing keyword's evaluation path, following local $refs."""
    found = None
    node = schema
    for step in evaluation_path:
        if isinstance(node, dict):
            if isinstance(node.get("x-message"), str):
                found = node["x-message"]
            node = _resolve_reference(schema, node.get(step)) if step in ("$ref", "$dynamicRef") else node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            break
    return found


def _resolve_reference(root: Any, reference: Any) -> Any:
    if not isinstance(reference, str) or not reference.startswith("#"):
        return None
    node = root
    for token in filter(None, reference[1:].split("/")):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _shorten(message: str) -> str:
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 1] + "…"
