"""What the plan needs to know about a checkpoint, read from metadata only (no torch, no pickle).

* safetensors: the JSON header of each ``*.safetensors`` file (exact names, dtypes and shapes);
* ``config.json``: layers, attention/KV heads, head dim, vocabulary, maximum context;
* GGUF: the tensor table and key/value metadata parsed from the header (arrays such as the
  vocabulary are skipped, tensor data is never read; ``gguf.GGUFReader`` takes ~15 s on SmolLM2).

GGUF tensor names are translated to Hugging Face names (``blk.0.attn_q`` ->
``model.layers.0.self_attn.q_proj``) so ``keep_full_precision`` means the same thing for both.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InputError
from gate.weights.safetensors_check import DTYPE_BITS, SafetensorsInvalid, check_file

_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "max_context": ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"),
}

_GGUF_NAMES: dict[str, str] = {
    "token_embd": "model.embed_tokens",
    "output": "lm_head",
    "output_norm": "model.norm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "ffn_norm": "post_attention_layernorm",
}


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor: its (Hugging Face style) name and logical shape."""

    name: str
    shape: tuple[int, ...]
    bits: int
    """Bits per element as stored (GGUF block formats: the effective average)."""

    @property
    def numel(self) -> int:
        out = 1
        for dim in self.shape:
            out *= dim
        return out


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers the KV-cache estimate needs."""

    architecture: str
    model_type: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int | None
    max_context: int | None
    tie_word_embeddings: bool
    dtype: str | None
    """The checkpoint's declared dtype (``torch_dtype``/``dtype``), when given."""


