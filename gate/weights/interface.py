"""The weight stage's result types: what ``gate check`` learned about a model's files.

``WeightScan`` is the fact the QG5xx rules read. It is a frozen pydantic model whose JSON form
round-trips (``WeightScan.model_validate(scan.model_dump(mode="json"))``), so rule case files and
the ``weights`` section of a ``GateResult`` carry it verbatim. Nothing here does I/O.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gate.errors import InputError
from gate.frozen import Frozen


class WeightsError(InputError):
    """A weight-stage input the gate cannot use at all (e.g. a lockfile that is not valid JSON)."""


class SourceKind(StrEnum):
    """Where the baseline's weights come from (``model.path`` / ``model.gguf`` / ``model.hub``)."""

    path = "path"
    gguf = "gguf"
    hub = "hub"


class FileFormat(StrEnum):
    """A file's format, decided from its bytes (never from its extension)."""

    safetensors = "safetensors"
    safetensors_index = "safetensors-index"
    pickle = "pickle"
    """A raw pickle stream (any protocol)."""
    pytorch_zip = "pytorch-zip"
    """A zip archive (PyTorch >= 1.6 ``torch.save``) holding one or more pickles."""
    pytorch_legacy = "pytorch-legacy"
    """The pre-1.6 ``torch.save`` stream: five pickles followed by raw storage bytes."""
    pytorch_tar = "pytorch-tar"
    """The oldest ``torch.save`` format: a tar archive of pickles."""
    numpy = "numpy"
    """A ``.npy`` array (plain: inert; object dtype: a pickle payload)."""
    gguf = "gguf"
    python = "python"
    """Code (``*.py``, ``*.pyc``): remote code."""
    json = "json"
    """A JSON document (config, tokenizer, generation config...)."""
    text = "text"
    """UTF-8 text without control bytes (vocabularies, merges, README, LICENSE)."""
    sentencepiece = "sentencepiece"
    """A SentencePiece ``ModelProto`` (``tokenizer.model``)."""
    chat_template = "chat-template"
    """A Jinja chat template file (``chat_template.jinja``)."""
    zip = "zip"
    """A zip archive that is not a PyTorch checkpoint (``.npz`` included)."""
    tar = "tar"
    """A tar archive that is not a legacy PyTorch checkpoint."""
    gzip = "gzip"
    bzip2 = "bzip2"
    xz = "xz"
    lzma = "lzma"
    zlib = "zlib"
    sevenzip = "7z"
    """7z, zstd, lz4 and rar: containers the gate cannot open, refused unread (``reason`` names which)."""
    special = "special"
    """Not a regular file: a FIFO, socket, device, symlinked directory, symlink loop or dangling symlink."""
    unknown = "unknown"
    """Bytes no parser positively identified."""
    other = "other"
    """Kept for result files written before fail-closed identification (no new scan emits it)."""


class FileVerdict(StrEnum):
    ok = "ok"
    """A valid safetensors/GGUF file (or index)."""
    invalid = "invalid"
    """A safetensors/GGUF file (or index) that violates its format; ``reason`` says how."""
    safe_by_allowlist = "safe-by-allowlist"
    """A pickle whose every global is on the allowlist. Still denied by default (QG505)."""
    unsafe = "unsafe"
    """A pickle that imports something off the allowlist."""
    unparseable = "unparseable"
    """A pickle that cannot be analysed (malformed, truncated, over a limit): treated as unsafe."""
    code = "code"
    """A Python source or bytecode file."""
    unknown = "unknown"
    """Not positively identified as a known-safe type: blocks unless a policy allows the type (QG512)."""
    container = "container"
    """An archive or compressed stream whose contents passed: still blocked (QG513), since the
    gate vouches only for files a loader reads as they are."""
    limit = "limit-exceeded"
    """A bounded-work limit was hit before the analysis finished (``limit`` names it; QG514)."""
    not_regular = "not-regular"
    """A FIFO, socket, device, symlinked directory, symlink loop or dangling symlink (QG518): never opened."""
    other = "other"
    """A positively identified inert file (JSON, text, tokenizer, SentencePiece, plain array)."""


class ChatTemplateReport(Frozen):
    """One Jinja chat template found in a model file."""

    source: str
    """Where it was found: ``chat_template`` (tokenizer_config.json), ``tokenizer.chat_template``
    (GGUF metadata) or ``file`` (a ``*.jinja`` file)."""
    name: str = "default"
    """The template's name (``default``, or e.g. ``tool_use``)."""
    sha256: str
    hostile: list[str] = Field(default_factory=list)
    """Constructs that reach outside the template, ``line N: what``; a sandbox SecurityError too."""
    render_error: str | None = None
    """Why the template does not compile or render in Jinja's sandbox (None when it renders)."""
    changed: bool = False
    """The template differs from the base branch's version of the same file (or is new there)."""
    diff: str | None = None
    """Unified diff base -> head (capped), when ``changed``."""


