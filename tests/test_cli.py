"""The command line: exit codes mapped in one place, light imports, version/schema/check."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate import __version__
from gate.cli import COMMANDS, main
from gate.commands import version as version_command
from gate.commands.schema import render_schema
from gate.errors import BackendError, InputError, SpecError
from gate.result import RESULT_SCHEMA_VERSION, GateResult
from gate.spec.loader import expand_spec_paths
from tests.numpy_checkpoints import bert_dir, llama_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
VALID = REPO_ROOT / "tests" / "spec" / "valid"
HEAVY = ("torch", "transformers", "lm_eval", "awq", "torchao", "accelerate", "datasets")


def _raising(exc: BaseException):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


@pytest.mark.parametrize(
    ("raised", "code", "stderr"),
    [
        (KeyboardInterrupt(), 130, "gate: interrupted\n"),
        (SpecError("bad spec", hint="fix it"), 2, "gate: error: bad spec\n  Hint: fix it\n"),
        (InputError("bad flag"), 2, "gate: error: bad flag\n"),
        (BackendError("quantizer crashed"), 1, "gate: error: quantizer crashed\n"),
        (SystemExit(4), 4, ""),
    ],
)
def test_errors_map_to_exit_codes(
    raised: BaseException, code: int, stderr: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(version_command, "run", _raising(raised))
    assert main(["version"]) == code
    out, err = capsys.readouterr()
    assert (out, err) == ("", stderr)


def test_unexpected_error_exits_3_and_says_it_is_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(version_command, "run", _raising(RuntimeError("boom")))
    assert main(["version"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith(
        "gate: unexpected error (RuntimeError): boom\nThis is a bug in quant-gate; the verdict is blocking.\n"
    )


def test_command_return_value_is_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_command, "run", lambda args: 1)
    assert main(["version"]) == 1


def test_broken_pipe_exits_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(version_command, "run", _raising(BrokenPipeError()))
    monkeypatch.setattr("gate.cli._silence_stdout", lambda: None)
    assert main(["version"]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "usage: gate"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (["check"], "the following arguments are required: paths"),
        (["check", "models", "--format", "xml"], "invalid choice: 'xml'"),
        (["version", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert fragment in err


def test_help_and_version_flags_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gate [-h] [--version] COMMAND ...")
    for name in COMMANDS:
        assert f"    {name}" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"quant-gate {__version__}\n"


def test_version_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"quant-gate {__version__}\n"
    assert main(["version", "--runtime", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["quant-gate"] == __version__
    assert data["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(version_command.RUNTIME_PACKAGES) <= set(data)
    assert data["pydantic"][0].isdigit()


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == render_schema()
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "ModelSpec"


LIGHT_PROBE = """
import json, sys
from gate.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("\\n@@" + json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["check", "models/"], ["check", "models/", "--format", "json"], ["schema"], ["version", "--runtime"]])
def test_light_commands_do_not_import_the_ml_stack(argv: list[str]) -> None:
    probe = LIGHT_PROBE.format(heavy=set(HEAVY))
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(proc.stdout.rsplit("\n@@", 1)[1])
    assert report["heavy"] == [], proc.stderr
    assert report["code"] in (0, 1), proc.stderr  # the example specs load; policy findings may block


GGUF_PROBE = """
import json, sys
from gate.cli import main
code = main(["check", "models/smollm2-135m-gguf.yaml"])
print("\\n@@" + json.dumps({"code": code, "modules": sorted(m for m in sys.modules
                                                          if m.split(".")[0] in ("gguf", "numpy", "yaml")
                                                          or m == "gate.weights._gguf_constants")}))
"""


def test_check_of_a_gguf_spec_reads_the_format_tables_without_the_gguf_package() -> None:
    """The GGUF spec's static path (structure check, memory plan) reads the file header with the
    gguf package's tables only: its __init__ (reader, writer, numpy, PyYAML) is what a hook pays for."""
    from gate.cache import default_cache_dir
    from gate.example import fetch_example

    fetch_example(REPO_ROOT, default_cache_dir(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", GGUF_PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    report = json.loads(proc.stdout.rsplit("\n@@", 1)[1])
    assert report == {"code": 0, "modules": ["gate.weights._gguf_constants"]}, proc.stdout + proc.stderr


def test_directories_expand_to_spec_files(tmp_path: Path) -> None:
    (tmp_path / "team-a").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b.yaml", "team-a/a.yml", "team-a/notes.txt", ".hidden/c.yaml", "README.md"):
        (tmp_path / name).write_text("x: 1\n")
    assert expand_spec_paths([tmp_path]) == [tmp_path / "b.yaml", tmp_path / "team-a" / "a.yml"]
    single = tmp_path / "README.md"
    assert expand_spec_paths([single, tmp_path / "team-a"]) == [single, tmp_path / "team-a" / "a.yml"]


def _check_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    code = main(["check", *argv, "--format", "json"])
    out = capsys.readouterr().out
    data = json.loads(out)
    return code, data if isinstance(data, list) else [data]


def test_check_json_matches_the_result_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "good.yaml").write_bytes((VALID / "minimal.yaml").read_bytes())
    (specs / "bad.yaml").write_text("apiVersion: quant-gate/v1\nkind: ModelSpec\n")
    monkeypatch.chdir(tmp_path)
    code, results = _check_json(["specs", "--repo-root", str(tmp_path)], capsys)
    assert code == 2  # the worst of the two
    assert [r["spec"]["path"] for r in results] == ["specs/bad.yaml", "specs/good.yaml"]
    for raw in results:
        result = GateResult.model_validate(raw)
        assert result.schema_version == RESULT_SCHEMA_VERSION
        assert result.command == "check"
        assert result.gate_version == __version__
        assert [s.stage for s in result.stages][:1] == ["spec"]
    bad, good = (GateResult.model_validate(r) for r in results)
    assert (bad.verdict.decision.value, bad.exit_code) == ("error", 2)
    assert bad.error == (
        "specs/bad.yaml:1:1: metadata: required key is missing\n"
        "  Hint: add `metadata` at the top level (who owns the model and how much it matters)\n"
        "specs/bad.yaml:1:1: model: required key is missing\n"
        "  Hint: add `model` at the top level (the full-precision baseline: exactly one of path, gguf, hub)"
    )
    assert good.spec.name == "tiny"
    assert good.spec.sha256 is not None and len(good.spec.sha256) == 64
    assert good.error is None


def test_check_output_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("spec.yaml").write_bytes((VALID / "minimal.yaml").read_bytes())
    code = main(["check", "spec.yaml", "--repo-root", str(tmp_path), "--format", "json", "--output", "out/result.json"])
    assert capsys.readouterr().out == ""
    result = GateResult.model_validate_json(Path("out/result.json").read_text())
    assert result.spec.path == "spec.yaml"
    assert code == result.exit_code


def test_check_worst_exit_code() -> None:
    from gate.pipeline import worst_exit_code

    assert worst_exit_code([]) == 0
    assert worst_exit_code([0, 0]) == 0
    assert worst_exit_code([0, 1]) == 1
    assert worst_exit_code([1, 2, 0]) == 2
    assert worst_exit_code([2, 3, 1]) == 3
    assert worst_exit_code([0, 130]) == 130  # an interrupted spec is never reported as a pass


def test_gate_console_script_runs(tmp_path: Path) -> None:
    gate = Path(sys.executable).parent / "gate"
    if not gate.exists():
        pytest.skip("the gate console script is not installed in this environment")
    proc = subprocess.run([str(gate), "version"], capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, f"quant-gate {__version__}\n")
    proc = subprocess.run(
        [str(gate), "check", "no-such.yaml", "--format", "json", "--repo-root", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"] == (
        "no-such.yaml: file not found\n  Hint: check the path (relative paths are resolved from the current directory)"
    )


# -- gate check refuses, before any GPU time, what the run would only find out on the runner ------------------
def _static_findings(spec: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[tuple[str, str]]]:
    code, (result,) = _check_json([str(spec), "--repo-root", str(repo)], capsys)
    return code, [(f["rule_id"], f["message"]) for f in result["findings"] if f["severity"] == "deny"]


def test_check_verifies_the_calibration_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.evaluate.repo import make_repo, spec_text

    repo = tmp_path / "repo"
    spec = make_repo(repo, llama_dir(tmp_path / "llama"), spec_text())
    assert _static_findings(spec, repo, capsys) == (0, [])
    calibration = repo / "data" / "calibration.jsonl"
    recorded = hashlib.sha256(calibration.read_bytes()).hexdigest()
    with calibration.open("a", encoding="utf-8") as handle:
        handle.write('{"text": "one more sample, added after review"}\n')
    edited = hashlib.sha256(calibration.read_bytes()).hexdigest()
    assert _static_findings(spec, repo, capsys) == (1, [
        ("QG306", f"calibration.sha256: data/calibration.jsonl has sha256 {edited}, the spec records {recorded}"),
    ])
    calibration.unlink()
    assert _static_findings(spec, repo, capsys) == (1, [
        ("QG305", "calibration.source: data/calibration.jsonl does not exist"),
    ])


def test_check_refuses_a_model_it_cannot_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.evaluate.repo import make_repo, spec_text

    repo = tmp_path / "repo"
    spec = make_repo(repo, bert_dir(tmp_path / "bert"), spec_text())
    code, findings = _static_findings(spec, repo, capsys)
    assert code == 1
    assert findings == [
        ("QG606", "model: BertModel has no causal-LM head (config.json `architectures`); the gate can only judge "
                  "causal language models"),
        ("QG607", "model: the plan finds 0 quantizable parameters in 9,216 (BertModel): no linear layer sits inside "
                  "a decoder block"),
    ]


def test_check_flags_scaffolded_placeholders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.evaluate.repo import make_repo, spec_text

    repo = tmp_path / "repo"
    text = spec_text().replace("owner: team-tests", "owner: TODO-owner")
    text = text.replace("  source: data/calibration.jsonl\n", '  source: "TODO(owner): path/to/production-sample.jsonl"\n')
    spec = make_repo(repo, llama_dir(tmp_path / "llama"), text)
    assert _static_findings(spec, repo, capsys) == (1, [
        ("QG307", "metadata.owner: 'TODO-owner' is a placeholder"),
        ("QG307", "calibration.source: 'TODO(owner): path/to/production-sample.jsonl' is a placeholder"),
    ])


def test_a_named_command_imports_only_its_own_module() -> None:
    probe = ("import sys; from gate.cli import main; code = main(sys.argv[1:]);"
             "print(sorted(m for m in sys.modules if m.startswith('gate.commands.')))")
    proc = subprocess.run([sys.executable, "-c", probe, "check", "models/", "--format", "json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout.rstrip().rsplit("\n", 1)[-1] == "['gate.commands.check']", proc.stderr
