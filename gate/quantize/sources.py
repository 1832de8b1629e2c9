"""Model sources: local HF directory, GGUF file, pinned hub snapshot -> a local baseline directory.

``prepare_baseline`` resolves the spec's ``model`` section to a local Hugging Face directory with
safetensors weights and a tokenizer:

- ``path:`` the directory itself (the weights stage has already verified its lockfile);
- ``gguf:`` a checkpoint converted with transformers (``gguf_file=``, dequantized to fp32),
  cached under ``<cache>/baselines/gguf-<sha256 of the GGUF>``;
- ``hub:`` ``snapshot_download(repo, revision=<pinned 40-hex commit>)`` of the config, safetensors
  and tokenizer files only (``HUB_FILES``: never pickle checkpoints or code), into the Hugging Face
  cache the weight stage scans (``gate.weights.scan.hub_cache_dir``). Tested against a local fake
  Hub (``tests/fake_hub.py``); Hub errors become ``InputError``/``BackendError`` at the spec key.

Torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from gate.cache import ContentCache, sha256_file
from gate.errors import BackendError, InputError, SourceLocation
from gate.spec.loader import LoadedSpec
from gate.spec.models import HEX40

HUB_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja")
"""What a hub snapshot downloads: config, safetensors weights, tokenizer and generation config.
Pickle checkpoints (``*.bin``, ``*.pt``), remote code (``*.py``) and anything else are never fetched."""

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json",
)


@dataclass(frozen=True)
class Baseline:
    """The full-precision reference, as a local Hugging Face directory."""

    path: Path
    """Local directory with config.json, *.safetensors and a tokenizer."""
    identity: str
    """sha256 of the lockfile (or of the GGUF / the source files when there is none)."""
    source_kind: Literal["path", "gguf", "hub"]
    source: str
    """The spec's value (path, gguf file or hub id@revision)."""


def prepare_baseline(loaded: LoadedSpec, repo_root: Path, cache_dir: Path, *, progress: bool = True) -> Baseline:
    """Resolve ``model:`` to a local baseline directory (converting/downloading when needed)."""
    model = loaded.spec.model
    smap = loaded.source_map
    lock_identity = _lockfile_identity(loaded, repo_root)
    if model.path is not None:
        path = _resolve(repo_root, model.path)
        where = smap.locate(("model", "path"))
        if not path.is_dir():
            raise InputError(
                f"model.path: {model.path} is not a directory",
                hint="point model.path at a Hugging Face model directory (config.json + *.safetensors)",
                location=where,
            )
        _require_hf_dir(path, where)
        return Baseline(path=path, identity=lock_identity or directory_identity(path), source_kind="path", source=model.path)
    if model.gguf is not None:
        gguf = _resolve(repo_root, model.gguf)
        where = smap.locate(("model", "gguf"))
        if not gguf.is_file():
            raise InputError(
                f"model.gguf: {model.gguf} does not exist",
                hint="run `gate example fetch` for the shipped example, or fix the path",
                location=where,
            )
        digest = sha256_file(gguf)
        cache = ContentCache(cache_dir)
        if cache.get("baselines", f"gguf-{digest}") is not None:
            path = cache.entry_dir("baselines", f"gguf-{digest}")
        else:
            from gate.quantize.progress import library_progress

            with library_progress(progress):
                path = convert_gguf(gguf, cache, digest, where=where)
        return Baseline(path=path, identity=lock_identity or digest, source_kind="gguf", source=model.gguf)
    assert model.hub is not None
    where = smap.locate(("model", "hub"))
    if model.revision is None:
        raise InputError(
            f"model.hub: {model.hub} has no pinned revision",
            hint="add `revision:` with the 40-hex commit of the hub repository (never a branch)",
            location=where,
        )
    revision_where = smap.locate(("model", "revision"))
    if not HEX40.match(model.revision):
        # Even where a policy lets QG501 pass, a branch or tag is never downloaded: it moves.
        raise InputError(
            f"model.revision: {model.revision!r} is not a 40-hex commit",
            hint="pin the full commit sha of the hub repository (lowercase hex), never a branch or tag",
            location=revision_where,
        )
    source = f"{model.hub}@{model.revision}"
    path = _snapshot(model.hub, model.revision, where, revision_where)
    _require_hf_dir(path, where, shown=f"model.hub: {source}")
    return Baseline(path=path, identity=lock_identity or directory_identity(path), source_kind="hub", source=source)


