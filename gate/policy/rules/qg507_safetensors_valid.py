"""QG507: every safetensors file (and sharded index) is well-formed."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileFormat, FileVerdict


class SafetensorsValid(Rule):
    id = "QG507"
    slug = "weights.safetensors-valid"
    stage = "weights"
    summary = "safetensors headers are valid (size, JSON, dtypes, shapes, offsets) and sharded indexes match their shards."
    why = (
        "A malformed header can make loaders read out of bounds, alias two tensors onto the same\n"
        "bytes, or hide bytes the header does not describe. A sharded index that disagrees with its\n"
        "shards loads a different model than the one reviewed. The gate checks the header alone,\n"
        "without loading a tensor."
    )
    example = "# weights/support-assistant/model.safetensors: data_offsets of two tensors overlap\n"
    use_instead = "# re-export with safetensors.torch.save_file / save_pretrained and re-run `gate lock`\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.invalid):
            if report.format is FileFormat.safetensors:
                message = f"{report.path}: invalid safetensors: {report.reason}"
            elif report.format is FileFormat.safetensors_index:
                message = f"{report.path}: sharded index does not match its shards: {report.reason}"
            else:
                continue
            yield Violation(message, path=report.path, hint="re-export the weights with the safetensors library and re-run `gate lock`")
