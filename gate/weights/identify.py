"""Positive identification of inert files: JSON, text, Jinja templates, SentencePiece models and
plain numpy arrays. A file is accepted only when one of these parsers recognises ALL of its bytes;
anything else is unknown and blocks (QG512) unless a policy allows its type.

Nothing here executes anything: JSON is parsed by ``json``, text is decoded, a SentencePiece
model is walked as protobuf wire format (field numbers and lengths only), a numpy header is
read with ``ast.literal_eval`` and checked against the file size.
"""

from __future__ import annotations

import ast
import codecs
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from gate.weights.interface import FileFormat
from gate.weights.limits import LimitExceeded, ScanLimits

NUMPY_MAGIC = b"\x93NUMPY"
TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")
SENTENCEPIECE_SUFFIX = ".model"
LOADER_SUFFIXES = frozenset(
    {
        # pickle-capable: torch, joblib, numpy, dill, sklearn
        ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dill", ".npy", ".npz", ".sav",
        # Keras/TF formats run code through Lambda layers and custom objects
        ".h5", ".hdf5", ".keras", ".pb",
        # archives and compressed streams (their loaders unwrap them)
        ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".lzma", ".7z", ".zst", ".lz4", ".rar",
        # code and native libraries
        ".py", ".pyc", ".pyo", ".pyw", ".so", ".dll", ".dylib", ".sh", ".exe",
    }
)
"""Suffixes a loader would unpickle, unwrap or execute: a file named like this is never
accepted as text or JSON, and no policy may allow the type (QG512's ``allow_types``)."""
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
"""C0 control bytes other than tab, newlines, form feed and escape: never in a text file."""


@dataclass(frozen=True)
class Identified:
    format: FileFormat
    value: Any = None
    """The parsed JSON value (JSON files only), for the chat-template and auto_map checks."""
    text: str | None = None
    """The decoded text (templates only)."""


class NotIdentified(ValueError):
    """The bytes are not what their name says (the message says why)."""


