"""Release tags: check that the tag names the descriptor's version, then deploy that commit through the engine.

A tag deploys the release stages without `after` at once; a stage with `after` waits (a pending status) until
that stage has deployed the release, then follows automatically or through a promotion merge request
(bot.forge.promotion). The forge hears of it through commit statuses `meshbot/deploy/<env>` and a deployment
record per environment: pending when the deployment is requested, then (from the job the engine queues when a
deployment ends) success, failure or error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from adapters.registry import AdapterRegistry
from bot.config import ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import FileTooLarge
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.reconcile import Scope
from bot.engine.runner import request_deployment
from bot.engine.store import Deployment, Store
from bot.forge.links import deployment_url
from policies.engine import evaluate
from policies.report import counted
from vcs.base import CommitState, ForgeError, Repository
from vcs.base import DeploymentState as ForgeDeploymentState
from vcs.reader import RevisionReader

# Semantic Versioning 2.0.0, the pattern semver.org recommends.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
STATUS_LIMIT = 140


def tag_version(pattern: str, tag: str) -> str | None:
    """The semantic version a tag names under the release pattern ('v{version}', 'v1.2.0' -> '1.2.0'), or None."""
    prefix, _, suffix = pattern.partition("{version}")
    if len(tag) <= len(prefix) + len(suffix) or not (tag.startswith(prefix) and tag.endswith(suffix)):
        return None
    version = tag[len(prefix):len(tag) - len(suffix)]
    return version if SEMVER.fullmatch(version) else None


def deploy_context(environment: str) -> str:
    """The commit status name of deploys to an environment."""
    return f"meshbot/deploy/{environment}"


@dataclass(frozen=True, slots=True)
class ReleaseStep:
    """What happened for one release environment."""

    environment: str
    state: CommitState
    description: str
    deployment_id: str | None = None  # the engine's deployment, when one was requested


def release(
    repository: Repository, connection: redis.Redis, *, forge: str, project: str, tag: str, sha: str,
    config: ServerConfig, policies: Sequence[Any], status_url: str | None = None, remote: RemoteLocations | None = None,
) -> list[ReleaseStep]:
    """Deploy the tagged commit to the first release stages; the others wait; statuses on the commit say so."""
    version = tag_version(config.release_tag, tag)
    if version is None:
        return []  # not a release tag: nothing to say
    steps = []
    waiting = [stage for stage in config.stages if stage.after is not None]
    # Set before any deployment is requested, so that a quick end's follow-up is never overwritten; a run again
    # (a retry, the catch-up sweep) leaves alone a stage the chain already moved.
    known = repository.commit_statuses(sha) if waiting else {}
    for stage in waiting:
        description = f"waits for {stage.after}"
        if deploy_context(stage.name) not in known:
            repository.set_commit_status(sha, deploy_context(stage.name), CommitState.PENDING, description, status_url)
        steps.append(ReleaseStep(stage.name, CommitState.PENDING, description))
    for stage in config.stages:
        if stage.after is None:
            steps.append(deploy_stage(repository, connection, forge=forge, project=project, tag=tag, sha=sha,
                                      version=version, environment=stage.name, config=config, policies=policies,
                                      status_url=status_url, remote=remote))
    order = [stage.name for stage in config.stages]
    return sorted(steps, key=lambda step: order.index(step.environment))


def deploy_stage(
    repository: Repository, connection: redis.Redis, *, forge: str, project: str, tag: str, sha: str, version: str,
    environment: str, config: ServerConfig, policies: Sequence[Any], status_url: str | None,
    remote: RemoteLocations | None, started_by: str | None = None, data_product: str | None = None,
    report_extra: dict[str, Any] | None = None,
) -> ReleaseStep:
    """Deploy a release (tag at sha) to one stage: checks, the deployment request, the commit status it sets.

    started_by names the request (the tag by default: a second request of the same tag and commit is that one);
    data_product, when given, is the id the descriptor must have; report_extra goes into the deployment's report_to.
    """
    step = _release_to(repository, connection, forge=forge, project=project, tag=tag, sha=sha, version=version,
                       environment=environment, config=config, policies=policies, status_url=status_url,
                       remote=remote, started_by=started_by, data_product=data_product, report_extra=report_extra)
    repository.set_commit_status(sha, deploy_context(environment), step.state, _one_line(step.description),
                                 status_url)
    if step.deployment_id:
        _report_if_ended(repository, connection, step.deployment_id)
    return step


def _report_if_ended(repository: Repository, connection: redis.Redis, deployment_id: str) -> None:
    """Report again a deployment that ended before its pending statuses were set, so that its outcome comes last."""
    # The report job runs as soon as the deployment ends, possibly before this job set the pending commit status
    # and the in-progress deployment state; a deployment ending after this check is reported after them.
    deployment = Store(connection).load(deployment_id)
    if deployment is not None and deployment.state.finished:
        report_outcome(repository, deployment)


def _release_to(
    repository: Repository, connection: redis.Redis, *, forge: str, project: str, tag: str, sha: str, version: str,
    environment: str, config: ServerConfig, policies: Sequence[Any], status_url: str | None,
    remote: RemoteLocations | None, started_by: str | None = None, data_product: str | None = None,
    report_extra: dict[str, Any] | None = None,
) -> ReleaseStep:
    refused = config.environment_error(environment)
    if refused:
        return ReleaseStep(environment, CommitState.ERROR, f"nothing deployed: {refused}")
    try:
        descriptor = assemble(RevisionReader(repository, sha), environment, remote)
    except InputErrors as invalid:
        return ReleaseStep(environment, CommitState.ERROR, f"nothing deployed: {invalid.errors[0]}")
    except (ForgeError, FileTooLarge, FileNotFoundError) as error:
        return ReleaseStep(environment, CommitState.ERROR, f"nothing deployed: cannot read the repository: {error}")
    declared = str(descriptor.data.get("version", ""))
    if declared != version:
        return ReleaseStep(environment, CommitState.ERROR,
                           f"nothing deployed: tag {tag} names version {version}, the descriptor says {declared!r}")
    if data_product is not None and descriptor.id != data_product:
        return ReleaseStep(environment, CommitState.ERROR,
                           f"nothing deployed: the descriptor at {tag} is {descriptor.id}, not {data_product}")
    deployed = RedisDeployedStates(connection).deployed(descriptor.id, environment)
    results = evaluate(descriptor, policies, deployed.descriptor if deployed else None,
                       previous_missing=f"nothing deployed in {environment}")
    blocking = [result for result in results if result.blocking]
    if blocking:
        names = ", ".join(sorted({result.policy for result in blocking}))
        return ReleaseStep(environment, CommitState.FAILURE,
                           f"nothing deployed: {counted(len(blocking), 'blocking governance failure')}: {names}")
    registry = AdapterRegistry(config.adapters)
    unresolved = registry.unresolved(descriptor)
    if unresolved:
        return ReleaseStep(environment, CommitState.ERROR, f"nothing deployed: {unresolved[0]}")
    started_by = started_by or f"{forge}:{project}@{tag}"
    earlier = _earlier_request(Store(connection), descriptor.id, environment, started_by, sha)
    if earlier is not None:  # this job ran before (a retry): never deploy the same release twice
        state = CommitState.PENDING if not earlier.state.finished else _outcome(earlier.state)[0]
        return ReleaseStep(environment, state, f"deployment {earlier.id} of {version} to {environment}: "
                           f"{earlier.state}", earlier.id)
    record = repository.create_deployment(sha, environment, f"{descriptor.id} {version} from {tag}", tag)
    deployment_id, ahead = request_deployment(
        connection, descriptor, Operation.DEPLOY, registry.resolve_all(descriptor), started_by,
        marketplace=config.marketplace, history=config.history, resolve_removed=registry.resolve_all,
        scope=Scope(prune=config.rules(environment).prune, only_changed=config.only_changed),
        report_to={"forge": forge, "project": project, "sha": sha, "context": deploy_context(environment),
                   "record": record, "statusUrl": status_url, "publicUrl": config.public_url, "tag": tag,
                   "version": version, "stage": environment, **(report_extra or {})},
    )
    waiting = f", queued behind {counted(ahead, 'other deployment')}" if ahead else ""
    description = f"deploying {version} to {environment} (deployment {deployment_id}{waiting})"
    repository.set_deployment_state(record, ForgeDeploymentState.PENDING if ahead else ForgeDeploymentState.IN_PROGRESS,
                                    _one_line(description),
                                    deployment_url({"publicUrl": config.public_url, "statusUrl": status_url},
                                                   deployment_id))
    return ReleaseStep(environment, CommitState.PENDING, description, deployment_id)


def _earlier_request(store: Store, data_product: str, environment: str, started_by: str, sha: str,
                     look_back: int = 10) -> Deployment | None:
    """A deployment this release already requested (same tag and commit), among the latest few."""
    for deployment_id in store.history(data_product, environment)[:look_back]:
        deployment = store.load_static(deployment_id)
        if deployment is not None and deployment.started_by == started_by and \
                (deployment.report_to or {}).get("sha") == sha:
            return store.load(deployment_id)
    return None


def report_outcome(repository: Repository, deployment: Deployment, tasks: list[dict[str, Any]] | None = None) -> None:
    """Tell the forge how a deployment it asked for ended: the commit status, the deployment record, the reply."""
    from bot.forge.comment_commands import REPLY_MARKER
    from bot.forge.merge_request_deploy import progress_reply

    target = deployment.report_to or {}
    state, record_state = _outcome(deployment.state)
    description = _one_line(f"{deployment.state}: {deployment.message}" if deployment.message
                            else str(deployment.state))
    url = deployment_url(target, deployment.id)  # the console page of this deployment, when there is a console
    repository.set_commit_status(str(target["sha"]), str(target["context"]), state, description, url)
    if target.get("record"):
        repository.set_deployment_state(str(target["record"]), record_state, description, url)
    if target.get("comment") and tasks is not None:
        comment = target["comment"]
        repository.edit_comment(int(comment["number"]), str(comment["id"]),
                                REPLY_MARKER + "\n" + progress_reply(deployment, tasks, url))


def _outcome(state: DeploymentState) -> tuple[CommitState, ForgeDeploymentState]:
    if state in (DeploymentState.DEPLOYED, DeploymentState.NOT_DEPLOYED):
        return CommitState.SUCCESS, ForgeDeploymentState.SUCCESS
    if state is DeploymentState.REFUSED:
        return CommitState.FAILURE, ForgeDeploymentState.FAILURE
    # FAILED (could not validate: an adapter failed, the descriptor was not judged), CORRUPT, PARTIALLY_DEPLOYED:
    # not a verdict on the release but something someone must look at.
    return CommitState.ERROR, ForgeDeploymentState.ERROR


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= STATUS_LIMIT else line[:STATUS_LIMIT - 1] + "…"