class FileReport(Frozen):
    """One file of the model, with the verdict of its format check."""

    path: str
    """Repository-relative path (or the path as given to ``gate scan``)."""
    size: int
    format: FileFormat
    verdict: FileVerdict
    reason: str | None = None
    """Why the file is invalid, unsafe or unparseable (first problem found)."""
    globals: list[str] = Field(default_factory=list)
    """Pickles only: every global the opcode stream imports, as ``module.name``, sorted."""
    unsafe_globals: list[str] = Field(default_factory=list)
    """Pickles only: the globals that are not on the allowlist."""
    members: list[str] = Field(default_factory=list)
    """Archives only: the members that hold pickles."""
    nonfinite_tensors: list[str] | None = None
    """safetensors only: tensors holding NaN/Inf values; None when values were not scanned."""
    member: str | None = None
    """Containers: the member path the verdict comes from (nested containers joined by ``!/``,
    e.g. ``inner.zip!/archive/data.pkl``; a compressed stream's content is ``<gzip>``)."""
    limit: str | None = None
    """``limit-exceeded`` only: the limit hit (a ``ScanLimits`` field, ``pickle_bytes`` or ``pickle_seconds``)."""
    chat_templates: list[ChatTemplateReport] = Field(default_factory=list)
    """Chat templates in this file (tokenizer_config.json, GGUF metadata, ``*.jinja``)."""

    @property
    def shown(self) -> str:
        """The path as findings name it: ``path`` or ``path (member m)``."""
        return f"{self.path} (member {self.member})" if self.member else self.path

    @property
    def is_pickle(self) -> bool:
        return self.verdict in (FileVerdict.safe_by_allowlist, FileVerdict.unsafe, FileVerdict.unparseable)


class LockState(StrEnum):
    not_declared = "not-declared"
    """The spec has no ``model.lockfile``."""
    missing = "missing"
    """The spec names a lockfile that does not exist."""
    ok = "ok"
    mismatch = "mismatch"
    """At least one file changed, is missing, or is not in the lockfile (or the revision differs)."""
    not_verified = "not-verified"
    """The weights are not present locally (a hub model not fetched yet) or not confined."""


class LockChange(Frozen):
    """A file whose bytes differ from what the lockfile pins."""

    path: str
    expected_sha256: str
    actual_sha256: str
    expected_size: int
    actual_size: int


class LockStatus(Frozen):
    lockfile: str | None = None
    """Repository-relative path of the lockfile."""
    state: LockState
    changed: list[LockChange] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    """Pinned by the lockfile, absent on disk (paths relative to the model directory)."""
    extra: list[str] = Field(default_factory=list)
    """On disk, not in the lockfile."""
    not_regular: list[str] = Field(default_factory=list)
    """Entries that are not regular files (FIFO, device, symlink loop): never opened or hashed."""
    revision: str | None = None
    """Revision recorded in the lockfile (hub models)."""
    expected_revision: str | None = None
    """Revision the spec pins (hub models)."""

    @property
    def revision_mismatch(self) -> bool:
        return self.expected_revision is not None and self.revision != self.expected_revision


class RemoteCode(Frozen):
    """Evidence that loading the model would run code from the model's repository."""

    py_files: list[str] = Field(default_factory=list)
    auto_map: list[str] = Field(default_factory=list)
    """``file: class`` entries of ``auto_map`` in config.json (or any other *.json)."""
    auto_map_files: list[str] = Field(default_factory=list)
    """The JSON files that declare ``auto_map``."""
    trust_remote_code: bool = False
    """The spec sets ``model.trust_remote_code: true``."""

    @property
    def present(self) -> bool:
        return bool(self.py_files or self.auto_map_files or self.trust_remote_code)


class ConfinementViolation(Frozen):
    """A spec path that resolves outside the repository root (never read)."""

    key: str
    """Dotted spec key, e.g. ``calibration.source`` or ``quality.metrics[0].task``."""
    path: str
    """The path as written in the spec (or the offending file inside a model directory)."""
    reason: str


class WeightScan(Frozen):
    """Everything the weight stage learned; the QG5xx rules turn it into findings."""

    source: SourceKind
    location: str | None = None
    """Repository-relative model directory or GGUF file (the hub snapshot path for hub models)."""
    fetched: bool = True
    """False when the weights are not present locally (an error for path/gguf, not for hub)."""
    files: list[FileReport] = Field(default_factory=list)
    lock: LockStatus = Field(default_factory=lambda: LockStatus(state=LockState.not_declared))
    remote_code: RemoteCode = Field(default_factory=RemoteCode)
    confinement: list[ConfinementViolation] = Field(default_factory=list)
    values_scanned: bool = False
    """True when safetensors tensors were streamed for NaN/Inf values."""

    def model_file(self, relative: str) -> str:
        """A path relative to the model directory, as reviewers see it (repository-relative)."""
        if self.location is None:
            return relative
        if self.source is SourceKind.gguf:
            return self.location
        return f"{self.location}/{relative}"

    def with_verdict(self, *verdicts: FileVerdict) -> list[FileReport]:
        return [f for f in self.files if f.verdict in verdicts]

    def chat_templates(self) -> list[tuple[FileReport, ChatTemplateReport]]:
        """Every chat template found, with the file it is in."""
        return [(f, t) for f in self.files for t in f.chat_templates]

    @property
    def blocked_by_content(self) -> bool:
        """Unsafe content that must never be loaded, whatever the policy says."""
        return bool(
            self.with_verdict(
                FileVerdict.unsafe, FileVerdict.unparseable, FileVerdict.limit, FileVerdict.not_regular
            )
            or any(t.hostile for _, t in self.chat_templates())
            or self.remote_code.present
            or self.confinement
        )


__all__ = [
    "ChatTemplateReport",
    "ConfinementViolation",
    "FileFormat",
    "FileReport",
    "FileVerdict",
    "LockChange",
    "LockState",
    "LockStatus",
    "RemoteCode",
    "SourceKind",
    "WeightScan",
    "WeightsError",
]
