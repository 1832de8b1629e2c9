"""Builders for quantize tests: a throwaway repository with a model, a calibration file and a spec."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from gate.spec.loader import LoadedSpec, load_spec
from tests.tiny_models import corpus


def write_calibration(path: Path, texts: list[str] | None = None) -> str:
    """A JSONL calibration file (default: the tiny models' training corpus); returns its sha256."""
    rows = texts if texts is not None else corpus(repeat=12)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_repo(
    root: Path,
    model_dir: Path,
    *,
    method: str = "rtn",
    bits: int = 4,
    group_size: int | None = 32,
    fmt: str = "rtn",
    keep: list[str] | None = None,
    options: dict[str, object] | None = None,
    samples: int = 32,
    max_seq_len: int = 32,
    sha256: str | bool | None = True,
    calibration: bool = True,
    copy_model: bool = False,
) -> LoadedSpec:
    """Write ``root/spec.yaml`` for ``model_dir`` (symlinked, or copied when it will be changed)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "model"
    if not target.exists():
        if copy_model:
            shutil.copytree(model_dir, target)
        else:
            target.symlink_to(model_dir, target_is_directory=True)
    digest = write_calibration(root / "cal.jsonl")
    lines = [
        "apiVersion: quant-gate/v1",
        "kind: ModelSpec",
        "metadata: {name: tiny, owner: team-test, tier: internal}",
        "model:",
        "  path: model",
        "quantization:",
        f"  method: {method}",
        f"  bits: {bits}",
        f"  group_size: {group_size if group_size is not None else -1}",
        f"  format: {fmt}",
    ]
    if keep:
        lines.append(f"  keep_full_precision: [{', '.join(keep)}]")
    if options:
        lines.append("  options: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in options.items()) + "}")
    if calibration:
        lines += ["calibration:", "  source: cal.jsonl", f"  samples: {samples}", f"  max_seq_len: {max_seq_len}"]
        if sha256 is True:
            lines.append(f"  sha256: {digest}")
        elif isinstance(sha256, str):
            lines.append(f"  sha256: {sha256}")
    (root / "spec.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_spec(root / "spec.yaml")
