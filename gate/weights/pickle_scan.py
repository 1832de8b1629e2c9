"""Pickle analysis by opcode stream only: ``pickletools.genops`` plus a symbolic stack.

Nothing here unpickles (no ``pickle.load``, no ``torch.load``, not even ``weights_only``). The
walker records every global a stream would import -- GLOBAL, INST, STACK_GLOBAL (operands
resolved through the stack and the memo), EXT1/2/4 -- and a stream is allowlist-clean only when
each one is, by exact ``(module, name)`` match, on ``ALLOWLIST``: the globals a plain tensor
checkpoint needs. Dotted names (``("pathlib", "os.system")``), unresolvable STACK_GLOBAL operands,
extension codes, malformed or truncated streams, trailing bytes and anything over the size or
time limits fail closed.
"""

from __future__ import annotations

import io
import pickletools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

TORCH_STORAGES = (
    "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
    "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8", "QInt32", "QUInt4x2", "QUInt2x4",
)
TORCH_DTYPES = (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex64", "complex128", "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64",
)
ALLOWLIST: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch.storage", "UntypedStorage"),
        ("torch", "UntypedStorage"),
        *(("torch", f"{kind}Storage") for kind in TORCH_STORAGES),
        *(("torch", dtype) for dtype in TORCH_DTYPES),
    }
)
"""Globals a plain tensor checkpoint (``torch.save(model.state_dict())``) needs. Nothing else."""

MAX_PICKLE_BYTES = 256 << 20
"""Largest pickle stream analysed; a bigger one is unparseable (fail closed)."""
MAX_SECONDS = 20.0
"""Time budget for one stream; slower means unparseable (fail closed)."""

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})


class PickleLimit(Exception):
    """A stream exceeded the size or time limit; ``limit`` names it."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Global:
    name: str


class _Other:
    pass


_MARK = object()
_OTHER = _Other()


@dataclass
class PickleAnalysis:
    """The outcome of walking one or more pickles in a byte stream."""

    globals: list[str] = field(default_factory=list)
    """Every import, as ``module.name`` (``<unresolved ...>`` / ``<extension N>`` when unknowable)."""
    complete: int = 0
    """How many pickles ended with STOP."""
    error: str | None = None
    """Why the stream is unparseable (None when every pickle parsed)."""
    end: int = 0
    """Offset just after the last complete pickle."""
    evidence: bool = False
    """The bytes are a pickle: PROTO header, a STOP reached, or an import with valid names."""
    first_value_magic: bool = False
    """The first pickle is exactly the legacy ``torch.save`` magic number."""
    limit: str | None = None
    """The analysis limit hit (``pickle_bytes`` / ``pickle_seconds``), when ``error`` is one."""

    @property
    def unsafe_globals(self) -> list[str]:
        return sorted({g for g in self.globals if not is_allowed(g)})


def is_allowed(label: str) -> bool:
    """Exact match only. Allowlisted names hold no spaces or newlines, so a GLOBAL whose lines
    contain spaces (pickletools joins the two lines with one) can never match by accident."""
    module, _, name = label.partition(" ")
    return (module, name) in ALLOWLIST


def global_label(module: str, name: str) -> str:
    """``module name`` joined for the allowlist check; rendered ``module.name`` for people."""
    return f"{module} {name}"


def render_global(label: str) -> str:
    if label.startswith("<"):  # <extension code N>, <unresolved STACK_GLOBAL operands>
        return label
    module, sep, name = label.partition(" ")
    return f"{module}.{name}" if sep else label


class _Bounded(io.RawIOBase):
    """A read-only view of ``handle`` that refuses to read past ``limit`` bytes or a deadline."""

    def __init__(self, handle: BinaryIO, limit: int, deadline: float) -> None:
        self._handle = handle
        self._limit = limit
        self._deadline = deadline

    def _check(self, n: int) -> int:
        if time.monotonic() > self._deadline:
            raise PickleLimit(f"analysis took over {MAX_SECONDS:g} s", "pickle_seconds")
        remaining = self._limit - self._handle.tell()
        if n < 0 or n > remaining:
            if n < 0 or remaining <= 0:
                raise PickleLimit(f"stream is over the {self._limit}-byte analysis limit", "pickle_bytes")
            n = remaining + 1  # read one past the limit so an over-long argument is caught below
        return n

    def read(self, n: int | None = -1) -> bytes:
        data = self._handle.read(self._check(-1 if n is None else n))
        if self._handle.tell() > self._limit:
            raise PickleLimit(f"stream is over the {self._limit}-byte analysis limit", "pickle_bytes")
        return data

    def readline(self, size: int | None = -1) -> bytes:
        self._check(0)
        data = self._handle.readline(self._limit - self._handle.tell() + 1)
        if self._handle.tell() > self._limit:
            raise PickleLimit(f"stream is over the {self._limit}-byte analysis limit", "pickle_bytes")
        return data

    def tell(self) -> int:
        return self._handle.tell()

    def readable(self) -> bool:
        return True


def _walk_one(stream: _Bounded, out: PickleAnalysis, first: bool) -> bool:
    """Walk one pickle from the stream's position; True when it ended with STOP."""
    stack: list[object] = []
    memo: dict[object, object] = {}
    ops: list[tuple[str, object]] = []
    for count, (opcode, arg, _pos) in enumerate(pickletools.genops(cast(BinaryIO, stream))):
        name = opcode.name
        if first and len(ops) < 4:
            ops.append((name, arg))
        if name == "PROTO":
            out.evidence = True
            if not isinstance(arg, int) or arg > 5:
                raise ValueError(f"unsupported pickle protocol {arg}")
            continue
        if name in _STRING_OPS:
            stack.append(_Str(arg) if isinstance(arg, str) else _OTHER)
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            out.globals.append(global_label(module, attr))
            if _IDENT.match(module) and _IDENT.match(attr):
                out.evidence = True
            if name == "INST":
                _pop_to_mark(stack)
            stack.append(_Global(global_label(module, attr)))
        elif name == "STACK_GLOBAL":
            attr_item, module_item = _pop(stack), _pop(stack)
            if isinstance(module_item, _Str) and isinstance(attr_item, _Str):
                label = global_label(module_item.value, attr_item.value)
                if _IDENT.match(module_item.value) and _IDENT.match(attr_item.value):
                    out.evidence = True
            else:
                label = "<unresolved STACK_GLOBAL operands>"
                out.evidence = True
            out.globals.append(label)
            stack.append(_Global(label))
        elif name in _EXT_OPS:
            out.globals.append(f"<extension code {arg}>")
            out.evidence = True
            stack.append(_OTHER)
        elif name in _PUT_OPS:
            if not stack or stack[-1] is _MARK:
                raise ValueError("memo PUT with an empty stack")
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            if not stack or stack[-1] is _MARK:
                raise ValueError("MEMOIZE with an empty stack")
            memo[len(memo)] = stack[-1]
        elif name in _GET_OPS:
            if arg not in memo:
                raise ValueError(f"memo GET of missing key {arg}")
            stack.append(memo[arg])
        elif name == "DUP":
            if not stack:
                raise ValueError("DUP with an empty stack")
            stack.append(stack[-1])
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "POP":
            _pop(stack, allow_mark=True)
        elif name == "POP_MARK":
            _pop_to_mark(stack)
        elif name == "STOP":
            if first:
                out.first_value_magic = [n for n, _ in ops] in (["PROTO", "LONG1", "STOP"], ["LONG1", "STOP"]) and any(
                    a == LEGACY_TORCH_MAGIC for _, a in ops
                )
            return True
        else:
            _generic(stack, opcode)
        if count & 0xFFF == 0:
            stream._check(0)
    return False


