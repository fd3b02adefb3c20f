"""Access files: `access/<output port name>.yaml` declares who consumes an output port of the data product.

The file is the GitOps record of granted access: a consumer asks by a merge request that adds them, the owners grant
by merging it, and a later change (a revert) revokes. Its shape:

    # who may read the output port "sales-view"
    consumers:
      - user: alice                   # a forge login
      - group: acme/finance-analysts  # a GitHub team (org/team) or a GitLab group path

An empty or absent file means nobody. Adding a consumer edits the file round-trip, so its comments and layout stay.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.yamldump import round_trip_yaml
from bot.descriptor.yamlsafe import load_single

ACCESS_FOLDER = "access"
CONSUMER_KINDS = ("user", "group")
MAX_CONSUMERS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@/-]{0,254}$")
_PORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

ConsumerKind = Literal["user", "group"]


@dataclass(frozen=True, slots=True, order=True)
class Consumer:
    """One consumer of an output port: a forge user or a forge group."""

    kind: ConsumerKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def access_path(output_port: str) -> str:
    """The repository path of the access file of an output port (its short name)."""
    if not _PORT.fullmatch(output_port):
        raise ValueError(f"'{output_port}' is not an output port name (letters, digits, '_', '.', '-')")
    return f"{ACCESS_FOLDER}/{output_port}.yaml"


def output_port_of(path: str) -> str | None:
    """The output port an access file path is for, or None when path is not an access file."""
    folder, _, file = path.partition("/")
    if folder != ACCESS_FOLDER or "/" in file:
        return None
    for suffix in (".yaml", ".yml"):
        if file.endswith(suffix) and _PORT.fullmatch(file[: -len(suffix)]):
            return file[: -len(suffix)]
    return None


def read_consumers(content: bytes, file: str) -> list[Consumer]:
    """The consumers an access file declares, sorted and without repeats; InputErrors with positions otherwise."""
    if len(content) > MAX_FILE_BYTES:
        raise InputErrors([InputError(f"file is {len(content)} bytes, over the 1 MiB limit", SourcePosition(file))])
    document = load_single(content, file)
    if document is None or document.value is None:
        return []
    value = document.value
    if not isinstance(value, dict) or set(value) - {"consumers"}:
        raise InputErrors([InputError("an access file is a mapping with one key, 'consumers' (a list of "
                                      "'user: LOGIN' or 'group: PATH')", document.position(()))])
    entries = value.get("consumers") or []
    if not isinstance(entries, list):
        raise InputErrors([InputError("field 'consumers': must be a list of 'user: LOGIN' or 'group: PATH'",
                                      document.position(("consumers",)))])
    if len(entries) > MAX_CONSUMERS:
        raise InputErrors([InputError(f"field 'consumers': {len(entries)} entries, over the limit of "
                                      f"{MAX_CONSUMERS}", document.position(("consumers",)))])
    consumers: set[Consumer] = set()
    errors: list[InputError] = []
    for index, entry in enumerate(entries):
        consumer = _consumer(entry)
        if consumer is None:
            errors.append(InputError(f"field 'consumers.{index}': expected 'user: LOGIN' or 'group: PATH' "
                                     "(letters, digits, '_', '.', '@', '/', '-')",
                                     document.position(("consumers", index))))
        else:
            consumers.add(consumer)
    if errors:
        raise InputErrors(errors)
    return sorted(consumers)


def _consumer(entry: object) -> Consumer | None:
    if not isinstance(entry, dict) or len(entry) != 1:
        return None
    ((kind, name),) = entry.items()
    if kind not in CONSUMER_KINDS or not isinstance(name, str) or not _NAME.fullmatch(name):
        return None
    return Consumer(kind, name)


def with_consumer(content: bytes | None, consumer: Consumer, output_port: str) -> bytes:
    """The access file with consumer added (a new file when content is None); the same bytes when already there."""
    label = access_path(output_port)
    if content is None or not content.strip():
        return (f"# Consumers of the output port '{output_port}': a merged change here grants or revokes access.\n"
                f"consumers:\n  - {consumer.kind}: {consumer.name}\n").encode()
    if consumer in read_consumers(content, label):
        return content
    yaml = round_trip_yaml()
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(content.decode("utf-8"))
    if not isinstance(document, CommentedMap):  # read_consumers accepted it, so only a null document is left
        document = CommentedMap()
    entries = document.get("consumers")
    if not isinstance(entries, CommentedSeq):
        entries = CommentedSeq()
        document["consumers"] = entries
    entries.append(CommentedMap([(consumer.kind, consumer.name)]))
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue().encode()
