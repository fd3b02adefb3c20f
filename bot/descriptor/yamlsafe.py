"""Load untrusted YAML into plain data, remembering the line and column of every value.

libyaml (through PyYAML's C binding, ~10x faster than pure Python) composes the node graph when it can,
ruamel.yaml's pure-Python YAML 1.2 composer otherwise; plain scalars are typed by ruamel's YAML 1.2
resolver on both paths, so both give the same values. We construct plain dicts, lists and scalars
ourselves so that nothing is ever executed, unknown tags are refused, duplicate keys are reported, and
alias expansion is bounded.
"""

from __future__ import annotations

import math
import operator
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml import events as ruamel_events
from ruamel.yaml import nodes as ruamel_nodes
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import VersionedResolver
from yaml.cyaml import CParser
from yaml.resolver import BaseResolver

from bot.descriptor.errors import InputError, InputErrors, SourcePosition

PathKey = str | int
DataPath = tuple[PathKey, ...]

MAX_VALUES_PER_FILE = 500_000
MAX_DEPTH = 100
# Below this bound the recursive composers are safe without counting depth event by event (the C one
# crashes the process somewhere past 10,000 levels).
SAFE_NESTING_BOUND = 1_000

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
# Timestamps, binary and `=` stay as the text the author wrote: descriptors carry strings.
_KEPT_AS_TEXT = frozenset(
    {_STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:value"}
)
# A plain scalar the fast composer left untyped; the YAML 1.2 resolver types it.
_PLAIN = "!meshbot/plain"
# Plain words that YAML 1.2 types; other plain scalars can only be typed when they start with one of
# _MAYBE_NUMERIC (numbers, ~, <<, =), so everything else is a string without asking the resolver.
_TYPED_WORDS = {
    **dict.fromkeys(("null", "Null", "NULL"), _NULL),
    **dict.fromkeys(("true", "True", "TRUE", "false", "False", "FALSE"), _BOOL),
}
_MAYBE_NUMERIC = frozenset("~0123456789+-.<=")
_RESOLVER = VersionedResolver()
_RESOLVED: dict[str, str] = {}

Node = Any  # a PyYAML or a ruamel.yaml node: both kinds have tag, value and start_mark
_SCALARS = (pyyaml.ScalarNode, ruamel_nodes.ScalarNode)
_SEQUENCES = (pyyaml.SequenceNode, ruamel_nodes.SequenceNode)
_MAPPINGS = (pyyaml.MappingNode, ruamel_nodes.MappingNode)
_COLLECTION_STARTS = (pyyaml.CollectionStartEvent, ruamel_events.CollectionStartEvent)
_COLLECTION_ENDS = (pyyaml.CollectionEndEvent, ruamel_events.CollectionEndEvent)
_NODE_EVENTS = (pyyaml.NodeEvent, ruamel_events.NodeEvent)


class _FastLoader(CParser, BaseResolver):
    """libyaml's composer with no YAML 1.1 typing: plain scalars stay untyped for the 1.2 resolver."""

    # libyaml calls these two for every node to follow path resolvers, which meshbot never registers: C no-ops
    # taking the same arguments save two Python calls per node.
    descend_resolver = staticmethod(operator.is_)  # (parent, index) -> ignored bool
    ascend_resolver = staticmethod(tuple)  # () -> ignored empty tuple

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        BaseResolver.__init__(self)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """Mark implicit plain scalars; everything else gets its default tag (BaseResolver has no implicit ones)."""
        if kind is pyyaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is pyyaml.SequenceNode else _MAP


def effective_tag(node: Node) -> str:
    """The node's YAML 1.2 tag, typing plain scalars the fast composer left untyped."""
    tag = node.tag
    if tag != _PLAIN:
        return str(tag)
    value = node.value
    if value and value[0] not in _MAYBE_NUMERIC:
        return _TYPED_WORDS.get(value, _STR)
    tag = _RESOLVED.get(value)
    if tag is None:
        tag = str(_RESOLVER.resolve(ruamel_nodes.ScalarNode, value, (True, False)))
        if len(_RESOLVED) < 10_000:
            _RESOLVED[value] = tag
    return tag


@dataclass(slots=True)
class YamlDocument:
    """One YAML document as plain data, with the (line, column) of each value by its path."""

    file: str
    value: Any
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: DataPath = ()) -> SourcePosition:
        """The position of the value at path, or of its nearest ancestor that has one."""
        while path not in self.positions and path:
            path = path[:-1]
        line, column = self.positions.get(path, (1, 1))
        return SourcePosition(self.file, line, column)


