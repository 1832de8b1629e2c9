"""The picklescan/fickling bypass classes listed in ../shared/DOMAIN.md ("Weights and their
files"), one case each, as files on disk judged by ``scan_file``: each must block. Payloads run
``touch <canary>``; nothing is loaded here except in ``test_differential_is_real``, which runs the
C unpickler in a child process to prove the parser differential executes (as the other payloads
are proved in test_pickle_scan.py)."""

from __future__ import annotations

import gzip
import io
import lzma
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.weights.files import scan_file
from gate.weights.interface import FileVerdict
from tests.weights import payloads as pl

BLOCKING = {FileVerdict.unsafe, FileVerdict.unparseable}


def differential(cmd: str) -> bytes:
    return f"L0x10L\n0cos\nsystem\n(V {cmd}\ntR.".encode()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def _nested(path: Path, cmd: str) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("archive/data.pkl", pl.stack_global(cmd))
        archive.writestr("archive/version", b"3\n")
    _zip(path, {"inner/model.pt": inner.getvalue()})


def _write(data: Callable[[str], bytes]) -> Callable[[Path, str], None]:
    return lambda path, cmd: path.write_bytes(data(cmd)) and None


CORPUS: dict[str, tuple[str, Callable[[Path, str], None], list[str]]] = {
    # class in DOMAIN.md: (file name, builder, unsafe globals expected ([] = unparseable is enough))
    "callable missing from a denylist": ("m.pkl", _write(lambda c: b"cwebbrowser\nopen\n(S'" + c.encode() + b"'\ntR."), ["webbrowser.open"]),
    "functools.partial gadget": ("m.pkl", _write(pl.partial_gadget), ["functools.partial", "os.system"]),
    "operator gadget": ("m.pkl", _write(pl.attrgetter_gadget), ["importlib.import_module", "operator.attrgetter"]),
    "dotted name in STACK_GLOBAL": ("m.pkl", _write(pl.dotted_name), ["pathlib.os.system"]),
    "submodule of a blocked module": ("m.pkl", _write(lambda c: pl.stack_global(c, "os.path", "os.system")), ["os.path.os.system"]),
    "INST call": ("m.pkl", _write(pl.inst), ["os.system"]),
    "OBJ call": ("m.pkl", _write(pl.obj), ["os.system"]),
    "NEWOBJ call": ("m.pkl", _write(lambda c: pl.newobj()), ["subprocess.Popen"]),
    "memo trick": ("m.pkl", _write(pl.memo_stack_global), ["os.system"]),
    "malformed stream": ("m.pkl", _write(lambda c: pl.stack_global(c)[:-3]), ["os.system"]),
    "zip flag trick": ("m.pt", lambda p, c: pl.set_encrypted_flag(pl.torch_like_zip(p, pl.stack_global(c))), ["os.system"]),
    "zip central-directory trick": (
        "m.pt", lambda p, c: pl.hide_member_from_central_directory(pl.torch_like_zip(p, pl.clean_pickle()), pl.stack_global(c)), ["os.system"]
    ),
    "wrong extension": ("model.safetensors", _write(pl.stack_global), ["os.system"]),
    "protocol 0 without the 0x80 magic": ("notes.txt", _write(pl.proto0_global), ["os.system"]),
    "protocol 1 without the 0x80 magic": ("m.bin", _write(pl.proto1_global), ["posix.system"]),
    "nested pickle.loads": ("m.pkl", _write(pl.nested_loads), ["pickle.loads"]),
    "parser differential": ("m.bin", _write(differential), ["os.system"]),
    "parser differential in a torch zip": ("m.pt", lambda p, c: pl.torch_like_zip(p, differential(c)) and None, ["os.system"]),
    "gzip-wrapped pickle (joblib)": ("model.joblib", _write(lambda c: gzip.compress(pl.stack_global(c))), ["os.system"]),
    "xz-wrapped pickle": ("model.joblib", _write(lambda c: lzma.compress(pl.stack_global(c))), ["os.system"]),
    "archive inside an archive": ("bundle.zip", _nested, ["os.system"]),
    "7z archive": ("m.7z", _write(lambda c: b"7z\xbc\xaf\x27\x1c\x00\x04" + pl.stack_global(c)), []),
    "npy object array": ("a.npy", _write(lambda c: _npy_object(pl.stack_global(c))), ["os.system"]),
    "npz object array": ("a.npz", lambda p, c: _zip(p, {"x.npy": _npy_object(pl.stack_global(c))}), ["os.system"]),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bypass_class_is_blocked(name: str, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    filename, build, unsafe = CORPUS[name]
    path = tmp_path / filename
    build(path, f"touch {canary}")
    report = scan_file(path, filename, templates=False).report
    assert report.verdict in BLOCKING, (name, report)
    assert set(unsafe) <= set(report.unsafe_globals), (name, report.unsafe_globals)
    if not unsafe:
        assert report.verdict is FileVerdict.unparseable
    assert not canary.exists()


def test_differential_is_real(tmp_path: Path) -> None:
    """The C unpickler runs the bytes pickletools rejects (in a child process, on test bytes)."""
    canary = tmp_path / "PWNED"
    path = tmp_path / "diff.bin"
    path.write_bytes(differential(f"touch {canary}"))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(path)!r}, 'rb').read())"], check=True)
    assert canary.exists()
