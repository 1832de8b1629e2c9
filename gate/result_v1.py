"""Read a schema 1 result document as a schema 2 ``GateResult`` (``gate report``, the registry).

Schema 1 kept the weights, plan, artifact, fidelity and performance sections as the JSON dump of
each stage's type, the metric comparisons as ``metrics`` and the runtime as one flat mapping. The
upgrade validates each section against the type that wrote it, then converts it exactly as a new
run's assembly does (``gate.result_build``), so a v1 result renders the same criteria rows as a
v2 one. A section that no longer validates (a result from an older 1.x gate) is left out, with
the rest of the result kept; the top-level fields are validated strictly by ``GateResult``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from gate.result import (
    RESULT_SCHEMA_VERSION,
    ArtifactCalibration,
    ArtifactRecord,
    ArtifactSanity,
    Criterion,
    CriterionKind,
    GateResult,
    MetricResult,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

V1_SECTIONS = ("metrics", "fidelity", "performance", "artifact", "runtime")
"""The top-level keys whose shape changed in schema 2."""


class _V1Calibration(ArtifactCalibration):
    model_config = ConfigDict(frozen=True, extra="ignore")  # v1 also kept token/char statistics


class _V1Sanity(ArtifactSanity):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _V1Artifact(BaseModel):
    """Schema 1's ``artifact`` section, as ``gate.quantize.artifact.Artifact`` wrote it (frozen history)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    path: str
    cache_key: str
    cache_hit: bool
    method: str
    bits: int
    group_size: int | None
    format: str
    params: dict[str, JsonValue] = {}
    versions: dict[str, str] = {}
    calibration: _V1Calibration | None = None
    sanity: _V1Sanity | None = None
    baseline_identity: str
    seconds: float
    quantize_seconds: float
    artifact_sha256: str


def is_v1(item: Mapping[str, object]) -> bool:
    version = item.get("schema_version")
    return isinstance(version, str) and version.split(".")[0] == "1"


def upgrade(item: Mapping[str, object]) -> dict[str, object]:
    """The schema 2 form of a schema 1 result object (``schema_version`` becomes the current one)."""
    from gate.evaluate.interface import FidelityResult, PerformanceResult
    from gate.result_build import (
        fidelity_criteria,
        fidelity_measurement,
        metric_criterion,
        performance_criteria,
        performance_measurement,
    )

    out = {k: v for k, v in item.items() if k not in V1_SECTIONS}
    out["schema_version"] = RESULT_SCHEMA_VERSION
    metrics = item.get("metrics") or []
    criteria = [metric_criterion(MetricResult.model_validate(m)) for m in metrics] if isinstance(metrics, list) else []
    fidelity = _valid(FidelityResult, item.get("fidelity"))
    if fidelity is not None:
        criteria += fidelity_criteria(fidelity)
        out["fidelity"] = fidelity_measurement(fidelity)
    performance = _valid(PerformanceResult, item.get("performance"))
    if performance is not None:
        criteria += performance_criteria(performance)
        out["performance"] = performance_measurement(performance)
    out["criteria"] = criteria
    artifact = _valid(_V1Artifact, item.get("artifact"))
    if artifact is not None:
        out["artifact"] = ArtifactRecord(
            path=artifact.path, sha256=artifact.artifact_sha256, cache_key=artifact.cache_key,
            cache_hit=artifact.cache_hit, method=artifact.method, bits=artifact.bits, group_size=artifact.group_size,
            format=artifact.format, parameters=artifact.params, versions=artifact.versions,
            calibration=ArtifactCalibration.model_validate(artifact.calibration.model_dump()) if artifact.calibration else None,
            sanity=ArtifactSanity.model_validate(artifact.sanity.model_dump()) if artifact.sanity else None, baseline_identity=artifact.baseline_identity,
            seconds=artifact.seconds, quantize_seconds=artifact.quantize_seconds,
        )
    runtime = item.get("runtime")
    if isinstance(runtime, dict):
        out["runtime"] = runtime  # RuntimeInfo reads the flat mapping itself
    return out


M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], data: object) -> M | None:
    if not isinstance(data, dict) or not data:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def read_result(item: object) -> GateResult:
    """A stored result object of schema 1 or 2 as a ``GateResult`` (raises pydantic's ``ValidationError``)."""
    if isinstance(item, dict) and is_v1(item):
        item = upgrade(item)
    return GateResult.model_validate(item)


def read_result_json(text: str) -> GateResult:
    """``read_result`` of a JSON document (the registry's ``result_json``)."""
    return read_result(json.loads(text))


def metric_criteria(item: Mapping[str, object]) -> list[Criterion]:
    """The task-metric criteria of a stored result object without validating all of it (the registry
    counts and indexes them per run): schema 1's ``metrics``, schema 2's ``criteria`` of kind metric."""
    from gate.result_build import metric_criterion

    if is_v1(item):
        metrics = item.get("metrics")
        return [metric_criterion(MetricResult.model_validate(m)) for m in metrics] if isinstance(metrics, list) else []
    criteria = item.get("criteria")
    if not isinstance(criteria, list):
        return []
    return [Criterion.model_validate(c) for c in criteria
            if isinstance(c, dict) and c.get("kind") == CriterionKind.metric.value]
