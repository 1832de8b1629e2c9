"""What changed between two registered runs: configuration, runtime versions, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.registry.store import RunRecord

CONFIG_FIELDS = (
    "model", "spec_sha256", "git_commit", "baseline_identity", "method", "bits", "group_size", "format",
    "calibration_source", "calibration_sha256", "calibration_samples", "calibration_max_seq_len", "verdict",
    "artifact_sha256",
)


@dataclass(frozen=True)
class Change:
    section: str
    """config | runtime | metric"""
    key: str
    before: Any
    after: Any


def diff_runs(a: RunRecord, b: RunRecord) -> list[Change]:
    changes = [
        Change("config", f, getattr(a, f), getattr(b, f)) for f in CONFIG_FIELDS if getattr(a, f) != getattr(b, f)
    ]
    changes.extend(runtime_changes(a.runtime, b.runtime))
    ma = _metrics(a)
    mb = _metrics(b)
    for key in sorted(set(ma) | set(mb)):
        before, after = ma.get(key), mb.get(key)
        if before != after:
            changes.append(Change("metric", key, before, after))
    return changes


def runtime_changes(before: dict[str, str], after: dict[str, str], keys: tuple[str, ...] | None = None) -> list[Change]:
    names = keys if keys is not None else tuple(sorted(set(before) | set(after)))
    return [Change("runtime", k, before.get(k), after.get(k)) for k in names if before.get(k) != after.get(k)]


def _metrics(record: RunRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in record.metric_criteria:
        out[c.name] = (
            f"{_g(c.baseline)} -> {_g(c.candidate)}, degradation {_g(c.change)} "
            f"[{_g(c.ci_low)}, {_g(c.ci_high)}] {c.outcome.value if c.outcome else 'not judged'}"
        )
    return out


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