def _pop(stack: list[object], allow_mark: bool = False) -> object:
    if not stack or (stack[-1] is _MARK and not allow_mark):
        raise ValueError("stack underflow")
    return stack.pop()


def _pop_to_mark(stack: list[object]) -> None:
    while stack:
        if stack.pop() is _MARK:
            return
    raise ValueError("no MARK on the stack")


def _generic(stack: list[object], opcode: pickletools.OpcodeInfo) -> None:
    before = list(opcode.stack_before)
    if pickletools.markobject in before:
        _pop_to_mark(stack)
        before = before[: before.index(pickletools.markobject)]
    for _ in before:
        _pop(stack)
    stack.extend(_OTHER for _ in opcode.stack_after)


def analyse_stream(
    handle: BinaryIO,
    *,
    max_pickles: int | None = None,
    limit: int | None = None,
    seconds: float = MAX_SECONDS,
) -> PickleAnalysis:
    """Walk consecutive pickles from ``handle``'s position until its end (or ``max_pickles``).

    Never raises for hostile bytes: problems land in ``error``. Bytes after the last STOP that do
    not form another pickle are an error too (fail closed: a loader could read them)."""
    out = PickleAnalysis()
    start = handle.tell()
    stream = _Bounded(handle, start + (MAX_PICKLE_BYTES if limit is None else limit), time.monotonic() + seconds)
    while max_pickles is None or out.complete < max_pickles:
        before = handle.tell()
        if not handle.read(1):
            break
        handle.seek(before)
        try:
            done = _walk_one(stream, out, first=out.complete == 0)
        except PickleLimit as exc:
            out.error, out.limit = str(exc), exc.limit
            return out
        except Exception as exc:  # any parse failure of hostile bytes fails closed
            out.error = _describe(exc, before - start, out.complete)
            return out
        if not done:
            out.error = "pickle ends without a STOP opcode (truncated)"
            return out
        out.complete += 1
        out.evidence = True
        out.end = handle.tell() - start
    return out


def _describe(exc: Exception, offset: int, complete: int) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = "pickle" if complete == 0 else f"pickle #{complete + 1} (offset {offset})"
    if "pickle exhausted before seeing STOP" in text or ("but only" in text and "remain" in text):
        return f"{where} ends without a STOP opcode (truncated)"
    return f"malformed {where}: {text[:200]}"


def analyse_bytes(data: bytes, *, max_pickles: int | None = None, seconds: float = MAX_SECONDS) -> PickleAnalysis:
    """``analyse_stream`` over bytes already in memory."""
    return analyse_stream(io.BytesIO(data), max_pickles=max_pickles, limit=max(len(data), 1), seconds=seconds)


def iter_globals(analysis: PickleAnalysis) -> Iterator[str]:
    for label in sorted(set(analysis.globals)):
        yield render_global(label)


__all__ = [
    "ALLOWLIST",
    "MAX_PICKLE_BYTES",
    "PickleAnalysis",
    "analyse_bytes",
    "analyse_stream",
    "is_allowed",
    "iter_globals",
    "render_global",
]
