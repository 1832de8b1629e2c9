"""The gate's error families and their exit codes.

Every error the gate raises on purpose is a ``GateError``; the CLI's single outermost handler maps
them to exit codes (see ``ExitCode``). Anything else that escapes is a bug and exits 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the contract CI systems rely on."""

    OK = 0
    BLOCKED = 1
    BAD_INPUT = 2
    UNEXPECTED = 3
    INTERRUPTED = 130


@dataclass(frozen=True)
class SourceLocation:
    """A position in a file, 1-based, as editors and GitHub annotations expect."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


class GateError(Exception):
    """Base of every error the gate raises deliberately.

    ``message`` says what is wrong; ``hint`` says how to fix it; ``location`` names the file
    position. ``str(error)`` renders ``path:line:col: message`` plus an indented ``Hint:`` line.
    """

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        location: SourceLocation | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            return f"{head}\n  Hint: {self.hint}"
        return head


class InputError(GateError):
    """The user gave something the gate cannot use: a bad file, flag or value (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class SpecError(InputError):
    """A spec, policy or other YAML document is malformed or fails validation."""


class MultiSpecError(SpecError):
    """Several validation problems in one document; each is reported on its own line."""

    def __init__(self, errors: list[SpecError]) -> None:
        if not errors:
            raise ValueError("MultiSpecError needs at least one error")
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, hint=first.hint, location=first.location)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class BackendError(GateError):
    """A heavy backend (quantizer, evaluator) failed; the verdict is blocking (exit 1)."""

    exit_code = ExitCode.BLOCKED


class MissingExtraError(InputError):
    """An optional dependency group is not installed; the message names the pip command."""
