"""Members of zip and tar archives and the content of compressed streams, read defensively.

Zip: members come from the central directory (as Python's ``zipfile`` and PyTorch read it) AND
from a walk over local file headers, so a member hidden from one view is still seen; flag bits
(encryption, data descriptors) are ignored when reading bytes; decompression is bounded (zip
bombs). Any structural inconsistency is reported so the caller can fail closed.

Compressed streams (gzip, bzip2, xz, raw lzma, zlib: what joblib and ``tar.gz`` use) are
decompressed with a byte limit; formats the gate has no reader for (7z, zstd, lz4, rar) are
recognised by signature so they can be refused without reading them.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from gate.weights.limits import Budget, LimitExceeded

LOCAL_HEADER = b"PK\x03\x04"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
MAX_MEMBERS = 100_000


class ArchiveProblem(ValueError):
    """The archive is malformed in a way a loader might still accept: fail closed."""


@dataclass(frozen=True)
class Member:
    name: str
    offset: int
    """Offset of the member's local header."""
    method: int
    compressed_size: int | None
    size: int | None


def is_zip(handle: BinaryIO, prefix: bytes) -> bool:
    if prefix.startswith(LOCAL_HEADER):
        return True
    handle.seek(0)
    try:
        return zipfile.is_zipfile(handle)
    except (OSError, ValueError):
        return False
    finally:
        handle.seek(0)


def zip_members(handle: BinaryIO, file_size: int, max_members: int = MAX_MEMBERS) -> tuple[list[Member], list[str]]:
    """Members from the central directory and the local headers; and the problems found.
    Raises ``LimitExceeded`` for more than ``max_members``."""
    problems: list[str] = []
    central: dict[int, Member] = {}
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            if len(infos) > max_members:
                raise LimitExceeded("members", max_members, f"zip archive has {len(infos)} members")
            for info in infos:
                central[info.header_offset] = Member(
                    info.filename, info.header_offset, info.compress_type, info.compress_size, info.file_size
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        problems.append(f"zip central directory is unreadable ({exc})")
    local = _walk_local_headers(handle, file_size, max_members)
    for offset, member in local.items():
        known = central.get(offset)
        if known is None:
            if central or not problems:
                problems.append(f"member {member.name!r} has a local header but no central directory entry")
        elif known.name != member.name:
            problems.append(f"member at offset {offset} is named {known.name!r} centrally but {member.name!r} locally")
    members = dict(local)
    members.update(central)  # the central directory's sizes win (data descriptors leave local sizes 0)
    return sorted(members.values(), key=lambda m: m.offset), problems


def _walk_local_headers(handle: BinaryIO, file_size: int, max_members: int) -> dict[int, Member]:
    found: dict[int, Member] = {}
    position = 0
    while position + _LOCAL.size <= file_size:
        if len(found) >= max_members:
            raise LimitExceeded("members", max_members, f"zip archive has over {max_members} local headers")
        handle.seek(position)
        raw = handle.read(_LOCAL.size)
        if len(raw) < _LOCAL.size or not raw.startswith(LOCAL_HEADER):
            break
        _sig, _ver, flags, method, _t, _d, _crc, csize, usize, name_len, extra_len = _LOCAL.unpack(raw)
        name = handle.read(name_len).decode("utf-8", "replace")
        descriptor = bool(flags & 0x08)
        found[position] = Member(name, position, method, None if descriptor and csize == 0 else csize, None if descriptor else usize)
        if descriptor and csize == 0:
            break  # size unknown without the central directory: stop walking here
        position += _LOCAL.size + name_len + extra_len + csize
    return found


def read_member(handle: BinaryIO, member: Member, limit: int, *, truncate: bool = False) -> bytes:
    """A member's content; beyond ``limit`` bytes: the first ``limit`` when ``truncate``, else
    ``LimitExceeded`` (``member_bytes``: an analysis limit, or a zip bomb)."""
    if member.offset < 0:  # zipfile derives offsets from the end record: a mangled one goes negative
        raise ArchiveProblem(f"member {member.name!r}: its local header offset {member.offset} is before the file's start")
    handle.seek(member.offset)
    raw = handle.read(_LOCAL.size)
    if len(raw) < _LOCAL.size or not raw.startswith(LOCAL_HEADER):
        raise ArchiveProblem(f"member {member.name!r}: no local header at offset {member.offset}")
    fields = _LOCAL.unpack(raw)
    name_len, extra_len = fields[9], fields[10]
    start = member.offset + _LOCAL.size + name_len + extra_len
    size = member.compressed_size if member.compressed_size is not None else fields[7]
    handle.seek(start)
    if member.method == zipfile.ZIP_STORED:
        if size > limit:
            if truncate:
                return handle.read(limit)
            raise LimitExceeded("member_bytes", limit, f"member {member.name!r} is {size} bytes")
        return handle.read(size)
    if member.method == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-15)
        out = bytearray()
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(1 << 20, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            try:
                out += inflater.decompress(chunk, limit + 1 - len(out))
            except zlib.error as exc:
                raise ArchiveProblem(f"member {member.name!r} does not inflate ({exc})") from None
            if len(out) > limit or inflater.unconsumed_tail:
                if truncate:
                    return bytes(out[:limit])
                raise LimitExceeded("member_bytes", limit, f"member {member.name!r} inflates past {limit} bytes (zip bomb?)")
        return bytes(out)
    raise ArchiveProblem(f"member {member.name!r} uses unsupported compression method {member.method}")


def is_tar(handle: BinaryIO, file_size: int) -> bool:
    if file_size < 512:
        return False
    handle.seek(257)
    magic = handle.read(5)
    handle.seek(0)
    return magic == b"ustar"


def tar_members(source: BinaryIO, limit: int, max_members: int = MAX_MEMBERS) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each regular member of a tar archive; ``LimitExceeded`` for a member
    over ``limit`` bytes or more than ``max_members`` members."""
    source.seek(0)
    try:
        with tarfile.open(fileobj=source, mode="r:") as archive:
            for count, info in enumerate(archive):
                if count >= max_members:
                    raise LimitExceeded("members", max_members, f"tar archive has over {max_members} members")
                if not info.isfile():
                    continue
                extracted = archive.extractfile(info)
                if extracted is None:
                    continue
                data = extracted.read(limit + 1)
                if len(data) > limit:
                    raise LimitExceeded("member_bytes", limit, f"member {info.name!r} is over {limit} bytes")
                yield info.name, data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveProblem(f"tar archive is unreadable ({exc})") from None


COMPRESSION_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("gzip", b"\x1f\x8b"),
    ("bzip2", b"BZh"),
    ("xz", b"\xfd7zXZ\x00"),
)
OPAQUE_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("7z", b"7z\xbc\xaf\x27\x1c"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lz4", b"\x04\x22\x4d\x18"),
    ("rar", b"Rar!\x1a\x07"),
)
"""Containers the gate has no reader for: recognised by signature and refused unread."""


def opaque_kind(prefix: bytes) -> str | None:
    for kind, magic in OPAQUE_MAGIC:
        if prefix.startswith(magic):
            return kind
    return None


def compression_kind(prefix: bytes) -> str | None:
    """gzip / bzip2 / xz by magic; zlib and raw lzma by their (weaker) headers: the caller
    confirms those by decompressing."""
    for kind, magic in COMPRESSION_MAGIC:
        if prefix.startswith(magic):
            return kind
    if len(prefix) >= 2 and prefix[0] & 0x0F == 8 and prefix[0] >> 4 <= 7 and ((prefix[0] << 8) | prefix[1]) % 31 == 0:
        return "zlib"
    if len(prefix) >= 13 and prefix[0] == 0x5D and prefix[1:5] != b"\x00\x00\x00\x00":
        return "lzma"
    return None


_Zlib = type(zlib.decompressobj())


def _decompressor(kind: str) -> object:
    if kind == "gzip":
        return zlib.decompressobj(31)
    if kind == "zlib":
        return zlib.decompressobj(15)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)


def decompress(kind: str, handle: BinaryIO, limit: int, budget: Budget) -> bytes:
    """The whole decompressed content of a ``kind`` stream from ``handle``'s position (every
    concatenated member, as ``gzip.open`` / ``bz2.open`` / ``lzma.open`` read them).

    ``LimitExceeded`` past ``limit`` bytes; ``ArchiveProblem`` when the bytes do not decompress
    or trailing bytes follow the last stream."""
    out = bytearray()
    engine: Any = _decompressor(kind)
    pending = b""
    while True:
        if not pending:
            pending = handle.read(1 << 20)
            if not pending:
                break
        try:
            if isinstance(engine, _Zlib):
                chunk = engine.decompress(pending, limit + 1 - len(out))
                pending = engine.unconsumed_tail
            else:
                chunk = engine.decompress(pending, limit + 1 - len(out))
                pending = b""
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            raise ArchiveProblem(f"{kind} stream does not decompress ({exc})") from None
        out += chunk
        budget.charge(len(chunk), f"{kind} stream")
        if len(out) > limit:
            raise LimitExceeded("member_bytes", limit, f"{kind} stream decompresses past {limit} bytes (compression bomb?)")
        if engine.eof:
            rest = pending + engine.unused_data
            pending = b""
            if not rest:
                rest = handle.read(1 << 20)
            if not rest:
                return bytes(out)
            if kind in ("zlib", "lzma") or compression_kind(rest[:16]) != kind:
                raise ArchiveProblem(f"{len(rest)}+ bytes follow the end of the {kind} stream")
            engine = _decompressor(kind)
            pending = rest
    if not engine.eof:
        raise ArchiveProblem(f"{kind} stream is truncated")
    return bytes(out)
