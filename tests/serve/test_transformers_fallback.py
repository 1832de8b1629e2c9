"""The in-process transformers runtime says when it computed a quantized artifact on dequantized
weights (issue #16: "a runtime that silently falls back ... to dequantized weights"): detected from
the loaded model (real tiny artifacts from the real backends), carried by its speed and memory
figures, recorded in ``runtime.serving.fallback``, and the memory/throughput/cost criteria measured
on it are not judged as serving numbers (or block, when the spec declared that runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate.evaluate.interface import ConstraintCheck
from gate.evaluate.performance import ConstraintTargets, PerformanceSettings, check_constraint
from gate.quantize import prepare_baseline, produce_artifact
from gate.result import ServingFallback, ServingRuntime
from gate.serve.interface import OpenRequest, ServingArgs
from gate.serve.transformers import TransformersRuntime, dequantization
from tests.quantize.helpers import make_repo

AWQ_MESSAGE = ("the awq artifact was dequantized on load: all 15 linear layers compute from dense float32 weights in "
               "the transformers runtime, so its memory and speed are the dequantized model's, not the serving "
               "precision's")


def _artifact(root: Path, model_dir: Path, **spec: Any) -> tuple[Path, Path]:
    loaded = make_repo(root, model_dir, **spec)
    baseline = prepare_baseline(loaded, root, root / "cache")
    artifact = produce_artifact(loaded, baseline, root, root / "cache", progress=False)
    return baseline.path, artifact.path


def _open(model_dir: Path, tmp_path: Path) -> Any:
    return TransformersRuntime().open(OpenRequest(model_dir=model_dir, role="candidate", args=ServingArgs(),
                                                  work_dir=tmp_path / "work"))


@pytest.fixture(scope="module")
def awq(tmp_path_factory: pytest.TempPathFactory, trained_tiny_llama_dir: Path) -> tuple[Path, Path]:
    return _artifact(tmp_path_factory.mktemp("awq"), trained_tiny_llama_dir, method="awq", bits=4, group_size=32,
                     fmt="awq-gemm", options={"clip_search": False}, samples=32, max_seq_len=32)


def test_autoawq_on_cpu_is_detected_from_the_loaded_model(awq: tuple[Path, Path], tmp_path: Path) -> None:
    baseline, artifact = awq
    with _open(artifact, tmp_path) as served:
        assert served.fallback == ServingFallback(runtime="transformers", quant_method="awq", dtype="float32",
                                                  dense_layers=15, linear_layers=15, message=AWQ_MESSAGE)
        perf = served.performance(PerformanceSettings(prompt_tokens=8, decode_tokens=2, warmup=0, repeats=1))
    assert perf.fallback == served.fallback  # the figures say what they were measured on
    with _open(baseline, tmp_path) as served:
        assert served.fallback is None  # an unquantized baseline is what it is


def test_gate_rtn_is_dequantized_and_torchao_int8_is_not(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    _, rtn = _artifact(tmp_path / "rtn", trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    _, int8 = _artifact(tmp_path / "int8", trained_tiny_llama_dir, method="int8", bits=8, group_size=None,
                        fmt="int8-weight-only")
    with _open(rtn, tmp_path) as served:
        assert served.fallback is not None
        assert (served.fallback.quant_method, served.fallback.dense_layers) == ("gate-rtn", 15)
    with _open(int8, tmp_path) as served:
        assert served.fallback is None  # torchao's Int8Tensor weights stay int8 in transformers


def test_a_config_that_declares_quantization_but_loads_quantized_modules_is_not_flagged(tmp_path: Path) -> None:
    import json

    import torch

    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq"}}))

    class Packed(torch.nn.Module):  # autoawq's WQLinear keeps int32 qweight buffers
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("qweight", torch.zeros(4, 4, dtype=torch.int32))
            self.register_buffer("scales", torch.ones(4))

    class WQLinear_GEMM(Packed):  # autoawq's class name
        pass

    model = torch.nn.Sequential(WQLinear_GEMM(), torch.nn.Linear(4, 4))  # the dense one: lm_head kept
    assert dequantization(model, tmp_path) is None
    assert dequantization(torch.nn.Sequential(torch.nn.Linear(4, 4)), tmp_path) is not None


# ---- the judgement --------------------------------------------------------------------------------


def _perf(fallback: ServingFallback | None) -> Any:
    from tests.report.samples import model_performance

    base = model_performance("cpu", 1_000_000_000, (10.0, 30.0))
    quant = model_performance("cpu", 1_900_000_000, (9.0, 28.0)).model_copy(update={"fallback": fallback})
    return base, quant


FALLBACK = ServingFallback(runtime="transformers", quant_method="awq", dtype="float32", dense_layers=15,
                           linear_layers=15, message=AWQ_MESSAGE)
TARGETS = ConstraintTargets(kind="memory", hardware_kind="cpu", hardware="cpu-x86-avx2", memory_gb=4.0,
                            tokens_per_s=5.0)


def test_dequantized_figures_are_not_judged_in_the_default_runtime() -> None:
    base, quant = _perf(FALLBACK)
    result = check_constraint(base, quant, TARGETS, environment={})
    note = f"not measured in serving precision: {AWQ_MESSAGE}"
    assert result.checks == [
        ConstraintCheck(name="memory.peak_gb", target=4.0, measured=1.9, passed=None, note=note),
        ConstraintCheck(name="throughput.tokens_per_s@batch1", target=5.0, measured=9.0, passed=None, note=note),
    ]
    assert result.passed


def test_the_declared_runtime_blocks_the_specs_own_constraint_kind() -> None:
    base, quant = _perf(FALLBACK)
    result = check_constraint(base, quant, TARGETS, environment={}, serving_declared=True)
    note = f"not measured in serving precision: {AWQ_MESSAGE}"
    assert result.checks == [
        ConstraintCheck(name="memory.peak_gb", target=4.0, measured=1.9, passed=False,
                        note=f"{note}; serving.runtime is declared, so the memory-bound constraint cannot be judged "
                             "in serving precision: blocking"),
        ConstraintCheck(name="throughput.tokens_per_s@batch1", target=5.0, measured=9.0, passed=None, note=note),
    ]
    assert not result.passed


def test_without_a_fallback_the_figures_are_judged() -> None:
    base, quant = _perf(None)
    assert [c.passed for c in check_constraint(base, quant, TARGETS, environment={}).checks] == [True, True]


def test_the_report_says_so() -> None:
    from gate.report.criteria import constraint_warnings
    from gate.report.markdown import runtime_rows
    from tests.report.samples import failed_run

    r = failed_run()
    serving = ServingRuntime(name="transformers", version="5.23.0", fallback=FALLBACK)
    r = r.model_copy(update={"runtime": r.runtime.model_copy(update={"serving": serving})})
    assert ("serving fallback", AWQ_MESSAGE) in runtime_rows(r)
    assert constraint_warnings(r) == [f"Memory and speed are not the serving numbers: {AWQ_MESSAGE}."]
    assert ServingRuntime.model_validate_json(serving.model_dump_json()) == serving


def facts_for(fragment: dict[str, Any]) -> Any:
    from gate.plan.catalog import load_catalog
    from gate.policy.facts import Facts
    from gate.policy.fragments import deep_merge, loaded_from_data
    from tests.policy.helpers import BASE_SPEC, REPO_ROOT, TODAY

    loaded = loaded_from_data(deep_merge(BASE_SPEC, fragment), "models/case.yaml")
    return Facts(loaded=loaded, catalog=load_catalog(), today=TODAY, repo_root=REPO_ROOT)


def test_qg209_hint_names_the_runtime_that_keeps_the_format_quantized() -> None:
    from gate.policy.rules.qg209_serving_dequantized import ServingDequantized

    spec = {"constraint": {"target": {"hardware": "cpu-x86-avx2"}},
            "quantization": {"method": "llmcompressor", "format": "ct-w8a8-int8", "bits": 8, "group_size": -1},
            "serving": {"runtime": "transformers"}}
    [v] = ServingDequantized().check(facts_for(spec), ServingDequantized.params())
    assert v.hint == "serve ct-w8a8-int8 on cpu with serving.runtime: vllm"
    awq = {**spec, "quantization": {"method": "awq", "format": "awq-gemm"}}
    [v] = ServingDequantized().check(facts_for(awq), ServingDequantized.params())
    assert v.hint is not None and v.hint.startswith(
        "no runtime keeps awq-gemm quantized on cpu: choose a format with kernels on cpu-x86-avx2 (its catalog kernels: ")


# ---- through `gate run` -------------------------------------------------------------------------


def test_gate_run_records_the_fallback_and_judges_memory_accordingly(trained_tiny_llama_dir: Path,
                                                                     tmp_path: Path) -> None:
    """gate-rtn int4 on a CPU, memory-bound: in the default runtime the memory criterion is not judged;
    with `serving.runtime: transformers` declared it blocks. Accuracy is judged either way."""
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set
    from gate.result import CriterionKind, Decision
    from tests.evaluate.repo import make_repo as make_eval_repo
    from tests.evaluate.repo import spec_text

    repo = tmp_path / "repo"
    spec = make_eval_repo(repo, trained_tiny_llama_dir, spec_text(bits=4))
    options = RunOptions(repo_root=repo, cache_dir=repo / ".gate" / "cache", device="cpu", progress=False,
                         resamples=200)
    default = run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))
    serving = default.runtime.serving
    assert serving is not None and serving.fallback is not None
    assert (serving.fallback.quant_method, serving.fallback.dtype) == ("gate-rtn", "float32")
    note = f"not measured in serving precision: {serving.fallback.message}"
    memory = next(c for c in default.criteria if c.kind is CriterionKind.memory)
    assert (memory.name, memory.outcome, memory.note) == ("memory.peak_gb", None, note)
    assert f"performance: memory.peak_gb not judged ({note})" in default.verdict.reasons
    assert any(c.kind is CriterionKind.metric and c.outcome is not None for c in default.criteria)
    assert "QG209" in {f.rule_id for f in default.findings}

    spec.write_text(spec.read_text() + "serving: {runtime: transformers}\n")
    declared = run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))
    memory = next(c for c in declared.criteria if c.kind is CriterionKind.memory)
    assert memory.outcome is Decision.failed
    assert memory.note == (f"{note}; serving.runtime is declared, so the memory-bound constraint cannot be judged in "
                           "serving precision: blocking")
    assert declared.verdict.decision is Decision.failed and declared.exit_code == 1
