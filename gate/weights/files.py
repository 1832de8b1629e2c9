"""One file's format and verdict, decided from its bytes (the extension only names what a loader
would expect when the bytes match no format)."""

from __future__ import annotations

import ast
import io
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gate.weights import archive, gguf_check, pickle_scan, safetensors_check
from gate.weights.interface import FileFormat, FileReport, FileVerdict
from gate.weights.remote_code import is_code

DATA_MEMBER = re.compile(r"(^|/)data/\d+$")
"""Raw tensor bytes in a PyTorch zip: torch never unpickles them, so they count as pickles only
when a complete pickle sits at their start."""
DATA_MEMBER_SNIFF = 1 << 20
NUMPY_MAGIC = b"\x93NUMPY"
INDEX_SUFFIX = ".safetensors.index.json"


@dataclass
class ScannedFile:
    report: FileReport
    tensor_names: list[str] | None = None
    """safetensors only: tensor names (for sharded-index consistency)."""


@dataclass
class _PickleVerdict:
    globals: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)

    def add(self, analysis: pickle_scan.PickleAnalysis, where: str | None) -> None:
        self.globals.update(analysis.globals)
        if analysis.error:
            self.errors.append(f"{where}: {analysis.error}" if where else analysis.error)
        if where is not None:
            self.members.append(where)

    def report(self, path: str, size: int, fmt: FileFormat) -> FileReport:
        unsafe = sorted(pickle_scan.render_global(g) for g in self.globals if not pickle_scan.is_allowed(g))
        rendered = sorted({pickle_scan.render_global(g) for g in self.globals})
        if unsafe:
            verdict, reason = FileVerdict.unsafe, _unsafe_reason(unsafe, self.members)
        elif self.errors:
            verdict, reason = FileVerdict.unparseable, self.errors[0]
        else:
            verdict, reason = FileVerdict.safe_by_allowlist, None
        return FileReport(
            path=path, size=size, format=fmt, verdict=verdict, reason=reason,
            globals=rendered, unsafe_globals=sorted(set(unsafe)), members=sorted(self.members),
        )


def _unsafe_reason(unsafe: list[str], members: list[str]) -> str:
    names = ", ".join(sorted(set(unsafe))[:5]) + (", ..." if len(set(unsafe)) > 5 else "")
    return f"imports {names} (not on the allowlist)"


def scan_file(path: Path, shown: str, *, scan_values: bool = False) -> ScannedFile:
    """Classify and check one file. Never raises for hostile content (only ``OSError`` on I/O)."""
    size = path.stat().st_size
    if is_code(path):
        return ScannedFile(FileReport(path=shown, size=size, format=FileFormat.python, verdict=FileVerdict.code))
    with path.open("rb") as handle:
        prefix = handle.read(64)
        handle.seek(0)
        if prefix.startswith(gguf_check.GGUF_MAGIC):
            return ScannedFile(_gguf(path, shown, size))
        if archive.is_zip(handle, prefix):
            return ScannedFile(_zip(handle, shown, size))
        if safetensors_check.looks_like_safetensors(prefix, size):
            return _safetensors(path, shown, size, scan_values)
        if archive.is_tar(handle, size):
            return ScannedFile(_tar(path, shown, size))
        if prefix.startswith(NUMPY_MAGIC):
            return ScannedFile(_numpy(handle, shown, size))
        handle.seek(0)
        analysis = pickle_scan.analyse_stream(handle)
        if analysis.evidence:
            fmt = FileFormat.pickle
            if analysis.first_value_magic:
                # Legacy torch.save: magic, protocol, sys_info, object, storage keys; then raw bytes.
                handle.seek(0)
                analysis = pickle_scan.analyse_stream(handle, max_pickles=5)
                fmt = FileFormat.pytorch_legacy
                if analysis.error is None and analysis.complete < 5:
                    analysis.error = f"legacy torch stream has {analysis.complete} of its 5 pickles"
            verdict = _PickleVerdict()
            verdict.add(analysis, None)
            return ScannedFile(verdict.report(shown, size, fmt))
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return _safetensors(path, shown, size, scan_values)
    if name.endswith(".gguf"):
        return ScannedFile(_gguf(path, shown, size))
    if name.endswith(INDEX_SUFFIX):
        return ScannedFile(FileReport(path=shown, size=size, format=FileFormat.safetensors_index, verdict=FileVerdict.ok))
    return ScannedFile(FileReport(path=shown, size=size, format=FileFormat.other, verdict=FileVerdict.other))


def _safetensors(path: Path, shown: str, size: int, scan_values: bool) -> ScannedFile:
    try:
        header = safetensors_check.check_file(path)
    except safetensors_check.SafetensorsInvalid as exc:
        return ScannedFile(
            FileReport(path=shown, size=size, format=FileFormat.safetensors, verdict=FileVerdict.invalid, reason=str(exc))
        )
    nonfinite = safetensors_check.nonfinite_tensors(path, header) if scan_values else None
    report = FileReport(path=shown, size=size, format=FileFormat.safetensors, verdict=FileVerdict.ok, nonfinite_tensors=nonfinite)
    return ScannedFile(report, tensor_names=[t.name for t in header.tensors])


