"""Source positions and the input errors that point at them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class SourcePosition(NamedTuple):
    """A place in a repository file; line and column count from 1 (a tuple: millions are made per run)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class InputError:
    """One problem with the input that a person must fix, and where."""

    message: str
    position: SourcePosition | None = None

    def __str__(self) -> str:
        return f"{self.position}: {self.message}" if self.position else self.message


class InputErrors(Exception):
    """Raised when input cannot be read or assembled; carries every error found."""

    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors
