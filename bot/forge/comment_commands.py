"""Running the commands of a merge request (or issue) comment: acknowledge, check rights, reply once per command.

Every command is acknowledged (`eyes`) and answered in its own comment: `/help`, usage errors and "did you
mean" at once; `/deploy` (also `--dry-run`), `/undeploy` and `/rollback` after the rights checks, through the
engine, their reply edited as the deployment runs; `/import` after the same checks, its reply saying what it opened.
A rollback is checked as a deploy to its environment (rights.refusal("rollback", ...)) except that
`merge_request_deploys: false` does not refuse it: it redeploys what the environment already ran, not the merge
request's content. `/request-access` needs no role (the owners decide by merging what it opens) and is the one
command acted on in an issue comment (`run_issue_comment`): the others get a reply that they work on merge requests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from bot.config import ServerConfig
from bot.descriptor.discovery import RemoteLocations
from bot.engine.deployed import DeployedStates, NothingDeployed, RedisDeployedStates
from bot.forge.access_request import Origin, issue_only_reply, request_access
from bot.forge.commands import (
    USAGE,
    Command,
    Deploy,
    Help,
    Import,
    Malformed,
    RequestAccess,
    Rollback,
    Typo,
    Undeploy,
    read_commands,
)
from bot.forge.importing import import_component
from bot.forge.merge_request_deploy import run_deploy_command
from bot.forge.rights import ROLE_NAMES, Requester, refusal
from bot.forge.rollback_command import run_rollback_command
from policies.report import code_span, escape_markdown
from vcs.base import ForgeError, MergeRequest, Repository

log = logging.getLogger("meshbot.commands")

REPLY_MARKER = "<!-- meshbot:command -->"
DESCRIPTIONS = {
    "deploy": "deploy this merge request's head to ENV (default: the merge request environment); `--dry-run` "
              "shows the plan and what each adapter's validate says, and provisions nothing",
    "import": "reverse provisioning: ask COMPONENT's tech adapter for its real state and open a merge request "
              "that updates its catalog-info.yaml (never merged by meshbot)",
    "undeploy": "remove the data product from ENV as its latest successful deployment there deployed it, "
                "whatever this merge request holds (`--remove-data` deletes the data too)",
    "rollback": "redeploy a version kept in ENV's deployment history (default: the previous one), within the "
                "deployed major version, after today's governance; whatever this merge request holds",
    "request-access": "open a merge request that adds you (or GROUP_PATH) to the consumers of OUTPUT_PORT in "
                      "`access/OUTPUT_PORT.yaml`; its owners grant by merging it (also works in an issue)",
    "help": "this list",
}


@dataclass(frozen=True, slots=True)
class Context:
    """Where the commands come from and who wrote them."""

    forge: str
    merge_request: MergeRequest
    author: str
    requester: Requester


def run_comment(repository: Repository, config: ServerConfig, forge: str, number: int, comment_id: str,
                body: str, author: str, *, project: str = "", connection: redis.Redis | None = None,
                policies: Sequence[Any] = (), remote: RemoteLocations | None = None) -> list[str]:
    """Run a comment's commands in order; the replies as they stand (one comment each)."""
    readings = read_commands(body)
    if not readings:
        return []
    _acknowledge(repository, number, comment_id)
    request = repository.merge_request(number)
    requester = Requester(author, repository.permission(author), request.from_fork,
                          approved=_needs_approval(readings, config) and repository.approved(number))
    context = Context(forge, request, author, requester)
    replies = []
    for reading in readings:
        text = reply_to(reading, config, context)
        if isinstance(reading, RequestAccess):  # anyone may ask: the reply says what it opened
            text = request_access(repository, config, _deployed(connection), command=reading, remote=remote,
                                  origin=Origin(forge, number, on_issue=False, author=author)).reply
            repository.create_comment(number, f"{REPLY_MARKER}\n{text}")
        elif text is None and isinstance(reading, Import):  # passed the checks: the reply says what it did
            comment = repository.create_comment(number, f"{REPLY_MARKER}\n`/import`: asking the tech adapter …")
            outcome = import_component(repository, config, policies, forge=forge, merge_request=request,
                                       component=reading.component, parameters=reading.parameters,
                                       environment=config.merge_request_environment, remote=remote)
            text = outcome.reply()
            repository.edit_comment(number, comment.id, f"{REPLY_MARKER}\n{text}")
        elif text is None and isinstance(reading, Rollback):  # passed the checks: the reply follows the deployment
            assert connection is not None
            comment = repository.create_comment(number, f"{REPLY_MARKER}\n`/rollback`: checking …")
            text = run_rollback_command(repository, connection, config, policies, forge=forge, project=project,
                                        merge_request=request, command=reading, author=author,
                                        reply={"number": str(number), "id": comment.id}, remote=remote)
            repository.edit_comment(number, comment.id, f"{REPLY_MARKER}\n{text}")
        elif text is None:  # a deploy or undeploy that passed the checks: the reply follows the deployment
            assert isinstance(reading, (Deploy, Undeploy)) and connection is not None
            comment = repository.create_comment(number, f"{REPLY_MARKER}\n`/{_word(reading)}`: checking …")
            text = run_deploy_command(repository, connection, config, policies, forge=forge, project=project,
                                      merge_request=request, command=reading, author=author,
                                      reply={"number": str(number), "id": comment.id}, remote=remote)
            repository.edit_comment(number, comment.id, f"{REPLY_MARKER}\n{text}")
        else:
            repository.create_comment(number, f"{REPLY_MARKER}\n{text}")
        replies.append(text)
    return replies


