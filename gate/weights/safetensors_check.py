"""safetensors validation from the header alone (no tensor is loaded), plus sharded indexes and an
optional streamed NaN/Inf scan.

A file is valid when: the 8-byte little-endian header length is at most 100 MB and fits the file;
the header is a UTF-8 JSON object without duplicate keys; ``__metadata__`` (optional) maps strings
to strings; every tensor has exactly ``dtype`` (known), ``shape`` (non-negative ints) and
``data_offsets`` ([begin, end], ints); ``end - begin`` equals shape x dtype size; and the byte
spans, sorted, cover the data section exactly (no gap, no overlap, nothing after).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gate.weights.limits import DEFAULT_LIMITS, LimitExceeded, ScanLimits

MAX_HEADER_BYTES = 100_000_000
"""The format's own cap on the JSON header (safetensors' MAX_HEADER_SIZE)."""

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
"""Bits per element of every dtype the safetensors format defines."""

# Float dtypes -> (element bytes, exponent mask): all exponent bits set means NaN or Inf.
_NONFINITE_MASKS: dict[str, tuple[int, int]] = {
    "F16": (2, 0x7C00),
    "BF16": (2, 0x7F80),
    "F32": (4, 0x7F800000),
    "F64": (8, 0x7FF0000000000000),
    "F8_E5M2": (1, 0x7C),
}
_SCAN_CHUNK = 8 << 20


class SafetensorsInvalid(ValueError):
    """The file violates the safetensors format; the message says how."""


@dataclass(frozen=True)
class TensorSpan:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[TensorSpan, ...]
    metadata: dict[str, str]
    data_start: int
    """Absolute file offset of the data section (8 + header length)."""


def looks_like_safetensors(prefix: bytes, file_size: int) -> bool:
    """A cheap sniff: plausible header length followed by ``{``."""
    if len(prefix) < 9:
        return False
    (n,) = struct.unpack("<Q", prefix[:8])
    return 2 <= n <= min(MAX_HEADER_BYTES, file_size - 8) and prefix[8:9] == b"{"


def parse_header(raw_header: bytes, data_size: int, limits: ScanLimits = DEFAULT_LIMITS) -> SafetensorsHeader:
    """Validate a header's bytes against a data section of ``data_size`` bytes. Bounded work:
    integers over ``limits.value_digits`` digits, more than ``limits.tensors`` tensors or
    ``limits.dims`` dimensions raise ``LimitExceeded`` before anything is computed from them."""

    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > limits.value_digits:
            raise LimitExceeded("value_digits", limits.value_digits, f"header holds a {len(text)}-digit integer")
        return int(text)

    def no_constant(text: str) -> Any:
        raise _Constant(text)

    try:
        text = raw_header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsInvalid(f"header is not UTF-8 (byte offset {exc.start})") from None
    if not text.startswith("{"):
        raise SafetensorsInvalid("header does not start with '{'")
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_int=bounded_int, parse_constant=no_constant)
    except _Constant as exc:
        raise SafetensorsInvalid(f"header is not valid JSON: {exc.args[0]} is not a JSON number") from None
    except _Duplicate as exc:
        raise SafetensorsInvalid(f"duplicate tensor name {exc.args[0]!r} in header") from None
    except json.JSONDecodeError as exc:
        raise SafetensorsInvalid(f"header is not valid JSON: {exc.msg} at byte {exc.pos}") from None
    except (ValueError, RecursionError):
        raise SafetensorsInvalid("header is not valid JSON: too deeply nested or a number too long") from None
    if not isinstance(data, dict):
        raise SafetensorsInvalid("header is not a JSON object")
    metadata: dict[str, str] = {}
    tensors: list[TensorSpan] = []
    declared = len(data) - ("__metadata__" in data)
    if declared > limits.tensors:
        raise LimitExceeded("tensors", limits.tensors, f"header declares {declared} tensors")
    for name, entry in data.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise SafetensorsInvalid("__metadata__ must map strings to strings")
            metadata = dict(entry)
            continue
        if isinstance(entry, dict) and isinstance(entry.get("shape"), list) and len(entry["shape"]) > limits.dims:
            raise LimitExceeded("dims", limits.dims, f"tensor {name[:80]!r} declares {len(entry['shape'])} dimensions")
        tensors.append(_tensor(name, entry))
    _check_coverage(tensors, data_size)
    return SafetensorsHeader(tensors=tuple(tensors), metadata=metadata, data_start=0)


class _Duplicate(ValueError):
    pass


class _Constant(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _tensor(name: str, entry: Any) -> TensorSpan:
    if not isinstance(entry, dict):
        raise SafetensorsInvalid(f"tensor {name!r}: entry is not an object")
    if set(entry) != {"dtype", "shape", "data_offsets"}:
        raise SafetensorsInvalid(f"tensor {name!r}: keys must be exactly dtype, shape, data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise SafetensorsInvalid(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise SafetensorsInvalid(f"tensor {name!r}: shape must be a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
        raise SafetensorsInvalid(f"tensor {name!r}: data_offsets must be [begin, end] non-negative integers")
    begin, end = offsets
    if end < begin:
        raise SafetensorsInvalid(f"tensor {name!r}: data_offsets end {end} is before begin {begin}")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise SafetensorsInvalid(f"tensor {name!r}: {math.prod(shape)} x {dtype} is not a whole number of bytes")
    if end - begin != bits // 8:
        raise SafetensorsInvalid(
            f"tensor {name!r}: shape {shape} x {dtype} is {bits // 8} bytes but data_offsets span {end - begin}"
        )
    return TensorSpan(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_coverage(tensors: list[TensorSpan], data_size: int) -> None:
    position = 0
    for span in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if span.begin < position:
            raise SafetensorsInvalid(f"tensor {span.name!r}: data_offsets overlap the previous tensor")
        if span.begin > position:
            raise SafetensorsInvalid(f"tensor {span.name!r}: gap of {span.begin - position} bytes before its data")
        position = span.end
    if position > data_size:
        raise SafetensorsInvalid(f"data_offsets reach byte {position} but the data section has {data_size} bytes")
    if position < data_size:
        raise SafetensorsInvalid(f"{data_size - position} bytes after the last tensor are not covered by the header")


def read_header(handle: BinaryIO, file_size: int, limits: ScanLimits = DEFAULT_LIMITS) -> SafetensorsHeader:
    """Read and validate the header of an open safetensors file (reads only the header)."""
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise SafetensorsInvalid(f"file is {file_size} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix)
    if n > limits.header_bytes:
        raise LimitExceeded("header_bytes", limits.header_bytes, f"header length is {n} bytes")
    if n > file_size - 8:
        raise SafetensorsInvalid(f"header length {n} is beyond the end of the {file_size}-byte file")
    raw = handle.read(n)
    if len(raw) != n:
        raise SafetensorsInvalid("file is truncated inside the header")
    header = parse_header(raw, file_size - 8 - n, limits)
    return SafetensorsHeader(tensors=header.tensors, metadata=header.metadata, data_start=8 + n)


def check_file(path: Path, limits: ScanLimits = DEFAULT_LIMITS) -> SafetensorsHeader:
    """Validate ``path``'s header; raise ``SafetensorsInvalid`` naming the first problem (or
    ``LimitExceeded``)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        return read_header(handle, size, limits)


