"""QG513: no archive or compressed file in the model directory."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileFormat

CONTAINERS = frozenset(
    {FileFormat.zip, FileFormat.tar, FileFormat.gzip, FileFormat.bzip2, FileFormat.xz, FileFormat.lzma, FileFormat.zlib}
)


class NoContainers(Rule):
    id = "QG513"
    slug = "weights.no-containers"
    stage = "weights"
    summary = "No model file is an archive or a compressed stream (zip, npz, tar, gzip, bzip2, xz, lzma, zlib)."
    why = (
        "Loaders unwrap containers: joblib decompresses and unpickles a gzip'd `model.joblib`, numpy\n"
        "unpickles object arrays inside an `.npz`, torch loads a checkpoint zipped inside a zip. The gate\n"
        "opens them (recursively, within limits) and reports any pickle inside under QG504 with its member\n"
        "path, but vouches only for files a consumer reads as they are: the container itself is denied.\n"
        "PyTorch checkpoints (zip or tar) are judged by their pickles instead (QG504/QG505)."
    )
    example = "# weights/support-assistant/model.joblib: a gzip stream holding a pickle\n"
    use_instead = "# weights/support-assistant/model.safetensors, stored uncompressed (git LFS compresses in transit)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.files:
            if report.format not in CONTAINERS:
                continue
            yield Violation(
                f"{report.path}: {report.format.value} container; the gate accepts no archives or compressed files"
                + (f" ({report.reason})" if report.reason else ""),
                path=report.path,
                member=report.member,
                hint="store the files themselves, uncompressed, in the model directory (safetensors for weights)",
                detail={"format": report.format.value, "verdict": report.verdict.value, "members": report.members},
            )
