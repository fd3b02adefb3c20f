"""Promotion: a release moves from stage to stage (`releases.environments` with `after`), the GitOps way.

When a release stage's deployment ends, the stages that wait for it follow (`follow_up`): DEPLOYED and
`promotion: automatic` deploys the next stage from the same tag and commit; DEPLOYED and `merge-request` opens (or
updates) a promotion merge request from `meshbot/promote/<env>/<version>` into the default branch that writes
`releases/<env>.yaml`; any other end stops the chain (a failure or error status on the tag's commit, a comment on
an open promotion merge request). Merging the promotion merge request (`promote`) deploys that stage under the
forge's own approval rules, once meshbot has checked what the merged file says: the release file is untrusted input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from bot.config import ReleaseStage, ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import FileTooLarge
from bot.descriptor.yamldump import dump_yaml
from bot.descriptor.yamlsafe import load_single
from bot.engine.deployed import RedisDeployedStates
from bot.engine.deployment import DeploymentState, Operation
from bot.engine.plan_diff import plan_diff
from bot.engine.store import Deployment, Store
from bot.forge.plan_report import plan_markdown
from bot.forge.release import SEMVER, ReleaseStep, _one_line, deploy_context, deploy_stage, tag_version
from bot.forge.router import PROMOTION_BRANCH_PREFIX
from policies.engine import evaluate
from policies.model import Status
from policies.report import CheckReport, markdown_environment, to_markdown
from vcs.base import CommitState, ForgeError, MergeRequest, Repository
from vcs.reader import RevisionReader

MERGE_REQUEST = "merge-request"
AUTOMATIC = "automatic"
RELEASES_FOLDER = "releases"
MAX_RELEASE_FILE_BYTES = 16 * 1024  # a release file is a dozen lines; anything larger is not meshbot's
PLAN_LIMIT = 24_000  # the description's parts, well within GitHub's 65,536 and GitLab's 1,048,576 characters
GOVERNANCE_LIMIT = 24_000
LOOK_BACK = 50  # deployments of the `after` stage searched for the promoted version
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
ENVIRONMENT = re.compile(r"[a-z0-9][a-z0-9_-]*")
OUTCOME_MARKER = "<!-- meshbot:promotion-outcome {deployment} -->"


class PromotionRefused(Exception):
    """A promotion meshbot will not carry out, with the reason a person reads on the merge request."""


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """What `releases/<env>.yaml` says: which release goes to env, and the stage deployment that let it."""

    data_product: str
    environment: str
    version: str
    tag: str
    commit: str
    promoted_from: str
    deployment: str


# ---------------------------------------------------------------------- names and the release file (pure)


def promotion_branch(environment: str, version: str) -> str:
    """The branch of the promotion merge request of version to environment."""
    return f"{PROMOTION_BRANCH_PREFIX}{environment}/{version}"


def parse_promotion_branch(branch: str) -> tuple[str, str] | None:
    """(environment, version) of a promotion branch, or None when the name is not one."""
    environment, _, version = branch.removeprefix(PROMOTION_BRANCH_PREFIX).partition("/")
    if not branch.startswith(PROMOTION_BRANCH_PREFIX) or not ENVIRONMENT.fullmatch(environment) or \
            not SEMVER.fullmatch(version):
        return None
    return environment, version


def release_path(environment: str) -> str:
    """The file a promotion merge request writes."""
    return f"{RELEASES_FOLDER}/{environment}.yaml"


def release_file(record: ReleaseRecord) -> str:
    """The text of `releases/<env>.yaml`: a header comment, then the record as YAML."""
    header = (f"# Written by meshbot: merging the merge request that changes this file deploys {record.version} "
              f"to {record.environment}.\n"
              "# meshbot reads it back at the merge and checks it; an edited file is refused, not followed.\n")
    return header + dump_yaml({
        "dataProduct": record.data_product, "environment": record.environment, "version": record.version,
        "tag": record.tag, "commit": record.commit,
        "promotedFrom": {"stage": record.promoted_from, "deployment": record.deployment},
    })


def read_release_file(content: bytes, path: str, environment: str) -> ReleaseRecord:
    """The record of a release file for environment; PromotionRefused saying what is wrong with it."""
    try:
        document = load_single(content, path)
    except InputErrors as invalid:
        raise PromotionRefused(f"{path} is not valid YAML: {invalid.errors[0]}") from None
    data = document.value if document is not None else None
    if not isinstance(data, dict):
        raise PromotionRefused(f"{path} is not a mapping")
    origin = data.get("promotedFrom")
    origin = origin if isinstance(origin, dict) else {}
    fields = {"dataProduct": data.get("dataProduct"), "environment": data.get("environment"),
              "version": data.get("version"), "tag": data.get("tag"), "commit": data.get("commit"),
              "promotedFrom.stage": origin.get("stage"), "promotedFrom.deployment": origin.get("deployment")}
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value.strip()]
    if missing:
        raise PromotionRefused(f"{path} lacks {', '.join(missing)} (each a non-empty string)")
    values = {name: str(value) for name, value in fields.items()}
    if values["environment"] != environment:
        raise PromotionRefused(f"{path} names environment {values['environment']!r}, not {environment!r}")
    if not SEMVER.fullmatch(values["version"]):
        raise PromotionRefused(f"{path}: version {values['version']!r} is not a semantic version")
    if not COMMIT.fullmatch(values["commit"]):
        raise PromotionRefused(f"{path}: commit {values['commit']!r} is not a full commit sha")
    return ReleaseRecord(data_product=values["dataProduct"], environment=environment, version=values["version"],
                         tag=values["tag"], commit=values["commit"], promoted_from=values["promotedFrom.stage"],
                         deployment=values["promotedFrom.deployment"])


def stopped_status(after: str, state: DeploymentState) -> tuple[CommitState, str]:
    """The status of a stage whose `after` stage ended otherwise than DEPLOYED."""
    return (CommitState.FAILURE if state is DeploymentState.REFUSED else CommitState.ERROR,
            f"not promoted: {after} ended {state}")


def _reply(name: str, **values: Any) -> str:
    """One reply of templates/comments/promotion_replies.md.j2 (a macro each)."""
    return str(getattr(markdown_environment().get_template("promotion_replies.md.j2").module, name)(**values)).strip()


def promotion_description(record: ReleaseRecord, plan: str, governance: str, passed: bool, tag_url: str = "") -> str:
    """The promotion merge request's description (templates/comments/promotion.md.j2)."""
    return markdown_environment().get_template("promotion.md.j2").render(
        record=record, path=release_path(record.environment), plan=plan, governance=governance, passed=passed,
        tag_url=tag_url)


# ---------------------------------------------------------------------- a stage ended: what follows it


def needs_follow_up(deployment: Deployment, config: ServerConfig) -> bool:
    """Whether a finished deployment is a release stage that other stages wait for."""
    stage = (deployment.report_to or {}).get("stage")
    return (deployment.operation is Operation.DEPLOY and deployment.state.finished and isinstance(stage, str)
            and bool(config.next_stages(stage)))


def follow_up(repository: Repository, connection: redis.Redis, deployment: Deployment, *, config: ServerConfig,
              policies: Sequence[Any], remote: RemoteLocations | None = None) -> list[str]:
    """Move the stages that wait for this deployment's stage: deploy, open a promotion, or stop; what was done."""
    if not needs_follow_up(deployment, config):
        return []
    target = deployment.report_to or {}
    stage, tag, sha = str(target["stage"]), str(target.get("tag") or ""), str(target["sha"])
    version = str(target.get("version") or deployment.version)
    status_url = target.get("statusUrl")
    forge, project = str(target["forge"]), str(target["project"])
    done = []
    for following in config.next_stages(stage):
        if deployment.state is not DeploymentState.DEPLOYED:
            done.append(_stop(repository, following, deployment, sha, version, status_url))
        elif following.promotion == AUTOMATIC:
            step = deploy_stage(repository, connection, forge=forge, project=project, tag=tag, sha=sha,
                                version=version, environment=following.name, config=config, policies=policies,
                                status_url=status_url, remote=remote, data_product=deployment.data_product)
            done.append(f"{following.name}: {step.state} {step.description}")
        else:
            done.append(open_promotion(repository, connection, deployment, following, config=config,
                                       policies=policies, remote=remote))
    return done


def _stop(repository: Repository, following: ReleaseStage, deployment: Deployment, sha: str, version: str,
          status_url: str | None) -> str:
    """The chain stops at following: its status says why; an open promotion merge request is told."""
    state, description = stopped_status(str(following.after), deployment.state)
    repository.set_commit_status(sha, deploy_context(following.name), state, _one_line(description), status_url)
    if following.promotion == MERGE_REQUEST:
        request = repository.find_merge_request(promotion_branch(following.name, version),
                                                repository.default_branch())
        if request is not None:
            repository.create_comment(request.number, _reply(
                "stopped", environment=following.name, after=following.after, version=version,
                state=str(deployment.state), message=deployment.message, deployment=deployment.id))
    return f"{following.name}: {description}"


