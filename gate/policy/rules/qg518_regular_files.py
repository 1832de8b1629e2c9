"""QG518: every entry of the model directory is a regular file."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileVerdict


class RegularFiles(Rule):
    id = "QG518"
    slug = "weights.regular-files"
    stage = "weights"
    waivable = False
    summary = "Every model file is a regular file: no FIFO, socket, device, symlinked directory, symlink loop or dangling symlink."
    why = (
        "A FIFO named `model.gguf` blocks every reader forever and a device file streams endlessly: the\n"
        "job hangs on the runner. A symlink loop or a dangling link is a file no loader can read. The gate\n"
        "never opens such an entry (nor hashes it for the lockfile) and denies the model instead."
    )
    example = "# weights/support-assistant/model.gguf is a symlink to itself\n"
    use_instead = "# weights/support-assistant/model.gguf is the GGUF file, committed (or tracked by git LFS)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.not_regular):
            yield Violation(
                f"{report.path}: {report.reason}",
                path=report.path,
                hint="replace it with the real file (or remove it) and re-run `gate lock`",
            )
