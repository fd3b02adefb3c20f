"""The merge request comment of a review: a summary row per environment, then each environment's details folded."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.descriptor.errors import InputError
from bot.forge.plan_report import plan_markdown
from policies.report import CATEGORIES, code_span, escape_markdown, markdown_environment, markdown_position, to_markdown
from vcs.base import CommitState

if TYPE_CHECKING:
    from bot.forge.review import EnvironmentReview

SUMMARY_RESERVE = 6_000  # the summary table is rendered first and always kept whole
DETAIL_OVERHEAD = 200  # <details>, its summary line and blank lines


def review_comment(sha: str, environments: Sequence[EnvironmentReview], limit: int, short_sha: int = 8,
                   environment_statuses: bool = False) -> str:
    """The comment body (without marker and footer) in at most limit characters; the summary is never cut."""
    template = markdown_environment().get_template("review.md.j2")
    rows = [{"environment": item.environment, "gating": item.gating, "governance": governance_cell(item),
             "plan": plan_cell(item)} for item in environments]
    data_product = next((item.report.descriptor.id for item in environments if item.report is not None), "")
    context = {"headline": headline(environments), "data_product": data_product, "sha": sha[:short_sha],
               "rows": rows, "any_gating": any(item.gating for item in environments),
               "environment_statuses": environment_statuses}
    summary = template.render(**context, details=[])
    budget = max(limit - len(summary) - DETAIL_OVERHEAD * len(environments), 0)
    share = budget // max(len(environments), 1)
    details = [{"summary": html.escape(f"{item.environment}: {governance_text(item)} · plan: {plan_text(item)}"),
                "body": _detail_body(item, share)} for item in environments]
    return template.render(**context, details=details)


def headline(environments: Sequence[EnvironmentReview]) -> str:
    """✅ passed, ⚠️ passed with warnings, ❌ blocked in ENV, or ❗ error in ENV (over the gating environments)."""
    gating = [item for item in environments if item.gating] or list(environments)
    errored = [item.environment for item in gating if item.errors]
    if errored:
        return f"❗ error in {', '.join(errored)}"
    blocked = [item.environment for item in gating if item.state is CommitState.FAILURE]
    if blocked:
        return f"❌ blocked in {', '.join(blocked)}"
    warned = any(item.report is not None and (item.report.failed("grace") or item.report.failed("warning"))
                 for item in environments)
    return "⚠️ passed with warnings" if warned else "✅ passed"


def governance_text(item: EnvironmentReview) -> str:
    """The governance outcome of one environment in a few words."""
    if item.errors:
        return "❗ error"
    report = item.report
    if report is None:
        return "not checked"
    counts = {category: len(report.failed(category)) for category in CATEGORIES}
    parts = [f"{counts['blocking']} blocking"] if counts["blocking"] else []
    parts += [f"{counts['grace']} in grace"] if counts["grace"] else []
    parts += [f"{counts['warning']} warning{'s' if counts['warning'] != 1 else ''}"] if counts["warning"] else []
    refused = sum(1 for verdict in item.validation or [] if verdict.refused)
    parts += [f"{refused} refused by adapters"] if refused else []
    failed = sum(1 for verdict in item.validation or [] if verdict.failed)
    parts += [f"{failed} adapter{'s' if failed != 1 else ''} could not validate"] if failed else []
    if not parts:
        parts = ["passed"]
    parts += [f"{len(report.not_evaluated)} not evaluated"] if report.not_evaluated else []
    mark = "❌" if counts["blocking"] or refused else "⚠️" if counts["grace"] or counts["warning"] or failed else "✅"
    return f"{mark} {', '.join(parts)}"


def governance_cell(item: EnvironmentReview) -> str:
    """The governance cell of the summary table (its user text escaped)."""
    return escape_markdown(governance_text(item))


def plan_text(item: EnvironmentReview) -> str:
    """The plan summary of one environment, with the deployed version (plain text)."""
    if item.diff is None:
        return "no plan: see the errors"
    deployed = f" (deployed: {item.deployed.version})" if item.deployed is not None and item.deployed.version else ""
    return f"{item.diff.summary()}{deployed}"


def plan_cell(item: EnvironmentReview) -> str:
    """The plan summary as a table cell: the deployed version (repository text) as a code span."""
    if item.diff is None or item.deployed is None or not item.deployed.version:
        return escape_markdown(plan_text(item))
    version = code_span(item.deployed.version).replace("|", "\\|")  # a code span in a table cell escapes its pipes
    return f"{escape_markdown(item.diff.summary())} (deployed: {version})"


def _detail_body(item: EnvironmentReview, budget: int) -> str:
    if item.errors:
        lines = [f"{escape_markdown(item.reason)}, so no policy was run in `{item.environment}`:", ""]
        for error in item.errors:
            line = markdown_error(error)
            if len(line) + 1 > budget - 200:
                lines.append(f"\n> more problems were left out to fit the comment; run `meshbot check --env "
                             f"{item.environment}` for all of them.")
                break
            budget -= len(line) + 1
            lines.append(line)
        return "\n".join(lines)
    assert item.report is not None and item.diff is not None
    governance_budget = max(budget * 2 // 3, 2_000)
    governance = to_markdown(item.report, limit=governance_budget, headline=False)
    plan = plan_markdown(item.diff, limit=max(budget - len(governance), 1_000), prune=item.prune)
    body = f"{governance.rstrip()}\n\n{plan.rstrip()}"
    if item.validation is not None:
        adapters = markdown_environment().get_template("adapter_validation.md.j2").render(
            environment=item.environment, verdicts=item.validation)
        body += "\n\n" + (adapters.rstrip() if len(adapters) < budget // 3 else
                           "#### Tech adapters' validate\n\n…too long for the comment; run `/deploy --dry-run`.")
    return body


def markdown_error(error: InputError) -> str:
    """One input error as a markdown list item, with its position."""
    where = markdown_position(error.position)
    return f"- {where + ': ' if where else ''}{escape_markdown(error.message)}"
