"""GGUF validation: header, metadata and tensor table, parsed as data (no code runs).

The ``gguf`` package supplies the format's tables (value types, quantization block sizes). The
walk itself is a streaming parser rather than ``gguf.GGUFReader``: the reader materialises every
metadata string as a numpy array and took 19 s on the 98 MB SmolLM2 example (49k tokenizer
strings), too slow for ``gate check``; this walk reads the same structure in well under a second
and skips numeric arrays without reading them. Tensor data must lie inside the file, aligned,
without overlaps.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from gate.weights.limits import DEFAULT_LIMITS, LimitExceeded, ScanLimits

GGUF_MAGIC = b"GGUF"
MAX_DIMS = 4
DEFAULT_ALIGNMENT = 32
_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""GGUFValueType -> byte size (STRING=8 and ARRAY=9 are variable)."""
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


class GgufInvalid(ValueError):
    """The file violates the GGUF format; the message says how."""


@dataclass
class GgufFacts:
    tensor_count: int = 0
    strings: dict[str, str] = field(default_factory=dict)
    """String metadata values kept for later checks (``tokenizer.chat_template*``)."""


KEPT_STRING_PREFIX = "tokenizer.chat_template"


class _Reader:
    """Bounds-checked little-endian reads over a read-only memory map (no per-field syscalls)."""

    def __init__(self, data: mmap.mmap | bytes, size: int, limits: ScanLimits = DEFAULT_LIMITS) -> None:
        self.data = data
        self.size = size
        self.pos = 0
        self.limits = limits

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GgufInvalid(f"{what} at byte {self.pos} runs past the end of the {self.size}-byte file")

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        data = self.data[self.pos : self.pos + n]
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        self.pos += n

    def u32(self, what: str) -> int:
        self._need(4, what)
        value = _U32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return int(value)

    def u64(self, what: str) -> int:
        self._need(8, what)
        value = _U64.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return int(value)

    def string(self, what: str) -> str:
        n = self.u64(what)
        if n > self.limits.value_bytes:
            raise LimitExceeded("value_bytes", self.limits.value_bytes, f"{what} at byte {self.pos - 8} claims {n} bytes")
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GgufInvalid(f"{what} at byte {self.pos - n} is not UTF-8") from None


def _value(reader: _Reader, kind: int, key: str, depth: int = 0) -> int | str | None:
    """Skip one metadata value; return it when it is a UINT32 (for general.alignment) or a
    top-level string."""
    if kind in _SCALARS:
        raw = reader.take(_SCALARS[kind], f"value of {key!r}")
        return int(struct.unpack("<I", raw)[0]) if kind == _UINT32 else None
    if kind == _STRING:
        return reader.string(f"value of {key!r}")
    if kind == _ARRAY:
        if depth >= reader.limits.nesting:
            raise LimitExceeded("nesting", reader.limits.nesting, f"metadata {key!r} nests arrays deeper")
        item = reader.u32(f"array type of {key!r}")
        count = reader.u64(f"array length of {key!r}")
        if count > reader.limits.array_items:
            raise LimitExceeded("array_items", reader.limits.array_items, f"metadata array {key!r} claims {count} items")
        if item in _SCALARS:
            reader.skip(count * _SCALARS[item], f"array {key!r}")
        elif item == _STRING:
            _skip_strings(reader, count, key)
        elif item in (_STRING, _ARRAY):
            if count * 8 > reader.size - reader.pos:
                raise GgufInvalid(f"array {key!r} claims {count} items, more than the file can hold")
            for _ in range(count):
                _value(reader, item, key, depth + 1)
        else:
            raise GgufInvalid(f"array {key!r} has unknown item type {item}")
        return None
    raise GgufInvalid(f"metadata {key!r} has unknown value type {kind}")


def _skip_strings(reader: _Reader, count: int, key: str) -> None:
    """A string array (tokenizer vocabularies hold ~10^5): lengths are bounds-checked in a tight
    loop; the bytes are not decoded (only keys and scalar strings are checked for UTF-8)."""
    data, pos, size, unpack = reader.data, reader.pos, reader.size, _U64.unpack_from
    cap = reader.limits.value_bytes
    for index in range(count):
        if pos + 8 > size:
            raise GgufInvalid(f"array {key!r} item {index} at byte {pos} runs past the end of the {size}-byte file")
        n = unpack(data, pos)[0]
        pos += 8 + n
        if n > cap:
            raise LimitExceeded("value_bytes", cap, f"array {key!r} item {index} claims {n} bytes")
        if pos > size:
            raise GgufInvalid(f"array {key!r} item {index} runs past the end of the {size}-byte file")
    reader.pos = pos


