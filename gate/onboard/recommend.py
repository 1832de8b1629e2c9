"""SCALE stage 2 for ``gate init``: the precision and format the constraint points to, with reasons.

* memory -> the lowest-bit sanctioned choice available on the target that fits with headroom;
* throughput -> a format with fast kernels on the target, INT8 first (its kernels beat aggressive
  4-bit at serving batch sizes), then 4-bit;
* cost -> the lowest-bit sanctioned choice with fast kernels on the target that fits;
* quality-sensitive (any constraint) -> gentle INT8 when it fits with headroom.

Every choice is checked against the memory plan, and each reason ends up as a YAML comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.onboard.defaults import PolicyDefaults
from gate.plan.catalog import Hardware
from gate.plan.checkpoint import Checkpoint
from gate.plan.kernels import FORMATS, formats_of
from gate.plan.memory import GB, dividing_group_size, estimate, precision_label
from gate.spec.models import ConstraintKind

PORTABLE_METHOD = "rtn"
"""Runs anywhere (dequantize + matmul); the fallback when nothing sanctioned suits the target."""


@dataclass(frozen=True)
class Option:
    """One (method, bits, group, format) the target can run, with its planned footprint."""

    method: str
    bits: int
    group_size: int | None
    format: str
    sanctioned: bool
    fast: bool
    total_bytes: int
    algorithm: str | None = None
    """``quantization.options.algorithm`` when the format's default algorithm is not the one chosen
    (e.g. AWQ computed by llm-compressor into ``ct-w4a16``, whose default is GPTQ)."""

    @property
    def label(self) -> str:
        return precision_label(self.bits, self.group_size)


@dataclass(frozen=True)
class Recommendation:
    option: Option
    reasons: list[str] = field(default_factory=list)
    """Why, one comment line each."""
    justification_needed: bool = False
    """True when the choice deviates from the sanctioned defaults (a human must justify it)."""
    fits_with_headroom: bool = True


def _format_for(method: str, hardware: Hardware, bits: int | None = None) -> tuple[str, bool]:
    """The method's format (storing ``bits``, when given) with fast kernels on the target, else its
    first (portable) one; the order is the backend descriptor's."""
    candidates = [f for f in formats_of(method) if bits is None or bits in FORMATS[f].bits] or formats_of(method)
    for fmt in candidates:
        if hardware.has_fast_kernels(fmt):
            return fmt, True
    return candidates[0], False


def _pinned(method: str, bits: int, fmt: str, hardware: Hardware,
            defaults: PolicyDefaults) -> tuple[str, str, str | None] | None:
    """``(method, format, options.algorithm)`` computing ``method``'s algorithm in the backend QG207
    pins for it on ``hardware`` (the same pins, so the scaffold never draws QG207's warning):
    unchanged when ``method`` is that backend; None when the pinned backend cannot write it."""
    from gate.policy.rules.qg207_sanctioned_backend import pin_for
    from gate.quantize.registry import DESCRIPTORS

    descriptor = DESCRIPTORS.get(method)
    algorithm = descriptor.algorithm_of(fmt, {}) if descriptor is not None else None
    pin = pin_for(defaults.pins, algorithm, hardware.kind) if algorithm is not None else None
    if algorithm is None or pin is None or pin.backend == method:
        return method, fmt, None
    pinned = DESCRIPTORS[pin.backend]
    offered = [f for f in pinned.formats if algorithm in f.algorithms and bits in f.bits]
    if not offered:
        return None
    chosen = next((f for f in offered if hardware.has_fast_kernels(f.name)), offered[0])
    return pin.backend, chosen.name, (algorithm if chosen.algorithms[0] != algorithm else None)


