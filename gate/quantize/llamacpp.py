"""llama.cpp's tools, built by ``scripts/build-llama-cpp.sh``: where they are and how to run them.

The build is pinned to the llama.cpp tree vendored in one ``llama-cpp-python`` sdist (version
and sha256 in the script) and lives in a versioned cache directory, so the converter, the
quantizer, ``llama-imatrix``, ``llama-perplexity`` and ``llama-server`` (the serving runtime)
all come from the same tree. The gate looks in ``$QUANT_GATE_LLAMA_CPP_DIR`` when set, else in
``${XDG_CACHE_HOME:-~/.cache}/quant-gate/llama.cpp/<version>``. A missing build or tool is a
blocking error naming the script to run. Torch-free.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.errors import BackendError

LLAMA_CPP_VERSION = "0.3.36"
"""The ``llama-cpp-python`` sdist whose vendored llama.cpp tree is built (``scripts/build-llama-cpp.sh``)."""
ENV_VAR = "QUANT_GATE_LLAMA_CPP_DIR"
BUILD_SCRIPT = "scripts/build-llama-cpp.sh"
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-server", "llama-bench")
"""What the script builds (``llama-server`` and ``llama-bench`` are the serving runtime's)."""
QUANTIZE_TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity")
"""What the GGUF backend and its checks run."""
LOG_TAIL_LINES = 12


@dataclass(frozen=True)
class LlamaCpp:
    """One finished llama.cpp build."""

    root: Path
    version: str
    """The llama-cpp-python release whose tree was built."""
    commit: str
    """The vendored llama.cpp commit (from the sdist's submodule record)."""
    sdist_sha256: str
    amx: str | None = None
    """How the build treats AMX (``scripts/build-llama-cpp.sh`` compiles it out on x86-64)."""

    def tool(self, name: str) -> Path:
        return self.root / "bin" / name

    @property
    def convert_script(self) -> Path:
        return self.root / "convert" / "convert_hf_to_gguf.py"

    def key(self) -> dict[str, str]:
        """What identifies the build in cache keys and provenance."""
        return {"llama_cpp_python": self.version, "llama_cpp_commit": self.commit, "sdist_sha256": self.sdist_sha256}


def default_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "quant-gate" / "llama.cpp" / LLAMA_CPP_VERSION


def build_dir() -> Path:
    """Where the gate looks for the build (``$QUANT_GATE_LLAMA_CPP_DIR`` or the versioned cache)."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured) if configured else default_dir()


def find_llama_cpp(needed: Sequence[str] = QUANTIZE_TOOLS) -> LlamaCpp:
    """The build with every ``needed`` tool and the converter, or a ``BackendError`` naming the fix."""
    root = build_dir()
    hint = (f"run {BUILD_SCRIPT} (builds llama.cpp {LLAMA_CPP_VERSION} once, ~20-80 min on 2 cores, then cached), "
            f"or point {ENV_VAR} at a finished build")
    manifest_path = root / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackendError(f"llama.cpp tools not found: {manifest_path} does not exist", hint=hint) from None
    except (OSError, ValueError) as exc:
        raise BackendError(f"{manifest_path}: unreadable build manifest: {exc}", hint=hint) from None
    build = LlamaCpp(
        root=root,
        version=str(manifest.get("llama_cpp_python", "")),
        commit=str(manifest.get("llama_cpp_commit", "unknown")),
        sdist_sha256=str(manifest.get("sdist_sha256", "")),
        amx=manifest["amx"] if isinstance(manifest.get("amx"), str) else None,
    )
    if build.version != LLAMA_CPP_VERSION:
        raise BackendError(
            f"{manifest_path}: llama.cpp build is from llama-cpp-python {build.version or '?'}, "
            f"the gate pins {LLAMA_CPP_VERSION}",
            hint=hint,
        )
    for name in needed:
        path = build.tool(name)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BackendError(f"llama.cpp tool {name} not found at {path}", hint=hint)
    if not build.convert_script.is_file():
        raise BackendError(f"llama.cpp converter not found at {build.convert_script}", hint=hint)
    return build


@dataclass(frozen=True)
class ToolRun:
    """A finished tool run: its combined output (also in ``log``) and wall time."""

    output: str
    seconds: float
    log: Path


def run_tool(
    args: Sequence[str | Path], *, what: str, log: Path, timeout_s: float, cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ToolRun:
    """Run one tool to completion; non-zero exit, a timeout or a failed start is a ``BackendError``
    quoting the output's last lines. The output goes to ``log`` (kept beside the work, not printed)."""
    import time

    cmd = [str(a) for a in args]
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8", errors="replace") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                  env=env, timeout=timeout_s, check=False, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise BackendError(f"{what}: {Path(cmd[0]).name} ran past its {timeout_s:.0f} s limit and was stopped",
                           hint="raise quantization.options.tool_timeout_s, or use a faster machine") from None
    except OSError as exc:
        raise BackendError(f"{what}: cannot start {cmd[0]}: {exc}", hint=f"rebuild the tools with {BUILD_SCRIPT}") from None
    text = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise ToolFailed(what, Path(cmd[0]).name, proc.returncode, text)
    return ToolRun(output=text, seconds=time.perf_counter() - started, log=log)


class ToolFailed(BackendError):
    """A llama.cpp tool (or the converter) exited non-zero."""

    def __init__(self, what: str, tool: str, code: int, output: str) -> None:
        self.output = output
        self.code = code
        lines = [line for line in output.splitlines() if line.strip()][-LOG_TAIL_LINES:]
        tail = "\n".join("    " + line[:300] for line in lines)
        hint = "the cause is in the output above; no artifact was cached"
        if code < 0:
            import signal

            try:
                ended = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                ended = f"was killed by signal {-code}"
            if -code == signal.SIGKILL:
                hint = ("SIGKILL with no error of its own is usually the kernel's out-of-memory killer: use a machine "
                        "with more memory, or lower calibration.samples / max_seq_len; no artifact was cached")
        else:
            ended = f"exited with status {code}"
        super().__init__(f"{what}: {tool} {ended}; its last output:\n{tail}", hint=hint)
