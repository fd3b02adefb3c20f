"""`/request-access OUTPUT_PORT [--group GROUP_PATH]`: a merge request that adds a consumer to a port's access file.

Written on any merge request or issue of the data product's repository. meshbot reads the data product at the
default branch's head (assembled for the merge request environment), finds the output port, and opens a merge
request from `meshbot/access/<port>/<user-LOGIN | group-SLUG>` into the default branch that adds the commenter (or the
group) to `access/<port>.yaml`. The port's owners grant by merging it under the forge's own rules and decline by
closing it; meshbot never merges. Anyone may ask, for themselves or for any group: the merge request says who asked
for whom, and the owners decide. Nothing is opened when the consumer is listed already, when an open request for the
same branch exists (its link is the reply), or when the access file is invalid (the reply names file:line:column).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.config import ServerConfig
from bot.descriptor.access_file import Consumer, access_path, read_consumers, with_consumer
from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import MAX_FILE_BYTES, FileTooLarge
from bot.descriptor.model import Descriptor, component_name, find_components
from bot.engine.deployed import DeployedStates
from bot.forge.commands import RequestAccess
from policies.report import markdown_environment
from vcs.base import ForgeError, MergeRequest, Repository
from vcs.reader import RevisionReader

BRANCH_PREFIX = "meshbot/access/"
OUTPUT_PORT = "outputport"
MAX_SHOWN = 50  # consumers, ports, errors listed in one text
_SLUG = re.compile(r"[^a-z0-9_-]+")


class AccessStatus(StrEnum):
    """How a /request-access ended."""

    OPENED = "opened"  # a new access merge request
    EXISTING = "existing"  # an open one asks the same already: linked, nothing new
    ALREADY = "already"  # the consumer is listed on the default branch: nothing to ask
    REFUSED = "refused"  # unknown port, invalid access file, unreadable data product: nothing opened


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the request was written: a merge request or an issue (its number), and by whom."""

    forge: str
    number: int
    on_issue: bool
    author: str

    @property
    def reference(self) -> str:
        """How the forge links it in markdown (GitLab: `!N` a merge request, `#N` an issue)."""
        return f"!{self.number}" if self.forge == "gitlab" and not self.on_issue else f"#{self.number}"


@dataclass(frozen=True, slots=True)
class AccessOutcome:
    """What one /request-access did, and the reply that says so."""

    status: AccessStatus
    reply: str
    merge_request: MergeRequest | None = None
    branch: str | None = None


# ---------------------------------------------------------------------- names and decisions (pure)


def consumer_for(author: str, group: str | None) -> Consumer:
    """Who the request is for: the group when given, else the commenter."""
    return Consumer("group", group) if group else Consumer("user", author)


def access_branch(port: str, consumer: Consumer) -> str:
    """The branch of the access request of consumer to port (lower case; a hash keeps distinct names distinct)."""
    name = consumer.name.lower()
    slug = _SLUG.sub("-", name).strip("-") or "x"
    if slug != name:
        slug += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{BRANCH_PREFIX}{port}/{consumer.kind}-{slug}"


def request_title(port: str, consumer: Consumer) -> str:
    """The access merge request's title."""
    return f"Access to {port} for {consumer}"


def output_ports(descriptor: Descriptor) -> list[dict[str, Any]]:
    """The output port components of a descriptor."""
    return [item for item in descriptor.components if item.get("kind") == OUTPUT_PORT]


def deployed_environments(data_product: str, component_id: str, environments: Sequence[str],
                          deployed: DeployedStates) -> list[str]:
    """The environments whose latest successful deployment of data_product includes the component."""
    found = []
    for environment in environments:
        record = deployed.deployed(data_product, environment)
        components = (record.descriptor.get("components") if record else None) or []
        if any(isinstance(item, dict) and item.get("id") == component_id for item in components):
            found.append(environment)
    return found


def candidate_environments(config: ServerConfig) -> list[str]:
    """Where a port may be deployed: the configured environments, else the reviewed and release ones."""
    if config.environments:
        return list(config.environments)
    return list(dict.fromkeys([*config.review_environments, *(stage.name for stage in config.stages)]))


def _reply(name: str, **values: Any) -> str:
    """One reply of templates/comments/access_request_replies.md.j2 (a macro each)."""
    module = markdown_environment().get_template("access_request_replies.md.j2").module
    return str(getattr(module, name)(**values)).strip()


def issue_only_reply(forge: str, author: str, word: str) -> str:
    """The reply to a command other than /request-access written in an issue."""
    return _reply("issue_only", author=author, word=word, term="pull request" if forge == "github" else "merge request")


def access_description(*, origin: Origin, consumer: Consumer, port: str, component_id: str, data_product: str,
                       path: str, consumers: Sequence[Consumer], environments: Sequence[str],
                       default_branch: str) -> str:
    """The access merge request's description (templates/comments/access_request.md.j2)."""
    return markdown_environment().get_template("access_request.md.j2").render(
        origin=origin, consumer=str(consumer), for_self=consumer == Consumer("user", origin.author), port=port,
        component_id=component_id, data_product=data_product, path=path,
        consumers=[str(item) for item in consumers[:MAX_SHOWN]], more=max(0, len(consumers) - MAX_SHOWN),
        environments=list(environments), default_branch=default_branch,
        term="pull request" if origin.forge == "github" else "merge request")


# ---------------------------------------------------------------------- the request


def request_access(repository: Repository, config: ServerConfig, deployed: DeployedStates, *, origin: Origin,
                   command: RequestAccess, remote: RemoteLocations | None = None) -> AccessOutcome:
    """Open the access merge request of a /request-access, or say why not; the reply is in the outcome."""
    author, written = origin.author, command.port
    consumer = consumer_for(author, command.group)

    def refused(name: str, **values: Any) -> AccessOutcome:
        return AccessOutcome(AccessStatus.REFUSED, _reply(name, author=author, port=written, **values))

    try:
        base_branch = repository.default_branch()
        head = repository.branch_head(base_branch)
        if head is None:
            return refused("unreadable", reason=f"the default branch {base_branch} has no commit")
        reader = RevisionReader(repository, head)
        descriptor = assemble(reader, config.merge_request_environment, remote)
    except InputErrors as invalid:
        return refused("unassembled", branch=base_branch, errors=[str(error) for error in invalid.errors[:MAX_SHOWN]])
    except (ForgeError, FileTooLarge, FileNotFoundError) as error:
        return refused("unreadable", reason=str(error))
    ports = output_ports(descriptor)
    matches = find_components(ports, written)
    known = sorted(component_name(item) for item in ports)
    if len(matches) != 1:
        close = difflib.get_close_matches(written, known, n=1)
        return refused("unknown_port", data_product=descriptor.id, known=known[:MAX_SHOWN],
                       suggestion=close[0] if close and not matches else "", several=bool(matches))
    port, component_id = component_name(matches[0]), str(matches[0].get("id"))
    try:
        path = access_path(port)
        proposed = with_consumer(None, consumer, port)
        if read_consumers(proposed, path) != [consumer]:  # a name that would write something else is refused
            raise ValueError(f"'{consumer.name}' cannot be written in an access file")
    except (ValueError, InputErrors) as bad:
        return refused("bad_name", reason=str(bad))
    path = next((candidate for candidate in (path, path.removesuffix(".yaml") + ".yml")
                 if candidate in reader.list_files()), path)
    try:
        current = reader.read_bytes(path, MAX_FILE_BYTES) if path in reader.list_files() else None
        consumers = read_consumers(current, path) if current is not None else []
    except InputErrors as invalid:
        return refused("invalid_file", path=path, branch=base_branch,
                       errors=[str(error) for error in invalid.errors[:MAX_SHOWN]])
    except (ForgeError, FileTooLarge) as error:
        return refused("unreadable", reason=str(error))
    if consumer in consumers:
        return AccessOutcome(AccessStatus.ALREADY, _reply("already", author=author, port=port, consumer=str(consumer),
                                                          path=path, branch=base_branch))
    branch = access_branch(port, consumer)
    term = "pull request" if origin.forge == "github" else "merge request"
    try:
        existing = repository.find_merge_request(branch, base_branch)
        if existing is not None:
            return AccessOutcome(AccessStatus.EXISTING, _reply(
                "existing", author=author, port=port, consumer=str(consumer), request=existing,
                reference=_reference(origin.forge, existing.number), term=term), existing, branch)
        content = with_consumer(current, consumer, port)
        description = access_description(
            origin=origin, consumer=consumer, port=port, component_id=component_id, data_product=descriptor.id,
            path=path, consumers=sorted({*consumers, consumer}), default_branch=base_branch,
            environments=deployed_environments(descriptor.id, component_id, candidate_environments(config), deployed))
        request = _publish(repository, branch, base_branch, head, path, content, request_title(port, consumer),
                           description, f"meshbot: request access to {port} for {consumer}")
    except ForgeError as error:
        return refused("unreadable", reason=f"the {term} could not be opened: {error.message}")
    return AccessOutcome(AccessStatus.OPENED, _reply(
        "opened", author=author, port=port, consumer=str(consumer), request=request,
        reference=_reference(origin.forge, request.number), term=term), request, branch)


def _publish(repository: Repository, branch: str, base_branch: str, base: str, path: str, content: bytes,
             title: str, description: str, message: str) -> MergeRequest:
    """Commit the access file on branch (created from base; an old branch gets a commit on top) and open the request."""
    head = repository.branch_head(branch)
    if head is None:
        repository.create_branch(branch, base)
        head = base
    try:
        unchanged = repository.read_file(head, path, MAX_FILE_BYTES) == content
    except (FileNotFoundError, FileTooLarge):
        unchanged = False
    if not unchanged:
        repository.commit_files(branch, head, message, {path: content})
    return repository.open_merge_request(branch, base_branch, title, description)


def _reference(forge: str, number: int) -> str:
    return f"#{number}" if forge == "github" else f"!{number}"