def suffix_of(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[-1] if "." in base.lstrip(".") else ""


def identify(handle: BinaryIO, size: int, name: str, limits: ScanLimits) -> Identified | None:
    """The inert type of the bytes at ``handle`` (read from the start), or None when they are
    none of them. Raises ``NotIdentified`` when the name promises a type the bytes are not, or the
    file is too big to identify; ``LimitExceeded`` for JSON nested too deeply."""
    suffix = suffix_of(name)
    handle.seek(0)
    prefix = handle.read(16)
    if prefix.startswith(NUMPY_MAGIC):
        check_plain_numpy(handle, size)
        return Identified(FileFormat.numpy)
    if suffix == SENTENCEPIECE_SUFFIX:
        if size > limits.json_bytes:
            raise NotIdentified(_too_big(size, limits))
        handle.seek(0)
        check_sentencepiece(handle.read())
        return Identified(FileFormat.sentencepiece)
    if suffix in LOADER_SUFFIXES:
        return None
    if size > limits.json_bytes:
        raise NotIdentified(_too_big(size, limits))
    handle.seek(0)
    text = _decode_text(handle)
    if text is None:
        if suffix == ".json":
            raise NotIdentified("not UTF-8 text, so not JSON")
        if suffix in TEMPLATE_SUFFIXES:
            raise NotIdentified("not UTF-8 text, so not a Jinja template")
        return None
    if suffix in TEMPLATE_SUFFIXES:
        return Identified(FileFormat.chat_template, text=text)
    stripped = text.lstrip()
    if suffix == ".json" or stripped.startswith(("{", "[")):
        try:
            value = json.loads(text)
        except RecursionError:
            raise LimitExceeded("json_nesting", limits.json_nesting, "JSON nests too deeply to parse") from None
        except ValueError as exc:  # JSONDecodeError, or an integer over 4300 digits
            if suffix == ".json":
                raise NotIdentified(f"not valid JSON ({str(exc).splitlines()[0][:120]})") from None
            return Identified(FileFormat.text)
        depth = json_depth(value)
        if depth > limits.json_nesting:
            raise LimitExceeded("json_nesting", limits.json_nesting, f"JSON nests {depth} levels deep")
        return Identified(FileFormat.json, value=value)
    return Identified(FileFormat.text)


def _too_big(size: int, limits: ScanLimits) -> str:
    """Unknown, not a limit verdict: an inert type a policy allows may be any size (QG512)."""
    return f"{size} bytes: over the `json_bytes` limit of {limits.json_bytes} for identifying text, JSON or SentencePiece"


def _decode_text(handle: BinaryIO) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    while chunk := handle.read(1 << 20):
        if _CONTROL.search(chunk):
            return None
        try:
            parts.append(decoder.decode(chunk))
        except UnicodeDecodeError:
            return None
    try:
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        return None
    text = "".join(parts)
    return text[1:] if text.startswith("\ufeff") else text


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, iteratively (no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return deepest


def check_sentencepiece(data: bytes) -> None:
    """A SentencePiece ``ModelProto``: top-level fields 1 (pieces, repeated), 2 (trainer_spec),
    3 (normalizer_spec), 4 (self_test_data), 5 (denormalizer_spec), all length-delimited, the
    bytes consumed exactly, at least one piece; each piece holds only fields 1 (string), 2 (float)
    and 3 (enum)."""
    pieces = 0
    for number, wire, start, end in _fields(data, 0, len(data)):
        if wire != 2 or not 1 <= number <= 5:
            raise NotIdentified(f"protobuf field {number} (wire type {wire}, value at byte {start}) is not part of a SentencePiece model")
        if number == 1:
            pieces += 1
            for inner, inner_wire, at, _ in _fields(data, start, end):
                if (inner, inner_wire) not in ((1, 2), (2, 5), (3, 0)):
                    raise NotIdentified(f"piece field {inner} (wire type {inner_wire}) at byte {at} is not part of a SentencePiece piece")
    if pieces == 0:
        raise NotIdentified("no vocabulary pieces: not a SentencePiece model")


def _fields(data: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field in ``data[pos:end]``."""
    out: list[tuple[int, int, int, int]] = []
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            start = pos
            _, pos = _varint(data, pos, end)
        elif wire == 2:
            length, start = _varint(data, pos, end)
            pos = start + length
        elif wire in (1, 5):
            start = pos
            pos += 8 if wire == 1 else 4
        else:
            raise NotIdentified(f"protobuf wire type {wire} at byte {pos} is not used by SentencePiece")
        if pos > end:
            raise NotIdentified(f"protobuf field {number} at byte {start} runs past its end")
        out.append((number, wire, start, pos))
    return out


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise NotIdentified(f"truncated or over-long protobuf varint at byte {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def numpy_header(handle: BinaryIO) -> tuple[dict[str, Any], int]:
    """A ``.npy`` header dict and the offset of its data; ``NotIdentified`` when malformed."""
    handle.seek(6)
    head = handle.read(6)
    try:
        if len(head) < 4 or head[0] not in (1, 2, 3):
            raise ValueError(f"unknown version {head[:1]!r}")
        if head[0] == 1:
            (length,) = struct.unpack("<H", head[2:4])
            start = 10
        else:
            (length,) = struct.unpack("<I", head[2:6])
            start = 12
        if length > 1 << 20:
            raise ValueError("header over 1 MiB")
        handle.seek(start)
        header = ast.literal_eval(handle.read(length).decode("latin-1"))
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            raise ValueError("header keys must be descr, fortran_order, shape")
    except (ValueError, SyntaxError, struct.error, MemoryError, RecursionError, TypeError) as exc:
        raise NotIdentified(f"numpy header is malformed ({str(exc)[:80] or type(exc).__name__})") from None
    return header, start + length


def is_object_dtype(descr: object) -> bool:
    return "O" in str(descr)


def check_plain_numpy(handle: BinaryIO, size: int) -> None:
    """A ``.npy`` array without objects whose data is exactly shape x itemsize bytes."""
    import numpy as np

    header, data_start = numpy_header(handle)
    descr, shape = header["descr"], header["shape"]
    if is_object_dtype(descr):
        raise NotIdentified("object array (pickled payload)")
    if not isinstance(shape, tuple) or len(shape) > 64 or not all(isinstance(d, int) and 0 <= d < 1 << 62 for d in shape):
        raise NotIdentified("numpy header has a malformed shape")
    try:
        itemsize = np.dtype(descr).itemsize
    except (TypeError, ValueError) as exc:
        raise NotIdentified(f"numpy header has an unknown dtype ({str(exc)[:80]})") from None
    if np.dtype(descr).hasobject:
        raise NotIdentified("object array (pickled payload)")
    expected = math.prod(shape) * itemsize
    if size - data_start != expected:
        raise NotIdentified(f"numpy data is {size - data_start} bytes but shape {shape} x {descr} is {expected}")


__all__ = ["LOADER_SUFFIXES", "Identified", "NotIdentified", "identify", "suffix_of"]
