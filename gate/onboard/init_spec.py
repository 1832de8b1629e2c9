"""``gate init``: inspect a model, recommend per SCALE, lock the baseline, write a first spec.

No torch: the model is read from its headers and config (``gate.plan.checkpoint``). Missing
answers come from ``ask`` (a terminal prompt) when one is given, else they are usage errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.errors import InputError, SourceLocation
from gate.onboard.defaults import PolicyDefaults, policy_defaults
from gate.onboard.recommend import Recommendation, recommend
from gate.onboard.render import TODO, SpecDraft, render_spec
from gate.plan.catalog import HardwareCatalog, load_catalog
from gate.plan.checkpoint import Checkpoint, read_gguf, read_model_dir
from gate.plan.memory import DEFAULT_CONTEXT, MemoryPlan, build_plan
from gate.spec.models import NAME, ConstraintKind, Metadata, Tier
from gate.suggest import unknown_choice_message
from gate.weights.lockfile import sha256_file

Ask = Callable[[str, Sequence[str] | None, str | None], str]
"""``ask(question, choices, default) -> answer``: an interactive prompt."""

DEFAULT_INIT_CONTEXT = 4096
CALIBRATION_SEQ_CAP = 512


@dataclass(frozen=True)
class InitRequest:
    """The flags of ``gate init`` (None = not given: ask, or fail when nothing can ask)."""

    model: Path
    repo_root: Path
    name: str | None = None
    constraint: str | None = None
    target: str | None = None
    tier: str | None = None
    owner: str | None = None
    memory_gb: float | None = None
    context: int | None = None
    batch: int | None = None
    tokens_per_s: float | None = None
    cost_per_million_tokens: float | None = None
    hourly_cost: float | None = None
    quality_sensitive: bool = False
    calibration: str | None = None
    collected: dt.date | None = None
    out: Path | None = None
    lockfile: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class InitOutcome:
    spec_path: Path
    lockfile_path: Path
    text: str
    recommendation: Recommendation
    plan: MemoryPlan
    defaults: PolicyDefaults
    todos: int


def _answer(value: str | None, flag: str, question: str, ask: Ask | None,
            choices: Sequence[str] | None = None, default: str | None = None) -> str:
    if value is not None:
        return value
    if ask is not None:
        return ask(question, choices, default)
    if default is not None:
        return default
    raise InputError(f"missing {flag} (no terminal is attached to ask)",
                     hint=f"pass {flag}" + (f" ({' | '.join(choices)})" if choices else ""))


def _choice(value: str, kind: str, flag: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"{flag}: {unknown_choice_message(kind, value, choices)}", hint=f"use one of: {', '.join(choices)}")
    return value


def _inside(path: Path, root: Path, what: str) -> str:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise InputError(f"{what} {path} is outside the repository {root}",
                         hint="specs name files relative to the repository root: move or copy them into the repository")
    return resolved.relative_to(root).as_posix()


def read_model(model: Path, root: Path) -> tuple[Checkpoint, str, str]:
    """(checkpoint, spec key ``path``/``gguf``, repo-relative path) of MODEL_DIR (or a .gguf file)."""
    if not model.exists():
        raise InputError(f"{model}: no such model directory or GGUF file",
                         hint="pass a Hugging Face model directory (config.json + *.safetensors) or a .gguf file",
                         location=SourceLocation(str(model)))
    rel = _inside(model, root, "model")
    if model.is_file():
        if model.suffix != ".gguf":
            raise InputError(f"{rel}: not a model directory or a .gguf file",
                             hint="pass the directory holding config.json and *.safetensors")
        return read_gguf(model, rel), "gguf", rel
    return read_model_dir(model, rel), "path", rel


def _judgeable(ckpt: Checkpoint, source_rel: str) -> None:
    """Refuse, before recommending a method or a KV cache, a model class the gate cannot judge (QG606)."""
    from gate.policy.rules.qg606_causal_lm import HINT, has_causal_lm_head, not_causal_message

    if not has_causal_lm_head(ckpt.shape.architecture):
        raise InputError(f"{source_rel}: {not_causal_message(ckpt.shape.architecture)}; `gate init` recommends nothing "
                         "for it", hint=HINT)


def _policy(root: Path) -> tuple[HardwareCatalog, object]:
    """The repository's policy set and the catalog its ``hardware:`` entries extend."""
    from gate.options import StaticOptions
    from gate.policy.engine import load_policy_set

    policy_set = load_policy_set(StaticOptions(repo_root=root))
    return policy_set.extend_catalog(load_catalog()), policy_set


