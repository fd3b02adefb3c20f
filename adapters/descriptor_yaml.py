"""The descriptor as YAML text for the Tech Adapter API: dump_yaml's exact bytes, written fast for plain data.

ruamel.yaml's round-trip writer costs about 1.6 ms per component of a descriptor (1.6 s at 1,000 components),
which made a deployment's preparation slower than its component count. Descriptors are mostly maps, lists and
short plain strings, and for those the layout dump_yaml writes (2-space maps, lists indented by 4 with the dash at
2, no wrapping) is simple: this module writes it directly. Whenever a value is outside what it knows to write
exactly as ruamel.yaml does (a float, a multi-line or quoted string, non-ASCII text, a list in a list ...), the
whole document is written by dump_yaml instead, so the text is always dump_yaml's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from bot.descriptor.yamldump import dump_yaml, prepared_for_yaml

_STR_TAG = "tag:yaml.org,2002:str"
# Strings ruamel.yaml writes plain in block context: no indicator first, no ': ' or ' #', no quotes, no line break.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .,/@()+=:-]*")
_MAX_PLAIN = 1000  # far below the line width (4096): ruamel.yaml never splits it
_MAX_KEY = 100  # ruamel.yaml writes keys of 128 characters or more as explicit `? key`
_RESOLVER = VersionedResolver()


class _NotPlain(Exception):
    """A value this writer does not write itself."""


def adapter_yaml(data: dict[str, Any]) -> str:
    """dump_yaml(data), byte for byte."""
    text = plain_yaml(data)
    return dump_yaml(data) if text is None else text


def plain_yaml(data: dict[str, Any]) -> str | None:
    """dump_yaml(data) written directly, or None when data holds anything this writer leaves to dump_yaml."""
    if not isinstance(data, dict) or not data:
        return None
    out: list[str] = []
    try:
        _mapping(out, data, 0, None)
    except _NotPlain:
        return None
    return "".join(out)


@lru_cache(maxsize=65536)
def _plain_text(value: str, limit: int) -> bool:
    """Whether ruamel.yaml writes value as a plain scalar, unquoted (it reads back as this string)."""
    if len(value) > limit or not _PLAIN.fullmatch(value) or value.endswith((" ", ":")) or ": " in value:
        return False
    if prepared_for_yaml(value) is not value:  # quoted for YAML 1.1 readers (yes, on, 0777 ...)
        return False
    return bool(_RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR_TAG)


def _key(key: Any) -> str:
    if isinstance(key, str) and _plain_text(key, _MAX_KEY):
        return key
    raise _NotPlain


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        if _plain_text(value, _MAX_PLAIN):
            return value
        raise _NotPlain
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    raise _NotPlain  # None, floats, dates, anything else: dump_yaml decides


def _mapping(out: list[str], mapping: dict[Any, Any], indent: int, first: str | None) -> None:
    """A block map at column indent; first replaces the first line's indentation (a list item's dash)."""
    margin = " " * indent
    for position, (key, value) in enumerate(mapping.items()):
        prefix = first if position == 0 and first is not None else margin
        name = _key(key)
        if isinstance(value, dict):
            if not value:
                out.append(f"{prefix}{name}: {{}}\n")
            else:
                out.append(f"{prefix}{name}:\n")
                _mapping(out, value, indent + 2, None)
        elif isinstance(value, list):
            if not value:
                out.append(f"{prefix}{name}: []\n")
            else:
                out.append(f"{prefix}{name}:\n")
                _sequence(out, value, indent + 2)
        else:
            out.append(f"{prefix}{name}: {_scalar(value)}\n")


def _sequence(out: list[str], items: list[Any], indent: int) -> None:
    """A block list whose dashes are at column indent and whose items start two columns further."""
    dash = " " * indent + "- "
    for item in items:
        if isinstance(item, dict) and item:
            _mapping(out, item, indent + 2, dash)
        elif isinstance(item, (dict, list)):
            raise _NotPlain
        else:
            out.append(f"{dash}{_scalar(item)}\n")
