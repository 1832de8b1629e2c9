"""safetensors header validation (no tensor loaded), sharded indexes and the NaN/Inf scan."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gate.weights import safetensors_check as st
from gate.weights.files import check_indexes, scan_file
from gate.weights.interface import FileFormat, FileVerdict


def write(path: Path, header: Any, data: bytes, *, raw_header: bytes | None = None, length: int | None = None) -> Path:
    body = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def real_file(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def reason(path: Path) -> str | None:
    report = scan_file(path, path.name).report
    assert report.format is FileFormat.safetensors
    return report.reason


def test_real_file_is_ok(tmp_path: Path) -> None:
    path = real_file(tmp_path / "m.safetensors", {"a": np.ones((2, 3), np.float32), "b": np.zeros(4, np.int64)})
    report = scan_file(path, "m.safetensors").report
    assert (report.format, report.verdict, report.reason) == (FileFormat.safetensors, FileVerdict.ok, None)
    header = st.check_file(path)
    assert sorted(t.name for t in header.tensors) == ["a", "b"]
    assert header.metadata == {"format": "pt"}


T = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ({"a": {**T, "dtype": "F33"}}, b"\0" * 8, "tensor 'a': unknown dtype 'F33'"),
        ({"a": {**T, "shape": [3]}}, b"\0" * 8, "tensor 'a': shape [3] x F32 is 12 bytes but data_offsets span 8"),
        ({"a": {**T, "shape": [-1]}}, b"\0" * 8, "tensor 'a': shape must be a list of non-negative integers"),
        ({"a": {**T, "data_offsets": [8, 0]}}, b"\0" * 8, "tensor 'a': data_offsets end 0 is before begin 8"),
        ({"a": T}, b"\0" * 12, "4 bytes after the last tensor are not covered by the header"),
        ({"a": T}, b"\0" * 4, "data_offsets reach byte 8 but the data section has 4 bytes"),
        ({"a": T, "b": {**T, "data_offsets": [4, 12]}}, b"\0" * 12, "tensor 'b': data_offsets overlap the previous tensor"),
        ({"a": {**T, "data_offsets": [4, 12]}}, b"\0" * 12, "tensor 'a': gap of 4 bytes before its data"),
        ({"a": {**T, "extra": 1}}, b"\0" * 8, "tensor 'a': keys must be exactly dtype, shape, data_offsets"),
        ({"a": T, "__metadata__": {"k": 1}}, b"\0" * 8, "__metadata__ must map strings to strings"),
        ({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0\0", "tensor 'a': 3 x F4 is not a whole number of bytes"),
        ([1, 2], b"", "header does not start with '{'"),
    ],
)
def test_invalid_headers(tmp_path: Path, header: Any, data: bytes, expected: str) -> None:
    assert reason(write(tmp_path / "m.safetensors", header, data)) == expected


def test_duplicate_tensor_names(tmp_path: Path) -> None:
    raw = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    assert reason(write(tmp_path / "m.safetensors", None, b"\0", raw_header=raw)) == "duplicate tensor name 'a' in header"


def test_header_length_limits(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 100_000_001) + b"{}")
    assert reason(path) == "header length is 100000001 bytes (over the `header_bytes` limit of 100000000)"
    path.write_bytes(struct.pack("<Q", 500) + b"{}")
    assert reason(path) == "header length 500 is beyond the end of the 10-byte file"
    path.write_bytes(b"\x01\x02")
    assert reason(path) == "file is 2 bytes, shorter than the 8-byte header length"


def test_not_json_and_not_utf8(tmp_path: Path) -> None:
    assert reason(write(tmp_path / "m.safetensors", None, b"", raw_header=b"{nope")) == (
        "header is not valid JSON: Expecting property name enclosed in double quotes at byte 1"
    )
    assert reason(write(tmp_path / "n.safetensors", None, b"", raw_header=b"{\xff}")) == "header is not UTF-8 (byte offset 1)"


def test_zero_sized_tensors_and_padding_are_fine(tmp_path: Path) -> None:
    header = {"e": {"dtype": "F16", "shape": [0, 4], "data_offsets": [0, 0]}, "a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}
    raw = json.dumps(header).encode() + b"    "  # the format allows trailing spaces in the header
    path = write(tmp_path / "m.safetensors", None, b"\0" * 4, raw_header=raw)
    assert scan_file(path, "m").report.verdict is FileVerdict.ok


def test_nonfinite_scan(tmp_path: Path) -> None:
    bad = np.ones(1000, np.float32)
    bad[777] = np.nan
    inf16 = np.zeros(10, np.float16)
    inf16[3] = np.inf
    path = real_file(
        tmp_path / "m.safetensors",
        {"good": np.ones(10, np.float32), "bad": bad, "inf16": inf16, "ints": np.full(4, -1, np.int32)},
    )
    report = scan_file(path, "m", scan_values=True).report
    assert report.nonfinite_tensors == ["bad", "inf16"]
    assert scan_file(path, "m").report.nonfinite_tensors is None


def test_bf16_nonfinite(tmp_path: Path) -> None:
    values = np.array([0x3F80, 0x7F80, 0x0000], dtype=np.uint16)  # 1.0, +inf, 0.0 in bfloat16
    header = {"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}
    path = write(tmp_path / "m.safetensors", header, values.tobytes())
    assert scan_file(path, "m", scan_values=True).report.nonfinite_tensors == ["w"]


def _sharded(tmp_path: Path, weight_map: dict[str, str]) -> list[tuple[Path, Any]]:
    real_file(tmp_path / "model-00001-of-00002.safetensors", {"a": np.ones(2, np.float32)})
    real_file(tmp_path / "model-00002-of-00002.safetensors", {"b": np.ones(2, np.float32)})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    paths = sorted(tmp_path.iterdir())
    return check_indexes([(p, scan_file(p, p.name)) for p in paths])


def _index_report(items: list[tuple[Path, Any]]) -> Any:
    return next(s.report for _, s in items if s.report.format is FileFormat.safetensors_index)


def test_sharded_index_consistent(tmp_path: Path) -> None:
    items = _sharded(tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
    assert _index_report(items).verdict is FileVerdict.ok


@pytest.mark.parametrize(
    ("weight_map", "expected"),
    [
        ({"a": "model-00002-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
         "tensor 'a' is mapped to 'model-00002-of-00002.safetensors' but that shard does not contain it"),
        ({"a": "model-00001-of-00002.safetensors"},
         "'model-00002-of-00002.safetensors' is next to the index but not in its weight_map"),
        ({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"},
         "tensor 'b' is mapped to 'model-00001-of-00002.safetensors' but that shard does not contain it"),
        ({"a": "model-00001-of-00002.safetensors", "b": "missing.safetensors"},
         "shard 'missing.safetensors' is listed in weight_map but does not exist"),
        ({"a": "../outside.safetensors"},
         "tensor 'a' maps to '../outside.safetensors', which is not a file name in the model directory"),
    ],
)
def test_sharded_index_inconsistent(tmp_path: Path, weight_map: dict[str, str], expected: str) -> None:
    report = _index_report(_sharded(tmp_path, weight_map))
    assert (report.verdict, report.reason) == (FileVerdict.invalid, expected)


def test_nonfinite_observer_matches_the_streamed_scan_at_any_chunking(tmp_path: Path) -> None:
    """The value check inside the lockfile pass: chunks that split elements and tensors."""
    import numpy as np

    from gate.weights.lockfile import sha256_file

    arrays = {
        "a": np.arange(7, dtype=np.float32),
        "b": np.array([1.0, np.nan, 2.0], dtype=np.float16),
        "c": np.array([0, 1], dtype=np.int64),
        "d": np.array([1.0, 2.0, np.inf], dtype=np.float64),
    }
    data = b"".join(a.tobytes() for a in arrays.values())
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, array in arrays.items():
        dtype = {"float32": "F32", "float16": "F16", "int64": "I64", "float64": "F64"}[str(array.dtype)]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header).encode() + b" "  # an odd header length: elements start unaligned
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    parsed = st.check_file(path)
    assert st.nonfinite_tensors(path, parsed) == ["b", "d"]
    for chunk in (1, 3, 5, 64, 1 << 20):
        observer = st.NonfiniteObserver(parsed)
        sha256_file(path, chunk_bytes=chunk, observer=observer)
        assert observer.found == ["b", "d"], chunk
