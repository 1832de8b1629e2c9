"""One file's format and verdict, decided from its bytes: fail closed by construction.

A file is accepted only when a parser positively identifies ALL of it as a known-safe type
(safetensors with a valid header, GGUF with valid metadata, JSON, text, SentencePiece, a plain
numpy array, a chat template) and its content checks pass. Everything else gets a blocking
verdict: a pickle (whatever its extension; two readers, so a parser differential cannot hide
one), an archive or compressed stream (opened recursively, within limits, every member judged the
same way), a container the gate cannot open (7z, zstd, lz4, rar), a limit hit, a FIFO or symlink
loop, or bytes nothing identifies (``unknown``).
"""

from __future__ import annotations

import io
import mmap
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from gate.weights import archive, chat_template, gguf_check, identify, pickle_frames, pickle_scan, safetensors_check
from gate.weights.interface import ChatTemplateReport, FileFormat, FileReport, FileVerdict
from gate.weights.limits import DEFAULT_LIMITS, Budget, LimitExceeded, ScanLimits
from gate.weights.remote_code import is_code

DATA_MEMBER = re.compile(r"(^|/)data/\d+$")
"""Raw tensor bytes in a PyTorch zip: torch never unpickles them, so they count as pickles only
when a pickle sits at their start."""
DATA_MEMBER_SNIFF = 64 << 10
"""Bytes of a raw tensor member read to look for a pickle at its start (a longer pickle there is
truncated, so unparseable: still blocked). Not charged to ``total_bytes``: a 10 GB checkpoint has
thousands of them; the members count and the time limit bound them."""
INDEX_SUFFIX = ".safetensors.index.json"
NESTING = "!/"
"""Joins the member paths of nested containers: ``inner.zip!/archive/data.pkl``."""

RANK: dict[FileVerdict, int] = {
    FileVerdict.unsafe: 0,
    FileVerdict.unparseable: 1,
    FileVerdict.limit: 2,
    FileVerdict.not_regular: 3,
    FileVerdict.code: 4,
    FileVerdict.invalid: 5,
    FileVerdict.unknown: 6,
    FileVerdict.container: 7,
    FileVerdict.safe_by_allowlist: 8,
    FileVerdict.ok: 9,
    FileVerdict.other: 9,
}
"""Worst first: a container's verdict is its worst member's (or its own, when worse)."""
_PICKLE = (FileVerdict.unsafe, FileVerdict.unparseable, FileVerdict.safe_by_allowlist)
_COMPRESSED_FORMAT = {
    "gzip": FileFormat.gzip, "bzip2": FileFormat.bzip2, "xz": FileFormat.xz, "lzma": FileFormat.lzma, "zlib": FileFormat.zlib,
}


@dataclass
class ScannedFile:
    report: FileReport
    tensor_names: list[str] | None = None
    """safetensors only: tensor names (for sharded-index consistency)."""
    header: safetensors_check.SafetensorsHeader | None = None
    """safetensors only: the validated header (for the value check during lockfile hashing)."""


@dataclass
class _Judged:
    format: FileFormat
    verdict: FileVerdict
    reason: str | None = None
    member: str | None = None
    limit: str | None = None
    globals: set[str] = field(default_factory=set)
    pickle_members: list[str] = field(default_factory=list)
    header: safetensors_check.SafetensorsHeader | None = None
    templates: list[ChatTemplateReport] = field(default_factory=list)

    def report(self, path: str, size: int) -> FileReport:
        unsafe = sorted({pickle_scan.render_global(g) for g in self.globals if not pickle_scan.is_allowed(g)})
        return FileReport(
            path=path, size=size, format=self.format, verdict=self.verdict, reason=self.reason,
            globals=sorted({pickle_scan.render_global(g) for g in self.globals}), unsafe_globals=unsafe,
            members=sorted(set(self.pickle_members)), member=self.member, limit=self.limit, chat_templates=self.templates,
        )