def _lockfile_identity(loaded: LoadedSpec, repo_root: Path) -> str | None:
    lockfile = loaded.spec.model.lockfile
    if lockfile is None:
        return None
    path = _resolve(repo_root, lockfile)
    if not path.is_file():
        return None  # the weights stage reports a missing lockfile; identity falls back to content
    return sha256_file(path)


def _resolve(repo_root: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else repo_root / path


def _require_hf_dir(path: Path, where: SourceLocation, *, shown: str | None = None) -> None:
    name = shown or str(path)
    if not (path / "config.json").is_file():
        raise InputError(
            f"{name} has no config.json",
            hint="the baseline must be a Hugging Face model directory (save_pretrained output)",
            location=where,
        )
    if not list(path.glob("*.safetensors")):
        raise InputError(
            f"{name} has no *.safetensors weights",
            hint="convert the weights to safetensors; pickle checkpoints (.bin/.pt) are never "
            + ("downloaded or loaded" if shown else "loaded"),
            location=where,
        )


def directory_identity(path: Path) -> str:
    """sha256 over (name, sha256) of the files that define a model directory."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        if file.suffix in (".safetensors", ".json", ".model", ".txt", ".jinja"):
            digest.update(f"{file.name}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def convert_gguf(gguf: Path, cache: ContentCache, digest: str, *, where: SourceLocation | None = None) -> Path:
    """A safetensors checkpoint + tokenizer converted from ``gguf`` (cached by its sha256)."""

    def build(out: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except Exception as exc:
            raise BackendError(
                f"cannot load GGUF {gguf.name}: {type(exc).__name__}: {exc}",
                hint="check the file is a complete GGUF of an architecture transformers supports",
                location=where,
            ) from None
        # A GGUF-loaded model carries the GGUF quantizer; save_pretrained refuses it until cleared.
        model.hf_quantizer = None  # type: ignore[assignment]
        for attr in ("is_quantized", "quantization_method"):
            if hasattr(model, attr):
                with contextlib.suppress(AttributeError):
                    setattr(model, attr, False if attr == "is_quantized" else None)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        (out / "gate-source.json").write_text(
            json.dumps({"gguf": gguf.name, "sha256": digest, "dtype": "float32"}, indent=2) + "\n", encoding="utf-8"
        )

    entry = cache.get_or_build("baselines", f"gguf-{digest}", build)
    return entry.path


def _snapshot(repo: str, revision: str, where: SourceLocation, revision_where: SourceLocation) -> Path:
    """``snapshot_download`` of ``HUB_FILES`` at the pinned commit; Hub failures as gate errors."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HFValidationError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise InputError("model.hub needs huggingface_hub", hint="pip install 'quant-gate[ml]'", location=where) from None
    from gate.weights.scan import hub_cache_dir

    cache = hub_cache_dir()
    hint = ("the runner needs Hub access (HF_ENDPOINT names a mirror, HF_TOKEN a token for private repos), "
            "or pre-fetch the snapshot and use `model.path`")
    try:
        with _pinned_download_allowed():
            return Path(snapshot_download(repo, revision=revision, cache_dir=cache, allow_patterns=list(HUB_FILES)))
    except GatedRepoError:
        raise InputError(
            f"model.hub: {repo} is gated and this runner has no access to it",
            hint="accept the repository's conditions on the Hub and give the runner a token with access (HF_TOKEN)",
            location=where,
        ) from None
    except RepositoryNotFoundError:
        raise InputError(
            f"model.hub: {repo} is not on the Hub at {constants.ENDPOINT} (or is private and this runner has no access)",
            hint="check the repository id (org/name); a private repository needs a token with access (HF_TOKEN)",
            location=where,
        ) from None
    except RevisionNotFoundError:
        raise InputError(
            f"model.revision: {revision} is not a commit of {repo}",
            hint="pin an existing commit: the full 40-hex sha from the repository's history",
            location=revision_where,
        ) from None
    except HFValidationError as exc:
        raise InputError(f"model.hub: {repo!r} is not a valid Hub repository id ({_first_line(exc)})",
                         hint="use org/name", location=where) from None
    except Exception as exc:
        cause = exc.__cause__
        if isinstance(cause, OfflineModeIsEnabled):
            reason = f"HF_HUB_OFFLINE is set and the Hugging Face cache ({cache}) has no complete snapshot of it"
            hint = (f"export HF_HUB_OFFLINE=0 on a runner with Hub access, or pre-fetch the snapshot into that cache "
                    f"(`hf download {repo} --revision {revision}`)")
        elif isinstance(exc, LocalEntryNotFoundError) and cause is not None:
            # Nothing usable in the cache and no answer from the Hub (refused, DNS, timeout, 5xx).
            reason = f"the Hub at {constants.ENDPOINT} did not answer ({type(cause).__name__}: {_first_line(cause)})"
        else:
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise BackendError(f"cannot download {repo}@{revision}: {reason}", hint=hint, location=where) from None


@contextlib.contextmanager
def _pinned_download_allowed() -> Iterator[None]:
    """Let ``snapshot_download`` reach the Hub when only the gate's own offline default (set so
    evaluation never fetches task data) says offline; the user's own HF_HUB_OFFLINE=1 stands.

    huggingface_hub reads the variable once, at import, into ``constants.HF_HUB_OFFLINE``, which it
    consults at call time: lifted for this one call, restored after."""
    from huggingface_hub import constants

    from gate.runtime import user_chose_hub_offline

    if not constants.HF_HUB_OFFLINE or user_chose_hub_offline():
        yield
        return
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = True


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- loading -----------------------------------------------------------------------------------


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def compute_dtype(device: str) -> Any:
    """The floating dtype models are evaluated in on ``device``: float32 on CPU (several times
    faster than 16-bit on CPUs without native bf16, and exact), float16 on CUDA (what AWQ's kernels
    compute in, so baseline and quantized models are measured like for like)."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def load_hf_model(path: Path, device: str = "cpu") -> Any:
    """An unquantized HF causal LM in ``compute_dtype(device)``, eval mode; load failures become
    ``BackendError``."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=compute_dtype(device), use_safetensors=True)
    except Exception as exc:
        raise BackendError(
            f"cannot load the model in {path}: {type(exc).__name__}: {exc}",
            hint="check the directory holds a complete Hugging Face checkpoint (config.json + safetensors)",
        ) from None
    return model.to(device).eval()  # type: ignore[arg-type]


def model_from_state(path: Path, state: dict[str, Any], device: str = "cpu") -> Any:
    """A plain fp32 HF model for ``path``'s config (its quantization_config dropped) and ``state``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: pay for a random init
        import contextlib

        no_init_weights = contextlib.nullcontext  # type: ignore[assignment]

    config = AutoConfig.from_pretrained(str(path))
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if _is_tied(model, k)}
    if set(missing) - tied or unexpected:
        raise BackendError(
            f"{path}: weights do not match the model config (missing {sorted(set(missing) - tied)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})",
            hint="the artifact is incomplete or was written by another tool; re-run `gate run` to rebuild it",
        )
    model.tie_weights()
    return model.to(device=device, dtype=compute_dtype(device)).eval()


def _is_tied(model: Any, key: str) -> bool:
    out = model.get_output_embeddings()
    return bool(getattr(model.config, "tie_word_embeddings", False)) and out is not None and key.startswith(
        next(n for n, m in model.named_modules() if m is out)
    )


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise BackendError(
            f"cannot load the tokenizer in {path}: {type(exc).__name__}: {exc}",
            hint="the model directory must contain its tokenizer files (tokenizer.json, tokenizer_config.json)",
        ) from None


def copy_tokenizer(src: Path, dst: Path) -> list[str]:
    """Copy tokenizer (and generation config) files; return their names."""
    import shutil

    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied
