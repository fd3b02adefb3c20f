"""One environment's plan diff as the markdown of a merge request comment, within a size budget."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.engine.plan_diff import Action, ComponentDiff, FieldChange, PlanDiff
from policies.report import code_span, escape_markdown, markdown_environment, markdown_position

MARKDOWN_LIMIT = 60_000
UNCHANGED_LISTED = 10  # more unchanged components than this are counted, not listed
CUT_NOTE = "\n\n…(plan cut at the comment size limit)\n"
SECTION_ORDER = (Action.ADD, Action.CHANGE, Action.REMOVE)
BUDGET_PRIORITY = (Action.REMOVE, Action.CHANGE, Action.ADD)  # what is kept first when the budget is short


@dataclass(slots=True)
class _Entry:
    """A component's list item and its field change lines, as far as the budget allows."""

    head: str
    lines: list[str]
    shown: bool = False
    shown_lines: list[str] = field(default_factory=list)


def plan_markdown(diff: PlanDiff, limit: int = MARKDOWN_LIMIT, prune: str | None = None) -> str:
    """The comment body: components to add, change and remove with their field changes, at most limit characters.

    prune: the environment's prune mode, said under the components to remove (None: not said).
    """
    template = markdown_environment().get_template("plan_diff.md.j2")
    product = _Entry(head="", lines=[_change_line(change, "- ") for change in diff.product.changes], shown=True)
    sections = {action: [_Entry(head=_head(component), lines=[_change_line(change, "  - ")
                                                                for change in component.changes])
                         for component in diff.of(action)] for action in SECTION_ORDER}
    unchanged = diff.of(Action.UNCHANGED)
    listed = [code_span(component.id) for component in unchanged] if len(unchanged) <= UNCHANGED_LISTED else []

    def render(left_out: int, unchanged_listed: list[str]) -> str:
        return template.render(
            diff=diff,
            counts=diff.counts,
            product_lines=product.shown_lines,
            sections=[{"action": str(action), "total": len(entries),
                       "entries": [entry for entry in entries if entry.shown]}
                      for action, entries in sections.items() if entries],
            unchanged=len(unchanged),
            unchanged_listed=unchanged_listed,
            left_out=left_out,
            prune=prune,
        )

    budget = limit - len(render(left_out=10**9, unchanged_listed=[]))
    left_out = 0
    for action in BUDGET_PRIORITY:
        for entry in sections[action]:
            if len(entry.head) + 1 <= budget:
                entry.shown = True
                budget -= len(entry.head) + 1
            else:
                left_out += 1 + len(entry.lines)
    for entry in [product, *sections[Action.CHANGE]]:
        for number, line in enumerate(entry.lines if entry.shown else []):
            if len(line) + 1 > budget:
                left_out += len(entry.lines) - number
                break
            entry.shown_lines.append(line)
            budget -= len(line) + 1
    listed_cost = sum(len(item) + 2 for item in listed) + 40
    body = render(left_out, listed if listed_cost <= budget else [])
    if len(body) <= limit:
        return body
    # Only a limit smaller than the comment's fixed parts gets here.
    if limit <= len(CUT_NOTE):
        return body[: max(limit, 0)]
    return body[: limit - len(CUT_NOTE)] + CUT_NOTE


def _head(component: ComponentDiff) -> str:
    where = markdown_position(component.position)
    # the name only when it says more than the id's last part (the default name)
    name = escape_markdown(component.name) if component.name != component.id.rsplit(":", 1)[-1] else ""
    return (f"- {code_span(component.id)}{' ' + name if name else ''} ({escape_markdown(component.kind)})"
            + (f" · {where}" if where else ""))


def _change_line(change: FieldChange, bullet: str) -> str:
    where = markdown_position(change.position)
    return f"{bullet}{markdown_summary(change)}" + (f" · {where}" if where else "")


def markdown_summary(change: FieldChange) -> str:
    """A change's summary as markdown: its text made inert, its values as code spans."""
    return "".join(code_span(text) if code else _inert(text) for text, code in change.parts)


def _inert(text: str) -> str:
    """escape_markdown keeping the spaces at either end, which separate this text from the code spans around it."""
    if not text.strip():
        return " " if text else ""
    lead = " " if text[0].isspace() else ""
    trail = " " if text[-1].isspace() else ""
    return lead + escape_markdown(text.replace("->", "→")) + trail