def run_issue_comment(repository: Repository, config: ServerConfig, forge: str, number: int, body: str, author: str,
                      *, connection: redis.Redis | None = None, remote: RemoteLocations | None = None) -> list[str]:
    """Answer an issue comment's commands: `/request-access` acts, the others are told they need a merge request."""
    replies = []
    for reading in read_commands(body):
        if isinstance(reading, RequestAccess):
            text = request_access(repository, config, _deployed(connection), command=reading, remote=remote,
                                  origin=Origin(forge, number, on_issue=True, author=author)).reply
        elif isinstance(reading, (Malformed, Typo)):
            text = mistake_reply(reading, author)
        else:
            text = issue_only_reply(forge, author, _word_of(reading))
        repository.create_issue_comment(number, f"{REPLY_MARKER}\n{text}")
        replies.append(text)
    return replies


def _deployed(connection: redis.Redis | None) -> DeployedStates:
    return RedisDeployedStates(connection) if connection is not None else NothingDeployed()


def _word_of(command: Command) -> str:
    words: dict[str, type] = {"deploy": Deploy, "import": Import, "undeploy": Undeploy, "rollback": Rollback,
                              "help": Help}
    return next(word for word, kind in words.items() if isinstance(command, kind))


def _acknowledge(repository: Repository, number: int, comment_id: str) -> None:
    """React `eyes` to the comment; a forge that refuses (403, 500) is logged: the commands run all the same."""
    try:
        repository.add_reaction(number, comment_id, "eyes")
    except ForgeError as error:
        log.warning("could not acknowledge comment %s on merge request %s with `eyes` (%s); running its commands "
                    "anyway", comment_id, number, error.message)


def reply_to(reading: Command | Malformed | Typo, config: ServerConfig, context: Context) -> str | None:
    """The reply to one command, or None for a deploy, undeploy or rollback that may run (its reply follows it)."""
    mention = f"@{escape_markdown(context.author)}"
    if isinstance(reading, (Typo, Malformed)):
        return mistake_reply(reading, context.author)
    if isinstance(reading, Help):
        return help_text(config, context)
    if isinstance(reading, RequestAccess):
        return None
    word, environment = _word_and_environment(reading, config)
    refused = refusal(word, config.rules(environment), context.requester, context.forge)
    if refused is not None:
        return f"{mention} `/{word}` refused: {refused}"
    refused_by_config = config.environment_error(environment)
    if refused_by_config:
        return f"{mention} `/{word}` refused: {escape_markdown(refused_by_config)}"
    return None


def mistake_reply(reading: Malformed | Typo, author: str) -> str:
    """The reply to a command written wrong (its usage) or a near miss of one (did you mean)."""
    mention = f"@{escape_markdown(author)}"
    if isinstance(reading, Typo):
        return (f"{mention} `{escape_markdown(reading.written)}` is not a meshbot command: did you mean "
                f"`{reading.suggestion}`? (`/help` lists them)")
    return f"{mention} `/{reading.word}`: {escape_markdown(reading.problem)}.\n\nUsage: `{reading.usage}`"


def _needs_approval(readings: list[Command | Malformed | Typo], config: ServerConfig) -> bool:
    """Whether any command would be refused for want of an approval (asking the forge costs a call)."""
    return any((isinstance(reading, Deploy) and
                config.rules(reading.environment or config.merge_request_environment).approval_required) or
               (isinstance(reading, Rollback) and config.rules(reading.environment).approval_required)
               for reading in readings)


def _word(command: Deploy | Undeploy) -> str:
    return "deploy" if isinstance(command, Deploy) else "undeploy"


def _word_and_environment(command: Command, config: ServerConfig) -> tuple[str, str]:
    if isinstance(command, Deploy):
        return "deploy", command.environment or config.merge_request_environment
    if isinstance(command, Undeploy):
        return "undeploy", command.environment
    if isinstance(command, Rollback):
        return "rollback", command.environment
    if isinstance(command, Import):
        return "import", config.merge_request_environment
    raise ValueError(f"not a command that acts: {command!r}")


def help_text(config: ServerConfig, context: Context) -> str:
    """Every command, its arguments, and where the commenter may run it on this merge request."""
    roles = ROLE_NAMES.get(context.forge, ROLE_NAMES["github"])
    lines = ["**meshbot commands** (one per line of a new comment; several run in order)", "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| `{USAGE[word]}` | {DESCRIPTIONS[word]} |" for word in USAGE]
    environments = list(config.environments or {config.merge_request_environment: {}})
    lines += ["", f"What @{escape_markdown(context.author)} may run here "
              f"(role: {roles.get(context.requester.permission, 'no access')}):", ""]
    for environment in environments:
        rules = config.rules(environment)
        allowed = [f"`/{word}`" for word in ("deploy", "undeploy", "rollback")
                   if refusal(word, rules, context.requester, context.forge) is None]
        lines.append(f"- {code_span(environment)}: {', '.join(allowed) if allowed else 'nothing'}")
    import_allowed = refusal("import", config.rules(config.merge_request_environment), context.requester,
                             context.forge) is None
    lines.append(f"- `/import`: {'yes' if import_allowed else 'no'}")
    lines.append("- `/request-access`: yes (anyone, here or in an issue)")
    return "\n".join(lines)
