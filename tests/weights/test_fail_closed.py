"""Fail-closed identification (issue #18): parser differentials, compressed and nested containers,
unknown files, bounded work, special files. Every file is built in the test and never loaded; the
executing payloads run ``touch <canary>`` and each test asserts the canary never appears."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickletools
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from gate.weights import pickle_scan
from gate.weights.files import scan_file
from gate.weights.interface import FileFormat, FileReport, FileVerdict
from gate.weights.limits import ScanLimits
from tests.weights import payloads as pl


def scan(path: Path, limits: ScanLimits | None = None) -> FileReport:
    return scan_file(path, path.name, limits=limits or ScanLimits(), templates=False).report


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a payload executed"


def differential(cmd: str) -> bytes:
    """The issue's repro: ``L0x10L`` stops pickletools; the C unpickler's int(x, 0) accepts it."""
    return f"L0x10L\n0cos\nsystem\n(V {cmd}\ntR.".encode()


# -- 1. parser differential ---------------------------------------------------------------


def test_the_differential_is_real_for_the_first_reader() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        list(pickletools.genops(differential("x")))


def test_parser_differential_is_unsafe(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "diff.bin"
    path.write_bytes(differential(f"touch {canary}"))
    report = scan(path)
    assert (report.format, report.verdict, report.unsafe_globals) == (FileFormat.pickle, FileVerdict.unsafe, ["os.system"])
    assert report.reason == "imports os.system (not on the allowlist)"


def test_parser_differential_inside_a_torch_zip(tmp_path: Path, canary: Path) -> None:
    path = pl.torch_like_zip(tmp_path / "pytorch_model.bin", differential(f"touch {canary}"))
    report = scan(path)
    assert (report.format, report.verdict, report.member) == (FileFormat.pytorch_zip, FileVerdict.unsafe, "archive/data.pkl")
    assert report.members == ["archive/data.pkl"]


def test_differential_without_a_call_is_still_unparseable(tmp_path: Path) -> None:
    """genops fails and no import is reached: a broken pickle named .pkl is never accepted."""
    path = tmp_path / "broken.pkl"
    path.write_bytes(b"\x80\x04L0x10L\n.")
    report = scan(path)
    assert report.verdict is FileVerdict.unparseable
    assert report.reason is not None and report.reason.startswith("malformed pickle")


# -- 2. compressed and nested containers --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "compress"),
    [
        ("gzip", gzip.compress),
        ("bzip2", bz2.compress),
        ("xz", lzma.compress),
        ("lzma", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)),
        ("zlib", zlib.compress),
    ],
)
def test_compressed_pickle_named_joblib(tmp_path: Path, canary: Path, kind: str, compress: object) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(compress(pl.stack_global(f"touch {canary}")))  # type: ignore[operator]
    report = scan(path)
    assert (report.format.value, report.verdict, report.member) == (kind, FileVerdict.unsafe, f"<{kind}>")
    assert report.unsafe_globals == ["os.system"]


def test_real_joblib_dump_is_unsafe(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(4)}, path, compress=3)
    report = scan(path)
    assert report.format is FileFormat.zlib and report.verdict is FileVerdict.unsafe
    assert any(g.startswith("joblib.") or g.startswith("numpy.") for g in report.unsafe_globals)


def test_compressed_inert_file_is_a_container(tmp_path: Path) -> None:
    path = tmp_path / "config.json.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}'))
    report = scan(path)
    assert (report.format, report.verdict) == (FileFormat.gzip, FileVerdict.container)
    assert report.reason == "gzip-compressed stream (8 bytes of json): loaders such as joblib decompress it"


def test_zip_inside_a_zip_holding_a_torch_checkpoint(tmp_path: Path, canary: Path) -> None:
    inner = pl.torch_like_zip(tmp_path / "inner.pt", pl.proto0_global(f"touch {canary}"))
    outer = tmp_path / "bundle.bin"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(inner, "weights/inner.pt")
        archive.writestr("README.md", "hello\n")
    report = scan(outer)
    assert (report.format, report.verdict) == (FileFormat.zip, FileVerdict.unsafe)
    assert report.member == "weights/inner.pt!/archive/data.pkl"
    assert report.members == ["weights/inner.pt", "weights/inner.pt!/archive/data.pkl"]


def test_clean_archive_is_a_container(tmp_path: Path) -> None:
    path = tmp_path / "docs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "plain text\n")
    assert (scan(path).format, scan(path).verdict) == (FileFormat.zip, FileVerdict.container)


def test_archive_nesting_limit(tmp_path: Path) -> None:
    data = b"plain\n"
    for level in range(4):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"level{level}.zip" if level else "a.txt", data)
        data = buffer.getvalue()
    path = tmp_path / "deep.zip"
    path.write_bytes(data)
    report = scan(path)
    assert (report.verdict, report.limit) == (FileVerdict.limit, "archive_depth")
    assert report.member == "level3.zip!/level2.zip!/level1.zip"


def test_tar_and_tar_gz_holding_a_pickle(tmp_path: Path, canary: Path) -> None:
    payload = pl.stack_global(f"touch {canary}")
    tar_path = tmp_path / "bundle.tar"
    with tarfile.open(tar_path, "w") as archive:
        info = tarfile.TarInfo("evil.pkl")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    report = scan(tar_path)
    assert (report.format, report.verdict, report.member) == (FileFormat.tar, FileVerdict.unsafe, "evil.pkl")
    gz_path = tmp_path / "bundle.tar.gz"
    gz_path.write_bytes(gzip.compress(tar_path.read_bytes()))
    report = scan(gz_path)
    assert (report.format, report.verdict, report.member) == (FileFormat.gzip, FileVerdict.unsafe, "<gzip>!/evil.pkl")


@pytest.mark.parametrize(
    ("magic", "kind"),
    [(b"7z\xbc\xaf\x27\x1c", "7z"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"), (b"Rar!\x1a\x07\x00", "rar")],
)
def test_unreadable_containers_are_refused_unread(tmp_path: Path, magic: bytes, kind: str) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(magic + os.urandom(64))
    report = scan(path)
    assert (report.format, report.verdict) == (FileFormat.sevenzip, FileVerdict.unparseable)
    assert report.reason == f"{kind} archive: the gate has no {kind} reader, and such an archive can hold pickles"


def test_broken_gzip_is_unparseable(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(b"x" * 100)[:-6])
    assert scan(path).verdict is FileVerdict.unparseable


# -- 4. unknown files block; inert types are positively identified --------------------------


def test_random_bytes_are_unknown(tmp_path: Path) -> None:
    path = tmp_path / "weird.xyz"
    path.write_bytes(bytes(range(256))[::-1][:200])
    report = scan(path)
    assert (report.format, report.verdict) == (FileFormat.unknown, FileVerdict.unknown)
    assert report.reason == "no parser identifies these bytes as a known-safe type (safetensors, GGUF, JSON, text, SentencePiece)"


def test_text_named_like_a_pickle_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_text("just some text\n")
    report = scan(path)
    assert report.verdict is FileVerdict.unknown
    assert report.reason == "named `.bin`, which a loader would unpickle, unwrap or run, but the bytes are no format the gate reads"


def test_invalid_json_named_json_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"a": ')
    report = scan(path)
    assert report.verdict is FileVerdict.unknown
    assert report.reason is not None and report.reason.startswith("not valid JSON (Expecting value")


def _sentencepiece(pieces: list[str]) -> bytes:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    out = b""
    for piece in pieces:
        raw = piece.encode()
        out += field(1, bytes([0x0A, len(raw)]) + raw + b"\x15" + struct.pack("<f", -1.0) + b"\x18\x01")
    return out + field(2, b"\x08\x01")


def test_sentencepiece_model_is_identified(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(_sentencepiece(["<unk>", "▁the", "s"]))
    assert (scan(path).format, scan(path).verdict) == (FileFormat.sentencepiece, FileVerdict.other)
    path.write_bytes(_sentencepiece(["a"]) + b"\x38\x01")  # field 7: not SentencePiece
    report = scan(path)
    assert report.verdict is FileVerdict.unknown
    assert report.reason == "protobuf field 7 (wire type 0, value at byte 17) is not part of a SentencePiece model"


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("config.json", b'{"model_type": "llama"}', FileFormat.json),
        ("merges.txt", b"#version: 0.2\n\xc4\xa0 t\n", FileFormat.text),
        ("LICENSE", b"Apache License\n", FileFormat.text),
        ("empty.txt", b"", FileFormat.text),
    ],
)
def test_inert_files_are_identified(tmp_path: Path, name: str, content: bytes, fmt: FileFormat) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert (scan(path).format, scan(path).verdict) == (fmt, FileVerdict.other)


def test_plain_numpy_array_is_inert_but_checked(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "a.npy"
    np.save(path, np.arange(6, dtype=np.float32))
    assert (scan(path).format, scan(path).verdict) == (FileFormat.numpy, FileVerdict.other)
    path.write_bytes(path.read_bytes() + b"\x00" * 4)  # data past shape x itemsize
    assert scan(path).reason == "numpy data is 28 bytes but shape (6,) x <f4 is 24"


# -- 5. bounded work ------------------------------------------------------------------------


def _safetensors(path: Path, header: dict[str, object], data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("dims", [50_000, 200_000])
def test_header_bomb_dims(tmp_path: Path, dims: int) -> None:
    path = _safetensors(tmp_path / "model.safetensors", {"w": {"dtype": "F32", "shape": [7] * dims, "data_offsets": [0, 4]}}, b"\0" * 4)
    start = time.monotonic()
    report = scan(path)
    assert time.monotonic() - start < 5
    assert (report.verdict, report.limit) == (FileVerdict.limit, "dims")
    assert report.reason == f"tensor 'w' declares {dims} dimensions (over the `dims` limit of 8)"


def test_header_integer_digits(tmp_path: Path) -> None:
    raw = b'{"w": {"dtype": "F32", "shape": [1' + b"0" * 5000 + b'], "data_offsets": [0, 4]}}'
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    report = scan(path)
    assert (report.verdict, report.limit) == (FileVerdict.limit, "value_digits")
    assert report.reason == "header holds a 5001-digit integer (over the `value_digits` limit of 20)"


def test_tensor_count_limit(tmp_path: Path) -> None:
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(5)}
    path = _safetensors(tmp_path / "model.safetensors", header, b"\0" * 5)
    assert scan(path).verdict is FileVerdict.ok
    report = scan(path, ScanLimits(tensors=4))
    assert (report.verdict, report.reason) == (FileVerdict.limit, "header declares 5 tensors (over the `tensors` limit of 4)")


def test_gguf_metadata_limits(tmp_path: Path) -> None:
    from tests.weights.test_gguf_check import write_gguf

    path = write_gguf(tmp_path / "m.gguf")
    assert scan(path).verdict is FileVerdict.ok
    report = scan(path, ScanLimits(metadata_keys=1))
    assert (report.verdict, report.limit) == (FileVerdict.limit, "metadata_keys")


def test_zip_member_count_and_total_bytes(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(5):
            archive.writestr(f"f{i}.txt", "x" * 1000)
    assert (scan(path, ScanLimits(members=4)).verdict, scan(path, ScanLimits(members=4)).limit) == (FileVerdict.limit, "members")
    report = scan(path, ScanLimits(total_bytes=2500))
    assert (report.verdict, report.limit) == (FileVerdict.limit, "total_bytes")


def test_json_nesting_limit(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[" * 100 + "]" * 100)
    report = scan(path)
    assert (report.verdict, report.reason) == (FileVerdict.limit, "JSON nests 100 levels deep (over the `json_nesting` limit of 64)")


def test_pickle_size_limit_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickle_scan, "MAX_PICKLE_BYTES", 64)
    path = tmp_path / "big.pkl"
    path.write_bytes(b"\x80\x04B" + (1000).to_bytes(4, "little") + b"x" * 1000 + b".")
    report = scan_file(path, path.name).report
    assert (report.verdict, report.limit) == (FileVerdict.limit, "pickle_bytes")


# -- #20 item 8: special files ---------------------------------------------------------------


def test_fifo_symlink_loop_and_dangling_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.gguf")
    (tmp_path / "loop.gguf").symlink_to("loop.gguf")
    (tmp_path / "dangling.safetensors").symlink_to("nowhere")
    reasons = {p: scan(tmp_path / p).reason for p in ("fifo.gguf", "loop.gguf", "dangling.safetensors")}
    assert reasons == {
        "fifo.gguf": "is a FIFO, not a regular file: never opened",
        "loop.gguf": "is a symlink loop (Too many levels of symbolic links)",
        "dangling.safetensors": "is a dangling symlink (No such file or directory)",
    }
    assert {scan(tmp_path / p).verdict for p in reasons} == {FileVerdict.not_regular}


def test_lock_refuses_what_it_cannot_pin(tmp_path: Path) -> None:
    from gate.weights import WeightsError, write_lockfile

    os.mkfifo(tmp_path / "model.gguf")
    with pytest.raises(WeightsError) as caught:
        write_lockfile(tmp_path / "model.gguf", tmp_path / "m.lock.json")
    assert str(caught.value) == (
        f"{tmp_path / 'model.gguf'}: is not a regular file or directory (a FIFO, device, symlink loop or dangling symlink);"
        " it cannot be pinned\n  Hint: pass the model directory or the GGUF file itself"
    )
    assert not (tmp_path / "m.lock.json").exists()


def test_a_trained_sentencepiece_model_is_identified(tmp_path: Path) -> None:
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the quick brown fox {i} jumps over the lazy dog\n" for i in range(200)))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "tokenizer"), vocab_size=40, minloglevel=2
    )
    report = scan(tmp_path / "tokenizer.model")
    assert (report.format, report.verdict, report.reason) == (FileFormat.sentencepiece, FileVerdict.other, None)


def test_raw_tensor_members_do_not_count_against_total_bytes(tmp_path: Path) -> None:
    """A big legacy checkpoint (thousands of data/N members) stays a QG505 matter, not a limit."""
    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pl.clean_pickle())
        for index in range(6):
            archive.writestr(f"archive/data/{index}", b"\x01\x02\x03\x04" * (32 << 10))
    report = scan(path, ScanLimits(total_bytes=100 << 10))
    assert (report.format, report.verdict, report.members) == (FileFormat.pytorch_zip, FileVerdict.safe_by_allowlist, ["archive/data.pkl"])


def test_gguf_zip_polyglot_is_judged_as_the_zip_torch_would_load(tmp_path: Path, canary: Path) -> None:
    from tests.weights.test_gguf_check import write_gguf

    path = write_gguf(tmp_path / "model.bin")
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as archive:
        archive.writestr("archive/data.pkl", pl.stack_global(f"touch {canary}"))
    with path.open("ab") as handle:  # zip readers find the end record; offsets are relative to it
        handle.write(payload.getvalue())
    report = scan(path)
    assert (report.verdict, report.member) == (FileVerdict.unsafe, "archive/data.pkl")


def test_a_file_too_big_to_identify_is_unknown_not_a_limit(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07" + b"\x00" * 4094)
    report = scan(path, ScanLimits(json_bytes=1024))
    assert (report.verdict, report.limit) == (FileVerdict.unknown, None)  # QG512: a policy may allow .onnx
    assert report.reason == "4096 bytes: over the `json_bytes` limit of 1024 for identifying text, JSON or SentencePiece"
