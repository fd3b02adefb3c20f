"""OpenMetadata columns ({name, dataType, dataLength?, precision?, scale?, constraint?}) and their SQLite form.

A column is declared in SQLite with its OpenMetadata type name as the author spelled it, so that
`PRAGMA table_info` gives it back for reverse provisioning; when SQLite's affinity rules would give that
name another storage class than the one we want, the SQLite type word follows it (`DATE TEXT`,
`BOOLEAN INTEGER`, `BINARY BLOB(16)`). SQLite accepts any sequence of names as a type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER_LENGTH = 128
RESERVED_PREFIXES = ("sqlite_", "_meshbot_")

PRIMARY_KEY, NOT_NULL, UNIQUE = "PRIMARY_KEY", "NOT_NULL", "UNIQUE"
CONSTRAINTS = (PRIMARY_KEY, NOT_NULL, UNIQUE)

# OpenMetadata type -> the SQLite storage class (affinity) its values get.
AFFINITY: dict[str, str] = {
    **dict.fromkeys(("TEXT", "STRING", "MEDIUMTEXT", "CHAR", "VARCHAR", "JSON", "ENUM"), "TEXT"),
    **dict.fromkeys(("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", "BOOLEAN"), "INTEGER"),
    **dict.fromkeys(("DECIMAL", "NUMERIC", "NUMBER"), "NUMERIC"),
    **dict.fromkeys(("DOUBLE", "FLOAT", "REAL"), "REAL"),
    **dict.fromkeys(("DATE", "TIME", "TIMESTAMP", "DATETIME"), "TEXT"),
    **dict.fromkeys(("BINARY", "VARBINARY", "BYTES", "BLOB", "MEDIUMBLOB", "LONGBLOB"), "BLOB"),
}
LENGTH_TYPES = frozenset({"CHAR", "VARCHAR", "BINARY", "VARBINARY"})
PRECISION_TYPES = frozenset({"DECIMAL", "NUMERIC", "NUMBER"})
_HINTS = {
    **dict.fromkeys(("ARRAY", "MAP", "STRUCT", "UNION", "SET"), "SQLite has no nested types; store the value as JSON"),
    **dict.fromkeys(("INTERVAL", "GEOGRAPHY"), "store it as TEXT or STRING"),
}
# How a column of a table meshbot did not create is reported, by its SQLite affinity.
_FALLBACK = {"INTEGER": "INTEGER", "TEXT": "TEXT", "BLOB": "BLOB", "REAL": "DOUBLE", "NUMERIC": "NUMERIC"}
_DECLARED = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)((?:\s+[A-Za-z_][A-Za-z0-9_]*)*)\s*(?:\(\s*([0-9]+)\s*(?:,\s*([0-9]+)\s*)?\))?\s*"
)


def identifier_problem(value: Any) -> str | None:
    """Why value cannot name a table, view or column, or None when it can."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if not IDENTIFIER.fullmatch(value):
        return f"'{value}' is not a plain identifier (letters, digits and _, not starting with a digit)"
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"'{value[:20]}…' is longer than {MAX_IDENTIFIER_LENGTH} characters"
    if value.lower().startswith(RESERVED_PREFIXES):
        return f"'{value}' starts with a reserved prefix ({', '.join(RESERVED_PREFIXES)})"
    return None


def quote(identifier: str) -> str:
    """A checked identifier, quoted for SQL."""
    if not IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"not an identifier: {identifier!r}")
    return f'"{identifier}"'


