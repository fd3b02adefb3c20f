"""Render governance results for terminals (text), machines (json) and merge request comments (markdown)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bot.descriptor.errors import SourcePosition
from bot.descriptor.model import Descriptor
from policies.model import Failure, PolicyResult, Severity, Status

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MARKDOWN_LIMIT = 60_000


@dataclass(slots=True)
class CheckReport:
    """The results of one governance run on one descriptor."""

    descriptor: Descriptor
    results: list[PolicyResult]
    policy_count: int

    @property
    def passed(self) -> bool:
        """True when no result blocks."""
        return not any(result.blocking for result in self.results)

    def failed(self, category: str) -> list[PolicyResult]:
        """Failed results of one category: blocking, grace, warning or info (an engine error counts as failed)."""
        return [result for result in self.results
                if (result.errors or result.engine_error is not None) and category_of(result) == category]

    @property
    def passed_results(self) -> list[PolicyResult]:
        """Results that were evaluated and found nothing wrong."""
        return [result for result in self.results
                if result.evaluated and not result.errors and result.engine_error is None]

    @property
    def engine_errors(self) -> list[PolicyResult]:
        """Results whose remote engine gave no answer (outcome error: never passed, blocking when enabled)."""
        return [result for result in self.results if result.engine_error is not None]

    @property
    def not_evaluated(self) -> list[PolicyResult]:
        """Results with nothing to evaluate against (never counted as passed)."""
        return [result for result in self.results if not result.evaluated]


CATEGORIES = ("blocking", "grace", "warning", "info")


def category_of(result: PolicyResult) -> str:
    """How a failed result is presented: blocking, grace (would block once enabled), warning or info."""
    if result.blocking:
        return "blocking"
    if result.severity is Severity.ERROR and result.status is Status.GRACE:
        return "grace"
    return "warning" if result.severity in (Severity.WARNING, Severity.ERROR) else "info"


def to_json(report: CheckReport) -> dict[str, Any]:
    """The `meshbot check --format json` document."""
    return {
        "passed": report.passed,
        "dataProduct": report.descriptor.id,
        "environment": report.descriptor.environment,
        "results": [result.as_json() for result in report.results],
    }


def to_json_text(report: CheckReport) -> str:
    """The `meshbot check --format json` document as text: `json.dumps(to_json(report), indent=2)`, byte for byte."""
    return json_text(to_json(report))


def to_json_bytes(report: CheckReport) -> bytes:
    """to_json_text's text encoded as ASCII (it is all ASCII), without building the text: for writing to a file."""
    return json_bytes(to_json(report))


_NOT_PRINTABLE_ASCII = re.compile("[\x7f-\U0010ffff]")


def json_text(document: Any) -> str:
    """`json.dumps(document, indent=2)` byte for byte through orjson's C encoder, for documents of strings, integers,
    booleans, None, lists and string-keyed dicts (like the check report; no floats); what orjson refuses, json
    encodes."""
    return json_bytes(document).decode("ascii")


def json_bytes(document: Any) -> bytes:
    """json_text's text encoded as ASCII, without decoding orjson's bytes to text when they are ASCII already."""
    try:
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    except (orjson.JSONEncodeError, TypeError):  # e.g. a lone surrogate, a float, an integer beyond 64 bits
        return json.dumps(document, indent=2).encode("ascii")
    if data.isascii() and b"\x7f" not in data:
        return data
    # orjson writes DEL and non-ASCII characters as they are, the standard library as \uXXXX (ensure_ascii);
    # outside strings the document holds neither, so escaping each one keeps it the same JSON
    return _NOT_PRINTABLE_ASCII.sub(_escape_character, data.decode("utf-8")).encode("ascii")


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xd800 | (code >> 10):04x}\\u{0xdc00 | (code & 0x3ff):04x}"


# ---------------------------------------------------------------- text

_COLORS = {"blocking": "31;1", "grace": "35", "warning": "33", "info": "36", "passed": "32", "dim": "2"}
_LABELS = {"blocking": "BLOCKING", "grace": "GRACE", "warning": "WARNING", "info": "INFO"}


def to_text(report: CheckReport, color: bool = False, show_file: Callable[[str], str] = str) -> str:
    """A terminal report: failures grouped by category, then a one-line summary."""
    def paint(category: str, text: str) -> str:
        return f"\x1b[{_COLORS[category]}m{text}\x1b[0m" if color else text

    descriptor = report.descriptor
    lines = [
        f"meshbot check: {descriptor.id} ({descriptor.environment}), "
        f"{counted(len(descriptor.components), 'component')}, {counted(report.policy_count, 'policy', 'policies')}",
        "",
    ]
    for category in CATEGORIES:
        for result in report.failed(category):
            lines.append(f"{paint(category, _LABELS[category].ljust(8))}  {result.policy} on {result.resource}  "
                         + paint("dim", f"[{_status_text(result)}] {result.description}"))
            if result.engine_error is not None:
                consequence = engine_consequence(result)
                lines.append(f"    {paint(category, 'ENGINE ERROR')}: {result.engine_error}; {consequence}")
            for failure in result.errors:
                where = _text_position(failure, show_file)
                lines.append(f"    {where}{failure.path}: {failure.message}")
            lines.append("")
    counts = {category: len(report.failed(category)) for category in CATEGORIES}
    passed, blocking = f"{len(report.passed_results)} passed", f"{counts['blocking']} blocking"
    summary = (  # a colour only where there is something to see: "0 blocking" is no alarm
        f"{paint('passed', passed) if report.passed_results else passed}, "
        f"{paint('blocking', blocking) if counts['blocking'] else blocking}, "
        f"{counts['grace']} in grace, {counted(counts['warning'], 'warning')}, {counts['info']} info"
    )
    if report.engine_errors:
        summary += f", {counted(len(report.engine_errors), 'engine error')} (counted above)"
    if report.not_evaluated:
        summary += f", {len(report.not_evaluated)} not evaluated"
        lines.extend(f"NOT EVALUATED  {result.policy} on {result.resource}: not evaluated: {result.note}"
                     for result in report.not_evaluated)
        lines.append("")
    lines.append(summary)
    lines.append("Result: " + (paint("passed", "PASSED") if report.passed else paint("blocking", "BLOCKED")))
    return "\n".join(lines) + "\n"


