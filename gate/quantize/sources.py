"""Model sources: local HF directory, GGUF file, pinned hub snapshot -> a local baseline directory.

``prepare_baseline`` resolves the spec's ``model`` section to a local Hugging Face directory with
safetensors weights and a tokenizer:

- ``path:`` the directory itself (the weights stage has already verified its lockfile);
- ``gguf:`` a checkpoint converted with transformers (``gguf_file=``, dequantized to fp32),
  cached under ``<cache>/baselines/gguf-<sha256 of the GGUF>``;
- ``hub:`` ``snapshot_download(repo, revision=<pinned 40-hex commit>)`` (needs network; the code
  path exists for GPU runners, tests use local sources).

Torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from gate.cache import ContentCache, sha256_file
from gate.errors import BackendError, InputError, SourceLocation
from gate.spec.loader import LoadedSpec

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
    path = _snapshot(model.hub, model.revision, where)
    return Baseline(
        path=path, identity=lock_identity or directory_identity(path), source_kind="hub", source=f"{model.hub}@{model.revision}"
    )


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


def _require_hf_dir(path: Path, where: SourceLocation) -> None:
    if not (path / "config.json").is_file():
        raise InputError(
            f"{path} has no config.json",
            hint="the baseline must be a Hugging Face model directory (save_pretrained output)",
            location=where,
        )
    if not list(path.glob("*.safetensors")):
        raise InputError(
            f"{path} has no *.safetensors weights",
            hint="convert the weights to safetensors; pickle checkpoints (.bin/.pt) are never loaded",
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


def _snapshot(repo: str, revision: str, where: SourceLocation) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError("model.hub needs huggingface_hub", hint="pip install 'quant-gate[ml]'", location=where) from None
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:
        raise BackendError(
            f"cannot download {repo}@{revision}: {type(exc).__name__}: {exc}",
            hint="the runner needs Hub access (or pre-fetch the snapshot and use `model.path`)",
            location=where,
        ) from None


# --- loading -----------------------------------------------------------------------------------


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def load_hf_model(path: Path, device: str = "cpu") -> Any:
    """An unquantized HF causal LM, fp32, eval mode; load failures become ``BackendError``."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True)
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
    return model.to(device).eval()


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
