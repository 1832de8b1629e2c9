"""QG510: local baseline weights are present."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileFormat, SourceKind

WEIGHT_FORMATS = frozenset(
    {FileFormat.safetensors, FileFormat.gguf, FileFormat.pickle, FileFormat.pytorch_zip, FileFormat.pytorch_legacy, FileFormat.pytorch_tar}
)


class WeightsPresent(Rule):
    id = "QG510"
    slug = "weights.present"
    stage = "weights"
    summary = "A `model.path` or `model.gguf` source exists and holds weight files (hub models may be fetched later)."
    why = (
        "The static checks (lockfile, formats, remote code) can only vouch for files they have seen.\n"
        "A local baseline that is missing, or a directory without any weight file, would pass\n"
        "`gate check` unverified and fail (or load something else) on the GPU runner."
    )
    example = "model:\n  path: weights/support-assistant   # not committed, not fetched\n"
    use_instead = "model:\n  path: weights/support-assistant   # committed with git LFS (or fetched before gate check)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None or scan.source is SourceKind.hub:
            return
        key = f"model.{scan.source.value}"
        if any(v.key == key for v in scan.confinement):
            return  # QG509 reports it; the path was never read
        if not scan.fetched:
            yield Violation(
                f"{key}: {scan.location} does not exist",
                key_path=("model", scan.source.value),
                hint="commit the weights (git LFS) or fetch them before `gate check`, or fix the path",
            )
        elif not any(f.format in WEIGHT_FORMATS for f in scan.files):
            yield Violation(
                f"{key}: {scan.location} holds no weight files (safetensors, GGUF or pickle)",
                key_path=("model", scan.source.value),
                hint="point `model.path` at the directory that holds the model's *.safetensors files",
            )
