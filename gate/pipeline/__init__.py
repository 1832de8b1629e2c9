"""The orchestrator: the ordered stages of one spec, one stage recorder, one result assembler and one
exit-code function. ``gate check`` and ``gate run`` are the same pipeline with a different last stage.

    static.py    spec -> policy-load -> weights -> calibration -> tasks -> plan -> policy   (gate check ends here)
    run.py       eval-design -> baseline -> evaluate-baseline -> quantize -> evaluate-quantized -> verdict
    record.py    registry, mlflow                                                          (gate run ends here)
    stages.py    the stage recorder and the stage names
    assemble.py  the GateResult of every path (check, run, refused, error)
    exit.py      the exit code of a verdict, and the worst of several

This module is the public surface; nothing here imports torch (``gate run`` imports it once a
model is loaded).
"""

from __future__ import annotations

from gate.options import StaticOptions, find_repo_root
from gate.pipeline.assemble import assemble, error_result, now_iso, spec_ref, static_result, static_verdict
from gate.pipeline.exit import exit_code, is_blocking, worst_exit_code
from gate.pipeline.run import RunOptions, resolve_device, run_gate
from gate.pipeline.stages import HEAVY_STAGES, STATIC_STAGES, StageRecorder
from gate.pipeline.static import StaticOutcome, check_gate, error_findings, run_static, spec_power

__all__ = [
    "HEAVY_STAGES",
    "STATIC_STAGES",
    "RunOptions",
    "StageRecorder",
    "StaticOptions",
    "StaticOutcome",
    "assemble",
    "check_gate",
    "error_findings",
    "error_result",
    "exit_code",
    "find_repo_root",
    "is_blocking",
    "now_iso",
    "resolve_device",
    "run_gate",
    "run_static",
    "spec_power",
    "spec_ref",
    "static_result",
    "static_verdict",
    "worst_exit_code",
]

