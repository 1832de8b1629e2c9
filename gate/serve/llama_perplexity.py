"""Perplexity and fidelity inside llama.cpp, one document at a time, with ``llama-perplexity``.

``llama-server`` returns no prompt log-probabilities (it ignores ``echo``), so lm-eval cannot score
rolling-perplexity tasks through it. ``llama-perplexity`` computes them with llama.cpp's own
forward pass, and with ``--kl-divergence-base FILE`` it also writes the full-vocabulary
log-probabilities of every scored position; ``--kl-divergence`` then scores another model on the
same tokens against them (full-vocabulary KL and top-1 agreement, llama.cpp's own figures).

The verdict pairs items by document, so every document is its own run: its text alone in a file,
a context ``n_ctx`` chosen from its length so that it is cut into whole chunks (llama-perplexity
needs at least two), and the second half of each chunk scored, as llama-perplexity always does.
The baseline's run writes the document's log-probability file; the candidate's run reads it, so
the candidate is scored on exactly the baseline's tokens and the document pairing cannot slip.
Per document the gate keeps the summed negative log-likelihood of the scored positions (for word
or byte perplexity with the document's words or bytes scaled to the scored share of its tokens),
the summed KL and the number of top-1 disagreements.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.serve.interface import RuntimeInputError, ServeError, ServerHangError

PERPLEXITY_CAP = 1024
"""Longest context a perplexity document is scored at (tokens)."""
MIN_CONTEXT = 8
"""Shortest context: 3 scored positions per chunk."""

_CHUNKS = re.compile(r"over (\d+) chunks, n_ctx=(\d+)")
_PPL_LINE = re.compile(r"^\s*\d+\s+([0-9.]+)\s+([0-9.]+)\s+[0-9.]+\s*$", re.M)
"""``--ppl-output-type 1``: ``<offset>  <ppl>  <mean nll>  <its standard error>`` (cumulative)."""
_KL_LINE = re.compile(
    r"^\s*(\d+)\s+([0-9.]+|nan|inf) ± +\S+\s+(-?[0-9.]+|nan|-?inf) ± +\S+\s+(-?[0-9.]+|nan|inf) ± +\S+"
    r"\s+([0-9.]+|nan) ± +\S+ %\s+([0-9.]+|nan) ± +\S+ %\s*$", re.M)
"""``--kl-divergence`` chunk line: chunk, PPL(Q), ln(PPL(Q)/PPL(base)), KL, Δp RMS %, same top %
(running values over the document so far; the last line is the whole document)."""


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
    """The environment llama.cpp's tools run in: OpenMP threads sleep when idle instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose otherwise. On a shared 2-core machine at load
    19, spinning made a 22-token pass 13x slower (1.82 s vs 0.14 s with 2 threads)."""
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
    write_logits: bool = False, base: DocumentRun | None = None,
) -> DocumentRun:
    """Score one document. ``write_logits``: keep its log-probabilities (baseline);
    ``base``: compare against the baseline's (candidate, full-vocabulary KL and top-1 agreement)."""
    from gate.quantize.llamacpp import find_llama_cpp

    tools = find_llama_cpp(("llama-perplexity",))
    key = doc_key(text, n_ctx)
    doc = work / f"doc-{key}.txt"
    doc.write_text(text, encoding="utf-8")
    args: list[str | Path] = [tools.tool("llama-perplexity"), "-m", gguf, "-f", doc, "-c", str(n_ctx),
                              "-b", str(n_ctx), "-t", str(threads), "--ppl-output-type", "1"]
    logits: Path | None = None
    if base is not None:
        if base.logits is None or base.n_ctx != n_ctx:
            raise AssertionError("the candidate is compared against the baseline's own run of the document")
        args += ["--kl-divergence-base", base.logits, "--kl-divergence"]
    elif write_logits:
        logits = work / f"base-{key}.logits"
        args += ["--kl-divergence-base", logits]
    log = work / f"{name}-{key}.log"
    for attempt in range(2):
        output = _run(args, name=name, log=log, timeout_s=timeout_s)
        # Seen under heavy load: a run that exits 0 with its log cut after the first pass. Once
        # more, then it is an error.
        if "Final estimate" in output or _KL_LINE.search(output) or attempt == 1:
            break
    return _parse(output, name=name, log=log, n_ctx=n_ctx, base=base, logits=logits)


def _run(args: Sequence[str | Path], *, name: str, log: Path, timeout_s: float) -> str:
    from gate.quantize.llamacpp import run_tool

    try:
        ran = run_tool(args, what=f"llama-perplexity ({name})", log=log, timeout_s=timeout_s, env=tool_env())
    except ServeError:
        raise
    except Exception as exc:  # run_tool's BackendError: quote it as a runtime fault with the log
        message = getattr(exc, "message", str(exc))
        if "ran past" in message:
            raise ServerHangError(f"llama-perplexity ({name}) ran past its {timeout_s:.0f} s limit", log=log,
                                  hint="raise serving.args.request_timeout_s, or use a faster machine") from None
        raise ServeError(f"llama-perplexity ({name}) failed on a document", log=log,
                         hint="the cause is in the log above") from None
    return ran.output


def _parse(output: str, *, name: str, log: Path, n_ctx: int, base: DocumentRun | None,
           logits: Path | None) -> DocumentRun:
    for marker, what in (("inconsistent vocabulary", "the candidate's vocabulary differs from the baseline's"),
                         ("has been computed with", "the baseline's log-probabilities were computed at another context")):
        if marker in output:
            raise ServeError(f"llama-perplexity ({name}): {what}; the document pairing would not hold", log=log,
                             hint="baseline and candidate must come from the same tokenizer")
    chunks = _CHUNKS.search(output)
    if base is not None:
        rows = _KL_LINE.findall(output)
        if not rows:
            raise ServeError(f"llama-perplexity ({name}) printed no KL-divergence result", log=log,
                             hint="the cause is in the log above")
        _chunk, ppl_q, _ratio, kl, _rms, same = rows[-1]
        positions = base.positions
        values = [float(ppl_q), float(kl), float(same)]
        if not all(math.isfinite(v) for v in values) or values[0] <= 0:
            return DocumentRun(n_ctx=n_ctx, positions=positions, nll=math.inf, kl_sum=math.inf, flips=positions)
        same_count = round(values[2] / 100.0 * positions)
        return DocumentRun(n_ctx=n_ctx, positions=positions, nll=positions * math.log(values[0]),
                           kl_sum=max(values[1], 0.0) * positions, flips=positions - same_count)
    lines = _PPL_LINE.findall(output)
    if chunks is None or not lines:
        raise ServeError(f"llama-perplexity ({name}) printed no perplexity", log=log, hint="the cause is in the log above")
    n_chunk, ctx = int(chunks.group(1)), int(chunks.group(2))
    positions = n_chunk * (ctx - 1 - ctx // 2)
    mean_nll = float(lines[-1][1])
    return DocumentRun(n_ctx=ctx, positions=positions, nll=mean_nll * positions, logits=logits)


def run_documents(
    gguf: Path, texts: Sequence[str], token_counts: Sequence[int], cap: int, *, work: Path, threads: int,
    timeout_s: float, name: str, write_logits: bool = False, bases: Sequence[DocumentRun] | None = None,
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
                                write_logits=write_logits, base=base))
    return out
