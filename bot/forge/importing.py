"""`/import COMPONENT [key=value ...]`: reverse provisioning of one component into a merge request meshbot opens.

The domain only: a `vcs.base.Repository` and a tech adapter client in, an `ImportOutcome` out (what the reply
comment says). meshbot asks the component's tech adapter what the real infrastructure looks like, applies the
updates to the component's catalog-info.yaml at the merge request's head, commits that one file on its own
branch `meshbot/import/<number>/<component>` and opens (or updates) a merge request from it into the merge
request's source branch. A person reviews and merges it; meshbot never does, and never commits over a push that
is not its own: the sha it last pushed is kept in a hidden marker in the import merge request's description.
Only updates below `spec.mesh` are applied, never the component's identity, ownership, kind, data product or
adapter (`bot.descriptor.update_scope`); the refused ones are named in the merge request and the reply.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapters.client import TechAdapterClient
from adapters.payloads import reverse_provisioning_request
from adapters.registry import AdapterRegistry
from bot.config import AdapterSettings, ServerConfig
from bot.descriptor.assembly import assemble
from bot.descriptor.catalog_updates import UpdateError, apply_updates
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputError, InputErrors
from bot.descriptor.files import MAX_FILE_BYTES, FileReader, FileTooLarge
from bot.descriptor.model import Descriptor, component_name
from bot.descriptor.model import find_components as find_components_named
from bot.descriptor.update_scope import RefusedUpdate, screen_updates
from bot.descriptor.yamlsafe import load_documents
from policies.engine import evaluate
from policies.model import Policy, Status
from policies.report import CheckReport, code_span, escape_markdown, markdown_environment, to_markdown
from vcs.base import ForgeError, MergeRequest, Repository
from vcs.reader import RevisionReader

BRANCH_PREFIX = "meshbot/import"
MARKER = "<!-- meshbot:import head={sha} -->"
_MARKER = re.compile(r"<!-- meshbot:import head=([0-9A-Fa-f]{7,64}) -->")
DIFF_LIMIT = 30_000  # of the description (GitHub holds 65,536 characters), the rest goes to validation and logs
VALIDATION_LIMIT = 15_000
LOG_LIMIT = 50
LOG_MESSAGE_LIMIT = 500
DETAIL_LIMIT = 20
PATH_LIMIT = 200  # characters of a refused update's path shown
SHORT_SHA = 8

ClientFor = Callable[[AdapterSettings], TechAdapterClient]


class ImportStatus(StrEnum):
    """How an /import ended."""

    OPENED = "opened"  # a new import merge request
    UPDATED = "updated"  # the existing import merge request and its branch
    UP_TO_DATE = "up to date"  # the catalog-info.yaml already says what the adapter reads: nothing opened
    REFUSED = "refused"  # meshbot will not act (someone else's commit on the branch, a fork, every update refused)
    FAILED = "failed"  # the component, its adapter or the repository stood in the way


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What one /import did, for the reply comment; messages and details are plain text (escaped when shown)."""

    status: ImportStatus
    component: str
    message: str
    details: list[str] = field(default_factory=list)
    known_components: list[str] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    refused: list[RefusedUpdate] = field(default_factory=list)  # updates of the adapter meshbot did not apply
    merge_request: MergeRequest | None = None
    branch: str | None = None
    path: str | None = None
    added: int = 0
    removed: int = 0
    validation_passed: bool | None = None
    forge: str = "github"

    def reply(self) -> str:
        """The markdown of the reply comment (templates/comments/import.md.j2)."""
        icon = {ImportStatus.OPENED: "✅", ImportStatus.UPDATED: "✅", ImportStatus.UP_TO_DATE: "✔️",
                ImportStatus.REFUSED: "✋", ImportStatus.FAILED: "❗"}[self.status]
        return markdown_environment().get_template("import.md.j2").render(
            component=self.component, icon=icon, status=str(self.status), message=self.message,
            term=_term(self.forge), merge_request=self.merge_request,
            reference=_reference(self.forge, self.merge_request.number) if self.merge_request else "",
            added=self.added, removed=self.removed, path=self.path or "", validation_passed=self.validation_passed,
            details=self.details[:DETAIL_LIMIT], more_details=max(0, len(self.details) - DETAIL_LIMIT),
            refused=[_shown(update) for update in self.refused[:DETAIL_LIMIT]],
            more_refused=max(0, len(self.refused) - DETAIL_LIMIT), known_components=self.known_components,
            log_lines=_log_lines(self.logs) if self.merge_request is None else [])


