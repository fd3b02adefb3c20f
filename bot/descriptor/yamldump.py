"""Write YAML with ruamel.yaml round-trip, the one way meshbot writes YAML."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString

# Plain in YAML 1.2 but booleans, octals or base-60 numbers to YAML 1.1 readers (PyYAML, many adapters).
_YAML11_AMBIGUOUS = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|[-+]?0[0-7_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+)$"
)


def round_trip_yaml() -> YAML:
    """A round-trip YAML instance with meshbot's layout: 2-space maps, indented lists, no line wrapping."""
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.default_flow_style = False
    return yaml


def dump_yaml(data: Any) -> str:
    """Plain data as a YAML document; multi-line strings become literal blocks."""
    stream = io.StringIO()
    round_trip_yaml().dump(prepared_for_yaml(data), stream)
    return stream.getvalue()


def prepared_for_yaml(value: Any) -> Any:
    """Plain data made ready for writing: multi-line strings as literal blocks, YAML 1.1-ambiguous ones quoted."""
    if isinstance(value, dict):
        return {key: prepared_for_yaml(item) for key, item in value.items()}
    if isinstance(value, list):
        return [prepared_for_yaml(item) for item in value]
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        return LiteralScalarString(value)
    if isinstance(value, str) and _YAML11_AMBIGUOUS.match(value):
        return SingleQuotedScalarString(value)
    return value
