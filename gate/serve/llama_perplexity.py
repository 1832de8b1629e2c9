"""Perplexity and fidelity inside llama.cpp, one document at a time, with ``llama-perplexity``.

``llama-server`` returns no prompt log-probabilities (it ignores ``echo``), so lm-eval cannot score
rolling-perplexity tasks through it. ``llama-perplexity`` computes them with llama.cpp's own
forward pass, and with ``--kl-divergence-base FILE`` it writes the full-vocabulary
log-probabilities of every scored position (the file ``--kl-divergence`` compares against).

The verdict pairs items by document, so every document is its own run: its text alone in a file,
a context ``n_ctx`` chosen from its length so that it is cut into whole chunks (llama-perplexity
needs at least two), and the second half of each chunk scored, as llama-perplexity always does.
Both models write that file for every document; the gate reads the figures from the two files,
not from the tool's printed log: llama.cpp's logger is asynchronous and leaks its queue at exit
(``common/log.cpp``: "logs may be lost if not flushed before the program exits"), and on this
machine one run in three exited 0 with its last lines, the results, missing. From the files, per
document: the summed negative log-likelihood of the scored positions, the summed full-vocabulary
KL(baseline || candidate) with llama.cpp's own formula (baseline log-probabilities more than 16
nats below the top one dropped), and the number of positions whose most likely token differs.
The files store each log-probability as uint16 over a 16-nat range (2.4e-4-nat steps), exactly
what ``--kl-divergence`` reads for the baseline. The candidate's tokens are checked equal to the
baseline's, so the document pairing cannot slip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gate.serve.interface import RuntimeInputError, ServeError, ServerHangError

PERPLEXITY_CAP = 1024
"""Longest context a perplexity document is scored at (tokens)."""
MIN_CONTEXT = 8
"""Shortest context: 3 scored positions per chunk."""

@dataclass(frozen=True)
class DocumentRun:
    """One document through llama-perplexity."""

    n_ctx: int
    positions: int
    """Scored token positions (the second half of each chunk)."""
    nll: float
    """Summed negative log-likelihood of the scored positions, nats."""
    kl_sum: float | None = None
    """Summed full-vocabulary KL(baseline || this model) over the positions (candidate runs)."""
    flips: int | None = None
    """Positions whose most likely token differs from the baseline's (candidate runs)."""
    logits: Path | None = None
    """The baseline's log-probability file for this document (baseline runs)."""