def nonfinite_tensors(path: Path, header: SafetensorsHeader) -> list[str]:
    """Names of float tensors holding NaN or Inf, streamed in chunks (constant memory)."""
    import numpy as np

    found: list[str] = []
    with path.open("rb") as handle:
        for span in header.tensors:
            if span.dtype not in _NONFINITE_MASKS:
                continue
            width, mask = _NONFINITE_MASKS[span.dtype]
            view_dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width]
            handle.seek(header.data_start + span.begin)
            remaining = span.end - span.begin
            chunk = _SCAN_CHUNK - _SCAN_CHUNK % width
            while remaining > 0:
                raw = handle.read(min(chunk, remaining))
                if not raw:
                    break
                remaining -= len(raw)
                values = np.frombuffer(raw[: len(raw) - len(raw) % width], dtype=np.dtype(view_dtype).newbyteorder("<"))
                if np.any((values & view_dtype(mask)) == view_dtype(mask)):
                    found.append(span.name)
                    break
    return found


class NonfiniteObserver:
    """The NaN/Inf check fed with a file's bytes as another reader streams them (the lockfile's
    sha256 pass), so ``gate check`` checks values without a second read of the weights.

    Called with ``(file offset, chunk)`` for consecutive chunks; ``found`` lists the float
    tensors holding NaN or Inf. Elements split across chunks are carried over."""

    def __init__(self, header: SafetensorsHeader) -> None:
        self.spans = [
            (header.data_start + t.begin, header.data_start + t.end, t.name, *_NONFINITE_MASKS[t.dtype])
            for t in sorted(header.tensors, key=lambda t: t.begin)
            if t.dtype in _NONFINITE_MASKS and t.end > t.begin
        ]
        self.found: list[str] = []
        self._index = 0
        self._carry = b""

    def __call__(self, offset: int, chunk: memoryview) -> None:
        import numpy as np

        end = offset + len(chunk)
        while self._index < len(self.spans):
            begin, stop, name, width, mask = self.spans[self._index]
            if begin >= end:
                return
            lo, hi = max(begin, offset), min(stop, end)
            if hi > lo and (not self.found or self.found[-1] != name):
                piece = chunk[lo - offset : hi - offset]
                if self._carry:
                    need = width - len(self._carry)
                    head, piece = self._carry + bytes(piece[:need]), piece[need:]
                    self._carry = b"" if len(head) == width else head
                    if len(head) == width and _has_nonfinite(np, head, width, mask):
                        self.found.append(name)
                usable = len(piece) - len(piece) % width
                if usable and (not self.found or self.found[-1] != name) and _has_nonfinite(np, piece[:usable], width, mask):
                    self.found.append(name)
                self._carry += bytes(piece[usable:])
            if stop <= end:
                self._index += 1
                self._carry = b""
                continue
            return