def options_for(
    ckpt: Checkpoint, hardware: Hardware, defaults: PolicyDefaults, *, context: int, batch: int
) -> list[Option]:
    """Every sanctioned choice with a format the target runs, plus the portable RTN reference."""
    group = dividing_group_size(ckpt, 128) or 32
    seen: set[tuple[str, int]] = set()
    out: list[Option] = []
    choices = [(s.method, s.bits, True) for s in defaults.sanctioned if s.target in ("any", hardware.kind)]
    choices += [(PORTABLE_METHOD, 8, False), (PORTABLE_METHOD, 4, False)]
    for method, bits, sanctioned in choices:
        if (method, bits) in seen or not formats_of(method):
            continue  # a sanctioned method the gate cannot produce (e.g. gptq) is not offered
        fmt, fast = _format_for(method, hardware, bits)
        pinned = _pinned(method, bits, fmt, hardware, defaults)
        if pinned is None:
            continue  # QG207 pins the algorithm to a backend that does not write this bit width
        if pinned[0] != method:
            method, fmt, algorithm = pinned
            fast = hardware.has_fast_kernels(fmt)
            sanctioned = any(s.method == method and s.bits == bits and s.target in ("any", hardware.kind)
                             for s in defaults.sanctioned)
            if (method, bits) in seen:
                continue
        else:
            algorithm = None
        if sanctioned and not fast and FORMATS[fmt].method != PORTABLE_METHOD:
            continue  # sanctioned, but no kernels on this target (e.g. AWQ on a CPU)
        seen.add((method, bits))
        g = None if bits >= 8 else group
        est = estimate(ckpt, bits=bits, group_size=g, method=method, context=context, batch=batch,
                       device_kind=hardware.kind, fmt=fmt)
        out.append(Option(method, bits, g, fmt, sanctioned, fast, est.total, algorithm))
    return out


def recommend(
    ckpt: Checkpoint,
    hardware: Hardware,
    defaults: PolicyDefaults,
    *,
    kind: ConstraintKind,
    memory_gb: float,
    context: int,
    batch: int,
    quality_sensitive: bool = False,
) -> Recommendation:
    """The recommended precision and format for ``kind`` on ``hardware``."""
    options = options_for(ckpt, hardware, defaults, context=context, batch=batch)
    budget = memory_gb * GB * (1 - defaults.min_headroom)
    room = f"{memory_gb:g} GB less {defaults.min_headroom:.0%} headroom"

    def fits(o: Option) -> bool:
        return o.total_bytes <= budget

    def gb(o: Option) -> str:
        return f"{o.total_bytes / GB:.2f} GB"

    reasons: list[str] = []
    sanctioned = [o for o in options if o.sanctioned]
    by_bits = sorted(options, key=lambda o: (not o.sanctioned, o.bits))
    choice: Option | None = None
    if quality_sensitive:
        int8 = next((o for o in sanctioned if o.bits == 8 and fits(o)), None)
        if int8 is not None:
            reasons.append(f"quality-sensitive: gentle INT8 ({int8.format}) fits in {room} ({gb(int8)})")
            choice = int8
        else:
            reasons.append(f"quality-sensitive, but INT8 does not fit in {room}: falling back to the {kind.value} choice")
    if choice is None and kind is ConstraintKind.memory:
        choice = next((o for o in by_bits if o.sanctioned and fits(o)), None)
        if choice is not None:
            reasons.append(f"memory-bound: lowest-bit sanctioned choice on {hardware.name} that fits in {room} "
                           f"({choice.label}, {gb(choice)})")
    elif choice is None and kind is ConstraintKind.throughput:
        fast = sorted((o for o in sanctioned if o.fast and fits(o)), key=lambda o: -o.bits)
        choice = fast[0] if fast else None
        if choice is not None:
            reasons.append(f"throughput-bound: {choice.format} has fast kernels on {hardware.name} "
                           f"(INT8 first: it beats aggressive 4-bit at serving batch sizes); {gb(choice)} fits in {room}")
    elif choice is None:
        fast = sorted((o for o in sanctioned if o.fast and fits(o)), key=lambda o: o.bits)
        choice = fast[0] if fast else None
        if choice is not None:
            reasons.append(f"cost-bound: fewest bits among sanctioned formats with fast kernels on {hardware.name} "
                           f"(more sequences per device); {gb(choice)} fits in {room}")
    if choice is None:
        fitting = [o for o in by_bits if fits(o)]
        choice = fitting[0] if fitting else min(options, key=lambda o: o.total_bytes)
        if not fits(choice):
            reasons.append(f"TODO(owner): nothing fits in {room}; smallest option {choice.label} needs {gb(choice)}: "
                           "choose a target with more memory or shorten context/batch")
        else:
            reasons.append(f"no sanctioned choice suits {hardware.name}: {choice.format} ({choice.label}, {gb(choice)}) "
                           "is the smallest that fits")
    if not choice.sanctioned:
        reasons.append(f"{choice.method} {choice.bits}-bit is outside the sanctioned defaults: a justification is required")
    if choice.bits < 8 and choice.group_size is not None and choice.group_size != 128:
        reasons.append(f"group_size {choice.group_size}: 128 does not divide every layer's input size")
    if not choice.fast:
        reasons.append(f"{choice.format} has no fast kernels on {hardware.name} (it runs as dequantize + matmul)")
    return Recommendation(choice, reasons, justification_needed=not choice.sanctioned, fits_with_headroom=fits(choice))