def sqlite_affinity(declared: str) -> str:
    """The affinity SQLite gives a declared column type (https://sqlite.org/datatype3.html, 3.1)."""
    text = declared.upper()
    if "INT" in text:
        return "INTEGER"
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in text or not text.strip():
        return "BLOB"
    if any(word in text for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


@dataclass(frozen=True, slots=True)
class Column:
    """One column; data_type keeps the author's spelling, constraint is canonical (or None)."""

    name: str
    data_type: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    constraint: str | None = None

    @property
    def type_key(self) -> tuple[str, int | None, int | None, int | None]:
        """What makes two types the same, whatever their spelling."""
        return self.data_type.upper(), self.length, self.precision, self.scale

    def declared_type(self) -> str:
        """The SQLite column type: the OpenMetadata name, the SQLite word when needed, then the size."""
        affinity = AFFINITY[self.data_type.upper()]
        words = self.data_type if sqlite_affinity(self.data_type) == affinity else f"{self.data_type} {affinity}"
        if self.length is not None:
            return f"{words}({self.length})"
        if self.precision is not None:
            return f"{words}({self.precision},{self.scale})" if self.scale is not None else f"{words}({self.precision})"
        return words

    def as_schema(self) -> dict[str, Any]:
        """The OpenMetadata column."""
        schema: dict[str, Any] = {"name": self.name, "dataType": self.data_type}
        for key, value in (("dataLength", self.length), ("precision", self.precision), ("scale", self.scale),
                           ("constraint", self.constraint)):
            if value is not None:
                schema[key] = value
        return schema

    def type_text(self) -> str:
        """The type for messages: VARCHAR(20), DECIMAL(10,2)."""
        if self.length is not None:
            return f"{self.data_type}({self.length})"
        if self.precision is not None:
            return f"{self.data_type}({self.precision}{'' if self.scale is None else f',{self.scale}'})"
        return self.data_type


def parse_constraint(value: Any) -> tuple[str | None, str | None]:
    """The canonical constraint (None for none or NULL), or an error."""
    if value is None:
        return None, None
    if isinstance(value, str) and value.upper() in CONSTRAINTS:
        return value.upper(), None
    if isinstance(value, str) and value.upper() == "NULL":
        return None, None
    return None, f"{value!r} is not a constraint; use PRIMARY_KEY, NOT_NULL, UNIQUE or NULL"


def parse_column(raw: Any, path: str) -> tuple[Column | None, list[str]]:
    """A descriptor column, or the problems that keep it from being one (each prefixed with its path)."""
    if not isinstance(raw, dict):
        return None, [f"{path}: expected a mapping with name and dataType"]
    errors: list[str] = []
    problem = identifier_problem(raw.get("name"))
    if problem:
        errors.append(f"{path}.name: {problem}")
    data_type = raw.get("dataType")
    upper = data_type.upper() if isinstance(data_type, str) else None
    if upper is None:
        errors.append(f"{path}.dataType: missing; give an OpenMetadata type such as TEXT, INT, DECIMAL or DATE")
    elif upper not in AFFINITY:
        hint = f" ({_HINTS[upper]})" if upper in _HINTS else ""
        errors.append(f"{path}.dataType: '{data_type}' is not supported by the SQLite adapter{hint}; use one of "
                      f"{', '.join(sorted(AFFINITY))}")
    length = _size(raw, "dataLength", path, errors, allowed=upper in LENGTH_TYPES, kinds=LENGTH_TYPES)
    precision = _size(raw, "precision", path, errors, allowed=upper in PRECISION_TYPES, kinds=PRECISION_TYPES)
    scale = _size(raw, "scale", path, errors, allowed=upper in PRECISION_TYPES, kinds=PRECISION_TYPES, zero=True)
    if scale is not None and precision is None:
        errors.append(f"{path}.scale: a scale needs a precision")
    elif scale is not None and precision is not None and scale > precision:
        errors.append(f"{path}.scale: {scale} is larger than the precision {precision}")
    constraint, problem = parse_constraint(raw.get("constraint"))
    if problem:
        errors.append(f"{path}.constraint: {problem}")
    if errors or not isinstance(data_type, str):
        return None, errors
    return Column(raw["name"], data_type, length, precision, scale, constraint), []


def _size(raw: dict[str, Any], key: str, path: str, errors: list[str], *, allowed: bool, kinds: frozenset[str],
          zero: bool = False) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not allowed:
        errors.append(f"{path}.{key}: only {', '.join(sorted(kinds))} columns take a {key}; remove it")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        errors.append(f"{path}.{key}: expected a {'non-negative' if zero else 'positive'} integer, not {value!r}")
        return None
    return value


def column_from_database(name: str, declared: str, constraint: str | None) -> tuple[Column, str | None]:
    """The column PRAGMA table_info describes, and a warning when its type is not one meshbot declares."""
    match = _DECLARED.fullmatch(declared or "")
    if match:
        word, extra, first, second = match.groups()
        upper = word.upper()
        extra_words = extra.split()
        known = upper in AFFINITY and (not extra_words or [w.upper() for w in extra_words] == [AFFINITY[upper]])
        sized = first is not None
        if known and (not sized or upper in LENGTH_TYPES | PRECISION_TYPES) and not (second and upper in LENGTH_TYPES):
            if upper in LENGTH_TYPES:
                return Column(name, word, length=_int(first), constraint=constraint), None
            return Column(name, word, precision=_int(first), scale=_int(second), constraint=constraint), None
    reported = _FALLBACK[sqlite_affinity(declared or "")]
    described = f"SQLite type '{declared}'" if (declared or "").strip() else "no declared type (an expression?)"
    return Column(name, reported, constraint=constraint), (
        f"column '{name}' has {described}, not an OpenMetadata type meshbot declares; reported as {reported}"
    )


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)
