"""The CI fan-out: one GitHub Actions matrix entry per selected spec, on runners matching its target.

``gate plan`` writes the fan-out document (JSON, ``plan_version``); its ``include`` list is the matrix. Each entry
carries the spec path, the runner labels from the spec's target hardware (``[self-hosted, gpu,
<hardware>]`` for GPU targets, ``[self-hosted, cpu, <hardware>]`` for CPU targets) and the name of
the artifact its result is uploaded under. ``gate report --plan`` reads the document back to
report deleted specs and specs whose result never arrived.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.ci.changes import ChangeSet, RemovedSpec, SelectedSpec
from gate.errors import GateError, InputError, SourceLocation
from gate.plan.catalog import HardwareCatalog
from gate.result import Decision, GateResult
from gate.spec.yaml_source import display_path

PLAN_VERSION = "1"
DEFAULT_LABELS = ("self-hosted", "gpu")
"""Runner labels for a spec whose target hardware is unknown (its run then fails fast with the reason)."""


@dataclass(frozen=True)
class MatrixEntry:
    spec: str
    name: str
    hardware: str | None
    runs_on: tuple[str, ...]
    artifact: str
    """Artifact name for the uploaded result (unique per spec, safe for actions/upload-artifact)."""
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": self.name, "hardware": self.hardware, "runs_on": list(self.runs_on),
                "artifact": self.artifact, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class SkippedSpec:
    spec: str
    reason: str


@dataclass(frozen=True)
class FanOut:
    """What the PR workflow runs, and what it reports without running."""

    ref: str | None
    entries: tuple[MatrixEntry, ...]
    deleted: tuple[RemovedSpec, ...] = ()
    skipped: tuple[SkippedSpec, ...] = ()
    """Selected specs left out of the matrix (their static check blocked them)."""
    unreadable: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())
    """Changes that select no spec, said once (e.g. a policy test fixture changed)."""

    @property
    def count(self) -> int:
        return len(self.entries)

    def matrix(self) -> dict[str, Any]:
        """The ``strategy.matrix`` value (exactly ``{"include": [...]}``)."""
        return {"include": [e.to_json() for e in self.entries]}

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_version": PLAN_VERSION,
            "ref": self.ref,
            "count": self.count,
            "include": [e.to_json() for e in self.entries],
            "deleted": [{"path": d.path, "renamed_to": d.renamed_to} for d in self.deleted],
            "skipped": [{"spec": s.spec, "reason": s.reason} for s in self.skipped],
            "unreadable": list(self.unreadable),
            "notes": list(self.notes),
        }

    def render(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def github_outputs(self) -> str:
        """``name=value`` lines for ``$GITHUB_OUTPUT`` (single-line JSON values)."""
        compact = {"separators": (",", ":")}
        return (
            f"matrix={json.dumps(self.matrix(), **compact)}\n"  # type: ignore[arg-type]
            f"count={self.count}\n"
            f"specs={json.dumps([e.spec for e in self.entries], **compact)}\n"  # type: ignore[arg-type]
            f"deleted={json.dumps([d.path for d in self.deleted], **compact)}\n"  # type: ignore[arg-type]
        )

    def text(self) -> str:
        lines = [f"{e.spec}  runs-on: [{', '.join(e.runs_on)}]  ({'; '.join(e.reasons)})" for e in self.entries]
        lines += [f"{s.spec}  not run: {s.reason}" for s in self.skipped]
        lines += [f"{d.path}  deleted" + (f" (renamed to {d.renamed_to})" if d.renamed_to else "") for d in self.deleted]
        lines += [f"{p}  unreadable: references not followed" for p in self.unreadable]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"{self.count} spec(s) to run" + (f" (changed since {self.ref})" if self.ref else ""))
        return "\n".join(lines) + "\n"


def artifact_name(spec_path: str) -> str:
    return "result-" + re.sub(r"[^A-Za-z0-9._-]", "_", spec_path)


def runner_labels(hardware: str | None, catalog: HardwareCatalog) -> tuple[str, ...]:
    """``[self-hosted, gpu|cpu, <hardware>]`` for a catalog entry; the default labels otherwise."""
    entry = catalog.find(hardware) if hardware else None
    if entry is None or hardware is None:
        return DEFAULT_LABELS
    return ("self-hosted", entry.kind, hardware)


def entry_for(selected: SelectedSpec, repo_root: Path, catalog: HardwareCatalog) -> MatrixEntry:
    from gate.spec.loader import load_spec

    name = Path(selected.path).stem
    hardware: str | None = None
    try:
        spec = load_spec(repo_root / selected.path).spec
        name = spec.metadata.name
        hardware = spec.constraint.target.hardware if spec.constraint else None
    except GateError:
        pass  # gate check reports why; the run job fails fast on the same error
    return MatrixEntry(spec=selected.path, name=name, hardware=hardware, runs_on=runner_labels(hardware, catalog),
                       artifact=artifact_name(selected.path), reasons=selected.reasons)


def _key(path: str) -> str:
    return Path(path).as_posix().removeprefix("./")


def build_fan_out(changes: ChangeSet | None, selected: Iterable[SelectedSpec], repo_root: Path,
               catalog: HardwareCatalog, check_results: Iterable[GateResult] = ()) -> FanOut:
    """The fan-out of ``selected`` specs; those whose static check did not pass are skipped."""
    checks = {_key(r.spec.path): r for r in check_results}
    entries: list[MatrixEntry] = []
    skipped: list[SkippedSpec] = []
    for item in selected:
        check = checks.get(_key(item.path))
        if check is not None and check.verdict.decision is not Decision.passed:
            why = check.verdict.reasons[0] if check.verdict.reasons else ""
            skipped.append(SkippedSpec(spec=item.path, reason=f"gate check: {check.verdict.decision.value}"
                                       + (f" ({why})" if why else "")))
            continue
        entries.append(entry_for(item, repo_root, catalog))
    return FanOut(
        ref=changes.ref if changes else None,
        entries=tuple(entries),
        deleted=changes.deleted if changes else (),
        skipped=tuple(skipped),
        unreadable=changes.unreadable if changes else (),
        notes=changes.notes if changes else (),
    )


def load_fan_out(path: Path) -> FanOut:
    """Read a fan-out document written by ``gate plan --format json``."""
    shown = display_path(path)
    where = SourceLocation(shown)
    if not path.is_file():
        raise InputError("no such plan file", hint="pass the file `gate plan --format json` wrote", location=where)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line, col = (exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else (None, None)
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise InputError(
            f"not a valid plan: {reason}", hint="re-run `gate plan --format json` (a truncated upload?)",
            location=SourceLocation(shown, line, col),
        ) from None
    if not isinstance(data, dict) or data.get("plan_version") != PLAN_VERSION:
        version = data.get("plan_version") if isinstance(data, dict) else None
        raise InputError(
            f"plan_version {version!r} is not supported (expected {PLAN_VERSION!r})",
            hint="write the plan and the report with the same quant-gate version", location=where,
        )
    try:
        return FanOut(
            ref=data.get("ref"),
            entries=tuple(
                MatrixEntry(spec=e["spec"], name=e["name"], hardware=e.get("hardware"), runs_on=tuple(e["runs_on"]),
                            artifact=e["artifact"], reasons=tuple(e.get("reasons", ())))
                for e in data["include"]
            ),
            deleted=tuple(RemovedSpec(path=d["path"], renamed_to=d.get("renamed_to")) for d in data.get("deleted", [])),
            skipped=tuple(SkippedSpec(spec=s["spec"], reason=s["reason"]) for s in data.get("skipped", [])),
            unreadable=tuple(data.get("unreadable", [])),
            notes=tuple(data.get("notes", [])),
        )
    except (KeyError, TypeError) as exc:
        raise InputError(f"plan is missing {exc}", hint="re-run `gate plan --format json`", location=where) from None
