"""QG508: every GGUF file is well-formed."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileFormat, FileVerdict


class GgufValid(Rule):
    id = "QG508"
    slug = "weights.gguf-valid"
    stage = "weights"
    summary = "GGUF files have a valid header, metadata and tensor table, with tensor data inside the file."
    why = (
        "GGUF is read without executing code, but a truncated or corrupted file (a failed download,\n"
        "a tensor table pointing past the end) fails at load time on the runner, or loads garbage\n"
        "that evaluation would then blame on quantization."
    )
    example = "model:\n  gguf: weights/model.Q4_K_M.gguf   # truncated download\n"
    use_instead = "model:\n  gguf: weights/model.Q4_K_M.gguf   # re-downloaded; sha256 matches the lockfile\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.invalid):
            if report.format is FileFormat.gguf:
                yield Violation(
                    f"{report.path}: invalid GGUF: {report.reason}",
                    path=report.path,
                    hint="re-download or re-convert the file (llama.cpp convert_hf_to_gguf.py) and re-run `gate lock`",
                )