def init_spec(request: InitRequest, ask: Ask | None = None) -> InitOutcome:
    """Write the spec (and the baseline's lockfile); return what was written and why."""
    root = request.repo_root.resolve()
    ckpt, source_key, source_rel = read_model(request.model, root)
    _judgeable(ckpt, source_rel)
    name = _answer(request.name, "--name", "Model name (lowercase, digits, . _ -)", ask)
    if not NAME.match(name):
        raise InputError(f"--name: {name!r} is not a valid name", hint="use 1-64 lowercase letters, digits, '.', '_' or '-'")
    kinds = [k.value for k in ConstraintKind]
    kind = ConstraintKind(_choice(_answer(request.constraint, "--constraint", "Constraint (the bottleneck)", ask, kinds),
                                  "constraint", "--constraint", kinds))
    catalog, policy_set = _policy(root)
    target = _answer(request.target, "--target", "Target hardware", ask, catalog.names())
    hardware = catalog.get(target)
    tiers = [t.value for t in Tier]
    tier = Tier(_choice(_answer(request.tier, "--tier", "Tier", ask, tiers, "standard"), "tier", "--tier", tiers))
    owner = _answer(request.owner, "--owner", "Owning team", ask, None, "TODO-owner")

    max_ctx = ckpt.shape.max_context
    context = request.context or (min(DEFAULT_INIT_CONTEXT, max_ctx) if max_ctx else DEFAULT_CONTEXT)
    if max_ctx is not None and context > max_ctx:
        raise InputError(
            f"--context: {context} tokens exceeds the {max_ctx} that {source_rel} supports (max_position_embeddings)",
            hint=f"use --context {max_ctx} or less",
        )
    batch = request.batch or 1
    memory_gb = request.memory_gb or hardware.memory_gb
    defaults = policy_defaults(Metadata(name=name, owner=owner, tier=tier), policy_set)
    rec = recommend(ckpt, hardware, defaults, kind=kind, memory_gb=memory_gb, context=context, batch=batch,
                    quality_sensitive=request.quality_sensitive)
    opt = rec.option
    plan = build_plan(
        ckpt, method=opt.method, bits=opt.bits, group_size=opt.group_size, keep_full_precision=["lm_head"],
        context=context, batch=batch, target_hardware=hardware.name, target_memory_gb=memory_gb,
        target_memory_source="constraint", device_kind=hardware.kind,
    )
    if plan.quantized_parameters == 0:
        from gate.policy.rules.qg607_quantizable import HINT, nothing_quantizable_message

        raise InputError(f"{source_rel}: {nothing_quantizable_message(plan.parameters, plan.architecture)}; "
                         "`gate init` recommends nothing for it", hint=HINT)

    calibration = request.calibration
    if calibration is None and ask is not None:
        answer = ask("Calibration data (JSONL of production-like inputs; empty: decide later)", None, "")
        calibration = answer or None
    cal_sha = None
    if calibration is not None:
        cal_path = (root / calibration) if not Path(calibration).is_absolute() else Path(calibration)
        if not cal_path.is_file():
            raise InputError(f"--calibration: {calibration}: no such file", hint="pass a JSONL file inside the repository")
        calibration = _inside(cal_path, root, "calibration file")
        cal_sha = sha256_file(cal_path)

    spec_path = request.out or root / "models" / f"{name}.yaml"
    lock_path = request.lockfile or root / "models" / "locks" / f"{name}.lock.json"
    spec_path, lock_path = spec_path.resolve(), lock_path.resolve()
    _inside(spec_path, root, "spec")
    lock_rel = _inside(lock_path, root, "lockfile")
    if spec_path.exists() and not request.force:
        raise InputError(f"{spec_path}: already exists", hint="pass --force to overwrite it, or --out another path")

    statement = {
        ConstraintKind.memory: f"Must fit {hardware.name} ({memory_gb:g} GB) with {context} tokens of context at batch {batch}.",
        ConstraintKind.throughput: f"Fits {hardware.name}, but must serve more tokens/s per device at {context} context, batch {batch}.",
        ConstraintKind.cost: f"Runs on {hardware.name}, but the serving bill must fall at {context} context, batch {batch}.",
    }[kind]
    from gate.evaluate.suites import PERPLEXITY_TASK, STRESS_TASKS
    from gate.spec.models import StressSuite

    draft = SpecDraft(
        name=name, owner=owner, tier=tier.value, source_key=source_key, source=source_rel, lockfile=lock_rel,
        architecture=ckpt.shape.architecture, parameters=ckpt.parameters, max_context=max_ctx,
        constraint=kind.value, statement=statement, hardware=hardware.name, memory_gb=memory_gb,
        memory_from_catalog=request.memory_gb is None, context=context, batch=batch,
        tokens_per_s=request.tokens_per_s, cost_per_million_tokens=request.cost_per_million_tokens,
        hourly_cost=request.hourly_cost, recommendation=rec, plan=plan, calibration_source=calibration,
        calibration_sha256=cal_sha, calibration_seq_len=min(context, CALIBRATION_SEQ_CAP),
        collected=request.collected.isoformat() if request.collected else None, defaults=defaults,
        perplexity_task=PERPLEXITY_TASK, reasoning_task=STRESS_TASKS[StressSuite.reasoning], hardware_kind=hardware.kind,
    )
    text = render_spec(draft)
    _validate(text, spec_path)

    from gate.weights.lockfile import write_lockfile

    write_lockfile(root / source_rel, lock_path)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(text, encoding="utf-8")
    return InitOutcome(spec_path, lock_path, text, rec, plan, defaults, todos=text.count(TODO))


def _validate(text: str, spec_path: Path) -> None:
    """The generated text must load as a spec; failing here is a bug in ``render_spec``."""
    from gate.spec.loader import validate_document
    from gate.spec.models import ModelSpec
    from gate.spec.yaml_source import parse_yaml

    validate_document(ModelSpec, parse_yaml(text.encode("utf-8"), str(spec_path)))