def open_promotion(repository: Repository, connection: redis.Redis, deployment: Deployment, following: ReleaseStage,
                   *, config: ServerConfig, policies: Sequence[Any], remote: RemoteLocations | None = None) -> str:
    """Open (or bring up to date) the promotion merge request of the deployed release to the following stage."""
    target = deployment.report_to or {}
    tag, sha, status_url = str(target.get("tag") or ""), str(target["sha"]), target.get("statusUrl")
    version = str(target.get("version") or deployment.version)
    environment = following.name
    context = deploy_context(environment)

    def not_promoted(state: CommitState, reason: str) -> str:
        description = _one_line(f"not promoted: {reason}")
        repository.set_commit_status(sha, context, state, description, status_url)
        return f"{environment}: {description}"

    refused = config.environment_error(environment)
    if refused:
        return not_promoted(CommitState.ERROR, refused)
    try:
        descriptor = assemble(RevisionReader(repository, sha), environment, remote)
    except InputErrors as invalid:
        return not_promoted(CommitState.ERROR, f"{tag} cannot be assembled for {environment}: {invalid.errors[0]}")
    except (ForgeError, FileTooLarge, FileNotFoundError) as error:
        return not_promoted(CommitState.ERROR, f"cannot read the repository: {error}")
    deployed = RedisDeployedStates(connection).deployed(descriptor.id, environment)
    previous = deployed.descriptor if deployed else None
    results = evaluate(descriptor, policies, previous, previous_missing=f"nothing deployed in {environment}")
    active = sum(1 for policy in policies if getattr(policy, "status", None) is not Status.DRAFT)
    report = CheckReport(descriptor=descriptor, results=results, policy_count=active)
    record = ReleaseRecord(data_product=descriptor.id, environment=environment, version=version, tag=tag,
                           commit=sha, promoted_from=str(following.after), deployment=deployment.id)
    description = promotion_description(record, plan_markdown(plan_diff(descriptor, previous), PLAN_LIMIT),
                                        to_markdown(report, GOVERNANCE_LIMIT), report.passed)
    try:
        request = publish(repository, record, f"meshbot: promote {descriptor.id} {version} to {environment}",
                          description)
    except ForgeError as error:
        return not_promoted(CommitState.ERROR, f"cannot open the promotion merge request: {error.message}")
    waits = f"waits for the merge of promotion merge request {request.number}"
    repository.set_commit_status(sha, context, CommitState.PENDING, _one_line(waits), request.url or status_url)
    return f"{environment}: {waits}"


def publish(repository: Repository, record: ReleaseRecord, title: str, description: str) -> MergeRequest:
    """Commit the release file on the promotion branch (from the default branch) and open or update its request.

    A branch that exists already gets a new commit on top only when its file says something else: never a force.
    """
    branch, path = promotion_branch(record.environment, record.version), release_path(record.environment)
    content = release_file(record).encode()
    message = f"meshbot: promote {record.data_product} {record.version} to {record.environment}"
    base_branch = repository.default_branch()
    head = repository.branch_head(branch)
    if head is None:
        base = repository.branch_head(base_branch)
        if base is None:
            raise ForgeError(f"the default branch {base_branch} has no head")
        repository.create_branch(branch, base)
        repository.commit_files(branch, base, message, {path: content})
    elif _file_at(repository, head, path) != content:
        repository.commit_files(branch, head, message, {path: content})
    existing = repository.find_merge_request(branch, base_branch)
    if existing is not None:
        repository.update_merge_request(existing.number, title, description)
        return existing
    return repository.open_merge_request(branch, base_branch, title, description)


def _file_at(repository: Repository, ref: str, path: str) -> bytes | None:
    """A file at ref, or None when absent or too large to be meshbot's."""
    try:
        return repository.read_file(ref, path, MAX_RELEASE_FILE_BYTES)
    except (FileNotFoundError, FileTooLarge):
        return None


# ---------------------------------------------------------------------- a promotion merge request was merged


def after_stage_deployment(connection: redis.Redis, data_product: str, environment: str, version: str,
                           look_back: int = LOOK_BACK) -> str | None:
    """The id of a deployment that DEPLOYED version of data_product in environment, or None (none among the latest)."""
    deployed = RedisDeployedStates(connection).deployed(data_product, environment)
    if deployed is not None and deployed.version == version and deployed.status == str(DeploymentState.DEPLOYED):
        return deployed.deployment or "the deployed record"
    store = Store(connection)
    for deployment_id in store.history(data_product, environment)[:look_back]:
        deployment = store.load(deployment_id)
        if deployment is not None and deployment.operation is Operation.DEPLOY and \
                deployment.state is DeploymentState.DEPLOYED and deployment.version == version:
            return deployment.id
    return None


def check_promotion(repository: Repository, connection: redis.Redis, config: ServerConfig, *, source_branch: str,
                    target_branch: str, merge_sha: str) -> tuple[ReleaseStage, ReleaseRecord]:
    """The stage and release a merged promotion merge request deploys; PromotionRefused saying why not."""
    parsed = parse_promotion_branch(source_branch)
    if parsed is None:
        raise PromotionRefused(f"branch {source_branch} is not named {PROMOTION_BRANCH_PREFIX}<environment>/<version>")
    environment, branch_version = parsed
    stage = config.stage(environment)
    if stage is None or stage.after is None or stage.promotion != MERGE_REQUEST:
        raise PromotionRefused(f"{environment} is not a release stage promoted by merge request in meshbot's "
                               "configuration")
    default = repository.default_branch()
    if target_branch != default:
        raise PromotionRefused(f"it was merged into {target_branch}, not into the default branch {default}")
    path = release_path(environment)
    try:
        content = repository.read_file(merge_sha, path, MAX_RELEASE_FILE_BYTES)
    except FileNotFoundError:
        raise PromotionRefused(f"{path} is missing at the merge commit {merge_sha[:12]}") from None
    except FileTooLarge:
        raise PromotionRefused(f"{path} is larger than {MAX_RELEASE_FILE_BYTES} bytes") from None
    record = read_release_file(content, path, environment)
    if record.version != branch_version:
        raise PromotionRefused(f"{path} names version {record.version}, the branch {branch_version}")
    if tag_version(config.release_tag, record.tag) != record.version:
        raise PromotionRefused(f"tag {record.tag!r} does not name version {record.version} (release tags: "
                               f"{config.release_tag})")
    tags = {tag.name: tag.sha for tag in repository.list_tags()}
    if record.tag not in tags:
        raise PromotionRefused(f"tag {record.tag} is unknown in this repository")
    if tags[record.tag] != record.commit:
        raise PromotionRefused(f"tag {record.tag} names commit {tags[record.tag][:12]}, {path} says "
                               f"{record.commit[:12]}")
    if after_stage_deployment(connection, record.data_product, stage.after, record.version) is None:
        raise PromotionRefused(f"{stage.after} has never deployed {record.data_product} {record.version} "
                               f"(among its latest {LOOK_BACK} deployments): promote it to {stage.after} first")
    return stage, record


def promote(repository: Repository, connection: redis.Redis, *, forge: str, project: str, number: int,
            source_branch: str, target_branch: str, merge_sha: str, config: ServerConfig, policies: Sequence[Any],
            status_url: str | None = None, remote: RemoteLocations | None = None) -> ReleaseStep | str:
    """Deploy the stage of a merged promotion merge request, or refuse; either is said on the merge request."""
    try:
        stage, record = check_promotion(repository, connection, config, source_branch=source_branch,
                                        target_branch=target_branch, merge_sha=merge_sha)
    except PromotionRefused as refused:
        repository.create_comment(number, _reply("refused", reason=str(refused)))
        return f"refused: {refused}"
    step = deploy_stage(repository, connection, forge=forge, project=project, tag=record.tag, sha=record.commit,
                        version=record.version, environment=stage.name, config=config, policies=policies,
                        status_url=status_url, remote=remote, started_by=f"{forge}:{project}@{record.tag} !{number}",
                        data_product=record.data_product, report_extra={"promotion": {"number": number}})
    if step.deployment_id:
        repository.create_comment(number, _reply("started", record=record, deployment=step.deployment_id))
    else:
        repository.create_comment(number, _reply("refused", reason=step.description))
    return step


def report_promotion(repository: Repository, deployment: Deployment) -> bool:
    """Comment how a promotion's deployment ended on its merge request (once); whether there was one to tell."""
    promotion = (deployment.report_to or {}).get("promotion")
    if not isinstance(promotion, dict) or not deployment.state.finished:
        return False
    number = int(promotion["number"])
    marker = OUTCOME_MARKER.format(deployment=deployment.id)
    if any(marker in comment.body for comment in repository.comments(number)):
        return True  # told already (this job ran before)
    target = deployment.report_to or {}
    repository.create_comment(number, marker + "\n" + _reply(
        "outcome", deployment=deployment, environment=deployment.environment, state=str(deployment.state),
        deployed=deployment.state is DeploymentState.DEPLOYED, tag=str(target.get("tag") or ""),
        url=target.get("statusUrl") or ""))
    return True
