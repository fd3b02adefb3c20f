"""Inline SVG drawings for the console: the dependency graph of a plan and the timeline of a deployment (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

NODE_WIDTH = 220
NODE_HEIGHT = 36
COLUMN_GAP = 60
ROW_GAP = 16
MARGIN = 10
STATE_CLASSES = {"COMPLETED": "ok", "DEPLOYED": "ok", "FAILED": "bad", "CORRUPT": "bad", "RUNNING": "run",
                 "PENDING": "wait", "SKIPPED": "skip", "NOT_DEPLOYED": "skip", "PARTIALLY_DEPLOYED": "warn"}


def short_label(task_id: str, limit: int = 30) -> str:
    """The part of a URN worth showing in a box: the last segment for a component, the name:major for a product."""
    parts = task_id.split(":")
    label = parts[-1] if task_id.startswith("urn:dmb:cmp:") else ":".join(parts[-2:]) if len(parts) > 2 else task_id
    return label if len(label) <= limit else label[: limit - 1] + "…"


def state_class(state: str | None) -> str:
    """The CSS class of a task or component state."""
    return STATE_CLASSES.get(str(state or "").upper(), "none")


def dependency_graph_svg(stages: Sequence[Sequence[str]], edges: Sequence[tuple[str, str]],
                         states: Mapping[str, str] | None = None) -> str:
    """The plan as a layered drawing: one column per stage, an arrow per dependency, boxes coloured by state."""
    states = states or {}
    position: dict[str, tuple[int, int]] = {}
    for column, stage in enumerate(stages):
        for row, task_id in enumerate(stage):
            position[task_id] = (MARGIN + column * (NODE_WIDTH + COLUMN_GAP), MARGIN + row * (NODE_HEIGHT + ROW_GAP))
    rows = max((len(stage) for stage in stages), default=0)
    width = MARGIN * 2 + max(len(stages), 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(rows, 1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>dependency graph</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>']
    for source, target in edges:
        if source not in position or target not in position:
            continue
        (x1, y1), (x2, y2) = position[source], position[target]
        parts.append(f'<line class="edge" x1="{x1 + NODE_WIDTH}" y1="{y1 + NODE_HEIGHT // 2}" x2="{x2}" '
                     f'y2="{y2 + NODE_HEIGHT // 2}" marker-end="url(#arrow)"/>')
    for task_id, (x, y) in position.items():
        css = state_class(states.get(task_id))
        parts.append(f'<g class="node {css}" data-id="{escape(task_id)}"><title>{escape(task_id)}'
                     f'{escape(" " + states[task_id]) if task_id in states else ""}</title>'
                     f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
                     f'<text x="{x + 8}" y="{y + NODE_HEIGHT // 2 + 5}">{escape(short_label(task_id))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Span:
    """One task on the timeline: its id, state, and start and end as ISO 8601 times (None when unknown)."""

    id: str
    state: str
    started_at: str | None
    finished_at: str | None


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time (a trailing Z allowed), or None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def duration_seconds(started_at: str | None, finished_at: str | None) -> float | None:
    """Seconds between two ISO 8601 times, or None when either is unknown."""
    start, end = parse_time(started_at), parse_time(finished_at)
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


def timeline_svg(spans: Sequence[Span], width: int = 720, label_width: int = 220, row_height: int = 24) -> str:
    """A Gantt chart of the tasks: one row each, a bar from start to end (open-ended while running)."""
    starts = [time for span in spans if (time := parse_time(span.started_at)) is not None]
    ends = [time for span in spans if (time := parse_time(span.finished_at)) is not None]
    origin = min(starts, default=None)
    last = max(starts + ends, default=None)
    total = max((last - origin).total_seconds(), 0.001) if origin and last else 1.0
    chart = width - label_width - MARGIN * 2
    height = MARGIN * 2 + max(len(spans), 1) * row_height + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>task timeline</title>']
    for row, span in enumerate(spans):
        y = MARGIN + row * row_height
        parts.append(f'<text class="label" x="{MARGIN}" y="{y + row_height - 8}">{escape(short_label(span.id))}</text>')
        start = parse_time(span.started_at)
        if start is None or origin is None:
            parts.append(f'<text class="note" x="{label_width}" y="{y + row_height - 8}">not started</text>')
            continue
        end = parse_time(span.finished_at) or last or start
        x = label_width + chart * (start - origin).total_seconds() / total
        bar = max(2.0, chart * (end - start).total_seconds() / total)
        seconds = duration_seconds(span.started_at, span.finished_at)
        took = f"{seconds:.2f} s" if seconds is not None else "running"
        parts.append(f'<g class="bar {state_class(span.state)}"><title>{escape(span.id)}: {escape(span.state)}, '
                     f'{took}</title><rect x="{x:.1f}" y="{y + 4}" width="{bar:.1f}" height="{row_height - 8}" '
                     f'rx="3"/></g>')
    parts.append(f'<text class="note" x="{label_width}" y="{height - 6}">0 s</text>'
                 f'<text class="note" x="{width - MARGIN}" y="{height - 6}" text-anchor="end">{total:.2f} s</text>'
                 "</svg>")
    return "".join(parts)
