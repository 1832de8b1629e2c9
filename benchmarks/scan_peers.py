"""`gate scan` vs picklescan, modelscan and fickling on one shared corpus (issue #18).

One command::

    python3 -m venv .bench/venv && .bench/venv/bin/pip install picklescan modelscan fickling typing_extensions
    .venv/bin/python benchmarks/scan_peers.py            # --peers-python PATH to use another venv

The peers live in their own git-ignored venv (``.bench/``), never in the project's. The script
builds the corpus in a temporary directory (hostile files whose payload is ``touch <canary>``,
and benign model files), runs each tool over every file in one process per tool (so startup is
not counted per file) and prints, per tool: flagged / missed among hostile files, false alarms
among benign files, and the wall time for the whole corpus. A tool's crash or scan error on a
file counts as flagged (its CLI would exit non-zero). fickling is shown twice: ``is_safe`` (which
also calls every non-pickle file "suspicious") and severity LIKELY_UNSAFE or worse. Nothing is ever loaded; the script fails if
the canary appears, and if the gate misses anything a peer flags.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.weights import payloads as pl  # noqa: E402  (the hand-assembled payloads of the unit tests)

PEERS_RUNNER = r"""
import json, sys, time, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
tool, files = sys.argv[1], json.loads(sys.stdin.read())
out = {}
start = time.perf_counter()
for path in files:
    try:
        if tool == "picklescan":
            from picklescan.scanner import scan_file_path
            r = scan_file_path(path)
            flagged = bool(r.issues_count or r.infected_files or r.scan_err)
        elif tool == "fickling":
            import fickling
            flagged = not fickling.scan_file(path, graceful=True).is_safe
        elif tool == "fickling>=LU":
            import fickling
            flagged = fickling.scan_file(path, graceful=True).severity.value[0] >= 3  # LIKELY_UNSAFE or worse
        else:
            from modelscan.modelscan import ModelScan
            r = ModelScan().scan(path)
            flagged = bool(r.get("issues") or r.get("errors"))
        out[path] = "flagged" if flagged else "clean"
    except BaseException as exc:  # a peer that crashes on a file has not vouched for it
        out[path] = "error"
