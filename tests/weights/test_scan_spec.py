"""``scan_spec_weights`` and the QG5xx rules end to end: a real tiny Llama in a temporary repo,
real lockfiles, real torch checkpoints, real symlinks; findings through the policy engine."""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gate.errors import InputError
from gate.options import StaticOptions
from gate.plan.catalog import load_catalog
from gate.policy.engine import evaluate, load_policy_set
from gate.policy.facts import Facts
from gate.spec.loader import load_spec
from gate.weights import scan_spec_weights, write_lockfile
from gate.weights.interface import FileFormat, FileVerdict, LockState, SourceKind
from tests.weights import payloads as pl

BASE = Path(__file__).resolve().parents[1] / "policy" / "base_spec.yaml"


@pytest.fixture
def repo(tmp_path: Path, tiny_llama_dir: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    shutil.copytree(tiny_llama_dir, root / "weights" / "tiny")
    (root / "data").mkdir()
    (root / "data" / "cal.jsonl").write_text('{"text": "hello"}\n')
    write_lockfile(root / "weights" / "tiny", root / "locks" / "tiny.lock.json")
    return root


def write_spec(repo: Path, model: dict[str, Any], **sections: Any) -> Path:
    data = YAML(typ="safe", pure=True).load(BASE.read_text())
    data["model"] = model
    data["calibration"]["source"] = "data/cal.jsonl"
    for key, value in sections.items():
        data[key] = value
    path = repo / "models" / "tiny.yaml"
    path.parent.mkdir(exist_ok=True)
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, buffer)
    path.write_text(buffer.getvalue())
    return path


LOCAL = {"path": "weights/tiny", "lockfile": "locks/tiny.lock.json"}


def scan(repo: Path, spec: Path) -> Any:
    return scan_spec_weights(load_spec(spec), repo)


def qg5_findings(repo: Path, spec: Path) -> list[tuple[str, str]]:
    """The weight rules' findings through the policy engine (built-in defaults), without the plan
    stage (it reads checkpoints itself; see the report on gate/plan)."""
    options = StaticOptions(repo_root=repo)
    loaded = load_spec(spec)
    facts = Facts(loaded=loaded, catalog=load_catalog(), today=options.today, repo_root=repo,
                  weights=scan_spec_weights(loaded, repo))
    findings = evaluate(facts, load_policy_set(options))
    return [(f.rule_id, f.message) for f in findings if "QG502" <= f.rule_id < "QG600"]


def test_clean_model(repo: Path) -> None:
    result = scan(repo, write_spec(repo, LOCAL))
    assert result.source is SourceKind.path and result.fetched
    assert result.lock.state is LockState.ok
    formats = {f.path: (f.format, f.verdict) for f in result.files}
    assert formats["weights/tiny/model.safetensors"] == (FileFormat.safetensors, FileVerdict.ok)
    assert formats["weights/tiny/config.json"] == (FileFormat.json, FileVerdict.other)
    assert not result.remote_code.present and result.confinement == []
    assert qg5_findings(repo, write_spec(repo, LOCAL)) == []


def test_result_round_trips_as_json(repo: Path) -> None:
    from gate.weights.interface import WeightScan

    result = scan(repo, write_spec(repo, LOCAL))
    assert WeightScan.model_validate(json.loads(result.model_dump_json())) == result


def test_lockfile_drift_and_remote_code(repo: Path) -> None:
    model = repo / "weights" / "tiny"
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_tiny.py").write_text("import os\n")
    findings = qg5_findings(repo, write_spec(repo, LOCAL))
    rules = [r for r, _ in findings]
    assert rules.count("QG503") == 2  # config.json changed, modeling_tiny.py extra
    assert ("QG503", "weights/tiny/modeling_tiny.py: not in lockfile locks/tiny.lock.json") in findings
    changed = next(m for r, m in findings if r == "QG503" and "config.json" in m)
    assert changed.startswith("weights/tiny/config.json: sha256 is ")
    assert ("QG506", "weights/tiny/modeling_tiny.py: Python file in the model directory (remote code)") in findings
    assert (
        "QG506",
        "weights/tiny/config.json: auto_map makes transformers load code from the model repository "
        "(AutoModelForCausalLM: modeling_tiny.TinyForCausalLM)",
    ) in findings


def test_trust_remote_code_in_spec(repo: Path) -> None:
    findings = qg5_findings(repo, write_spec(repo, {**LOCAL, "trust_remote_code": True}))
    assert findings == [("QG506", "model.trust_remote_code: true would run code from the model repository")]


def test_pickle_weights(repo: Path, tmp_path: Path) -> None:
    import torch

    model = repo / "weights" / "tiny"
    torch.save({"w": torch.ones(2)}, model / "pytorch_model.bin")
    canary = tmp_path / "canary"
    pl.torch_like_zip(model / "extra.safetensors", pl.stack_global(f"touch {canary}"))
    write_lockfile(model, repo / "locks" / "tiny.lock.json")
    findings = qg5_findings(repo, write_spec(repo, LOCAL))
    assert findings == [
        ("QG504", "weights/tiny/extra.safetensors (member archive/data.pkl): unsafe pickle (pytorch-zip): imports os.system (not on the allowlist)"),
        (
            "QG505",
            "weights/tiny/pytorch_model.bin: pickle weights (pytorch-zip, allowlist-clean: collections.OrderedDict, "
            "torch.FloatStorage, torch._utils._rebuild_tensor_v2); only safetensors is accepted",
        ),
    ]
    assert not canary.exists()


def test_invalid_safetensors(repo: Path) -> None:
    path = repo / "weights" / "tiny" / "model.safetensors"
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    write_lockfile(repo / "weights" / "tiny", repo / "locks" / "tiny.lock.json")
    assert qg5_findings(repo, write_spec(repo, LOCAL)) == [
        ("QG507", "weights/tiny/model.safetensors: invalid safetensors: 4 bytes after the last tensor are not covered by the header"),
    ]


def test_missing_lockfile_and_missing_weights(repo: Path) -> None:
    findings = qg5_findings(repo, write_spec(repo, {"path": "weights/nope", "lockfile": "locks/nope.lock.json"}))
    assert findings == [
        ("QG502", "model.lockfile: locks/nope.lock.json does not exist"),
        ("QG510", "model.path: weights/nope does not exist"),
    ]


def test_hub_model_not_fetched_is_not_an_error(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = write_spec(repo, {"hub": "org/tiny", "revision": "0" * 40})
    result = scan(repo, spec)
    assert (result.source, result.fetched, result.files) == (SourceKind.hub, False, [])
    assert qg5_findings(repo, spec) == []


def test_hub_model_in_the_cache_is_scanned(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(repo / "weights" / "tiny", snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    write_lockfile(snapshot, repo / "locks" / "hub.lock.json", revision="a" * 40)
    spec = write_spec(repo, {"hub": "org/tiny", "revision": "a" * 40, "lockfile": "locks/hub.lock.json"})
    result = scan(repo, spec)
    assert result.fetched and result.lock.state is LockState.ok
    assert qg5_findings(repo, spec) == []
    spec = write_spec(repo, {"hub": "org/tiny", "revision": "b" * 40, "lockfile": "locks/hub.lock.json"})
    assert qg5_findings(repo, spec) == [
        ("QG503", f"model.revision: lockfile locks/hub.lock.json records revision {'a' * 40} but the spec pins {'b' * 40}")
    ]


def test_malformed_lockfile_is_bad_input(repo: Path) -> None:
    (repo / "locks" / "tiny.lock.json").write_text('{\n  "files": [,]\n}\n')
    with pytest.raises(InputError) as info:
        scan(repo, write_spec(repo, LOCAL))
    assert str(info.value) == (
        "locks/tiny.lock.json:2:13: lockfile is not valid JSON: Expecting value\n"
        "  Hint: regenerate it with `gate lock MODEL_PATH --out FILE`"
    )


@contextlib.contextmanager
def recording_opens() -> Iterator[list[Path]]:
    """Every path opened through ``open``/``Path.open`` inside the block."""
    seen: list[Path] = []
    real_open = io.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, Path)):
            seen.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(io, "open", spy)
        patch.setattr(builtins, "open", spy)
        yield seen


def test_paths_outside_the_repo_are_reported_and_never_read(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text("top secret\n")
    (repo / "data" / "link.jsonl").symlink_to(secret)
    (repo / "weights" / "tiny" / "evil.json").symlink_to(secret)
    spec = write_spec(
        repo,
        {"path": "weights/tiny", "lockfile": "../outside.lock.json"},
        calibration={"source": "/etc/passwd", "samples": 128},
        quality={"metrics": [{"task": "data/link.jsonl", "metric": "acc", "max_drop": 1.0}], "fidelity": {"texts": "../../x.txt"}},
    )
    with recording_opens() as opened:
        result = scan(repo, spec)
    assert any(p.name == "model.safetensors" for p in opened)  # the spy sees what the scan reads
    assert [(v.key, v.path, v.reason) for v in result.confinement] == [
        ("model.lockfile", "../outside.lock.json", "escapes the repository root through '..'"),
        ("calibration.source", "/etc/passwd", "is an absolute path; give a path relative to the repository root"),
        ("quality.fidelity.texts", "../../x.txt", "escapes the repository root through '..'"),
        ("quality.metrics[0].task", "data/link.jsonl", f"resolves through a symlink to {secret}, outside the repository root"),
        ("model.path", "weights/tiny/evil.json", f"is a symlink to {secret}, outside the repository root"),
    ]
    assert secret not in opened and Path("/etc/passwd") not in opened
    assert result.lock.state is LockState.not_verified
    assert "weights/tiny/evil.json" not in [f.path for f in result.files]
    findings = qg5_findings(repo, spec)
    assert [r for r, _ in findings] == ["QG509"] * 5
    assert ("QG509", "calibration.source: '/etc/passwd' is an absolute path; give a path relative to the repository root") in findings


def test_escaping_model_path_is_not_scanned(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(repo / "weights" / "tiny", outside)
    (repo / "weights" / "linked").symlink_to(outside)
    spec = write_spec(repo, {"path": "weights/linked"})
    with recording_opens() as opened:
        result = scan(repo, spec)
    assert [v.key for v in result.confinement] == ["model.path"]
    assert result.files == [] and not result.fetched
    assert not any(outside in p.parents for p in opened)
    assert [r for r, _ in qg5_findings(repo, write_spec(repo, {"path": "weights/linked"}))] == ["QG509"]


def test_gguf_source(repo: Path) -> None:
    from tests.weights.test_gguf_check import write_gguf

    gguf_path = write_gguf(repo / "weights" / "m.gguf")
    write_lockfile(gguf_path, repo / "locks" / "m.lock.json")
    spec = write_spec(repo, {"gguf": "weights/m.gguf", "lockfile": "locks/m.lock.json"})
    result = scan(repo, spec)
    assert [(f.path, f.verdict) for f in result.files] == [("weights/m.gguf", FileVerdict.ok)]
    assert result.lock.state is LockState.ok
    gguf_path.write_bytes(gguf_path.read_bytes()[:-64])
    findings = qg5_findings(repo, spec)
    assert [r for r, _ in findings] == ["QG503", "QG508"]
    assert findings[1][1].startswith("weights/m.gguf: invalid GGUF: tensor 'blk.2.weight' data ends at byte ")
