"""QG514: every file was analysed within the scanner's bounded-work limits."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileVerdict


class WithinScanLimits(Rule):
    id = "QG514"
    slug = "weights.scan-limits"
    stage = "weights"
    waivable = False
    summary = "No model file hits a scan limit (header size, tensor count, dimensions, value size, nesting, total bytes, time)."
    why = (
        "A scan must finish in bounded time on any input: a safetensors header declaring 200,000\n"
        "dimensions, a zip bomb or a GGUF claiming 2^40 metadata keys would otherwise hang the job or\n"
        "crash it. The scanner checks each limit before doing the work; a file it could not finish\n"
        "analysing may hide anything, so it is denied, naming the limit. No waiver can allow it."
    )
    example = "# weights/support-assistant/model.safetensors: a tensor declares 50,000 dimensions\n"
    use_instead = "# weights/support-assistant/model.safetensors re-exported by `save_pretrained` (<= 8 dimensions per tensor)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.limit):
            yield Violation(
                f"{report.shown}: scan limit `{report.limit}` hit: {report.reason}",
                path=report.path,
                member=report.member,
                hint="do not load this file; re-export the weights with a standard tool (no waiver applies)",
                detail={"format": report.format.value, "limit": report.limit, "member": report.member},
            )
