"""The allowlist pickle scanner against hand-built hostile files (canaries never appear) and real
``torch.save`` checkpoints (safe by allowlist)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.weights import pickle_scan
from gate.weights.files import scan_file
from gate.weights.interface import FileFormat, FileReport, FileVerdict
from gate.weights.limits import ScanLimits
from tests.weights import payloads as pl

EXECUTING: dict[str, Callable[[str], bytes]] = {
    "proto0-global": pl.proto0_global,
    "proto1-global": pl.proto1_global,
    "stack-global": pl.stack_global,
    "memo-stack-global": pl.memo_stack_global,
    "inst": pl.inst,
    "obj": pl.obj,
    "partial-gadget": pl.partial_gadget,
    "attrgetter-gadget": pl.attrgetter_gadget,
    "dotted-name": pl.dotted_name,
    "builtins-eval": pl.builtins_eval,
    "builtins-exec": pl.builtins_exec,
    "builtins-getattr": pl.builtins_getattr,
    "nested-loads": pl.nested_loads,
}
EXPECTED_UNSAFE = {
    "proto0-global": ["os.system"],
    "proto1-global": ["posix.system"],
    "stack-global": ["os.system"],
    "memo-stack-global": ["os.system"],
    "inst": ["os.system"],
    "obj": ["os.system"],
    "partial-gadget": ["functools.partial", "os.system"],
    "attrgetter-gadget": ["importlib.import_module", "operator.attrgetter"],
    "dotted-name": ["pathlib.os.system"],
    "builtins-eval": ["builtins.eval"],
    "builtins-exec": ["builtins.exec"],
    "builtins-getattr": ["builtins.getattr", "os.system"],
    "nested-loads": ["pickle.loads"],
}


def scan(path: Path) -> FileReport:
    return scan_file(path, path.name).report


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


@pytest.mark.parametrize("name", sorted(EXECUTING))
def test_payload_is_real(name: str, canary: Path) -> None:
    """Control: in a throwaway interpreter, unpickling the payload does create the canary, so the
    scanner tests below would notice if the scanner ever executed one."""
    payload = EXECUTING[name](f"touch {canary}")
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=30, check=False)
    assert canary.exists()


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".safetensors", ".txt", ""])
@pytest.mark.parametrize("name", sorted(EXECUTING))
def test_executing_payloads_are_unsafe(name: str, suffix: str, tmp_path: Path, canary: Path) -> None:
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(EXECUTING[name](f"touch {canary}"))
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.format is FileFormat.pickle
    assert report.unsafe_globals == EXPECTED_UNSAFE[name]
    assert report.reason == f"imports {', '.join(EXPECTED_UNSAFE[name])} (not on the allowlist)"
    assert not canary.exists()


def test_newobj_and_newobj_ex_and_build(tmp_path: Path) -> None:
    for maker in (pl.newobj, pl.newobj_ex):
        path = tmp_path / "x.bin"
        path.write_bytes(maker())
        assert scan(path).unsafe_globals == ["subprocess.Popen"]
    path = tmp_path / "b.bin"
    path.write_bytes(pl.build_gadget())
    assert scan(path).unsafe_globals == ["builtins.object"]


def test_extension_codes_and_unresolved_operands_fail_closed(tmp_path: Path) -> None:
    path = tmp_path / "ext.bin"
    path.write_bytes(pl.extension_code())
    assert scan(path).unsafe_globals == ["<extension code 1>"]
    path.write_bytes(pl.unresolved_stack_global())
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.unsafe_globals == ["<unresolved STACK_GLOBAL operands>"]


def test_truncated_stream_still_reports_its_globals(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "t.bin"
    path.write_bytes(pl.proto0_global(f"touch {canary}")[:-1])  # no STOP
    assert scan(path).unsafe_globals == ["os.system"]
    path.write_bytes(b"\x80\x04" + pl.sbu("collections"))  # clean but truncated
    report = scan(path)
    assert report.verdict is FileVerdict.unparseable
    assert report.reason == "pickle ends without a STOP opcode (truncated)"
    assert not canary.exists()


def test_garbage_after_a_clean_pickle_is_unparseable(tmp_path: Path) -> None:
    path = tmp_path / "g.bin"
    path.write_bytes(pl.clean_pickle() + b"\xff\xfe garbage")
    report = scan(path)
    assert report.verdict is FileVerdict.unparseable
    assert report.reason is not None and report.reason.startswith("malformed pickle #2 (offset ")


def test_payload_in_a_second_pickle_of_the_stream(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "two.bin"
    path.write_bytes(pl.clean_pickle() + pl.stack_global(f"touch {canary}") + b"junk")
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.unsafe_globals == ["os.system"]


def test_clean_pickle_is_safe_by_allowlist(tmp_path: Path) -> None:
    path = tmp_path / "c.pkl"
    path.write_bytes(pl.clean_pickle())
    report = scan(path)
    assert (report.format, report.verdict, report.globals) == (FileFormat.pickle, FileVerdict.safe_by_allowlist, [])


def test_unsupported_protocol_fails_closed() -> None:
    analysis = pickle_scan.analyse_bytes(b"\x80\x09N.")
    assert analysis.error == "malformed pickle: unsupported pickle protocol 9"


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_payload_inside_a_pytorch_zip(tmp_path: Path, canary: Path, suffix: str) -> None:
    path = pl.torch_like_zip(tmp_path / f"model{suffix}", pl.stack_global(f"touch {canary}"))
    report = scan(path)
    assert report.format is FileFormat.pytorch_zip
    assert report.verdict is FileVerdict.unsafe
    assert report.members == ["archive/data.pkl"]
    assert report.unsafe_globals == ["os.system"]
    assert not canary.exists()


def test_deflated_member_and_any_member_name(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "m.zip"
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("weights/notes.txt", pl.proto0_global(f"touch {canary}"))
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.members == ["weights/notes.txt"]


def test_encrypted_flag_trick_is_seen_through(tmp_path: Path, canary: Path) -> None:
    path = pl.torch_like_zip(tmp_path / "model.bin", pl.stack_global(f"touch {canary}"))
    pl.set_encrypted_flag(path)
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.unsafe_globals == ["os.system"]


def test_member_hidden_from_the_central_directory(tmp_path: Path, canary: Path) -> None:
    path = pl.torch_like_zip(tmp_path / "model.bin", pl.clean_pickle())
    pl.hide_member_from_central_directory(path, pl.proto0_global(f"touch {canary}"))
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert "archive/extra.pkl" in report.members
    assert report.unsafe_globals == ["os.system"]


def test_zip_bomb_is_refused_not_inflated(tmp_path: Path) -> None:
    path = pl.zip_bomb(tmp_path / "bomb.pt", 64 << 20)
    assert path.stat().st_size < 1 << 20
    report = scan_file(path, path.name, limits=ScanLimits(member_bytes=4 << 20)).report
    assert (report.verdict, report.limit, report.member) == (FileVerdict.limit, "member_bytes", "archive/data.pkl")
    assert report.reason == (
        "archive/data.pkl: member 'archive/data.pkl' inflates past 4194304 bytes (zip bomb?) (over the `member_bytes` limit of 4194304)"
    )


def test_time_limit_fails_closed() -> None:
    data = b"\x80\x04(" + b"K\x01" * 200_000 + b"l."
    analysis = pickle_scan.analyse_bytes(data, seconds=0.0)
    assert analysis.error == "analysis took over 20 s"


def test_size_limit_fails_closed() -> None:
    out = pickle_scan.analyse_stream(io.BytesIO(b"\x80\x04B" + (1 << 30).to_bytes(4, "little") + b"x" * 64), limit=32)
    assert out.error == "stream is over the 32-byte analysis limit"


def test_numpy_object_array_is_a_pickle(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "arr.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    report = scan(path)
    assert report.format is FileFormat.numpy
    assert report.verdict is FileVerdict.unsafe
    assert any(g.startswith("numpy.") for g in report.unsafe_globals)
    np.save(path, np.arange(4))
    assert scan(path).verdict is FileVerdict.other


@pytest.mark.parametrize(
    "content",
    [b"[PAD]\n[UNK]\n[CLS]\n", b"#version: 0.2\n\xc4\xa0 t\n", b'{"model": {"type": "BPE"}}', b"copyright notice\nline two\n", b""],
)
def test_text_and_tokenizer_files_are_not_pickles(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    assert scan(path).verdict is FileVerdict.other


@pytest.fixture(scope="module")
def torch_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    out = tmp_path_factory.mktemp("ckpt")
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Embedding(4, 8).to(torch.bfloat16))
    paths = {
        "zip": out / "pytorch_model.bin",
        "legacy": out / "legacy.pt",
        "module": out / "module.pt",
    }
    torch.save(model.state_dict(), paths["zip"])
    torch.save(model.state_dict(), paths["legacy"], _use_new_zipfile_serialization=False)
    torch.save(model, paths["module"])
    return paths


def test_real_torch_save_state_dict_is_safe_by_allowlist(torch_checkpoints: dict[str, Path]) -> None:
    report = scan(torch_checkpoints["zip"])
    assert report.format is FileFormat.pytorch_zip
    assert report.verdict is FileVerdict.safe_by_allowlist
    assert report.globals == [
        "collections.OrderedDict", "torch.BFloat16Storage", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2",
    ]
    assert report.members == ["pytorch_model/data.pkl"]


def test_legacy_torch_format_is_safe_by_allowlist(torch_checkpoints: dict[str, Path]) -> None:
    report = scan(torch_checkpoints["legacy"])
    assert report.format is FileFormat.pytorch_legacy
    assert report.verdict is FileVerdict.safe_by_allowlist


def test_legacy_torch_format_with_a_payload(tmp_path: Path, torch_checkpoints: dict[str, Path], canary: Path) -> None:
    raw = torch_checkpoints["legacy"].read_bytes()
    magic_end = pickle_scan.analyse_bytes(raw, max_pickles=1).end
    path = tmp_path / "evil_legacy.pt"
    path.write_bytes(raw[:magic_end] + pl.proto0_global(f"touch {canary}") + raw[magic_end:])
    assert scan(path).unsafe_globals == ["os.system"]


def test_whole_module_pickle_is_unsafe(torch_checkpoints: dict[str, Path]) -> None:
    report = scan(torch_checkpoints["module"])
    assert report.verdict is FileVerdict.unsafe
    assert "torch.nn.modules.linear.Linear" in report.unsafe_globals


def test_scanner_never_imports_torch_or_unpickles() -> None:
    code = (
        "import sys, pickle\n"
        "def boom(*a, **k): raise SystemExit('unpickled!')\n"
        "pickle.load = pickle.loads = boom; pickle.Unpickler = boom\n"
        "from gate.weights.pickle_scan import analyse_bytes\n"
        "from tests.weights.payloads import proto0_global\n"
        "assert analyse_bytes(proto0_global('true')).globals == ['os system']\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    import tarfile

    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_legacy_tar_checkpoint(tmp_path: Path, canary: Path) -> None:
    clean = _tar(tmp_path / "old.tar.pt", {"sys_info": pl.clean_pickle(), "pickle": pl.clean_pickle()})
    report = scan(clean)
    assert (report.format, report.verdict, report.members) == (FileFormat.pytorch_tar, FileVerdict.safe_by_allowlist, ["pickle", "sys_info"])
    evil = _tar(tmp_path / "evil.pt", {"sys_info": pl.clean_pickle(), "pickle": pl.proto0_global(f"touch {canary}")})
    assert scan(evil).unsafe_globals == ["os.system"]
    raw_storage = _tar(tmp_path / "storages.pt", {"storages": pl.clean_pickle() + b"\x00\x01raw tensor bytes"})
    report = scan(raw_storage)
    assert report.verdict is FileVerdict.unparseable  # raw storage bytes after the pickle: fail closed
    assert not canary.exists()


def test_npz_with_an_object_array(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "arrays.npz"
    np.savez(path, plain=np.arange(3), objects=np.array([{"a": 1}], dtype=object))
    report = scan(path)
    assert report.verdict is FileVerdict.unsafe
    assert report.members == ["objects.npy"]
    np.savez(path, plain=np.arange(3))
    assert (scan(path).format, scan(path).verdict) == (FileFormat.zip, FileVerdict.container)  # archives block (QG513)
