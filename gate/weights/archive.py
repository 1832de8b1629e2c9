"""Members of zip and tar archives, read defensively for pickle analysis.

Zip: members come from the central directory (as Python's ``zipfile`` and PyTorch read it) AND
from a walk over local file headers, so a member hidden from one view is still seen; flag bits
(encryption, data descriptors) are ignored when reading bytes; decompression is bounded (zip
bombs). Any structural inconsistency is reported so the caller can fail closed.
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


def zip_members(handle: BinaryIO, file_size: int) -> tuple[list[Member], list[str]]:
    """Members from the central directory and the local headers; and the problems found."""
    problems: list[str] = []
    central: dict[int, Member] = {}
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist()[:MAX_MEMBERS]:
                central[info.header_offset] = Member(
                    info.filename, info.header_offset, info.compress_type, info.compress_size, info.file_size
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        problems.append(f"zip central directory is unreadable ({exc})")
    local = _walk_local_headers(handle, file_size)
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


def _walk_local_headers(handle: BinaryIO, file_size: int) -> dict[int, Member]:
    found: dict[int, Member] = {}
    position = 0
    while position + _LOCAL.size <= file_size and len(found) < MAX_MEMBERS:
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
    ``ArchiveProblem`` (an analysis limit, or a zip bomb)."""
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
            raise ArchiveProblem(f"member {member.name!r} is over the {limit}-byte analysis limit")
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
                raise ArchiveProblem(f"member {member.name!r} inflates past the {limit}-byte analysis limit (zip bomb?)")
        return bytes(out)
    raise ArchiveProblem(f"member {member.name!r} uses unsupported compression method {member.method}")


def is_tar(handle: BinaryIO, file_size: int) -> bool:
    if file_size < 512:
        return False
    handle.seek(257)
    magic = handle.read(5)
    handle.seek(0)
    return magic == b"ustar"


def tar_members(path: Path, limit: int) -> Iterator[tuple[str, bytes]]:
    """(name, first bytes up to ``limit``) of each regular member of a tar archive."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            for count, info in enumerate(archive):
                if count >= MAX_MEMBERS:
                    raise ArchiveProblem(f"tar archive has over {MAX_MEMBERS} members")
                if not info.isfile():
                    continue
                extracted = archive.extractfile(info)
                if extracted is None:
                    continue
                data = extracted.read(limit + 1)
                if len(data) > limit:
                    raise ArchiveProblem(f"member {info.name!r} is over the {limit}-byte analysis limit")
                yield info.name, data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveProblem(f"tar archive is unreadable ({exc})") from None
