"""QG208: the serving runtime serves the format on the target hardware, with the arguments given."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation

MULTIPLE_CHOICE_SUITES = {"reasoning": "qg_reasoning", "instructions": "qg_instructions",
                          "long_context": "qg_long_context"}
"""Shipped stress suites scored by log-likelihood (their YAMLs say ``output_type: multiple_choice``;
a test keeps this in step with them)."""

LOGLIKELIHOOD_OUTPUT_TYPES = ("loglikelihood", "multiple_choice")
"""lm-eval output types scored by prompt log-probabilities (a runtime without them cannot score a
repository task of these types; ``loglikelihood_rolling`` perplexity has its own path)."""


class RuntimeServesFormat(Rule):
    id = "QG208"
    slug = "serving.runtime-supports"
    summary = ("The serving runtime serves the quantized format on the target hardware, honours the serving "
               "arguments given, and can score the shipped suites the spec names.")
    why = (
        "The artifact is judged inside the runtime that will serve it. A runtime that cannot load the\n"
        "format (vLLM's CPU build has no GGUF support; llama.cpp serves only GGUF), has no kernel for\n"
        "it on the target's compute capability (AWQ needs >= 7.5, Marlin >= 8.0, FP8 >= 8.9: the\n"
        "hardware catalog), ignores an argument, or cannot return the prompt log-probabilities a\n"
        "multiple-choice suite or repository task needs (llama-server; a repository task's `output_type`\n"
        "is read from its YAML and the templates it includes, and reported at the line that sets it)\n"
        "would fail after the GPU time is spent, or judge\n"
        "something other than what serves. The runtime is `serving.runtime`, or the default for the\n"
        "target and format: llama-cpp for GGUF, vllm for AWQ/GPTQ/compressed-tensors on GPU, else transformers."
    )
    example = ("constraint:\n  target: {hardware: cpu-x86-avx2}\nquantization:\n  method: gguf\n  bits: 4\n"
               "  format: gguf-q4_k_m\nquality:\n  stress: [reasoning]   # multiple choice: llama-server has no prompt "
               "logprobs\n")
    use_instead = ("constraint:\n  target: {hardware: cpu-x86-avx2}\nquantization:\n  method: gguf\n  bits: 4\n"
                   "  format: gguf-q4_k_m\nquality:\n  metrics:\n    - {task: qg_license_ppl, metric: word_perplexity, "
                   "max_relative_increase: 0.05}\n  stress: [instructions_gen]\n  fidelity: {max_kl: 0.05}\n"
                   "serving: {runtime: llama-cpp}\n")

    def check(self, facts: Facts, _params: BaseModel) -> Iterator[Violation]:
        from gate.serve import DESCRIPTORS, default_runtime, format_family

        spec = facts.loaded.spec
        if spec.quantization is None or spec.constraint is None:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware)
        if hardware is None:
            return
        fmt = spec.quantization.format
        family = format_family(fmt)
        declared = spec.serving is not None
        name = spec.serving.runtime if spec.serving else default_runtime(hardware.kind, fmt, family)
        runtime = DESCRIPTORS[name]
        where = ("serving", "runtime") if declared else ("quantization", "format")
        how = "" if declared else f" (the default runtime for {fmt} on {hardware.kind})"
        group = runtime.serving(fmt, family, hardware.kind)
        if group is None:
            served = "; ".join(f"{', '.join(g.formats)} on {'/'.join(g.hardware)}" for g in runtime.serves)
            yield Violation(
                f"serving.runtime: {name}{how} does not serve {fmt} on {hardware.kind} targets ({hardware.name}); "
                f"it serves {served}",
                key_path=where, hint=_hint(fmt, hardware.kind))
            return
        capability = hardware.capability
        if group.min_compute_capability is not None and capability is not None and \
                capability < _cc(group.min_compute_capability):
            yield Violation(
                f"serving.runtime: {name}{how} has no {fmt} kernels below compute capability "
                f"{group.min_compute_capability:g}; {hardware.name} is {hardware.compute_capability}",
                key_path=where, hint="target newer hardware, or a format with kernels there")
        elif hardware.kind in runtime.catalog_kernels and not hardware.has_fast_kernels(fmt):
            yield Violation(
                f"serving.runtime: {name}{how} has no kernels for {fmt} on {hardware.name} "
                f"(the catalog's kernels there: {', '.join(hardware.fast_formats)})",
                key_path=where, hint="choose a format from that list, or another runtime")
        yield from _arguments(spec, name, runtime)
        yield from _repository_tasks(facts, name, runtime)


def _arguments(spec: object, name: str, runtime: object) -> Iterator[Violation]:
    from gate.serve.interface import RuntimeDescriptor
    from gate.spec.models import ModelSpec

    assert isinstance(spec, ModelSpec) and isinstance(runtime, RuntimeDescriptor)
    if spec.serving is not None:
        args = spec.serving.args
        for field in type(args).model_fields:
            if getattr(args, field) is not None and field not in runtime.args:
                yield Violation(
                    f"serving.args.{field}: {name} has no such argument; it honours {', '.join(runtime.args) or 'none'}",
                    key_path=("serving", "args", field), hint=f"remove serving.args.{field}")
        kv = args.kv_cache_dtype
        if kv is not None and kv != "auto" and "kv_cache_dtype" in runtime.args and kv not in runtime.kv_cache_dtypes:
            yield Violation(
                f"serving.args.kv_cache_dtype: {name} has no KV-cache type {kv!r}; it has "
                f"{', '.join(runtime.kv_cache_dtypes)}",
                key_path=("serving", "args", "kv_cache_dtype"), hint="choose one of those")
    if runtime.loglikelihood:
        return
    quality = spec.quality
    suites = [s.value for s in quality.stress] if quality else []
    tasks = {m.task for m in quality.metrics} if quality else set()
    refused = [s for s in suites if s in MULTIPLE_CHOICE_SUITES] + \
        sorted(t for t in tasks if t in MULTIPLE_CHOICE_SUITES.values())
    if refused:
        yield Violation(
            f"quality: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} scored by prompt log-probabilities "
            f"(multiple choice), and {runtime.loglikelihood_note}",
            key_path=("quality", "stress") if any(s in MULTIPLE_CHOICE_SUITES for s in suites) else ("quality", "metrics"),
            hint=f"in {name}, judge with perplexity, generation (stress: instructions_gen) and fidelity; or serve "
                 "with a runtime that returns prompt log-probabilities")


def _repository_tasks(facts: Facts, name: str, runtime: object) -> Iterator[Violation]:
    """Repository tasks whose ``output_type`` (read statically by the task scan, includes merged)
    needs prompt log-probabilities the runtime does not return, at the line that sets it."""
    from gate.serve.interface import RuntimeDescriptor

    assert isinstance(runtime, RuntimeDescriptor)
    if runtime.loglikelihood or facts.tasks is None:
        return
    for output in facts.tasks.outputs:
        if output.output_type in LOGLIKELIHOOD_OUTPUT_TYPES:
            yield Violation(
                f"task {output.task!r}: output_type {output.output_type} is scored by prompt log-probabilities, "
                f"and {runtime.loglikelihood_note}",
                path=output.path, line=output.line, col=output.col,
                hint=f"in {name}, judge with perplexity (loglikelihood_rolling) or generation (generate_until) tasks; "
                     "or serve with a runtime that returns prompt log-probabilities (serving.runtime: transformers "
                     "or vllm)")


def _cc(value: float) -> tuple[int, int]:
    major, _, minor = f"{value:.1f}".partition(".")
    return int(major), int(minor)


def _hint(fmt: str, kind: str) -> str:
    from gate.serve import DESCRIPTORS, format_family

    family = format_family(fmt)
    able = [d.name for d in DESCRIPTORS.values() if d.serving(fmt, family, kind) is not None]  # type: ignore[arg-type]
    return f"serve {fmt} on {kind} with {' or '.join(able)}" if able else f"no runtime serves {fmt} on {kind}"
