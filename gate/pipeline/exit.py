"""The one exit-code function: what a result's verdict means for CI, and the worst of several.

0 pass (or INCONCLUSIVE under ``inconclusive: allow``), 1 blocked (FAIL, INCONCLUSIVE), the error's
own code for ERROR (2 bad input, 1 backend failure, 3 unexpected). ``gate.cli.main`` maps errors that
escape a command the same way (``GateError.exit_code``). Torch- and numpy-free (``gate check`` uses it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gate.errors import ExitCode, GateError
from gate.result import Decision, Verdict

if TYPE_CHECKING:
    from gate.verdict.decide import InconclusivePolicy

SEVERITY = (ExitCode.UNEXPECTED, ExitCode.BAD_INPUT, ExitCode.BLOCKED)
"""Most serious first: with several specs, the process exits with the most serious code any got."""


def is_blocking(verdict: Verdict, inconclusive: InconclusivePolicy = "block") -> bool:
    """Whether the verdict blocks the merge: FAIL and ERROR always; INCONCLUSIVE unless allowed."""
    if verdict.decision is Decision.passed:
        return False
    if verdict.decision is Decision.inconclusive:
        return inconclusive != "allow"
    return True


def exit_code(verdict: Verdict, inconclusive: InconclusivePolicy = "block", *,
              error: GateError | None = None) -> ExitCode:
    """The exit code of one result: 0 when its verdict does not block, else 1, or for ERROR the
    code of the ``error`` behind it (3 when there is none, e.g. a metric whose evaluation failed)."""
    if not is_blocking(verdict, inconclusive):
        return ExitCode.OK
    if verdict.decision is Decision.error:
        return ExitCode(error.exit_code) if error is not None else ExitCode.UNEXPECTED
    return ExitCode.BLOCKED


def worst_exit_code(codes: Iterable[int]) -> int:
    """The most serious code of several results: 3 > 2 > 1, then any other non-zero code (e.g. 130),
    else 0 (also for no results: nothing to gate)."""
    seen = set(codes)
    for code in SEVERITY:
        if int(code) in seen:
            return int(code)
    others = sorted(c for c in seen if c != 0)
    return others[0] if others else int(ExitCode.OK)