def import_component(
    repository: Repository,
    config: ServerConfig,
    policies: Sequence[Policy],
    *,
    forge: str,
    merge_request: MergeRequest,
    component: str,
    parameters: Mapping[str, str],
    environment: str,
    client_for: ClientFor | None = None,
    remote: RemoteLocations | None = None,
) -> ImportOutcome:
    """Reverse provision one component at the merge request's head and propose the result as a merge request."""

    def outcome(status: ImportStatus, message: str, **extra: Any) -> ImportOutcome:
        return ImportOutcome(status=status, component=component, message=message, forge=forge, **extra)

    term = _term(forge)
    if merge_request.state != "open":
        return outcome(ImportStatus.REFUSED, f"this {term} is {merge_request.state}: /import works on open ones")
    if merge_request.from_fork:
        return outcome(ImportStatus.REFUSED, f"this {term} comes from a fork, whose branches meshbot cannot push "
                                             f"to; run /import on a {term} from a branch of this repository")
    reader = RevisionReader(repository, merge_request.head_sha)
    try:
        descriptor = assemble(reader, environment, remote)
    except InputErrors as invalid:
        return outcome(ImportStatus.FAILED, "the data product at this head could not be assembled; fix it first",
                       details=[_error_line(error) for error in invalid.errors])
    except FileTooLarge as too_large:
        return outcome(ImportStatus.FAILED, f"{too_large.path}: {too_large}")
    except ForgeError as failure:
        return outcome(ImportStatus.FAILED, f"the repository could not be read: {failure.message}")
    matches = find_components(descriptor, component)
    known = [component_name(item) for item in descriptor.components]
    if len(matches) != 1:
        why = "is not a component of this data product" if not matches else "names several components"
        close = difflib.get_close_matches(component, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close and not matches else "; name one by its name or id"
        return outcome(ImportStatus.FAILED, f"'{component}' {why}{hint}", known_components=known)
    target = matches[0]
    name, component_id = component_name(target), str(target.get("id"))
    path = descriptor.component_files.get(component_id, "")
    if path not in reader.list_files():
        return outcome(ImportStatus.REFUSED, f"component '{component_id}' is defined in {path}, outside this "
                                             "repository: run /import in the repository that holds it")
    try:
        text = reader.read_bytes(path, MAX_FILE_BYTES).decode("utf-8")
        documents = load_documents(text, path)
    except (UnicodeDecodeError, FileTooLarge, InputErrors) as unreadable:
        return outcome(ImportStatus.FAILED, f"{path} cannot be read: {unreadable}")
    if len(documents) != 1:
        return outcome(ImportStatus.REFUSED, f"{path} holds {len(documents)} entities; /import rewrites a "
                                             "catalog-info.yaml that holds one component", path=path)
    use_case = target.get("useCaseTemplateId")
    if not isinstance(use_case, str) or not use_case:
        return outcome(ImportStatus.FAILED, f"component '{component_id}' has no spec.mesh.useCaseTemplateId, which "
                                            "reverse provisioning needs", path=path)
    registry = AdapterRegistry(config.adapters)
    template = target.get("infrastructureTemplateId")
    adapter = registry.find(template, environment) if isinstance(template, str) else None
    if adapter is None:
        return outcome(ImportStatus.FAILED, f"no tech adapter serves infrastructureTemplateId {template!r} of "
                                            f"'{component_id}' in environment '{environment}'", path=path)
    client = (client_for or registry.client)(adapter)
    result = client.reverse_provision(reverse_provisioning_request(use_case, environment, dict(parameters),
                                                                   documents[0].value))
    if not result.ok:
        return outcome(ImportStatus.FAILED, f"the tech adapter's reverse provisioning failed: {result.message}",
                       details=result.details, logs=result.logs, path=path)
    screened = screen_updates(result.updates)
    refused = screened.refused
    if refused and not screened.allowed:
        return outcome(ImportStatus.REFUSED, f"every update the tech adapter proposed is one it may not make, so "
                                             f"nothing was imported and no {term} was opened",
                       refused=refused, logs=result.logs, path=path)
    try:
        updated = apply_updates(text, screened.allowed)
    except UpdateError as wrong:
        return outcome(ImportStatus.FAILED, f"the adapter's updates cannot be applied to {path}: {wrong}",
                       refused=refused, logs=result.logs, path=path)
    if updated == text:
        return outcome(ImportStatus.UP_TO_DATE, f"{path} already matches what the adapter reads: nothing to import",
                       refused=refused, logs=result.logs, path=path)
    diff = unified_diff(path, text, updated)
    added, removed = diff_size(diff)
    report, errors = validate(reader, path, updated, environment, policies, remote)
    passed = report is not None and report.passed and not errors
    proposal = _Proposal(forge=forge, parent=merge_request, component_id=component_id, name=name, path=path,
                         use_case=use_case, environment=environment, parameters=dict(parameters), diff=diff,
                         report=report, errors=errors, logs=result.logs, refused=refused)
    common: dict[str, Any] = {"logs": result.logs, "path": path, "added": added, "removed": removed,
                              "validation_passed": passed, "refused": refused}
    branch = import_branch(merge_request.number, name)
    try:
        return _publish(repository, proposal, branch, updated, outcome, common)
    except ForgeError as failure:
        moved = failure.status == 409
        return outcome(ImportStatus.REFUSED if moved else ImportStatus.FAILED,
                       f"branch {branch} moved while meshbot committed; nothing was overwritten: {failure.message}"
                       if moved else f"the forge refused: {failure.message}", branch=branch, **common)


# ---------------------------------------------------------------- finding the component


def find_components(descriptor: Descriptor, wanted: str) -> list[dict[str, Any]]:
    """The components wanted names: by id, else by name (spec.mesh.name, title, or metadata.name's last part)."""
    return find_components_named(descriptor.components, wanted)


def import_branch(number: int, name: str) -> str:
    """The branch of the import of one component for one merge request."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "component"
    return f"{BRANCH_PREFIX}/{number}/{slug}"


def recorded_head(description: str) -> str | None:
    """The sha meshbot last pushed to an import branch, from its merge request's description."""
    found = _MARKER.search(description or "")
    return found.group(1) if found else None


# ---------------------------------------------------------------- the change and its validation


def unified_diff(path: str, before: str, after: str) -> str:
    """The change to one file as a unified diff."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))


def diff_size(diff: str) -> tuple[int, int]:
    """(lines added, lines removed) of a unified diff."""
    lines = diff.splitlines()
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return added, removed


class _Edited:
    """A revision with one file's content replaced: the repository as it would be once the import is merged."""

    def __init__(self, reader: FileReader, path: str, content: bytes) -> None:
        self.reader, self.path, self.content = reader, path, content

    def list_files(self) -> Sequence[str]:
        """The revision's files (the edited one is among them)."""
        return self.reader.list_files()

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The edited content for the edited path, else the revision's."""
        if path != self.path:
            return self.reader.read_bytes(path, max_bytes)
        if len(self.content) > max_bytes:
            raise FileTooLarge(path, len(self.content), max_bytes)
        return self.content


def validate(reader: FileReader, path: str, updated: str, environment: str, policies: Sequence[Policy],
             remote: RemoteLocations | None = None) -> tuple[CheckReport | None, list[InputError]]:
    """Assembly and governance of the revision with the updated file: the report, or why there is none."""
    try:
        descriptor = assemble(_Edited(reader, path, updated.encode()), environment, remote)
    except InputErrors as invalid:
        return None, list(invalid.errors)
    except FileTooLarge as too_large:
        return None, [InputError(f"{too_large.path}: {too_large}")]
    active = sum(1 for policy in policies if policy.status is not Status.DRAFT)
    return CheckReport(descriptor=descriptor, results=evaluate(descriptor, policies), policy_count=active), []


# ---------------------------------------------------------------- branch and merge request


@dataclass(frozen=True, slots=True)
class _Proposal:
    """Everything the import merge request's description says."""

    forge: str
    parent: MergeRequest
    component_id: str
    name: str
    path: str
    use_case: str
    environment: str
    parameters: dict[str, str]
    diff: str
    report: CheckReport | None
    errors: list[InputError]
    logs: list[dict[str, Any]]
    refused: list[RefusedUpdate] = field(default_factory=list)


def _publish(repository: Repository, proposal: _Proposal, branch: str, updated: str,
             outcome: Callable[..., ImportOutcome], common: dict[str, Any]) -> ImportOutcome:
    """Commit the file on the import branch (never over someone else's commit) and open or update the request."""
    parent, term = proposal.parent, _term(proposal.forge)
    head = repository.branch_head(branch)
    existing = repository.find_merge_request(branch, parent.source_branch)
    recorded = recorded_head(existing.description) if existing is not None else None
    message = f"Import {proposal.name} from its tech adapter ({proposal.environment})\n\nRequested with /import " \
              f"on {_reference(proposal.forge, parent.number)}."
    files = {proposal.path: updated.encode()}
    if head is None:
        repository.create_branch(branch, parent.head_sha)
        sha = repository.commit_files(branch, parent.head_sha, message, files)
    elif head == recorded or (existing is None and head == parent.head_sha):
        # The second case: meshbot created the branch but stopped before committing on it.
        try:
            current = repository.read_file(head, proposal.path)
        except FileNotFoundError:
            current = None
        sha = head if current == files[proposal.path] else repository.commit_files(branch, head, message, files)
    else:
        last = f"meshbot last pushed {recorded[:SHORT_SHA]}" if recorded else "meshbot has no record of pushing it"
        return outcome(ImportStatus.REFUSED,
                       f"branch {branch} has a commit meshbot did not make (its head is {head[:SHORT_SHA]}, {last}); "
                       f"meshbot does not overwrite it. Merge or close that {term} and delete the branch, then "
                       "/import again", branch=branch, merge_request=existing, **common)
    title = f"meshbot: import {proposal.name} into {parent.source_branch}"
    description = describe(proposal, sha)
    if existing is None:
        opened = repository.open_merge_request(branch, parent.source_branch, title, description)
        return outcome(ImportStatus.OPENED, f"opened a {term} that updates {proposal.path} from the tech adapter; "
                                            "review and merge it (meshbot never does)",
                       branch=branch, merge_request=opened, **common)
    repository.update_merge_request(existing.number, title, description)
    return outcome(ImportStatus.UPDATED, f"updated the {term} that imports {proposal.name} with what the tech adapter "
                                         "reads now; review and merge it (meshbot never does)",
                   branch=branch, merge_request=existing, **common)


def describe(proposal: _Proposal, sha: str) -> str:
    """The import merge request's description, with the marker recording the sha meshbot pushed."""
    term, parent = _term(proposal.forge), proposal.parent
    parameters = ", ".join(code_span(f"{key}={value}") for key, value in proposal.parameters.items()) or "none"
    added, removed = diff_size(proposal.diff)
    lines = [
        MARKER.format(sha=sha),
        f"### meshbot import: {code_span(proposal.name)}",
        "",
        f"Requested with `/import` on {_reference(proposal.forge, parent.number)}. meshbot asked the tech adapter of "
        f"component {code_span(proposal.component_id)} what the infrastructure really looks like (use case template "
        f"{code_span(proposal.use_case)}, environment {code_span(proposal.environment)}, parameters {parameters}); "
        f"this {term} changes {code_span(proposal.path)} to match.",
        "",
        *_refused_markdown(proposal.refused),
        f"#### The change: {added} lines added, {removed} removed",
        "",
        *_fenced("diff", proposal.diff, DIFF_LIMIT),
        "",
        "#### Validation (assembly and governance with this change applied)",
        "",
        _validation_markdown(proposal.report, proposal.errors),
        "",
        "#### Adapter logs",
        "",
        *(_log_lines(proposal.logs) or ["The adapter sent no logs."]),
        "",
        "#### How to review",
        "",
        "- Check that the change describes the real infrastructure; edit this branch if it needs more (meshbot "
        "will then leave it alone: a later `/import` does not overwrite your commits).",
        f"- Merge this {term} into {code_span(parent.source_branch)} yourself: meshbot never merges it.",
        f"- A new {code_span('/import ' + proposal.name)} on {_reference(proposal.forge, parent.number)} updates "
        f"this {term} in place.",
    ]
    return "\n".join(lines) + "\n"


def _refused_markdown(refused: list[RefusedUpdate]) -> list[str]:
    """The section naming the adapter's updates meshbot did not apply, with a blank line after it (none if none)."""
    if not refused:
        return []
    shown = [f"- {code_span(update.path)}: {escape_markdown(update.reason)}"
             for update in map(_shown, refused[:DETAIL_LIMIT])]
    more = [f"- … {len(refused) - DETAIL_LIMIT} more"] if len(refused) > DETAIL_LIMIT else []
    return ["#### Updates not applied", "",
            "The tech adapter also proposed these; a tech adapter may change what is below `spec.mesh`, never a "
            "component's identity, ownership, kind, data product or adapter, so meshbot left them out:", "",
            *shown, *more, ""]


def _shown(update: RefusedUpdate) -> RefusedUpdate:
    """A refused update with its path (the adapter's text) cut to a length a comment can show."""
    if len(update.path) <= PATH_LIMIT:
        return update
    return RefusedUpdate(update.path[:PATH_LIMIT - 1] + "…", update.reason)


def _validation_markdown(report: CheckReport | None, errors: list[InputError]) -> str:
    if report is None:
        shown = [f"- {escape_markdown(_error_line(error))}" for error in errors[:DETAIL_LIMIT]]
        more = [f"- … {len(errors) - DETAIL_LIMIT} more"] if len(errors) > DETAIL_LIMIT else []
        return "\n".join(["❌ The data product does not assemble with this change:", "", *shown, *more])
    # The report's own heading sits below this section's.
    return re.sub(r"^### ", "##### ", to_markdown(report, limit=VALIDATION_LIMIT).strip(), flags=re.MULTILINE)


def _fenced(language: str, text: str, limit: int) -> list[str]:
    """Text as a fenced code block no line of it can close (adapter values are user text)."""
    cut = len(text) > limit
    body = text[:limit].rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    note = [f"…(diff cut at {limit:,} characters)"] if cut else []
    return [f"{fence}{language}", body, fence, *note]


def _log_lines(logs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in logs[:LOG_LIMIT]:
        level = str(entry.get("level", "INFO"))
        message = str(entry.get("message", ""))
        if len(message) > LOG_MESSAGE_LIMIT:
            message = message[:LOG_MESSAGE_LIMIT - 1] + "…"
        lines.append(f"- {code_span(level)} {escape_markdown(message)}")
    if len(logs) > LOG_LIMIT:
        lines.append(f"- … {len(logs) - LOG_LIMIT} more entries")
    return lines


def _error_line(error: InputError) -> str:
    position = error.position
    if position is None:
        return error.message
    where = position.file + (f" line {position.line}" if position.line is not None else "")
    return f"{where}: {error.message}"


def _term(forge: str) -> str:
    return "pull request" if forge == "github" else "merge request"


def _reference(forge: str, number: int) -> str:
    return f"#{number}" if forge == "github" else f"!{number}"