def _has_nonfinite(np: Any, raw: bytes | memoryview, width: int, mask: int) -> bool:
    view_dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width]
    values = np.frombuffer(raw, dtype=np.dtype(view_dtype).newbyteorder("<"))
    return bool(np.any((values & view_dtype(mask)) == view_dtype(mask)))


def check_index(index_path: Path, shard_names: dict[str, list[str] | None]) -> str | None:
    """Problems of a ``*.safetensors.index.json`` against its shards, or None when consistent.

    ``shard_names`` maps each shard file name in the directory to its tensor names (None when the
    shard itself is invalid: its own finding covers it)."""
    try:
        data = json.loads(index_path.read_bytes().decode("utf-8"), object_pairs_hook=_pairs)
    except _Duplicate as exc:
        return f"duplicate key {exc.args[0]!r}"
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return "not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        return "has no `weight_map` object"
    weight_map: dict[str, Any] = data["weight_map"]
    by_shard: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard in ("", ".", ".."):
            return f"tensor {tensor!r} maps to {shard!r}, which is not a file name in the model directory"
        by_shard.setdefault(shard, set()).add(tensor)
    for shard in sorted(by_shard):
        if shard not in shard_names:
            return f"shard {shard!r} is listed in weight_map but does not exist"
        names = shard_names[shard]
        if names is None:
            continue
        listed = by_shard[shard]
        missing = sorted(listed - set(names))
        if missing:
            return f"tensor {missing[0]!r} is mapped to {shard!r} but that shard does not contain it"
        unlisted = sorted(set(names) - listed)
        if unlisted:
            return f"shard {shard!r} holds tensor {unlisted[0]!r}, which weight_map does not map to it"
    unreferenced = sorted(set(shard_names) - set(by_shard))
    if unreferenced:
        return f"{unreferenced[0]!r} is next to the index but not in its weight_map"
    return None