def engine_consequence(result: PolicyResult) -> str:
    """What an engine error means for the result: it blocks (fail closed) when the policy is enabled."""
    if result.blocking:
        return "the policy engine gave no verdict, so this policy counts as failed and blocks (fail closed)"
    return "the policy engine gave no verdict, so this policy was not evaluated"


def _status_text(result: PolicyResult) -> str:
    """`error, grace`, with `, blocks from DATE` while a dated grace runs."""
    text = f"{result.severity}, {result.status}"
    return f"{text}, {result.blocks_from}" if result.blocks_from else text


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """A count and its noun in the right number: `1 component`, `2 components`, `0 policies`."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _text_position(failure: Failure, show_file: Callable[[str], str]) -> str:
    position = failure.position
    if position is None:
        return ""
    text = show_file(position.file)
    if position.line is not None:
        text += f":{position.line}"
        if position.column is not None:
            text += f":{position.column}"
    return text + ": "


# ---------------------------------------------------------------- markdown

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")


def escape_markdown(text: str) -> str:
    """User text made inert in GitHub/GitLab markdown: no formatting, HTML, links or @mentions."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = text.replace("@", "@\u200b")
    return " ".join(text.split())


def code_span(text: str) -> str:
    """User text as an inline code span that no backtick inside it can close early."""
    text = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{padding}{text}{padding}{fence}"


@functools.cache
def markdown_environment() -> jinja2.Environment:
    """The jinja2 environment of the comment templates, with the markdown escaping filters (one per process, so
    each template is compiled once)."""
    import jinja2  # here: only markdown needs it, and `meshbot check` starts faster without it

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / "comments"),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["md"] = escape_markdown
    environment.filters["code"] = code_span
    environment.filters["cell"] = lambda text: code_span(text).replace("|", "\\|")
    environment.filters["position"] = markdown_position
    environment.filters["counted"] = counted
    environment.filters["engine_consequence"] = engine_consequence
    return environment


def to_markdown(report: CheckReport, limit: int = MARKDOWN_LIMIT, headline: bool = True) -> str:
    """The merge request comment body: blocking failures first, passed checks folded, at most limit characters.

    Without the headline (a review of several environments has its own) the body starts at the summary line.
    """
    template = markdown_environment().get_template("governance.md.j2")
    budget = limit - 4_000  # room for the header, summary table and closing notes
    sections, left_out = [], 0
    for category in CATEGORIES:
        entries = []
        for result in report.failed(category):
            lines = [_markdown_failure(failure) for failure in result.errors]
            cost = sum(len(line) + 1 for line in lines) + len(result.policy) + len(result.resource) + 200
            cost += 2 * len(result.engine_error) + 200 if result.engine_error is not None else 0
            if cost > budget:
                left_out += len(result.errors)
                continue
            budget -= cost
            entries.append({"result": result, "lines": lines})
        if entries:
            sections.append({"category": category, "entries": entries})
    passed = report.passed_results
    passed_shown = []
    for result in passed:
        cost = len(result.policy) + len(result.resource) + 20
        if cost > budget:
            break
        budget -= cost
        passed_shown.append(result)
    counts = {category: len(report.failed(category)) for category in CATEGORIES}
    body = template.render(
        headline=headline,
        report=report,
        sections=sections,
        counts=counts,
        passed=passed,
        passed_shown=passed_shown,
        not_evaluated=report.not_evaluated,
        engine_errors=report.engine_errors,
        left_out=left_out,
    )
    return body if len(body) <= limit else body[: limit - 80] + "\n\n…(report cut at the comment size limit)\n"


def markdown_position(position: SourcePosition | None) -> str:
    """`file` line L, column C for a comment; empty when there is no position."""
    if position is None:
        return ""
    where = code_span(position.file)
    if position.line is not None:
        where += f" line {position.line}"
        if position.column is not None:
            where += f", column {position.column}"
    return where


def _markdown_failure(failure: Failure) -> str:
    where = markdown_position(failure.position)
    return f"- {where + ' · ' if where else ''}{code_span(failure.path)}: {escape_markdown(failure.message)}"