def check_file(path: Path, limits: ScanLimits = DEFAULT_LIMITS) -> int:
    """Validate ``path``; return its tensor count or raise ``GgufInvalid`` / ``LimitExceeded``."""
    size = path.stat().st_size
    if size < 24:
        raise GgufInvalid("not a GGUF file (missing the 'GGUF' magic or a 24-byte header)")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return check_data(data, size, limits).tensor_count


def read_metadata(data: mmap.mmap | bytes, size: int, limits: ScanLimits = DEFAULT_LIMITS) -> tuple[_Reader, GgufFacts, int, int]:
    """Header and metadata (not the tensor table): the reader after the metadata, the kept
    strings, the tensor count and the alignment. Works on a prefix of the file too."""
    reader = _Reader(data, size, limits)
    facts = GgufFacts()
    if size < 24 or reader.take(4, "magic") != GGUF_MAGIC:
        raise GgufInvalid("not a GGUF file (missing the 'GGUF' magic or a 24-byte header)")
    version = reader.u32("version")
    if version not in (2, 3):
        raise GgufInvalid(f"GGUF version {version} is not supported (2 or 3)")
    tensor_count, kv_count = reader.u64("tensor count"), reader.u64("metadata count")
    if kv_count * 13 + tensor_count * 24 > size - 24:
        raise GgufInvalid(f"header claims {tensor_count} tensors and {kv_count} metadata keys, more than a {size}-byte file can hold")
    if tensor_count > limits.tensors:
        raise LimitExceeded("tensors", limits.tensors, f"header claims {tensor_count} tensors")
    if kv_count > limits.metadata_keys:
        raise LimitExceeded("metadata_keys", limits.metadata_keys, f"header claims {kv_count} metadata keys")
    alignment = DEFAULT_ALIGNMENT
    keys: set[str] = set()
    for _ in range(kv_count):
        key = reader.string("metadata key")
        if key in keys:
            raise GgufInvalid(f"duplicate metadata key {key!r}")
        keys.add(key)
        kind = reader.u32(f"value type of {key!r}")
        value = _value(reader, kind, key)
        if key == "general.alignment":
            if not isinstance(value, int) or kind != _UINT32 or value == 0 or value & (value - 1):
                raise GgufInvalid("general.alignment must be a UINT32 power of two")
            alignment = value
        elif isinstance(value, str) and key.startswith(KEPT_STRING_PREFIX):
            facts.strings[key] = value
    facts.tensor_count = tensor_count
    return reader, facts, tensor_count, alignment


def check_data(data: mmap.mmap | bytes, size: int, limits: ScanLimits = DEFAULT_LIMITS) -> GgufFacts:
    """Validate a whole GGUF file's bytes; raise ``GgufInvalid`` or ``LimitExceeded``."""
    from gate.weights.gguf_tables import constants

    tables = constants()
    GGML_QUANT_SIZES, GGMLQuantizationType = tables.GGML_QUANT_SIZES, tables.GGMLQuantizationType

    reader, facts, tensor_count, alignment = read_metadata(data, size, limits)
    tensors: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for _ in range(tensor_count):
        name = reader.string("tensor name")
        if name in names:
            raise GgufInvalid(f"duplicate tensor name {name!r}")
        names.add(name)
        n_dims = reader.u32(f"dimensions of {name!r}")
        if n_dims > MAX_DIMS:
            raise GgufInvalid(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        dims = [reader.u64(f"shape of {name!r}") for _ in range(n_dims)]
        raw_type = reader.u32(f"type of {name!r}")
        offset = reader.u64(f"offset of {name!r}")
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(raw_type)]
        except (ValueError, KeyError):
            raise GgufInvalid(f"tensor {name!r} has unknown type {raw_type}") from None
        if dims and dims[0] % block:
            raise GgufInvalid(f"tensor {name!r}: first dimension {dims[0]} is not a multiple of its block size {block}")
        tensors.append((offset, math.prod(dims) * type_size // block, name))
    data_start = -(-reader.pos // alignment) * alignment
    previous_end, previous = 0, ""
    for offset, n_bytes, name in sorted(tensors):
        begin, end = data_start + offset, data_start + offset + n_bytes
        if offset % alignment:
            raise GgufInvalid(f"tensor {name!r} data offset {offset} is not aligned to {alignment}")
        if end > size:
            raise GgufInvalid(f"tensor {name!r} data ends at byte {end}, beyond the {size}-byte file")
        if begin < previous_end:
            raise GgufInvalid(f"tensor {name!r} data overlaps tensor {previous!r}")
        previous_end, previous = end, name
    return facts