def _gguf(path: Path, shown: str, size: int) -> FileReport:
    try:
        gguf_check.check_file(path)
    except gguf_check.GgufInvalid as exc:
        return FileReport(path=shown, size=size, format=FileFormat.gguf, verdict=FileVerdict.invalid, reason=str(exc))
    return FileReport(path=shown, size=size, format=FileFormat.gguf, verdict=FileVerdict.ok)


def _zip(handle: BinaryIO, shown: str, size: int) -> FileReport:
    verdict = _PickleVerdict()
    members, problems = archive.zip_members(handle, size)
    verdict.errors.extend(problems)
    for member in members:
        data_member = bool(DATA_MEMBER.search(member.name))
        try:
            content = archive.read_member(
                handle, member, DATA_MEMBER_SNIFF if data_member else pickle_scan.MAX_PICKLE_BYTES, truncate=data_member
            )
        except archive.ArchiveProblem as exc:
            verdict.errors.append(str(exc))
            continue
        if content.startswith(NUMPY_MAGIC):  # .npz: numpy unpickles object arrays of its members
            payload = _numpy_payload(io.BytesIO(content))
            if isinstance(payload, str):
                verdict.errors.append(f"{member.name}: {payload}")
                verdict.members.append(member.name)
            elif payload is not None:
                verdict.add(payload, member.name)
            continue
        analysis = pickle_scan.analyse_bytes(content, max_pickles=1 if data_member else None)
        if data_member and analysis.complete == 0:
            continue  # raw tensor bytes, not a pickle
        if analysis.evidence:
            verdict.add(analysis, member.name)
    if not verdict.members and not verdict.errors:
        return FileReport(path=shown, size=size, format=FileFormat.pytorch_zip, verdict=FileVerdict.other,
                          reason="zip archive without pickles")
    return verdict.report(shown, size, FileFormat.pytorch_zip)


def _tar(path: Path, shown: str, size: int) -> FileReport:
    verdict = _PickleVerdict()
    try:
        for name, content in archive.tar_members(path, pickle_scan.MAX_PICKLE_BYTES):
            analysis = pickle_scan.analyse_bytes(content)
            if analysis.evidence or name in ("pickle", "storages", "tensors", "sys_info"):
                verdict.add(analysis, name)
    except archive.ArchiveProblem as exc:
        verdict.errors.append(str(exc))
    if not verdict.members and not verdict.errors:
        return FileReport(path=shown, size=size, format=FileFormat.other, verdict=FileVerdict.other, reason="tar archive without pickles")
    return verdict.report(shown, size, FileFormat.pytorch_tar)


def _numpy(handle: BinaryIO, shown: str, size: int) -> FileReport:
    """``.npy``: an object-dtype array is a pickle after the header (numpy's allow_pickle)."""
    payload = _numpy_payload(handle)
    if payload is None:
        return FileReport(path=shown, size=size, format=FileFormat.numpy, verdict=FileVerdict.other)
    verdict = _PickleVerdict()
    if isinstance(payload, str):
        verdict.errors.append(payload)
    else:
        verdict.add(payload, "object array payload")
    return verdict.report(shown, size, FileFormat.numpy)


def _numpy_payload(handle: BinaryIO) -> pickle_scan.PickleAnalysis | str | None:
    """The pickle analysis of an object array's payload; None for plain arrays; a reason string
    when the header is malformed (fail closed: numpy might still read it)."""
    handle.seek(6)
    head = handle.read(4)
    try:
        major = head[0]
        if major == 1:
            (length,) = struct.unpack("<H", head[2:4])
            start = 10
        else:
            handle.seek(8)
            (length,) = struct.unpack("<I", handle.read(4))
            start = 12
        if length > 1 << 20:
            raise ValueError("header over 1 MiB")
        handle.seek(start)
        header = ast.literal_eval(handle.read(length).decode("latin-1"))
        descr = str(header["descr"]) if isinstance(header, dict) else ""
    except (ValueError, SyntaxError, KeyError, IndexError, struct.error, MemoryError, RecursionError, TypeError) as exc:
        return f"numpy header is malformed ({type(exc).__name__})"
    if "O" not in descr:
        return None
    handle.seek(start + length)
    return pickle_scan.analyse_stream(handle)


def check_indexes(scanned: list[tuple[Path, ScannedFile]]) -> list[tuple[Path, ScannedFile]]:
    """Re-check every ``*.safetensors.index.json`` against the shards in its directory."""
    out: list[tuple[Path, ScannedFile]] = []
    for path, item in scanned:
        report = item.report
        if report.format is FileFormat.safetensors_index:
            shards = {
                p.name: s.tensor_names
                for p, s in scanned
                if p.parent == path.parent and s.report.format is FileFormat.safetensors
            }
            try:
                problem = safetensors_check.check_index(path, shards)
            except OSError as exc:
                problem = f"cannot read: {exc.strerror}"
            if problem is not None:
                report = report.model_copy(update={"verdict": FileVerdict.invalid, "reason": problem})
        out.append((path, ScannedFile(report, item.tensor_names)))
    return out