print(json.dumps({"results": out, "seconds": time.perf_counter() - start}))
"""


def build_corpus(root: Path, canary: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(hostile, benign) files by description."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    cmd = f"touch {canary}"
    hostile: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes) -> None:
        path = root / "hostile" / name.replace(" ", "_") / filename
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        hostile[name] = path

    differential = f"L0x10L\n0cos\nsystem\n(V {cmd}\ntR.".encode()
    put("protocol-0 os.system", "model.pkl", pl.proto0_global(cmd))
    put("STACK_GLOBAL os.system", "model.pkl", pl.stack_global(cmd))
    put("memo STACK_GLOBAL", "model.pkl", pl.memo_stack_global(cmd))
    put("INST call", "model.pkl", pl.inst(cmd))
    put("functools.partial gadget", "model.pkl", pl.partial_gadget(cmd))
    put("operator.attrgetter gadget", "model.pkl", pl.attrgetter_gadget(cmd))
    put("builtins.getattr gadget", "model.pkl", pl.builtins_getattr(cmd))
    put("nested pickle.loads", "model.pkl", pl.nested_loads(cmd))
    put("dotted name", "model.pkl", pl.dotted_name(cmd))
    put("pickle named .safetensors", "model.safetensors", pl.stack_global(cmd))
    put("parser differential", "pytorch_model.bin", differential)
    for name, payload in (("torch zip os.system", pl.stack_global(cmd)), ("torch zip parser differential", differential)):
        path = root / "hostile" / name.replace(" ", "_") / "pytorch_model.bin"
        path.parent.mkdir(parents=True)
        pl.torch_like_zip(path, payload)
        hostile[name] = path
    path = root / "hostile" / "zip_encrypted_flag" / "pytorch_model.bin"
    path.parent.mkdir(parents=True)
    pl.set_encrypted_flag(pl.torch_like_zip(path, pl.stack_global(cmd)))
    hostile["zip encrypted-flag trick"] = path
    path = root / "hostile" / "zip_hidden_member" / "pytorch_model.bin"
    path.parent.mkdir(parents=True)
    pl.hide_member_from_central_directory(pl.torch_like_zip(path, pl.clean_pickle()), pl.stack_global(cmd))
    hostile["zip member hidden from the central directory"] = path
    put("gzip pickle as model.joblib", "model.joblib", gzip.compress(pl.stack_global(cmd)))
    put("bz2 pickle as model.pkl", "model.pkl", bz2.compress(pl.stack_global(cmd)))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("archive/data.pkl", pl.stack_global(cmd))
        archive.writestr("archive/version", "3\n")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("checkpoint/model.pt", inner.getvalue())
    put("zip inside a zip (torch checkpoint)", "bundle.zip", outer.getvalue())
    put("7z archive", "model.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(120))
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    put("numpy object array", "arr.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + pl.stack_global(cmd))
    hostile_template = "{{ cycler.__init__.__globals__.os.popen('" + cmd + "').read() }}"
    put("hostile chat template (tokenizer_config.json)", "tokenizer_config.json", json.dumps({"chat_template": hostile_template}).encode())
    raw = json.dumps({"w": {"dtype": "F32", "shape": [7] * 200_000, "data_offsets": [0, 4]}}).encode()
    put("safetensors header bomb (200k dims)", "model.safetensors", struct.pack("<Q", len(raw)) + raw + b"\0" * 4)

    benign: dict[str, Path] = {}
    base = root / "benign"
    base.mkdir()
    torch.save({"w": torch.ones(4, 4), "b": torch.zeros(4)}, base / "pytorch_model.bin")
    benign["torch.save state_dict"] = base / "pytorch_model.bin"
    legacy = base / "legacy"
    legacy.mkdir()
    torch.save({"w": torch.ones(2)}, legacy / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    benign["legacy torch.save"] = legacy / "pytorch_model.bin"
    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(base / "model.safetensors"))
    benign["safetensors"] = base / "model.safetensors"
    (base / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    benign["config.json"] = base / "config.json"
    template = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    (base / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "eos_token": "</s>"}))
    benign["tokenizer_config.json with a chat template"] = base / "tokenizer_config.json"
    (base / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\nthe\n")
    benign["vocab.txt"] = base / "vocab.txt"
    (base / "README.md").write_text("# model card\n")
    benign["README.md"] = base / "README.md"
    np.save(base / "stats.npy", np.arange(8, dtype=np.float32))
    benign["plain .npy"] = base / "stats.npy"
    return hostile, benign


def run_gate(files: list[Path]) -> tuple[dict[str, str], float]:
    from gate.commands.scan import blocked
    from gate.weights.files import scan_file
    from gate.weights.interface import RemoteCode

    out: dict[str, str] = {}
    start = time.perf_counter()
    for path in files:
        report = scan_file(path, path.name).report
        out[str(path)] = "flagged" if blocked([report], RemoteCode()) else "clean"
    return out, time.perf_counter() - start


def run_peer(python: Path, tool: str, files: list[Path]) -> tuple[dict[str, str], float]:
    done = subprocess.run(
        [str(python), "-c", PEERS_RUNNER, tool], input=json.dumps([str(p) for p in files]),
        capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tool} runner failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["results"], float(data["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", type=Path, default=REPO / ".bench" / "venv" / "bin" / "python")
    args = parser.parse_args()
    if not args.peers_python.exists():
        raise SystemExit(f"no peer venv at {args.peers_python}: see this script's docstring for the setup command")
    with tempfile.TemporaryDirectory(prefix="scan-peers-") as tmp:
        root = Path(tmp)
        canary = root / "PWNED"
        hostile, benign = build_corpus(root, canary)
        files = [*hostile.values(), *benign.values()]
        results: dict[str, dict[str, str]] = {}
        seconds: dict[str, float] = {}
        results["gate scan"], seconds["gate scan"] = run_gate(files)
        for tool in ("picklescan", "modelscan", "fickling", "fickling>=LU"):
            results[tool], seconds[tool] = run_peer(args.peers_python, tool, files)
        if canary.exists():
            raise SystemExit("a payload executed during the benchmark")
        tools = list(results)
        print(f"corpus: {len(hostile)} hostile, {len(benign)} benign files; {platform.machine()} {os.cpu_count()} CPUs")
        print(f"{'file':<48}" + "".join(f"{t:>14}" for t in tools))
        for kind, group in (("hostile", hostile), ("benign", benign)):
            for name, path in group.items():
                marks = "".join(f"{results[t][str(path)]:>14}" for t in tools)
                print(f"{kind[0]} {name:<46}{marks}")
        print()
        print(f"{'tool':<14}{'flagged':>9}{'missed':>8}{'false alarms':>14}{'seconds':>9}")
        for tool in tools:
            flagged = sum(results[tool][str(p)] != "clean" for p in hostile.values())
            false = sum(results[tool][str(p)] != "clean" for p in benign.values())
            print(f"{tool:<14}{flagged:>9}{len(hostile) - flagged:>8}{false:>14}{seconds[tool]:>9.2f}")
        superset = all(
            results["gate scan"][str(p)] != "clean" for t in tools[1:] for p in hostile.values() if results[t][str(p)] != "clean"
        )
        print(f"\ngate flags a superset of every peer's hostile flags: {superset}")
        return 0 if superset else 1


if __name__ == "__main__":
    raise SystemExit(main())
