"""Calibration data from the spec: read, verify, select and describe it.

``calibration.source`` is a local JSONL file (one object per line, text under ``field``) or a
text file (samples separated by blank lines). Its sha256 is verified before use when the spec
records one; too few samples is refused; ``samples`` items are drawn with ``seed``
(deterministic). ``CalibrationStats`` records what the artifact was calibrated on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gate.cache import sha256_file
from gate.errors import InputError, SourceLocation
from gate.spec.loader import LoadedSpec

MAX_CALIBRATION_BYTES = 512 * 1024 * 1024


class CalibrationStats(BaseModel):
    """What an artifact was calibrated on (configuration logging)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """The spec's ``calibration.source``."""
    sha256: str
    """sha256 of the file's bytes (verified against the spec when it records one)."""
    available: int
    """Non-empty samples in the file."""
    samples: int
    """Samples selected (the spec's ``calibration.samples``)."""
    field: str
    seed: int
    max_seq_len: int | None
    tokens_min: int | None = None
    """Token counts of the selected samples after truncation to ``max_seq_len``."""
    tokens_mean: float | None = None
    tokens_max: int | None = None
    tokens_total: int | None = None
    chars_min: int
    chars_mean: float
    chars_max: int


@dataclass(frozen=True)
class CalibrationSet:
    """The selected samples plus their description."""

    texts: tuple[str, ...]
    stats: CalibrationStats


def load_calibration(loaded: LoadedSpec, repo_root: Path) -> CalibrationSet | None:
    """The spec's calibration set, verified and selected; None when the spec has none."""
    cal = loaded.spec.calibration
    if cal is None:
        return None
    smap = loaded.source_map
    path = Path(cal.source)
    path = path if path.is_absolute() else repo_root / path
    if not path.is_file():
        raise InputError(
            f"calibration.source: {cal.source} does not exist",
            hint="point calibration.source at a local JSONL or text file in the repository",
            location=smap.locate(("calibration", "source")),
        )
    if path.stat().st_size > MAX_CALIBRATION_BYTES:
        raise InputError(
            f"calibration.source: {cal.source} is over {MAX_CALIBRATION_BYTES >> 20} MiB",
            hint="calibration needs 128-512 samples; commit a smaller file",
            location=smap.locate(("calibration", "source")),
        )
    digest = sha256_file(path)
    if cal.sha256 is not None and cal.sha256 != digest:
        raise InputError(
            f"calibration.sha256: {cal.source} has sha256 {digest}, the spec records {cal.sha256}",
            hint="the calibration data changed; review the change, then update calibration.sha256",
            location=smap.locate(("calibration", "sha256")),
        )
    texts = read_samples(path, cal.field, shown=cal.source)
    if len(texts) < cal.samples:
        raise InputError(
            f"calibration.samples: {cal.source} has {len(texts)} usable samples, the spec asks for {cal.samples}",
            hint=f"add samples to the file, or lower calibration.samples to at most {len(texts)}",
            location=smap.locate(("calibration", "samples")),
        )
    picked = sorted(random.Random(cal.seed).sample(range(len(texts)), cal.samples))
    chosen = tuple(texts[i] for i in picked)
    chars = [len(t) for t in chosen]
    stats = CalibrationStats(
        source=cal.source,
        sha256=digest,
        available=len(texts),
        samples=len(chosen),
        field=cal.field,
        seed=cal.seed,
        max_seq_len=cal.max_seq_len,
        chars_min=min(chars),
        chars_mean=round(sum(chars) / len(chars), 2),
        chars_max=max(chars),
    )
    return CalibrationSet(texts=chosen, stats=stats)


def read_samples(path: Path, field: str, *, shown: str) -> list[str]:
    """Non-empty samples of a JSONL (``field`` of each object) or text file (blank-line separated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{shown} is not UTF-8 text (byte {exc.start})",
            hint="calibration files must be UTF-8",
            location=SourceLocation(shown),
        ) from None
    if path.suffix == ".jsonl":
        out = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"invalid JSON: {exc.msg}",
                    hint="each line of a JSONL file must be one JSON object",
                    location=SourceLocation(shown, number, exc.colno),
                ) from None
            if not isinstance(obj, dict) or field not in obj:
                raise InputError(
                    f"line has no {field!r} field",
                    hint=f"set calibration.field to the key holding the text (found: {', '.join(obj) if isinstance(obj, dict) else type(obj).__name__})",
                    location=SourceLocation(shown, number, 1),
                )
            value = obj[field]
            if not isinstance(value, str):
                raise InputError(
                    f"field {field!r} is {type(value).__name__}, not a string",
                    hint="calibration samples must be text",
                    location=SourceLocation(shown, number, 1),
                )
            if value.strip():
                out.append(value)
        return out
    if path.suffix in (".txt", ".md", ".text"):
        return [block.strip() for block in text.split("\n\n") if block.strip()]
    raise InputError(
        f"{shown}: unsupported calibration file type {path.suffix or '(none)'!r}",
        hint="use a .jsonl file (one object per line) or a .txt file (samples separated by blank lines)",
        location=SourceLocation(shown),
    )


def token_counts(tokenizer: Any, texts: Sequence[str], max_seq_len: int | None) -> list[int]:
    """Token count of each text (no special tokens), truncated to ``max_seq_len`` when set."""
    counts = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    return [min(n, max_seq_len) for n in counts] if max_seq_len else counts


def with_token_stats(cal: CalibrationSet, counts: Sequence[int]) -> CalibrationSet:
    """Add token-length statistics from ``token_counts`` of ``cal.texts``."""
    if len(counts) != len(cal.texts):
        raise ValueError(f"{len(counts)} token counts for {len(cal.texts)} calibration samples")
    stats = cal.stats.model_copy(
        update={
            "tokens_min": min(counts),
            "tokens_mean": round(sum(counts) / len(counts), 2),
            "tokens_max": max(counts),
            "tokens_total": sum(counts),
        }
    )
    return CalibrationSet(texts=cal.texts, stats=stats)
