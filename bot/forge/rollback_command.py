"""`/rollback ENV [VERSION]` on a merge request: redeploy a version kept in ENV's deployment history.

The merge request's head only names the data product (as for `/undeploy`); what is deployed is a descriptor the
engine kept (bot.engine.rollback), checked with today's policies against what is deployed, then deployed as any
deploy under the environment's prune mode (`/rollback` has no `--prune`: where prune is `confirm`, components the
old version lacks are kept and listed). The reply is the usual progress table (handlers/report edits it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from adapters.registry import AdapterRegistry
from bot.config import ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import FileTooLarge
from bot.engine.reconcile import Scope
from bot.engine.rollback import RollbackChoice, RollbackRefused, choose_from_redis, request_rollback
from bot.forge.commands import Rollback
from bot.forge.merge_request_deploy import REPLY_LIMIT, _queued, _reply, _status_url
from policies.engine import evaluate
from policies.report import CheckReport, to_markdown
from vcs.base import ForgeError, MergeRequest, Repository
from vcs.reader import RevisionReader

WORD = "/rollback"


def run_rollback_command(
    repository: Repository, connection: redis.Redis, config: ServerConfig, policies: Sequence[Any], *,
    forge: str, project: str, merge_request: MergeRequest, command: Rollback, author: str,
    reply: dict[str, str], remote: RemoteLocations | None = None,
) -> str:
    """Choose, check and start a rollback of the merge request's data product in ENV; the reply (edited later)."""
    environment = command.environment
    sha = merge_request.head_sha
    try:
        data_product = assemble(RevisionReader(repository, sha), environment, remote).id
    except InputErrors as invalid:
        return _reply("cannot_assemble", word=WORD, environment=environment, sha=sha[:8],
                      errors=[str(error) for error in invalid.errors[:20]])
    except (ForgeError, FileTooLarge) as error:
        return _reply("cannot_read", word=WORD, environment=environment, error=str(error))
    try:
        choice = choose_from_redis(connection, data_product, environment, command.version, kept=config.history)
    except RollbackRefused as refused:
        return _reply("rollback_refused", data_product=data_product, environment=environment, reason=refused.message)
    blocked = governance_refusal(choice, policies)
    if blocked is not None:
        return blocked
    started_by = f"rollback to {choice.version} by @{author} ({forge}:{project}!{merge_request.number})"
    report_to = {"forge": forge, "project": project, "sha": sha, "context": f"meshbot/rollback/{environment}",
                 "statusUrl": _status_url(config, data_product, environment), "publicUrl": config.public_url,
                 "comment": reply, "command": WORD}
    scope = Scope(prune=config.rules(environment).prune, only_changed=config.only_changed)
    requested = request_rollback(connection, choice, AdapterRegistry(config.adapters), started_by, scope=scope,
                                 marketplace=config.marketplace, history=config.history, report_to=report_to)
    if requested.unresolved:
        return _reply("rollback_no_adapter", data_product=data_product, version=choice.version,
                      environment=environment, deployment=choice.target.id,
                      errors=[str(error) for error in requested.unresolved[:20]])
    return _reply("rollback_started", data_product=data_product, version=choice.version,
                  deployed_version=choice.deployed.version, environment=environment, source=choice.target.id,
                  deployment=requested.deployment_id, queued=_queued(requested.ahead, data_product, environment))


def governance_refusal(choice: RollbackChoice, policies: Sequence[Any]) -> str | None:
    """The refusal when today's policies block the old descriptor against what is deployed, else None."""
    environment = choice.target.environment
    results = evaluate(choice.descriptor, policies, choice.deployed.descriptor,
                       previous_missing=f"nothing deployed in {environment}")
    active = sum(1 for policy in policies if str(getattr(policy, "status", "")) != "draft")
    report = CheckReport(descriptor=choice.descriptor, results=results, policy_count=active)
    if report.passed:
        return None
    blocking = list(dict.fromkeys(result.policy for result in results if result.blocking))
    return _reply("rollback_governance_blocks", strip=False, data_product=choice.target.data_product,
                  version=choice.version, environment=environment, deployment=choice.target.id, policies=blocking,
                  report=to_markdown(report, limit=REPLY_LIMIT // 2))