@dataclass(frozen=True)
class Checkpoint:
    """Tensors and shape of one checkpoint, from metadata."""

    source: str
    """``path`` or ``gguf``."""
    location: str
    """The directory or file, as shown to users."""
    tensors: tuple[TensorInfo, ...]
    shape: ModelShape

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def stored_bytes(self) -> int:
        return sum(t.numel * t.bits // 8 for t in self.tensors)


def read_safetensors_header(path: Path, shown: str | None = None) -> list[TensorInfo]:
    """Tensor names, dtypes and shapes from a safetensors file's JSON header (the data is not read).

    The header is parsed and validated by the weights stage's reader, so both stages agree on
    what a valid file is.
    """
    shown = shown or str(path)
    try:
        header = check_file(path)
    except SafetensorsInvalid as exc:
        raise InputError(f"{shown}: {exc}",
                         hint="the file is truncated, corrupt or not safetensors; re-download it and check its sha256") from None
    return [TensorInfo(name=t.name, shape=t.shape, bits=DTYPE_BITS[t.dtype]) for t in header.tensors]


def read_model_dir(directory: Path, shown: str) -> Checkpoint:
    """A Hugging Face model directory: ``config.json`` plus ``*.safetensors`` headers."""
    if not directory.is_dir():
        raise InputError(f"{shown}: model path is not a directory",
                         hint="`model.path` names a Hugging Face model directory (config.json + *.safetensors)")
    config_path = directory / "config.json"
    files = sorted(directory.glob("*.safetensors"))
    if not config_path.is_file():
        raise InputError(f"{shown}: model directory has no config.json",
                         hint="save the model with `save_pretrained(DIR)` so config.json sits next to the weights")
    if not files:
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        extra = f" (found {', '.join(pickles)}: pickle weights are never loaded)" if pickles else ""
        raise InputError(f"{shown}: model directory has no *.safetensors weights{extra}",
                         hint="convert the checkpoint with `save_pretrained(DIR, safe_serialization=True)`")
    config = read_config(config_path, f"{shown}/config.json")
    tensors: list[TensorInfo] = []
    for file in files:
        tensors.extend(read_safetensors_header(file, f"{shown}/{file.name}"))
    shape = shape_from_config(config, f"{shown}/config.json")
    return Checkpoint(source="path", location=shown, tensors=tuple(tensors), shape=shape)


def read_config(path: Path, shown: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{shown}: not valid JSON ({exc})", hint="fix or re-download config.json") from None
    if not isinstance(data, dict):
        raise InputError(f"{shown}: expected a JSON object", hint="fix or re-download config.json")
    return data


def shape_from_config(config: dict[str, Any], shown: str) -> ModelShape:
    """Architecture numbers from a transformers ``config.json`` (``text_config`` for multimodal ones)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)

    def pick(field: str, *, required: bool = True) -> int | None:
        for key in _CONFIG_KEYS[field]:
            value = text.get(key, config.get(key))
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        if required:
            names = _CONFIG_KEYS[field]
            raise InputError(
                f"{shown}: cannot read the number of {field.replace('_', ' ')}: none of "
                f"{', '.join(names)} is a positive integer",
                hint=f"add `{names[0]}` to config.json (the plan reads it to size the KV cache)",
            )
        return None

    layers, heads, hidden = pick("layers"), pick("heads"), pick("hidden")
    assert layers is not None and heads is not None and hidden is not None
    kv = text.get("num_key_value_heads", text.get("num_kv_heads"))
    if not (isinstance(kv, int) and kv > 0):
        kv = 1 if text.get("multi_query") else heads
    head_dim = text.get("head_dim")
    if not (isinstance(head_dim, int) and head_dim > 0):
        head_dim = hidden // heads
    archs = config.get("architectures")
    architecture = str(archs[0]) if isinstance(archs, list) and archs else str(config.get("model_type", "unknown"))
    vocab = text.get("vocab_size", config.get("vocab_size"))
    dtype = config.get("torch_dtype", config.get("dtype"))
    return ModelShape(
        architecture=architecture,
        model_type=str(config.get("model_type", "unknown")),
        layers=layers,
        heads=heads,
        kv_heads=int(kv),
        head_dim=int(head_dim),
        hidden=hidden,
        vocab=vocab if isinstance(vocab, int) else None,
        max_context=pick("max_context", required=False),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        dtype=str(dtype) if dtype is not None else None,
    )


_GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class _GgufCursor:
    """Reads the GGUF header (key/values, tensor table) from a memory map; arrays are skipped, not built."""

    def __init__(self, data: Any, shown: str) -> None:
        self.data, self.pos, self.shown = data, 0, shown

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise InputError(f"{self.shown}: GGUF header is truncated", hint="re-download the file and check its sha256")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        raw = bytes(self.data[self.pos : self.pos + length])
        if len(raw) != length:
            raise InputError(f"{self.shown}: GGUF header is truncated", hint="re-download the file and check its sha256")
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _GGUF_STRING:
            return self.string()
        if kind == _GGUF_ARRAY:
            inner, count = self.unpack("<I"), self.unpack("<Q")
            if inner in _GGUF_SCALAR:
                self.pos += struct.calcsize(_GGUF_SCALAR[inner]) * count
            elif inner == _GGUF_STRING:  # the vocabulary: ~100k strings, so a tight loop
                data, pos, length = self.data, self.pos, _U64.unpack_from
                end = len(data)
                for _ in range(count):
                    if pos + 8 > end:
                        pos = end + 1
                        break
                    pos += 8 + length(data, pos)[0]
                if pos > end:
                    raise InputError(f"{self.shown}: GGUF header is truncated", hint="re-download the file and check its sha256")
                self.pos = pos
            else:
                for _ in range(count):
                    self.value(inner)
            return None  # arrays (token lists, merges) are not needed
        fmt = _GGUF_SCALAR.get(kind)
        if fmt is None:
            raise InputError(f"{self.shown}: GGUF metadata has unknown value type {kind}",
                             hint="re-export the GGUF with a current llama.cpp converter")
        return self.unpack(fmt)


def _gguf_header(path: Path, shown: str) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...], int]]]:
    """Key/value metadata (scalars and strings) and (name, ne dims, ggml type) of every tensor."""
    import mmap

    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cur = _GgufCursor(data, shown)
        if bytes(data[:4]) != b"GGUF":
            raise InputError(f"{shown}: not a GGUF file (bad magic)", hint="re-download the file and check its sha256")
        cur.pos = 4
        version = cur.unpack("<I")
        if version not in (2, 3):
            raise InputError(f"{shown}: GGUF version {version} is not supported",
                             hint="re-export the GGUF with a current llama.cpp converter (versions 2-3)")
        n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            meta[key] = cur.value(cur.unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = tuple(cur.unpack("<Q") for _ in range(cur.unpack("<I")))
            kind = cur.unpack("<I")
            cur.unpack("<Q")  # data offset
            tensors.append((name, dims, kind))
    return meta, tensors


def read_gguf(path: Path, shown: str) -> Checkpoint:
    """Tensor table and architecture metadata of a GGUF file, parsed from its header (nothing executes)."""
    if not path.is_file():
        raise InputError(f"{shown}: GGUF file not found", hint="run `gate example fetch` or fix `model.gguf`")
    from gate.weights.gguf_tables import constants

    tables = constants()
    GGML_QUANT_SIZES, GGMLQuantizationType = tables.GGML_QUANT_SIZES, tables.GGMLQuantizationType

    meta, raw_tensors = _gguf_header(path, shown)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise InputError(f"{shown}: GGUF has no general.architecture", hint="re-export the GGUF with llama.cpp's converter")

    def number(key: str, *, required: bool = True) -> int | None:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if required:
            raise InputError(f"{shown}: GGUF metadata has no {arch}.{key}",
                             hint="re-export the GGUF with llama.cpp's converter (it writes the architecture keys)")
        return None

    tensors: list[TensorInfo] = []
    for name, dims, kind in raw_tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise InputError(f"{shown}: tensor {name!r} has unknown GGML type {kind}",
                             hint="re-export the GGUF with a current llama.cpp converter") from None
        bits = max(1, round(type_size * 8 / block))
        tensors.append(TensorInfo(name=hf_name(name), shape=tuple(int(d) for d in reversed(dims)), bits=bits))
    layers, heads, hidden = number("block_count"), number("attention.head_count"), number("embedding_length")
    assert layers is not None and heads is not None and hidden is not None
    kv = number("attention.head_count_kv", required=False) or heads
    head_dim = number("attention.key_length", required=False) or hidden // heads
    names = {t.name for t in tensors}
    embed = next((t for t in tensors if t.name == "model.embed_tokens.weight"), None)
    shape = ModelShape(
        architecture=f"gguf:{arch}",
        model_type=arch,
        layers=layers,
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        hidden=hidden,
        vocab=embed.shape[0] if embed is not None else None,
        max_context=number("context_length", required=False),
        tie_word_embeddings="lm_head.weight" not in names,
        dtype=None,
    )
    return Checkpoint(source="gguf", location=shown, tensors=tuple(tensors), shape=shape)


_BLK = re.compile(r"^blk\.(\d+)\.(.+)$")


def hf_name(name: str) -> str:
    """GGUF tensor name -> Hugging Face name (unknown names are kept)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        return name
    match = _BLK.match(stem)
    if match:
        inner = _GGUF_NAMES.get(match.group(2))
        return f"model.layers.{match.group(1)}.{inner}.{suffix}" if inner else name
    mapped = _GGUF_NAMES.get(stem)
    return f"{mapped}.{suffix}" if mapped else name