class _Refused(Exception):
    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.message, self.node = message, node


def load_documents(content: str | bytes, file: str, fast: bool = True) -> list[YamlDocument]:
    """Every non-empty document in the content; InputErrors naming file, line and column.

    fast=False skips libyaml and composes with ruamel.yaml alone (tests compare both paths).
    """
    text = _decode(content, file)
    nodes = _compose(text, file, fast)
    documents = []
    for node in nodes:
        if isinstance(node, _SCALARS) and effective_tag(node) == _NULL and node.value in ("", "~", "null"):
            continue
        documents.append(_construct(node, file, has_aliases="*" in text))
    return documents


def load_single(content: str | bytes, file: str) -> YamlDocument | None:
    """The one document of a file (None when empty); more than one is an error."""
    documents = load_documents(content, file)
    if len(documents) > 1:
        raise InputErrors([InputError("expected one YAML document, found several", documents[1].position())])
    return documents[0] if documents else None


def _decode(content: str | bytes, file: str) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = content[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise InputErrors(
            [InputError("file is not valid UTF-8", SourcePosition(file, line, column))]
        ) from None


def _compose(text: str, file: str, fast: bool) -> list[Node]:
    guarded = _nesting_bound(text) > SAFE_NESTING_BOUND
    try:
        if fast:
            if guarded:
                _check_nesting(pyyaml.parse(text, Loader=_FastLoader), file)
            return list(pyyaml.compose_all(text, Loader=_FastLoader))
    except (pyyaml.YAMLError, RecursionError):
        # libyaml implements YAML 1.1 syntax; retry anything it refuses with the YAML 1.2 composer.
        pass
    try:
        if guarded:
            _check_nesting(YAML(typ="safe", pure=True).parse(text), file)
        return list(YAML(typ="safe", pure=True).compose_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part) or "malformed YAML"
        position = SourcePosition(file, mark.line + 1, mark.column + 1) if mark else SourcePosition(file)
        context = error.context_mark
        hint = syntax_hint(text, message, (mark.line + 1, mark.column + 1) if mark else (1, 1),
                           (context.line + 1, context.column + 1) if context else None)
        text_of = f"{hint}; the parser says: {message}" if hint else message
        raise InputErrors([InputError(f"malformed YAML: {text_of}", position)]) from None
    except YAMLError as error:
        raise InputErrors([InputError(f"malformed YAML: {error}", SourcePosition(file))]) from None
    except RecursionError:
        raise InputErrors([InputError("YAML nesting is too deep", SourcePosition(file))]) from None


_NO_SPACE_AFTER_COLON = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][\w.-]*):([^\s:#/'\"][^:#]*)$")
_INDENTATION_PROBLEMS = ("mapping values are not allowed here", "expected <block end>", "did not find expected key",
                         "could not find expected ':'", "while parsing a block")


def syntax_hint(text: str, message: str, where: tuple[int, int], opened: tuple[int, int] | None) -> str | None:
    """A one-line explanation in plain words of a YAML syntax error, or None when there is no likely cause.

    `where` is the (line, column) the parser stopped at, `opened` the start of what it was reading when it did.
    """
    lines = text.splitlines()
    line = min(where[0], len(lines)) if lines else 1
    for number in range(line, 0, -1):
        indentation = lines[number - 1][: len(lines[number - 1]) - len(lines[number - 1].lstrip())]
        if "\t" in indentation:
            return f"a tab in the indentation of line {number}: YAML indents with spaces only"
    if "quoted scalar" in message and opened is not None:
        return f"the quote opened on line {opened[0]}, column {opened[1]} is never closed"
    if "flow" in message:
        bracket = _unclosed_bracket(text)
        if bracket is not None:
            missing_comma = "" if "<stream end>" in message else " (or a ',' is missing)"
            return f"the '{bracket[0]}' opened on line {bracket[1]}, column {bracket[2]} is never closed{missing_comma}"
    if not any(problem in message for problem in _INDENTATION_PROBLEMS):
        return None
    for number in range(line, max(line - 3, 0), -1):
        squeezed = _NO_SPACE_AFTER_COLON.match(lines[number - 1].rstrip()) if lines else None
        if squeezed:
            written = f"{squeezed.group(1)}:{squeezed.group(2)}"
            return f"line {number} has no space after the colon in '{written}' (write " \
                   f"'{squeezed.group(1)}: {squeezed.group(2)}')"
    if "mapping values are not allowed here" in message and lines and ": " in lines[line - 1][: where[1] - 1]:
        return f"line {line} has a second ': ' in one value: put the value in quotes"
    return f"line {line} is not indented like the lines above it: keys of one mapping start in the same column"


def _unclosed_bracket(text: str) -> tuple[str, int, int] | None:
    """The last '[' or '{' the text opens and never closes, with its line and column, outside quotes and comments."""
    stack: list[tuple[str, int, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        quote, index = "", 0
        while index < len(line):
            char = line[index]
            if quote:
                if char == "\\" and quote == '"':
                    index += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"" and (index == 0 or line[index - 1] in " \t[{,:"):
                quote = char
            elif char == "#" and (index == 0 or line[index - 1] in " \t"):
                break
            elif char in "[{":
                stack.append((char, number, index + 1))
            elif char in "]}" and stack:
                stack.pop()
            index += 1
    return stack[-1] if stack else None


def _nesting_bound(text: str) -> int:
    """A cheap upper bound of the nesting depth: flow brackets, plus two block levels per column at most."""
    longest_line = max((len(line) for line in text.splitlines()), default=0)
    return text.count("[") + text.count("{") + 2 * (longest_line + 1)


def _check_nesting(events: Iterable[Any], file: str) -> None:
    """Refuse deep nesting from the event stream, before the recursive composers (the C one crashes) see it."""
    depth = 0
    for event in events:
        if isinstance(event, _COLLECTION_ENDS):
            depth -= 1
        elif isinstance(event, _NODE_EVENTS):
            if depth > MAX_DEPTH:
                position = SourcePosition(file, event.start_mark.line + 1, event.start_mark.column + 1)
                raise InputErrors([InputError(f"YAML nesting is deeper than {MAX_DEPTH} levels", position)])
            if isinstance(event, _COLLECTION_STARTS):
                depth += 1


def _construct(root: Node, file: str, has_aliases: bool) -> YamlDocument:
    document = YamlDocument(file=file, value=None)
    builder = _Builder(document.positions, has_aliases)
    try:
        if has_aliases:
            _check_expansion(root, {}, set())
        document.value = builder.build(root, (), (root.start_mark.line + 1, root.start_mark.column + 1), 0)
    except _Refused as refused:
        mark = refused.node.start_mark
        raise InputErrors(
            [InputError(refused.message, SourcePosition(file, mark.line + 1, mark.column + 1))]
        ) from None
    except RecursionError:
        raise InputErrors([InputError("YAML nesting is too deep", SourcePosition(file))]) from None
    return document


class _Builder:
    """Turns a composed node graph into plain values, counting what aliases expand to."""

    def __init__(self, positions: dict[DataPath, tuple[int, int]], has_aliases: bool = True) -> None:
        self.positions = positions
        self.values = 0
        self.active: set[int] = set()
        self.has_aliases = has_aliases  # without aliases no node can contain itself: no need to track them

    def build(self, node: Node, path: DataPath, position: tuple[int, int], depth: int) -> Any:
        self.values += 1
        if self.values > MAX_VALUES_PER_FILE:
            raise _Refused(
                f"YAML aliases expand to more than {MAX_VALUES_PER_FILE} values; refusing (alias bomb?)", node
            )
        if depth > MAX_DEPTH:
            raise _Refused(f"YAML nesting is deeper than {MAX_DEPTH} levels", node)
        self.positions[path] = position
        if isinstance(node, _SCALARS):
            tag = node.tag
            if tag == _PLAIN:
                text = node.value
                if text and text[0] not in _MAYBE_NUMERIC and text not in _TYPED_WORDS:
                    return _shared(text)  # the common case: a plain word that can only be a string
            elif tag == _STR:
                return _shared(node.value)
            return _scalar(node)
        if not self.has_aliases:
            return self._collection(node, path, depth)
        if id(node) in self.active:
            raise _Refused("recursive YAML alias: a value contains itself", node)
        self.active.add(id(node))
        try:
            return self._collection(node, path, depth)
        finally:
            self.active.discard(id(node))

    def _collection(self, node: Node, path: DataPath, depth: int) -> Any:
        if isinstance(node, _SEQUENCES):
            return self._sequence(node, path, depth)
        if isinstance(node, _MAPPINGS):
            return self._mapping(node, path, depth)
        raise _Refused("unsupported YAML node", node)

    def _sequence(self, node: Node, path: DataPath, depth: int) -> list[Any]:
        if str(node.tag) != _SEQ:
            raise _Refused(f"unsupported YAML tag {node.tag}", node)
        build, depth = self.build, depth + 1
        return [build(item, (*path, index), _mark(item), depth) for index, item in enumerate(node.value)]

    def _mapping(self, node: Node, path: DataPath, depth: int) -> dict[str, Any]:
        if str(node.tag) != _MAP:
            raise _Refused(f"unsupported YAML tag {node.tag}", node)
        result: dict[str, Any] = {}
        merged: list[Node] = []
        build, inner, intern = self.build, depth + 1, sys.intern
        for key_node, value_node in node.value:
            if not isinstance(key_node, _SCALARS):
                raise _Refused("mapping keys must be plain scalars", key_node)
            key = key_node.value
            if key == "<<" and effective_tag(key_node) == _MERGE:
                merged.extend(_merge_sources(value_node))
                continue
            if key in result:
                first = next(k for k, _ in node.value
                             if isinstance(k, _SCALARS) and k.value == key and effective_tag(k) != _MERGE)
                raise _Refused(f"duplicate key '{key}' (first defined on line {first.start_mark.line + 1})", key_node)
            mark = (value_node if isinstance(value_node, _SCALARS) else key_node).start_mark
            shared = intern(key) if len(key) <= _SHARED_LENGTH and type(key) is str else key
            result[shared] = build(value_node, (*path, shared), _position(mark.line + 1, mark.column + 1), inner)
        for source in merged:
            for key_node, value_node in source.value:
                key = key_node.value
                is_merge_key = key == "<<" and effective_tag(key_node) == _MERGE
                if key not in result and isinstance(key_node, _SCALARS) and not is_merge_key:
                    result[key] = build(value_node, (*path, key), _mark(value_node), inner)
        return result


# Catalog files repeat the same keys, short values and (line, column) pairs thousands of times: each is kept
# once (strings through sys.intern, positions in a bounded table), which saves memory and allocations.
_SHARED_LENGTH = 40
_POSITIONS: dict[int, tuple[int, int]] = {}
_POSITIONS_KEPT = 200_000


def _shared(text: str) -> str:
    return sys.intern(text) if len(text) <= _SHARED_LENGTH and type(text) is str else text


def _position(line: int, column: int) -> tuple[int, int]:
    key = (line << 24) | column
    found = _POSITIONS.get(key)
    if found is None:
        found = (line, column)
        if len(_POSITIONS) < _POSITIONS_KEPT:
            _POSITIONS[key] = found
    return found


def _check_expansion(node: Node, sizes: dict[int, int], active: set[int]) -> int:
    """How many values the node expands to; refuses alias bombs before anything is built."""
    if isinstance(node, _SCALARS):
        return 1
    known = sizes.get(id(node))
    if known is not None:
        return known
    if id(node) in active:
        raise _Refused("recursive YAML alias: a value contains itself", node)
    active.add(id(node))
    total = 1
    if isinstance(node, _SEQUENCES):
        for item in node.value:
            total += _check_expansion(item, sizes, active)
    elif isinstance(node, _MAPPINGS):
        for key, value in node.value:
            total += _check_expansion(key, sizes, active) + _check_expansion(value, sizes, active)
    active.discard(id(node))
    if total > MAX_VALUES_PER_FILE:
        raise _Refused(
            f"YAML aliases expand to more than {MAX_VALUES_PER_FILE} values; refusing (alias bomb?)", node
        )
    sizes[id(node)] = total
    return total


def _merge_sources(node: Node) -> Iterator[Node]:
    if isinstance(node, _MAPPINGS):
        yield node
    elif isinstance(node, _SEQUENCES) and all(isinstance(item, _MAPPINGS) for item in node.value):
        yield from node.value
    else:
        raise _Refused("a merge key (<<) needs a mapping or a list of mappings", node)


def _mark(node: Node) -> tuple[int, int]:
    mark = node.start_mark
    return _position(mark.line + 1, mark.column + 1)


def _scalar(node: Node) -> Any:
    tag, text = effective_tag(node), node.value
    if tag in _KEPT_AS_TEXT:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        return _integer(text)
    if tag == _FLOAT:
        return _float(text)
    raise _Refused(f"unsupported YAML tag {tag}", node)


def _integer(text: str) -> int | str:
    cleaned = text.replace("_", "")
    sign = -1 if cleaned.startswith("-") else 1
    digits = cleaned.lstrip("+-")
    try:
        if digits[:2].lower() in ("0x", "0o", "0b"):
            return sign * int(digits, 0)
        return sign * int(digits, 10)
    except ValueError:
        return text


def _float(text: str) -> float | str:
    cleaned = text.replace("_", "").lower()
    if cleaned.lstrip("+-") == ".inf":
        return -math.inf if cleaned.startswith("-") else math.inf
    if cleaned == ".nan":
        return math.nan
    try:
        return float(cleaned)
    except ValueError:
        return text
