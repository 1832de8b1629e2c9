"""The base branch's chat templates, for the "template changed" finding (QG517).

Where the base version comes from: the git object of the same file at the PR's base commit (the
ref ``gate check --policies-from`` already reads policies from), never the lockfile. The lockfile
is edited in the same pull request (``gate lock`` after the change) and holds only hashes, so it
can neither be trusted as the base nor produce a diff. Blobs are read with ``git cat-file`` with a
byte cap (a GGUF's metadata comes first, so its prefix is enough); a Git LFS pointer at the base
has no template to compare and gives no finding.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gate.weights import chat_template, gguf_check, identify
from gate.weights.interface import ChatTemplateReport
from gate.weights.limits import LimitExceeded, ScanLimits

GIT_SECONDS = 30
GGUF_PREFIX_BYTES = 64 << 20
LFS_POINTER = b"version https://git-lfs"

Templates = dict[tuple[str, str], str]


def templates_of_bytes(data: bytes, name: str, limits: ScanLimits) -> Templates:
    """(source, name) -> template text of a tokenizer config, ``*.jinja`` file or GGUF (prefix)."""
    found: list[tuple[str, str, str]] = []
    if data.startswith(gguf_check.GGUF_MAGIC):
        try:
            _, facts, _, _ = gguf_check.read_metadata(data, len(data), limits)
        except (gguf_check.GgufInvalid, LimitExceeded):
            return {}
        found = chat_template.templates_in_gguf(facts.strings, chat_template.GGUF_TEMPLATE_KEY)
    elif identify.suffix_of(name) in identify.TEMPLATE_SUFFIXES:
        found = [("file", "default", data.decode("utf-8", "replace"))]
    else:
        try:
            found = chat_template.templates_in_config(json.loads(data.decode("utf-8")), "chat_template")
        except (ValueError, RecursionError):
            return {}
    return {(source, template_name): text for source, template_name, text in found}


def template_text(path: Path, template: ChatTemplateReport, limits: ScanLimits) -> str | None:
    """The head version of one template, read again from the file on disk."""
    try:
        with path.open("rb") as handle:
            data = handle.read(GGUF_PREFIX_BYTES if path.suffix.lower() == ".gguf" else limits.json_bytes)
    except OSError:
        return None
    return templates_of_bytes(data, path.name, limits).get((template.source, template.name))


def base_templates(root: Path, base_ref: str, relative: str, limits: ScanLimits) -> Templates | None:
    """The templates of ``relative`` at ``base_ref``: {} when the file is new in the PR; None when
    the base cannot be read (not a git repository, an LFS pointer): no diff then."""
    spec = f"{base_ref}:{relative}"
    try:
        probe = subprocess.run(
            ["git", "-C", str(root), "cat-file", "-e", spec], capture_output=True, timeout=GIT_SECONDS, check=False
        )
        if probe.returncode != 0:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}"],
                capture_output=True, timeout=GIT_SECONDS, check=False,
            )
            return {} if commit.returncode == 0 else None
        cap = GGUF_PREFIX_BYTES if relative.lower().endswith(".gguf") else limits.json_bytes
        with subprocess.Popen(
            ["git", "-C", str(root), "cat-file", "blob", spec], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as child:
            assert child.stdout is not None
            data = child.stdout.read(cap)
            child.kill()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if data.startswith(LFS_POINTER):
        return None
    return templates_of_bytes(data, relative, limits)


__all__ = ["base_templates", "template_text", "templates_of_bytes"]