def tool_env() -> dict[str, str]:
    """The environment llama.cpp's scoring tools (``llama-perplexity``; no speed figure comes from
    them) run in: OpenMP threads sleep when idle instead of spinning (``OMP_WAIT_POLICY=PASSIVE``)
    unless the user chose otherwise. On a shared 2-core machine at load 19, spinning made a
    22-token pass 13x slower (1.82 s vs 0.14 s with 2 threads). ``llama-server``, whose speed is
    reported, keeps OpenMP's default (``gate/serve/llama_cpp.py``)."""
    import os

    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def context_for(n_tokens: int, cap: int) -> int:
    """The ``n_ctx`` a document of ``n_tokens`` tokens is scored at: at most ``cap``, at most half its
    length less a margin (llama.cpp's tokenizer may count a token or two differently), even."""
    n = min(cap, (n_tokens - 2) // 2)
    n -= n % 2
    return n


def doc_key(text: str, n_ctx: int) -> str:
    return hashlib.sha256(f"{n_ctx}\0{text}".encode()).hexdigest()[:24]


def run_document(
    gguf: Path, text: str, n_ctx: int, *, work: Path, threads: int, timeout_s: float, name: str,
    base: DocumentRun | None = None,
) -> DocumentRun:
    """Score one document (its log-probability file kept in ``work``); with ``base``, also the
    full-vocabulary KL and top-1 disagreements against the baseline's run of the same document."""
    from gate.quantize.llamacpp import find_llama_cpp

    tools = find_llama_cpp(("llama-perplexity",))
    key = doc_key(text, n_ctx)
    doc = work / f"doc-{key}.txt"
    doc.write_text(text, encoding="utf-8")
    logits = work / f"{key}.logits"
    args: list[str | Path] = [tools.tool("llama-perplexity"), "-m", gguf, "-f", doc, "-c", str(n_ctx),
                              "-b", str(n_ctx), "-t", str(threads), "--kl-divergence-base", logits]
    log = work / f"{name}-{key}.log"
    _run(args, name=name, log=log, timeout_s=timeout_s)
    mine = read_logits(logits, log=log, name=name)
    nll = float(mine.nll.sum())
    if base is None:
        return DocumentRun(n_ctx=mine.n_ctx, positions=mine.positions, nll=nll, logits=logits)
    assert base.logits is not None
    theirs = read_logits(base.logits, log=log, name=name)
    if theirs.n_ctx != mine.n_ctx or not np.array_equal(theirs.tokens, mine.tokens):
        raise ServeError(f"llama-perplexity ({name}): the candidate tokenized the document differently from the "
                         "baseline; the document pairing would not hold", log=log,
                         hint="baseline and candidate must come from the same tokenizer")
    kl = 0.0
    flips = 0
    for p, q in zip(theirs.logp, mine.logp, strict=True):
        keep = p > -16.0
        kl += float(np.where(keep, np.exp(p) * (p - q), 0.0).sum())
        flips += int((p.argmax(axis=1) != q.argmax(axis=1)).sum())
    return DocumentRun(n_ctx=mine.n_ctx, positions=mine.positions, nll=nll, kl_sum=max(kl, 0.0), flips=flips)


def _run(args: Sequence[str | Path], *, name: str, log: Path, timeout_s: float) -> None:
    from gate.quantize.llamacpp import run_tool

    try:
        run_tool(args, what=f"llama-perplexity ({name})", log=log, timeout_s=timeout_s, env=tool_env())
    except Exception as exc:  # run_tool's BackendError: quote it as a runtime fault with the log
        message = getattr(exc, "message", str(exc))
        if "ran past" in message:
            raise ServerHangError(f"llama-perplexity ({name}) ran past its {timeout_s:.0f} s limit", log=log,
                                  hint="raise serving.args.request_timeout_s, or use a faster machine") from None
        raise ServeError(f"llama-perplexity ({name}) failed on a document", log=log,
                         hint="the cause is in the log above") from None


@dataclass(frozen=True)
class Logits:
    """One ``--kl-divergence-base`` file: tokens and, per chunk, the scored positions' log-probs."""

    n_ctx: int
    tokens: np.ndarray
    logp: list[np.ndarray]
    """Per chunk: (positions, vocabulary) float32 log-probabilities (floor: 16 nats below the top)."""
    nll: np.ndarray
    """Negative log-likelihood of each scored token."""

    @property
    def positions(self) -> int:
        return int(self.nll.size)


def read_logits(path: Path, *, log: Path, name: str) -> Logits:
    """Parse llama-perplexity's log-probability file (``_logits_``, n_ctx, n_vocab, n_chunk, the
    tokens, then per chunk and scored position: scale and minimum as two floats and one uint16 per
    vocabulary entry, ``logp = scale * q + minimum``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ServeError(f"llama-perplexity ({name}) wrote no log-probabilities ({exc})", log=log,
                         hint="the cause is in the log above") from None
    if raw[:8] != b"_logits_" or len(raw) < 20:
        raise ServeError(f"llama-perplexity ({name}): {path.name} is not a log-probability file", log=log,
                         hint="the cause is in the log above")
    n_ctx, n_vocab, n_chunk = (int(v) for v in np.frombuffer(raw, dtype=np.int32, count=3, offset=8))
    offset = 20
    tokens = np.frombuffer(raw, dtype=np.int32, count=n_ctx * n_chunk, offset=offset).reshape(n_chunk, n_ctx)
    offset += 4 * n_ctx * n_chunk
    first = n_ctx // 2
    scored = n_ctx - 1 - first
    nv = 2 * ((n_vocab + 1) // 2) + 4
    need = offset + n_chunk * scored * nv * 2
    if len(raw) < need:
        raise ServeError(f"llama-perplexity ({name}): {path.name} is cut short ({len(raw)} of {need} bytes)",
                         log=log, hint="the cause is in the log above")
    logp: list[np.ndarray] = []
    nll: list[np.ndarray] = []
    for chunk in range(n_chunk):
        block = np.frombuffer(raw, dtype=np.uint16, count=scored * nv, offset=offset).reshape(scored, nv)
        offset += scored * nv * 2
        head = block[:, :4].copy().view(np.float32)  # (scale, minimum) per position
        values = head[:, :1] * block[:, 4:4 + n_vocab].astype(np.float32) + head[:, 1:2]
        logp.append(values)
        targets = tokens[chunk, first + 1: first + 1 + scored]
        nll.append(-values[np.arange(scored), targets].astype(np.float64))
    return Logits(n_ctx=n_ctx, tokens=tokens, logp=logp, nll=np.concatenate(nll) if nll else np.zeros(0))


def run_documents(
    gguf: Path, texts: Sequence[str], token_counts: Sequence[int], cap: int, *, work: Path, threads: int,
    timeout_s: float, name: str, bases: Sequence[DocumentRun] | None = None,
    labels: Sequence[str] | None = None,
) -> list[DocumentRun]:
    """``run_document`` for each text (the candidate against ``bases``, in the same order)."""
    out: list[DocumentRun] = []
    for index, (text, tokens) in enumerate(zip(texts, token_counts, strict=True)):
        base = bases[index] if bases is not None else None
        n_ctx = base.n_ctx if base is not None else context_for(tokens, cap)
        if n_ctx < MIN_CONTEXT:
            label = labels[index] if labels is not None else f"document {index}"
            raise RuntimeInputError(
                f"{label} has {tokens} tokens; llama-perplexity needs at least {2 * MIN_CONTEXT + 2} to score "
                "one document (two chunks of 8)",
                hint="give longer documents, or score this task with serving.runtime: transformers")
        out.append(run_document(gguf, text, n_ctx, work=work, threads=threads, timeout_s=timeout_s, name=name,
                                base=base))
    return out
