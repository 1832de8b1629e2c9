"""The spec's `serving` section: strict fields with exact messages, the default runtime from target
and format, resolved arguments, and the registry staying torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate.errors import SpecError
from gate.spec.loader import load_spec

HEAD = "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata: {name: tiny, owner: team-a, tier: internal}\nmodel: {path: weights/tiny}\n"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("body", "message"), [
    ("serving: {runtime: llama-cp}\n",
     "5:11: serving.runtime: unknown runtime 'llama-cp'\n  Hint: did you mean 'llama-cpp'? Available: "),
    ("serving:\n  runtime: llama-cpp\n  version: 'latest'\n",
     "7:3: serving.version: 'latest' is not a version constraint\n"
     "  Hint: write a PEP 440 specifier such as '>=0.3.36' or '==0.32.0'"),
    ("serving:\n  runtime: llama-cpp\n  args: {kv_cache_dtype: q8}\n",
     "7:10: serving.args.kv_cache_dtype: unknown KV-cache type 'q8'\n  Hint: did you mean 'q8_0'? Available: auto, f32, "
     "f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, fp8, fp8_e4m3, fp8_e5m2"),
    ("serving:\n  runtime: llama-cpp\n  args: {threads: 0}\n",
     "7:10: serving.args.threads: 0 is out of range; it must be greater than 0\n"
     "  Hint: set `threads` to a value greater than 0"),
    ("serving:\n  runtime: llama-cpp\n  args: {port: 8080}\n",
     "7:10: serving.args.port: unknown key\n  Hint: allowed keys here: dtype, max_context, kv_cache_dtype, "
     "tensor_parallel_size, gpu_memory_utilization, threads, start_timeout_s, request_timeout_s"),
])
def test_bad_serving_sections_are_refused_with_position_and_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}:{message}")


def _spec(tmp_path: Path, body: str) -> object:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return load_spec(path).spec


@pytest.mark.parametrize(("kind", "fmt", "runtime"), [
    ("cpu", "gguf-q4_k_m", "llama-cpp"),
    ("gpu", "gguf-q8_0", "llama-cpp"),
    ("cpu", "int8-weight-only", "transformers"),
    ("cpu", "rtn", "transformers"),
])
def test_default_runtime_follows_format_and_hardware(kind: str, fmt: str, runtime: str) -> None:
    from gate.serve import default_runtime, format_family

    assert default_runtime(kind, fmt, format_family(fmt)) == runtime  # type: ignore[arg-type]


def test_choose_serving_takes_spec_values_over_runtime_and_target_defaults(tmp_path: Path) -> None:
    from gate.serve import choose_serving

    body = ("constraint: {kind: memory, statement: s, target: {hardware: cpu-x86-avx2, context: 4096, batch: 2}}\n"
            "quantization: {method: gguf, bits: 4, group_size: -1, format: gguf-q4_k_m}\n")
    default = choose_serving(_spec(tmp_path, body), "cpu")  # type: ignore[arg-type]
    assert (default.runtime, default.declared, default.version) == ("llama-cpp", False, None)
    assert (default.args.max_context, default.args.batch, default.args.kv_cache_dtype, default.args.threads) == (
        4096, 2, "f16", None)
    declared = choose_serving(_spec(tmp_path, body + "serving: {runtime: llama-cpp, version: '>=0.3', "
                                  "args: {threads: 1, max_context: 512, kv_cache_dtype: q8_0}}\n"), "cpu")  # type: ignore[arg-type]
    assert (declared.declared, declared.version) == (True, ">=0.3")
    assert (declared.args.max_context, declared.args.kv_cache_dtype, declared.args.threads) == (512, "q8_0", 1)


def test_multiple_choice_suites_of_qg208_match_the_shipped_yamls() -> None:
    from ruamel.yaml import YAML

    from gate.evaluate.suites import SHIPPED_DIR, STRESS_TASKS
    from gate.policy.rules.qg208_runtime_serves_format import MULTIPLE_CHOICE_SUITES

    yaml = YAML(typ="safe", pure=True)
    kinds = {suite: yaml.load((SHIPPED_DIR / f"{task}.yaml").read_text())["output_type"]
             for suite, task in STRESS_TASKS.items()}
    assert {s: t for s, t in STRESS_TASKS.items() if kinds[s] == "multiple_choice"} == MULTIPLE_CHOICE_SUITES


def test_the_runtime_registry_imports_no_torch() -> None:
    code = "import sys, gate.serve, gate.spec.models; print(sorted(gate.serve.RUNTIMES)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.splitlines()[-1] == "False"
    assert {"llama-cpp", "transformers"} <= set(eval(out.splitlines()[0]))


def test_gate_init_writes_the_default_runtime_and_no_multiple_choice_suite_for_llama_cpp() -> None:
    from types import SimpleNamespace

    from gate.onboard.render import _runtime, _stress_lines

    llama = _runtime("gguf-q4_k_m", "cpu")
    assert llama.name == "llama-cpp" and _runtime("int8-weight-only", "cpu").name == "transformers"
    optional = SimpleNamespace(tier="internal", defaults=SimpleNamespace(
        stress_suites=("reasoning", "instructions", "long_context"), stress_required=False))
    assert _stress_lines(optional, llama) == [  # type: ignore[arg-type]
        "  stress: [instructions_gen]  # llama-cpp scores generation, not multiple choice (stress is optional for "
        "tier internal)"]
    required = SimpleNamespace(tier="critical", defaults=SimpleNamespace(
        stress_suites=("reasoning", "instructions_gen"), stress_required=True))
    lines = _stress_lines(required, llama)  # type: ignore[arg-type]
    assert lines[0] == ("  stress: [instructions_gen]  # llama-cpp scores generation, not multiple choice "
                        "(stress is required for tier critical)")
    assert lines[1].startswith("  # TODO(owner): the policy requires reasoning, which llama-cpp cannot score (")