def _unsafe_reason(globals_: set[str]) -> str:
    unsafe = sorted({pickle_scan.render_global(g) for g in globals_ if not pickle_scan.is_allowed(g)})
    return "imports " + ", ".join(unsafe[:5]) + (", ..." if len(unsafe) > 5 else "") + " (not on the allowlist)"


def scan_file(
    path: Path, shown: str, *, scan_values: bool = False, limits: ScanLimits = DEFAULT_LIMITS, templates: bool = True
) -> ScannedFile:
    """Classify and check one file. Never raises for hostile content, and never opens anything
    but a regular file (only ``OSError`` on I/O of a regular file)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        what = "a symlink loop" if exc.errno == 40 else "a dangling symlink" if path.is_symlink() else "unreadable"
        return ScannedFile(_not_regular(shown, f"is {what} ({exc.strerror})"))
    if stat.S_ISDIR(info.st_mode):
        return ScannedFile(_not_regular(
            shown, "is a symlink to a directory: not followed, so nothing under it was scanned"))
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device or special file"
        return ScannedFile(_not_regular(shown, f"is {kind}, not a regular file: never opened"))
    size = info.st_size
    if is_code(path):
        return ScannedFile(FileReport(path=shown, size=size, format=FileFormat.python, verdict=FileVerdict.code))
    scanner = _Scanner(limits, Budget(limits), templates)
    with path.open("rb") as handle:
        judged = scanner.judge(_Source(handle, size, path.name, path=path), depth=0)
    nonfinite = None
    if scan_values and judged.header is not None and judged.verdict is FileVerdict.ok:
        nonfinite = safetensors_check.nonfinite_tensors(path, judged.header)
    report = judged.report(shown, size)
    if nonfinite is not None:
        report = report.model_copy(update={"nonfinite_tensors": nonfinite})
    names = [t.name for t in judged.header.tensors] if judged.header is not None else None
    return ScannedFile(report, tensor_names=names, header=judged.header)


def _not_regular(shown: str, reason: str) -> FileReport:
    return FileReport(path=shown, size=0, format=FileFormat.special, verdict=FileVerdict.not_regular, reason=reason)


@dataclass
class _Source:
    handle: BinaryIO
    size: int
    name: str
    path: Path | None = None
    """Set for a file on disk (memory-mapped for the byte-level walks); None for a member."""

    def data(self) -> bytes | mmap.mmap:
        if self.path is None:
            assert isinstance(self.handle, io.BytesIO)
            return self.handle.getbuffer().tobytes()
        if self.size == 0:
            return b""
        return mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)


class _Scanner:
    def __init__(self, limits: ScanLimits, budget: Budget, templates: bool) -> None:
        self.limits = limits
        self.budget = budget
        self.templates = templates

    def judge(self, source: _Source, depth: int) -> _Judged:
        try:
            self.budget.tick(source.name)
            return self._judge(source, depth)
        except LimitExceeded as exc:
            return _Judged(FileFormat.unknown, FileVerdict.limit, reason=str(exc), limit=exc.limit)

    def _judge(self, source: _Source, depth: int) -> _Judged:
        handle, size, name = source.handle, source.size, source.name
        handle.seek(0)
        prefix = handle.read(64)
        handle.seek(0)
        if (kind := archive.opaque_kind(prefix)) is not None:
            return _Judged(FileFormat.sevenzip, FileVerdict.unparseable,
                           reason=f"{kind} archive: the gate has no {kind} reader, and such an archive can hold pickles")
        if archive.is_zip(handle, prefix):
            # Before GGUF: torch.load finds a zip by its end record, so a GGUF/zip polyglot is a zip.
            return self._zip(source, depth)
        if prefix.startswith(gguf_check.GGUF_MAGIC):
            return self._gguf(source)
        if safetensors_check.looks_like_safetensors(prefix, size):
            return self._safetensors(source)
        if archive.is_tar(handle, size):
            return self._tar(source, depth)
        if (kind := archive.compression_kind(prefix)) is not None:
            judged = self._compressed(source, kind, depth)
            if judged is not None:
                return judged
        if prefix.startswith(identify.NUMPY_MAGIC):
            return self._numpy(source)
        pickled = self._pickle(source, FileFormat.pickle)
        if pickled is not None:
            return pickled
        lowered = name.lower()
        if lowered.endswith(".safetensors"):
            return self._safetensors(source)
        if lowered.endswith(".gguf"):
            return self._gguf(source)
        try:
            found = identify.identify(handle, size, name, self.limits)
        except identify.NotIdentified as exc:
            return _Judged(FileFormat.unknown, FileVerdict.unknown, reason=str(exc))
        if found is None:
            suffix = identify.suffix_of(name)
            if suffix in identify.LOADER_SUFFIXES:
                why = f"named `{suffix}`, which a loader would unpickle, unwrap or run, but the bytes are no format the gate reads"
            else:
                why = "no parser identifies these bytes as a known-safe type (safetensors, GGUF, JSON, text, SentencePiece)"
            return _Judged(FileFormat.unknown, FileVerdict.unknown, reason=why)
        judged = _Judged(found.format, FileVerdict.other)
        if lowered.endswith(INDEX_SUFFIX) and found.format is FileFormat.json:
            judged = _Judged(FileFormat.safetensors_index, FileVerdict.ok)
        if self.templates and depth == 0:
            if found.format is FileFormat.json:
                judged.templates = self._templates(chat_template.templates_in_config(found.value, "chat_template"))
            elif found.format is FileFormat.chat_template and found.text is not None:
                judged.templates = self._templates([("file", "default", found.text)])
        return judged

    def _templates(self, found: list[tuple[str, str, str]]) -> list[ChatTemplateReport]:
        return [chat_template.check_template(src, name, text, self.limits) for src, name, text in found]

    # -- formats -------------------------------------------------------------------------

    def _safetensors(self, source: _Source) -> _Judged:
        source.handle.seek(0)
        try:
            header = safetensors_check.read_header(source.handle, source.size, self.limits)
        except safetensors_check.SafetensorsInvalid as exc:
            return _Judged(FileFormat.safetensors, FileVerdict.invalid, reason=str(exc))
        except LimitExceeded as exc:
            return _Judged(FileFormat.safetensors, FileVerdict.limit, reason=str(exc), limit=exc.limit)
        return _Judged(FileFormat.safetensors, FileVerdict.ok, header=header)

    def _gguf(self, source: _Source) -> _Judged:
        data = source.data()
        try:
            facts = gguf_check.check_data(data, source.size, self.limits)
        except gguf_check.GgufInvalid as exc:
            return _Judged(FileFormat.gguf, FileVerdict.invalid, reason=str(exc))
        except LimitExceeded as exc:
            return _Judged(FileFormat.gguf, FileVerdict.limit, reason=str(exc), limit=exc.limit)
        finally:
            if isinstance(data, mmap.mmap):
                data.close()
        judged = _Judged(FileFormat.gguf, FileVerdict.ok)
        if self.templates:
            judged.templates = self._templates(chat_template.templates_in_gguf(facts.strings, chat_template.GGUF_TEMPLATE_KEY))
        return judged

    def _pickle(self, source: _Source, fmt: FileFormat, *, start: int = 0, max_pickles: int | None = None) -> _Judged | None:
        """A pickle verdict when the bytes are a pickle to either reader; None otherwise."""
        handle = source.handle
        handle.seek(start)
        analysis = pickle_scan.analyse_stream(handle, max_pickles=max_pickles)
        if analysis.evidence and analysis.first_value_magic and start == 0:
            # Legacy torch.save: magic, protocol, sys_info, object, storage keys; then raw bytes.
            handle.seek(0)
            analysis = pickle_scan.analyse_stream(handle, max_pickles=5)
            fmt = FileFormat.pytorch_legacy
            if analysis.error is None and analysis.complete < 5:
                analysis.error = f"legacy torch stream has {analysis.complete} of its 5 pickles"
        globals_ = set(analysis.globals)
        executes = False
        if analysis.error is not None and analysis.limit is None:
            data = source.data()
            try:
                view = data[start:] if start else data
                frames = pickle_frames.walk_frames(view, limit=pickle_scan.MAX_PICKLE_BYTES, deadline=self.budget.deadline)
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()
            if frames.executes:
                executes = True
                globals_ |= set(frames.globals)
        if not analysis.evidence and not executes:
            return None
        if any(not pickle_scan.is_allowed(g) for g in globals_):
            return _Judged(fmt, FileVerdict.unsafe, reason=_unsafe_reason(globals_), globals=globals_)
        if analysis.limit is not None:
            return _Judged(fmt, FileVerdict.limit, reason=analysis.error, limit=analysis.limit, globals=globals_)
        if analysis.error is not None:
            reason = analysis.error
            if executes:
                reason += "; the C unpickler reads past that point (parser differential)"
            return _Judged(fmt, FileVerdict.unparseable, reason=reason, globals=globals_)
        return _Judged(fmt, FileVerdict.safe_by_allowlist, globals=globals_)

    def _numpy(self, source: _Source) -> _Judged:
        """``.npy``: an object-dtype array is a pickle after the header (numpy's allow_pickle)."""
        try:
            header, data_start = identify.numpy_header(source.handle)
        except identify.NotIdentified as exc:
            return _Judged(FileFormat.numpy, FileVerdict.unparseable, reason=f"{exc}; numpy might still read it")
        if identify.is_object_dtype(header["descr"]):
            judged = self._pickle(source, FileFormat.numpy, start=data_start)
            if judged is None:
                return _Judged(FileFormat.numpy, FileVerdict.unparseable, reason="object array whose payload is no pickle the gate can read")
            return judged
        try:
            identify.check_plain_numpy(source.handle, source.size)
        except identify.NotIdentified as exc:
            return _Judged(FileFormat.numpy, FileVerdict.unknown, reason=str(exc))
        return _Judged(FileFormat.numpy, FileVerdict.other)

    def _compressed(self, source: _Source, kind: str, depth: int) -> _Judged | None:
        self._enter(depth, kind)
        source.handle.seek(0)
        try:
            content = archive.decompress(kind, source.handle, self.limits.member_bytes, self.budget)
        except archive.ArchiveProblem as exc:
            if kind in ("zlib", "lzma"):
                return None  # a weak signature that did not decompress: judge the bytes as they are
            return _Judged(_COMPRESSED_FORMAT[kind], FileVerdict.unparseable, reason=str(exc))
        inner = self.judge(_Source(io.BytesIO(content), len(content), f"<{kind}>"), depth + 1)
        own = f"{kind}-compressed stream ({len(content)} bytes of {inner.format.value}): loaders such as joblib decompress it"
        return _combine(_COMPRESSED_FORMAT[kind], FileVerdict.container, own, [(f"<{kind}>", inner)], [])

    def _zip(self, source: _Source, depth: int) -> _Judged:
        self._enter(depth, "zip")
        handle = source.handle
        try:
            members, problems = archive.zip_members(handle, source.size, self.limits.members)
        except LimitExceeded as exc:
            return _Judged(FileFormat.zip, FileVerdict.limit, reason=str(exc), limit=exc.limit)
        torch_layout = any(m.name.endswith("data.pkl") for m in members)
        children: list[tuple[str, _Judged]] = []
        for member in members:
            if member.name.endswith("/") and not member.size:
                continue  # a directory entry
            data_member = torch_layout and bool(DATA_MEMBER.search(member.name))
            try:
                content = archive.read_member(
                    handle, member, DATA_MEMBER_SNIFF if data_member else self.limits.member_bytes, truncate=data_member
                )
            except archive.ArchiveProblem as exc:
                problems.append(str(exc))
                continue
            except LimitExceeded as exc:
                children.append((member.name, _Judged(FileFormat.unknown, FileVerdict.limit, reason=str(exc), limit=exc.limit)))
                continue
            if not data_member:
                self.budget.charge(len(content), f"zip member {member.name!r}")
            child = _Source(io.BytesIO(content), len(content), member.name)
            if data_member:
                judged = self._pickle(child, FileFormat.pickle, max_pickles=1)
                if judged is not None and (judged.verdict is not FileVerdict.unparseable or judged.globals):
                    children.append((member.name, judged))
                continue  # otherwise raw tensor bytes, not a pickle
            children.append((member.name, self.judge(child, depth + 1)))
        if torch_layout:
            return _combine(FileFormat.pytorch_zip, None, None, children, problems)
        own = f"zip archive of {len(children)} member(s)"
        return _combine(FileFormat.zip, FileVerdict.container, own, children, problems)

    def _tar(self, source: _Source, depth: int) -> _Judged:
        self._enter(depth, "tar")
        children: list[tuple[str, _Judged]] = []
        problems: list[str] = []
        names: list[str] = []
        try:
            for name, content in archive.tar_members(source.handle, self.limits.member_bytes, self.limits.members):
                self.budget.charge(len(content), f"tar member {name!r}")
                names.append(name)
                children.append((name, self.judge(_Source(io.BytesIO(content), len(content), name), depth + 1)))
        except archive.ArchiveProblem as exc:
            problems.append(str(exc))
        torch_layout = "pickle" in names and "sys_info" in names
        if torch_layout:
            # Legacy tar checkpoints: ``storages``/``tensors`` interleave pickles with raw bytes
            # (judged unparseable above: fail closed).
            return _combine(FileFormat.pytorch_tar, None, None, children, problems)
        return _combine(FileFormat.tar, FileVerdict.container, f"tar archive of {len(children)} member(s)", children, problems)

    def _enter(self, depth: int, kind: str) -> None:
        if depth >= self.limits.archive_depth:
            raise LimitExceeded("archive_depth", self.limits.archive_depth, f"{kind} container nested {depth} levels deep")


def _combine(
    fmt: FileFormat, own: FileVerdict | None, own_reason: str | None, children: list[tuple[str, _Judged]], problems: list[str]
) -> _Judged:
    """A container's verdict: the worst of its own, its members' and its structural problems."""
    out = _Judged(fmt, own or FileVerdict.ok, reason=own_reason)
    for name, child in children:
        out.globals |= child.globals
        if child.verdict in _PICKLE or child.pickle_members:
            out.pickle_members.append(name)
            out.pickle_members.extend(f"{name}{NESTING}{m}" for m in child.pickle_members)
    worst: tuple[str, _Judged] | None = None
    for name, child in children:
        if worst is None or RANK[child.verdict] < RANK[worst[1].verdict]:
            worst = (name, child)
    if problems and (worst is None or RANK[FileVerdict.unparseable] < RANK[worst[1].verdict]):
        return replace(out, verdict=FileVerdict.unparseable, reason=problems[0])
    if worst is None or (own is not None and RANK[own] <= RANK[worst[1].verdict]):
        if own is None:
            return replace(out, verdict=FileVerdict.unknown, reason="archive holds no members")
        return out
    name, child = worst
    member = f"{name}{NESTING}{child.member}" if child.member else name
    if child.verdict is FileVerdict.unsafe:
        reason = _unsafe_reason(out.globals)
    elif child.verdict is FileVerdict.safe_by_allowlist:
        reason = None
    else:
        reason = f"{name}: {child.reason or child.verdict.value}"
    return replace(out, verdict=child.verdict, reason=reason, member=member, limit=child.limit)


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
        out.append((path, ScannedFile(report, item.tensor_names, item.header)))
    return out
