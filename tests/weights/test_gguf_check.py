"""GGUF validation against files written by the gguf package (and cross-checked with its reader)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from gate.weights import gguf_check
from gate.weights.files import scan_file
from gate.weights.interface import FileFormat, FileVerdict


def write_gguf(path: Path, tensors: int = 3) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(tensors)
    writer.add_token_list(["<s>", "</s>", "hello", "wörld"])
    writer.add_array("test.ints", [1, 2, 3])
    for index in range(tensors):
        writer.add_tensor(f"blk.{index}.weight", np.full((4, 32), index, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def reason(path: Path) -> str | None:
    report = scan_file(path, path.name).report
    assert report.format is FileFormat.gguf
    return report.reason


def test_valid_file_matches_the_gguf_reader(tmp_path: Path) -> None:
    from gguf import GGUFReader

    path = write_gguf(tmp_path / "m.gguf")
    assert gguf_check.check_file(path) == len(GGUFReader(path).tensors) == 3
    report = scan_file(path, "m.gguf").report
    assert (report.format, report.verdict) == (FileFormat.gguf, FileVerdict.ok)


def test_truncated_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    assert reason(path) == f"tensor 'blk.2.weight' data ends at byte {len(raw)}, beyond the {len(raw) - 100}-byte file"
    path.write_bytes(raw[:60])
    assert reason(path) == "header claims 3 tensors and 4 metadata keys, more than a 60-byte file can hold"
    path.write_bytes(raw[:300])
    assert (reason(path) or "").endswith("runs past the end of the 300-byte file")


def test_overlapping_tensors(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", tensors=2)
    raw = bytearray(path.read_bytes())
    name = b"blk.1.weight"
    at = raw.index(name) + len(name) + 4 + 2 * 8 + 4  # n_dims, two dims, type -> offset field
    raw[at : at + 8] = struct.pack("<Q", 0)
    path.write_bytes(bytes(raw))
    assert reason(path) in (
        "tensor 'blk.1.weight' data overlaps tensor 'blk.0.weight'",
        "tensor 'blk.0.weight' data overlaps tensor 'blk.1.weight'",
    )


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "GGUF version 1 is not supported (2 or 3)"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), "header claims 1099511627776 tensors and 0 metadata keys, more than a 24-byte file can hold"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + b"\0" * 8,
         "metadata 'k' has unknown value type 99"),
    ],
)
def test_bad_headers(tmp_path: Path, head: bytes, expected: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(head)
    assert reason(path) == expected


def test_extension_without_magic_is_invalid_gguf(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"\0" * 64)
    assert reason(path) == "not a GGUF file (missing the 'GGUF' magic or a 24-byte header)"
