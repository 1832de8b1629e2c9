"""A second pickle reader that follows only the opcode *framing*, as the C unpickler does.

``pickletools.genops`` validates argument values (``L0x10L`` is not a decimal long to it, while
the C unpickler's ``int(x, 0)`` takes it), so a stream can stop genops before any evidence while
``pickle.loads`` runs it to the end: a parser differential. This walker never validates values:
each opcode's argument is skipped by its framing alone (fixed size, up to a newline, or
length-prefixed), exactly as ``_pickle.c`` advances, and the imports and calls on the way are
recorded. When genops fails, ``gate.weights.files`` asks this walker what the C unpickler would
have reached.
"""

from __future__ import annotations

import mmap
import pickletools
import re
import struct
import time
from dataclasses import dataclass, field

_CODE = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_CALLS = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"})
_IDENT = re.compile(rb"^[A-Za-z_][A-Za-z0-9_.]*$")
_LENGTH = {-2: (1, "<B"), -3: (4, "<i"), -4: (4, "<I"), -5: (8, "<Q")}


@dataclass
class Frames:
    """What the framing walk saw from the start of the bytes."""

    globals: list[str] = field(default_factory=list)
    """Imports as ``module name`` labels (see ``pickle_scan.global_label``)."""
    calls: int = 0
    """REDUCE / INST / OBJ / NEWOBJ / NEWOBJ_EX / BUILD opcodes reached."""
    stops: int = 0
    end: int = 0
    """Offset where the walk stopped (an invalid opcode, the end, or a limit)."""

    @property
    def executes(self) -> bool:
        """An import followed by a call or a STOP: the C unpickler would run something."""
        return bool(self.globals) and (self.calls > 0 or self.stops > 0)


def walk_frames(data: bytes | mmap.mmap, *, limit: int, deadline: float) -> Frames:
    """Walk ``data[:limit]`` by framing only, through consecutive pickles, until a byte that is
    no opcode, a truncated argument, the end, or the deadline."""
    out = Frames()
    view = memoryview(data)[:limit]
    size = len(view)
    pos = 0
    strings: list[str | None] = []
    count = 0
    while pos < size:
        op = _CODE.get(view[pos])
        if op is None:
            break
        start = pos
        pos += 1
        arg: bytes | None = None
        spec = op.arg
        if spec is not None:
            if spec.name == "stringnl_noescape_pair":
                first = _line(data, pos, size)
                second = _line(data, first[1], size) if first is not None else None
                if first is None or second is None:
                    break
                pos = second[1]
                out.globals.append(f"{_text(first[0])} {_text(second[0])}")
            elif spec.n == pickletools.UP_TO_NEWLINE:
                line = _line(data, pos, size)
                if line is None:
                    break
                arg, pos = line
            elif spec.n in _LENGTH:
                width, fmt = _LENGTH[spec.n]
                if pos + width > size:
                    break
                (n,) = struct.unpack_from(fmt, view, pos)
                pos += width
                if n < 0 or pos + n > size:
                    break
                arg = bytes(view[pos : pos + n])
                pos += n
            else:
                if pos + spec.n > size:
                    break
                pos += spec.n
        name = op.name
        if name in _STRINGS:
            strings.append(_text(arg or b"").strip("'\"") if arg is not None else None)
        elif name == "STACK_GLOBAL":
            module, attr = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
            if module and attr and _IDENT.match(module.encode()) and _IDENT.match(attr.encode()):
                out.globals.append(f"{module} {attr}")
            else:
                out.globals.append("<unresolved STACK_GLOBAL operands>")
        elif name in ("EXT1", "EXT2", "EXT4"):
            out.globals.append("<extension code>")
        if name in _CALLS:
            out.calls += 1
        elif name == "STOP":
            out.stops += 1
        out.end = pos if pos > start else start
        count += 1
        if count & 0xFFF == 0 and time.monotonic() > deadline:
            break
    out.end = pos
    return out


def _line(data: bytes | mmap.mmap, pos: int, size: int) -> tuple[bytes, int] | None:
    cut = data.find(b"\n", pos, size)
    if cut < 0:
        return None
    return bytes(data[pos:cut]), cut + 1


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


__all__ = ["Frames", "walk_frames"]
