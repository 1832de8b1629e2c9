"""The field tables of ``docs/spec-reference.md``, generated from ``ModelSpec``.

``render_field_tables()`` walks the schema (nested sections, lists of sections) and writes one
Markdown table per section: key, type, required, default, meaning, example. A test keeps the
committed doc equal to it, so the reference cannot drift from the schema.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gate.spec.models import ModelSpec

BEGIN = "<!-- BEGIN GENERATED FIELD TABLES (gate.spec.reference) -->"
END = "<!-- END GENERATED FIELD TABLES -->"

EXAMPLES: dict[str, str] = {
    "apiVersion": "quant-gate/v1",
    "kind": "ModelSpec",
    "metadata": "{name: support-assistant, owner: team-support, tier: critical}",
    "metadata.name": "support-assistant",
    "metadata.owner": "team-support",
    "metadata.tier": "critical",
    "metadata.traffic_share": "0.35",
    "metadata.labels": "{domain: support}",
    "model": "{hub: org/name, revision: <40 hex>}",
    "model.path": "weights/support-assistant",
    "model.gguf": "weights/SmolLM2-135M-Instruct.Q4_1.gguf",
    "model.hub": "example-org/support-assistant-7b",
    "model.revision": "0123456789abcdef0123456789abcdef01234567",
    "model.lockfile": "models/locks/support-assistant.lock.json",
    "model.trust_remote_code": "false",
    "constraint": "{kind: memory, statement: ..., target: {...}}",
    "constraint.kind": "memory",
    "constraint.statement": '"Must fit one 24 GB L4 with 8k context at batch 4"',
    "constraint.target": "{hardware: nvidia-l4, memory_gb: 24}",
    "constraint.target.hardware": "nvidia-l4",
    "constraint.target.memory_gb": "24",
    "constraint.target.context": "8192",
    "constraint.target.batch": "4",
    "constraint.target.tokens_per_s": "2500",
    "constraint.target.cost_per_million_tokens": "0.40",
    "constraint.target.hourly_cost": "0.80",
    "quantization": "{method: awq, bits: 4, group_size: 128, format: awq-gemm}",
    "quantization.method": "awq",
    "quantization.bits": "4",
    "quantization.group_size": "128",
    "quantization.format": "awq-gemm",
    "quantization.keep_full_precision": "[lm_head]",
    "quantization.justification": '"Batch job; INT8 keeps quality"',
    "quantization.qat_plan": '"QAT run tracked in ML-1234"',
    "quantization.options": "{clip_search: false}",
    "calibration": "{source: data/calibration/support.jsonl, samples: 256}",
    "calibration.source": "data/calibration/support.jsonl",
    "calibration.sha256": "9f86d081884c7d65...0f00a08 (64 hex)",
    "calibration.samples": "256",
    "calibration.max_seq_len": "512",
    "calibration.field": "text",
    "calibration.collected": "2026-10-01",
    "calibration.seed": "0",
    "quality": "{confidence: 0.95, metrics: [...]}",
    "quality.confidence": "0.95",
    "quality.metrics": "[{task: support_qa, metric: acc, max_drop: 1.0}]",
    "quality.metrics[].task": "support_qa",
    "quality.metrics[].metric": "acc",
    "quality.metrics[].max_drop": "1.0",
    "quality.metrics[].max_relative_drop": "0.02",
    "quality.metrics[].max_increase": "0.5",
    "quality.metrics[].max_relative_increase": "0.05",
    "quality.metrics[].limit": "500",
    "quality.stress": "[reasoning, instructions, long_context]",
    "quality.fidelity": "{max_kl: 0.05, max_flip_rate: 0.10}",
    "quality.fidelity.max_kl": "0.05",
    "quality.fidelity.max_flip_rate": "0.10",
    "quality.fidelity.texts": "data/fidelity.txt",
    "quality.fidelity.tokens": "4096",
    "quality.sequential": "true",
    "performance": "{min_speedup: 1.0, max_memory_gb: 20}",
    "performance.min_speedup": "1.0",
    "performance.max_memory_gb": "20",
    "performance.batch_sizes": "[1, 8]",
    "serving": "{runtime: llama-cpp, version: \">=0.3.36\", args: {threads: 2}}",
    "serving.runtime": "llama-cpp",
    "serving.version": "\">=0.3.36\"",
    "serving.args": "{dtype: auto, max_context: 2048, threads: 2}",
    "serving.args.dtype": "auto",
    "serving.args.max_context": "2048",
    "serving.args.kv_cache_dtype": "f16",
    "serving.args.tensor_parallel_size": "2",
    "serving.args.gpu_memory_utilization": "0.90",
    "serving.args.threads": "2",
    "serving.args.start_timeout_s": "600",
    "serving.args.request_timeout_s": "600",
    "rollout": "{flag: quant-support, traffic_slice: 0.05, rollback: baseline}",
    "rollout.flag": "quant-support-assistant",
    "rollout.traffic_slice": "0.05",
    "rollout.rollback": "baseline",
}
"""One example value per field path (``[]`` marks list items); a test checks none is missing."""


def field_paths(model: type[BaseModel] = ModelSpec, prefix: str = "") -> list[str]:
    """Every field path in ``model``, depth first (``quality.metrics[].task``)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        nested, is_list = _section(info.annotation)
        if nested is not None:
            out.extend(field_paths(nested, f"{path}{'[]' if is_list else ''}."))
    return out


