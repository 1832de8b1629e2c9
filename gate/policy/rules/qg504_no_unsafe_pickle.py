"""QG504: no pickle that imports anything off the allowlist (or cannot be analysed)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileVerdict


class NoUnsafePickle(Rule):
    id = "QG504"
    slug = "weights.no-unsafe-pickle"
    stage = "weights"
    waivable = False
    summary = "No model file (or archive member) is a pickle that imports a global off the allowlist, or that cannot be analysed (7z/zstd/lz4/rar included)."
    why = (
        "Loading a pickle runs whatever its opcodes call: `os.system`, `builtins.eval`, a\n"
        "`functools.partial` gadget. Denylist scanners have been bypassed many times, so the gate\n"
        "decides from the bytes (never the extension) with an allowlist of what a plain tensor\n"
        "checkpoint needs, and fails closed on streams it cannot parse. No waiver can allow this."
    )
    example = "# weights/support-assistant/pytorch_model.bin imports posix.system\nmodel:\n  path: weights/support-assistant\n"
    use_instead = "# weights/support-assistant/model.safetensors, converted in an isolated environment from a trusted source\nmodel:\n  path: weights/support-assistant\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.unsafe, FileVerdict.unparseable):
            if report.verdict is FileVerdict.unsafe:
                message = f"{report.shown}: unsafe pickle ({report.format.value}): {report.reason}"
            else:
                message = (
                    f"{report.shown}: pickle cannot be analysed ({report.reason}); "
                    "unanalysable pickles are treated as unsafe"
                )
            yield Violation(
                message,
                path=report.path,
                member=report.member,
                hint="do not load this file; get safetensors weights from a trusted source (no waiver applies)",
                detail={
                    "format": report.format.value,
                    "verdict": report.verdict.value,
                    "globals": report.globals,
                    "unsafe_globals": report.unsafe_globals,
                    "members": report.members,
                },
            )
