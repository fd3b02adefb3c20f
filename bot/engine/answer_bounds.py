"""Bounds on what a tech adapter's answer leaves in a task record: each part capped, and still valid data.

A task record keeps the adapter's answer in four parts: `message` (the adapter's result text, or what went
wrong), `info` (publicInfo, privateInfo), `logs` and `details`. Each part is capped at MAX_PART_BYTES of JSON as
the Store writes it, so that one adapter's answer cannot fill Redis (a record is kept for every deployment of
the history). What does not fit is dropped, and the part says so:

- text: clipped, ending "…(cut: N bytes more; the adapter's full answer was not kept)" (N: UTF-8 bytes);
- `logs`: the newest entries that fit, after one WARNING entry saying how many older ones were dropped;
- `details`: the first lines that fit, then one line saying how many were dropped;
- `info`: its top-level keys (publicInfo, privateInfo, ...) that fit, in order, and a `meshbot` key naming the
  keys not stored. A value is kept whole or not at all, so what is kept keeps the shape the adapter gave it.

A log entry or a detail line is kept whole or not at all too: the walk stops at the first one that does not fit.
"""

from __future__ import annotations

import json
from typing import Any

MAX_PART_BYTES = 256 * 1024
_LONGEST_ESCAPE = 12  # JSON bytes per character at most: a character outside the BMP becomes two \uXXXX escapes
_NAMED_KEYS = 5  # an info note names at most this many dropped keys
_NAME_CHARACTERS = 64  # of each
_INFO_NOTE_RESERVE = 64 + _NAMED_KEYS * (_NAME_CHARACTERS + 1) * _LONGEST_ESCAPE + 512  # the note, at its longest


def json_size(value: Any) -> int:
    """The bytes of value as the Store writes it (json.dumps: ASCII, so one character is one byte)."""
    return len(json.dumps(value))


def bounded_answer(changes: dict[str, Any], limit: int = MAX_PART_BYTES) -> dict[str, Any]:
    """changes with the answer's parts (message, result, info, logs, details) each within limit; others as given."""
    bounded = dict(changes)
    for text_part in ("message", "result"):  # result: the provision answer's, kept for updateacl's provisionInfo
        if isinstance(bounded.get(text_part), str):
            bounded[text_part] = bounded_text(bounded[text_part], limit)
    if "info" in bounded:
        bounded["info"] = bounded_info(bounded["info"], limit)
    if isinstance(bounded.get("logs"), list):
        bounded["logs"] = bounded_logs(bounded["logs"], limit)
    if isinstance(bounded.get("details"), list):
        bounded["details"] = bounded_details(bounded["details"], limit)
    return bounded


def bounded_text(text: str, limit: int = MAX_PART_BYTES) -> str:
    """text, or its longest start that fits in limit with the note saying how much was cut."""
    if len(text) <= (limit - 2) // _LONGEST_ESCAPE or json_size(text) <= limit:
        return text
    total = _utf8_size(text)
    reserve = json_size(_cut_note(total)) - 2  # the note for all of it is the longest the note can be
    low, high = 0, min(len(text), max(0, limit - 2 - reserve))
    while low < high:  # the longest start whose JSON, with the note, fits
        middle = (low + high + 1) // 2
        if json_size(text[:middle]) + reserve <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + _cut_note(total - _utf8_size(text[:low]))


def bounded_logs(logs: list[Any], limit: int = MAX_PART_BYTES) -> list[Any]:
    """logs, or the newest entries that fit in limit after one entry saying how many older ones were dropped."""
    total = json_size(logs)
    if total <= limit:
        return logs

    def note(dropped: int) -> dict[str, Any]:
        return {"level": "WARNING",
                "message": f"meshbot dropped {_count(dropped, 'older log entry', 'older log entries')}: the adapter's "
                           f"logs were {total} bytes, over the {_size_text(limit)} meshbot keeps"}

    kept = _fitting(list(reversed(logs)), limit - 2 - (json_size(note(len(logs))) + 2))
    kept.reverse()
    return [note(len(logs) - len(kept)), *kept]


def bounded_details(details: list[Any], limit: int = MAX_PART_BYTES) -> list[Any]:
    """details, or the first lines that fit in limit and then one line saying how many more were dropped."""
    total = json_size(details)
    if total <= limit:
        return details

    def note(dropped: int) -> str:
        return (f"… meshbot dropped {_count(dropped, 'more line', 'more lines')}: the details were {total} bytes, "
                f"over the {_size_text(limit)} meshbot keeps")

    kept = _fitting(details, limit - 2 - (json_size(note(len(details))) + 2))
    return [*kept, note(len(details) - len(kept))]


def bounded_info(info: Any, limit: int = MAX_PART_BYTES) -> Any:
    """info, or its top-level keys that fit in limit, in order, with a `meshbot` key naming those not stored."""
    if info is None:
        return None
    total = json_size(info)
    if total <= limit:
        return info
    note = f"info was {total} bytes, over the {_size_text(limit)} meshbot keeps; not stored"
    if not isinstance(info, dict):
        return {"meshbot": note}
    budget = limit - 2 - _INFO_NOTE_RESERVE
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in info.items():
        cost = json_size(key) + 2 + json_size(value) + 2  # "key": value,
        if key != "meshbot" and cost <= budget:
            kept[key] = value
            budget -= cost
        else:
            dropped.append(str(key))
    if kept:
        named = ", ".join(_clipped_name(name) for name in dropped[:_NAMED_KEYS])
        more = len(dropped) - _NAMED_KEYS
        note += f": {named}" + (f" and {_count(more, 'more key', 'more keys')}" if more > 0 else "")
    return {**kept, "meshbot": note}


# ---------------------------------------------------------------------- helpers


def _fitting(items: list[Any], budget: int) -> list[Any]:
    """The first items whose JSON, with a separator each, fits in budget (stopping at the first that does not)."""
    kept = []
    for item in items:
        cost = json_size(item) + 2  # ", "
        if cost > budget:
            break
        kept.append(item)
        budget -= cost
    return kept


def _cut_note(more: int) -> str:
    return f"…(cut: {more} bytes more; the adapter's full answer was not kept)"


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))  # JSON may carry lone surrogates: count them, never fail


def _clipped_name(name: str) -> str:
    return name if len(name) <= _NAME_CHARACTERS else name[:_NAME_CHARACTERS] + "…"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _size_text(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"