def render_field_tables() -> str:
    """The generated part of the reference, between ``BEGIN`` and ``END``."""
    lines = [BEGIN, ""]
    _table(ModelSpec, "", "Top level", lines)
    lines.append(END)
    return "\n".join(lines) + "\n"


def _table(model: type[BaseModel], prefix: str, title: str, lines: list[str]) -> None:
    lines += [f"### {title}", ""]
    if model.__doc__ and model is not ModelSpec:
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| Key | Type | Required | Default | Meaning | Example |", "|---|---|---|---|---|---|"]
    nested_tables: list[tuple[type[BaseModel], str, str]] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        required = "yes" if info.is_required() else "no"
        meaning = (info.description or "").replace("|", "\\|")
        limits = _limits(info)
        if limits:
            meaning = f"{meaning} ({limits})" if meaning else limits
        example = EXAMPLES.get(path, "")
        lines.append(
            f"| `{path}` | {_type(info.annotation)} | {required} | {_default(info)} | {meaning} | `{example}` |"
        )
        nested, is_list = _section(info.annotation)
        if nested is not None:
            child = f"{path}{'[]' if is_list else ''}."
            nested_tables.append((nested, child, f"`{path}{'[]' if is_list else ''}`"))
    lines.append("")
    for nested, child, nested_title in nested_tables:
        _table(nested, child, nested_title, lines)


def _section(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    for arg in get_args(annotation):
        inner, _ = _section(arg)
        if inner is not None:
            return inner, origin is list
    return None, False


def _type(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        if issubclass(annotation, Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        names = {str: "string", int: "integer", float: "number", bool: "boolean", dt.date: "date (YYYY-MM-DD)"}
        return names.get(annotation, annotation.__name__)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        inner = _type(args[0])
        return f"list of {'sections' if inner == 'section' else inner}"
    if origin is dict:
        return f"mapping of string to {_type(args[1])}"
    members = [a for a in args if a is not type(None)]
    if len(members) == 1:
        return _type(members[0])
    return " or ".join(_type(a) for a in members)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return ""
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value in ([], {}):
        return f"`{value}`"
    return f"`{value}`"


def _limits(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{symbol} {bound}")
    return ", ".join(parts)


def update_reference(text: str) -> str:
    """``text`` (the whole doc) with the generated block replaced by the current tables."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render_field_tables().rstrip("\n") + text[end:]


if __name__ == "__main__":  # python -m gate.spec.reference docs/spec-reference.md
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/spec-reference.md")
    target.write_text(update_reference(target.read_text(encoding="utf-8")), encoding="utf-8")
