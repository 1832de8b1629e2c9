#!/usr/bin/env python3
"""Generate the data of quant-gate's shipped evaluation suites, deterministically.

    python scripts/make_suites.py            # rewrite gate/evaluate/tasks/data/*.jsonl + MANIFEST.json
    python scripts/make_suites.py --check    # exit 1 when the committed data differs from a fresh run

Suites (lm-eval task YAMLs live next to the data, in ``gate/evaluate/tasks/``):

- ``qg_license_ppl``  real English text for perplexity and fidelity: paragraphs of the license
  texts Debian ships in every install (package ``base-files``, ``/usr/share/common-licenses``) and
  prose of the Python language reference shipped with CPython (``pydoc_data``), minus anything
  that overlaps the shipped calibration set.
- ``qg_reasoning``    multi-step arithmetic word problems (multiple choice; distractors are the
  answers of a skipped or wrong intermediate step).
- ``qg_instructions`` precise format following (multiple choice: the exactly-formatted answer
  against near-misses: wrong case, count, separator, order).
- ``qg_instructions_gen`` the same kinds of instruction answered by greedy generation (lm-eval
  ``generate_until``, scored by exact match of the first generated line), each prompt led by two
  solved instructions of the same kind; catches what likelihood scoring cannot see (format drift,
  runaway repetition, truncated answers).
- ``qg_long_context`` retrieval of one key among several planted in a long passage of real text
  (multiple choice between the keys that all occur in the passage).

Every random choice comes from ``random.Random(SEED + suite offset)``; the license corpus depends
only on the files' bytes, whose sha256 are written to ``MANIFEST.json``. Sizes are chosen so that a
paired comparison can resolve a 1-2 point tolerance (see docs/evaluate.md, "Sizing").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

SEED = 20261101
LICENSES_DIR = Path("/usr/share/common-licenses")
LICENSE_FILES = (
    "Apache-2.0", "Artistic", "BSD", "CC0-1.0", "GFDL-1.3", "GPL-1", "GPL-3", "LGPL-2.1", "LGPL-3", "MPL-1.1", "MPL-2.0",
)
"""Distinct texts only (GPL-2, LGPL-2, GFDL-1.2 largely repeat these)."""
CALIBRATION = Path(__file__).resolve().parent.parent / "gate" / "data" / "calibration" / "calibration.jsonl"
"""The shipped calibration set: evaluation text must not overlap it (calibrating on the test text
would flatter the quantized model), so documents sharing any SHINGLE-word run with it are dropped."""
SHINGLE = 12

OUT_DIR = Path(__file__).resolve().parent.parent / "gate" / "evaluate" / "tasks" / "data"

N_REASONING = 2000
N_INSTRUCTIONS = 2000
N_INSTRUCTIONS_GEN = 120
GEN_SHOTS = 2
N_LONG_CONTEXT = 600
LONG_CONTEXT_WORDS = 420
DOC_MIN_WORDS, DOC_TARGET_WORDS = 40, 110

Row = dict[str, object]


# --- perplexity corpus -------------------------------------------------------------------------

def _paragraphs(text: str) -> Iterator[str]:
    for block in re.split(r"\n\s*\n", text):
        words = block.split()
        if words:
            yield " ".join(words)


def _sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.;:])\s+(?=[A-Z(\"])", paragraph) if s]


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def calibration_shingles(path: Path = CALIBRATION) -> set[tuple[str, ...]]:
    if not path.is_file():
        return set()
    out: set[tuple[str, ...]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out |= _shingles(str(json.loads(line).get("text", "")))
    return out


def license_documents(licenses_dir: Path = LICENSES_DIR, exclude: set[tuple[str, ...]] | None = None) -> list[Row]:
    """Paragraphs of >= DOC_MIN_WORDS words, long ones cut at sentence ends near DOC_TARGET_WORDS,
    minus any that share a word run with ``exclude`` (the calibration set)."""
    docs = [d for d in _license_documents(licenses_dir) if not (exclude and _shingles(str(d["text"])) & exclude)]
    return docs


def _license_documents(licenses_dir: Path) -> list[Row]:
    docs: list[Row] = []
    for name in LICENSE_FILES:
        text = (licenses_dir / name).read_text(encoding="utf-8")
        for paragraph in _paragraphs(text):
            chunk: list[str] = []
            for sentence in _sentences(paragraph):
                chunk.append(sentence)
                if sum(len(s.split()) for s in chunk) >= DOC_TARGET_WORDS:
                    docs.append({"text": " ".join(chunk), "source": name})
                    chunk = []
            if chunk and sum(len(s.split()) for s in chunk) >= DOC_MIN_WORDS:
                docs.append({"text": " ".join(chunk), "source": name})
    return docs


def python_reference_documents() -> list[Row]:
    """Prose paragraphs of the Python language reference shipped with CPython (``pydoc_data``):
    indented blocks (code, grammar) and short paragraphs are skipped."""
    import pydoc_data.topics as topics

    docs: list[Row] = []
    for name in sorted(topics.topics):
        chunk: list[str] = []
        for block in re.split(r"\n\s*\n", topics.topics[name]):
            lines = block.splitlines()
            if not lines or lines[0].startswith((" ", "\t")) or "::=" in block or set(lines[-1].strip()) <= set("*=-"):
                continue
            words = " ".join(block.split())
            if len(words.split()) < 12:
                continue
            chunk.append(words)
            if sum(len(c.split()) for c in chunk) >= DOC_TARGET_WORDS:
                docs.append({"text": " ".join(chunk), "source": f"python-reference:{name}"})
                chunk = []
        if chunk and sum(len(c.split()) for c in chunk) >= DOC_MIN_WORDS:
            docs.append({"text": " ".join(chunk), "source": f"python-reference:{name}"})
    return docs


# --- reasoning ---------------------------------------------------------------------------------

NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kemi", "Liam", "Mei", "Noor")
ITEMS = ("apples", "books", "marbles", "stamps", "coins", "pencils", "shells", "cards", "tickets", "stickers")


def _choices(rng: random.Random, correct: int, wrong: list[int]) -> tuple[list[str], int]:
    options = [correct]
    for w in wrong:
        if w != correct and w not in options and w >= 0:
            options.append(w)
    bump = 1
    while len(options) < 4:
        candidate = correct + bump
        if candidate not in options:
            options.append(candidate)
        bump = -bump if bump > 0 else -bump + 1
    options = options[:4]
    rng.shuffle(options)
    return [str(o) for o in options], options.index(correct)


def _reasoning_item(rng: random.Random) -> Row:
    name, friend, third = rng.sample(NAMES, 3)
    item = rng.choice(ITEMS)
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(5, 40), rng.randint(2, 30)
        c = rng.randint(1, a + b - 1)
        q = f"{name} has {a} {item}. {name} buys {b} more and then gives {c} to {friend}. How many {item} does {name} have now?"
        correct, wrong = a + b - c, [a + b, a - c, a + b + c]
    elif kind == 1:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        c = rng.randint(1, a * b - 1)
        q = f"A box holds {a} rows of {b} {item}. {c} {item} are taken out. How many {item} are left in the box?"
        correct, wrong = a * b - c, [a * b, a + b - c, a * b + c]
    elif kind == 2:
        a, b, c = rng.randint(3, 25), rng.randint(2, 9), rng.randint(1, 30)
        q = f"{name} reads {a} pages every day for {b} days, and then {c} more pages. How many pages does {name} read in total?"
        correct, wrong = a * b + c, [a + b + c, a * b, a * (b + c)]
    elif kind == 3:
        a, b = rng.randint(8, 40), rng.randint(2, 15)
        c = rng.randint(1, a + b - 1)
        q = (f"{name} is {a} years old. {friend} is {b} years older than {name}. "
             f"{third} is {c} years younger than {friend}. How old is {third}?")
        correct, wrong = a + b - c, [a + b, a - c, a + b + c]
    else:
        per, n, spent = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 20)
        q = (f"{name} earns {per} coins for each chore and does {n} chores. "
             f"{name} then spends {spent} coins, and {friend} gives {name} {per} more. How many coins does {name} have?")
        correct, wrong = per * n - spent + per, [per * n - spent, per * n + per, per * n]
        if correct < 0:
            return _reasoning_item(rng)
    choices, answer = _choices(rng, correct, wrong)
    return {"question": f"Question: {q}\nAnswer:", "choices": choices, "answer": answer}


# --- instructions (format following) -----------------------------------------------------------

WORDS = ("river", "garden", "window", "planet", "silver", "candle", "forest", "bridge", "market", "castle",
         "orange", "pocket", "ladder", "violet", "meadow", "harbor", "puzzle", "rocket", "sunset", "winter")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}


def _number_words(n: int) -> str:
    tens, ones = divmod(n, 10)
    return NUMBER_WORDS[tens * 10] + (f"-{NUMBER_WORDS[ones]}" if ones else "")


INSTRUCTION_KINDS = ("uppercase", "repeat", "digits", "hyphenate", "reverse_order", "backwards")


def _instruction(rng: random.Random, kind: int, w: str, abc: tuple[str, str, str]) -> tuple[str, str, list[str]]:
    """One instruction of ``INSTRUCTION_KINDS[kind]`` about word ``w`` (or words ``abc``):
    ``(prompt, exactly formatted answer, near misses)``."""
    a, b, c = abc
    if kind == 0:
        prompt = f'Write the word "{w}" in capital letters.'
        correct, wrong = w.upper(), [w, w.capitalize(), w.upper() + "S"]
    elif kind == 1:
        k = rng.choice((2, 3, 4))
        prompt = f'Repeat the word "{w}" exactly {NUMBER_WORDS[k]} times, separated by commas.'
        correct = ", ".join([w] * k)
        wrong = [", ".join([w] * (k + 1)), ", ".join([w] * (k - 1)) if k > 2 else w, " ".join([w] * k)]
    elif kind == 2:
        n = rng.randint(21, 99)
        if n % 10 == 0:
            n += 1
        prompt = f"Write the number {_number_words(n)} using digits only."
        correct, wrong = str(n), [_number_words(n), str(n)[::-1], " ".join(str(n))]
    elif kind == 3:
        prompt = f'Spell the word "{w}" with a hyphen between letters.'
        correct, wrong = "-".join(w), [w, " ".join(w), "-".join(w[:-1])]
    elif kind == 4:
        prompt = f"Write these three words in reverse order: {a} {b} {c}"
        correct, wrong = f"{c} {b} {a}", [f"{a} {b} {c}", f"{b} {c} {a}", f"{c} {a} {b}"]
    else:
        prompt = f'Write the word "{w}" backwards.'
        correct, wrong = w[::-1], [w, w[::-1][:-1], w[1:] + w[0]]
    return prompt, correct, wrong


def _instruction_item(rng: random.Random) -> Row:
    w = rng.choice(WORDS)
    a, b, c = rng.sample(WORDS, 3)
    kind = rng.randrange(len(INSTRUCTION_KINDS))
    prompt, correct, wrong = _instruction(rng, kind, w, (a, b, c))
    options = [correct, *[x for x in dict.fromkeys(wrong) if x != correct]][:4]
    rng.shuffle(options)
    return {"question": f"Instruction: {prompt}\nAnswer:", "choices": options, "answer": options.index(correct)}


def instruction_generation_items(n: int, seed: int, shots: int = GEN_SHOTS) -> list[Row]:
    """``n`` instructions answered by free generation, kinds balanced (``n // 6`` or one more each)
    and in seeded order; each prompt first shows ``shots`` solved instructions of the same kind
    (other words), so a base model sees the answer format without any chat template. No two items
    ask the same instruction, and no demonstration has the item's own answer."""
    rng = random.Random(seed)
    kinds = [i % len(INSTRUCTION_KINDS) for i in range(n)]
    rng.shuffle(kinds)
    asked: set[str] = set()
    rows: list[Row] = []
    for kind in kinds:
        while True:
            prompt, answer, _ = _instruction(rng, kind, rng.choice(WORDS), _triple(rng))
            if prompt not in asked:
                asked.add(prompt)
                break
        demos: list[tuple[str, str]] = []
        while len(demos) < shots:
            demo, solved, _ = _instruction(rng, kind, rng.choice(WORDS), _triple(rng))
            if solved != answer and all(solved != s for _, s in demos):
                demos.append((demo, solved))
        context = "".join(f"Instruction: {d}\nAnswer: {s}\n\n" for d, s in demos)
        rows.append({"question": f"{context}Instruction: {prompt}\nAnswer:", "answer": answer,
                     "kind": INSTRUCTION_KINDS[kind]})
    return rows


def _triple(rng: random.Random) -> tuple[str, str, str]:
    a, b, c = rng.sample(WORDS, 3)
    return a, b, c


# --- long-context retrieval --------------------------------------------------------------------

COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "silver", "golden", "brown", "grey")


def _long_context_item(rng: random.Random, sentences: list[str]) -> Row:
    colors = rng.sample(COLORS, 4)
    codes = rng.sample(range(1000, 10000), 4)
    facts = [f"The access code for the {c} door is {k}." for c, k in zip(colors, codes, strict=True)]
    start = rng.randrange(len(sentences))
    filler: list[str] = []
    words = 0
    i = start
    while words < LONG_CONTEXT_WORDS:
        s = sentences[i % len(sentences)]
        filler.append(s)
        words += len(s.split())
        i += 1
    slots = sorted(rng.sample(range(len(filler) + 1), 4))
    for offset, (slot, fact) in enumerate(zip(slots, facts, strict=True)):
        filler.insert(slot + offset, fact)
    target = rng.randrange(4)
    passage = " ".join(filler)
    question = f"What is the access code for the {colors[target]} door?"
    return {
        "question": f"{passage}\n\nQuestion: {question}\nAnswer: The access code for the {colors[target]} door is",
        "choices": [str(k) for k in codes],
        "answer": target,
    }


# --- driver ------------------------------------------------------------------------------------

def _generate(n: int, seed: int, make: Callable[[random.Random], Row]) -> list[Row]:
    rng = random.Random(seed)
    return [make(rng) for _ in range(n)]


def build(licenses_dir: Path = LICENSES_DIR) -> dict[str, list[Row]]:
    exclude = calibration_shingles()
    docs = license_documents(licenses_dir, exclude)
    docs += [d for d in python_reference_documents() if not _shingles(str(d["text"])) & exclude]
    sentences = [s for d in docs for s in _sentences(str(d["text"])) if len(s.split()) >= 5]
    return {
        "qg_license_ppl": docs,
        "qg_reasoning": _generate(N_REASONING, SEED + 1, _reasoning_item),
        "qg_instructions": _generate(N_INSTRUCTIONS, SEED + 2, _instruction_item),
        "qg_long_context": _generate(N_LONG_CONTEXT, SEED + 3, lambda r: _long_context_item(r, sentences)),
        "qg_instructions_gen": instruction_generation_items(N_INSTRUCTIONS_GEN, SEED + 4),
    }


def _jsonl(rows: list[Row]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")


def manifest(files: dict[str, bytes], licenses_dir: Path) -> bytes:
    sources = {name: hashlib.sha256((licenses_dir / name).read_bytes()).hexdigest() for name in LICENSE_FILES}
    body = {
        "generator": "scripts/make_suites.py",
        "seed": SEED,
        "python_reference": f"pydoc_data.topics of CPython {platform.python_version()}",
        "license_sources": {"dir": str(licenses_dir), "package": "base-files (Debian)", "sha256": sources},
        "excluded_overlap_with": {
            "file": "gate/data/calibration/calibration.jsonl",
            "sha256": hashlib.sha256(CALIBRATION.read_bytes()).hexdigest() if CALIBRATION.is_file() else None,
            "shingle_words": SHINGLE,
        },
        "suites": {
            name: {"file": f"{name}.jsonl", "items": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        },
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--licenses", type=Path, default=LICENSES_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    files = {name: _jsonl(rows) for name, rows in build(args.licenses).items()}
    files_out = {f"{name}.jsonl": data for name, data in files.items()}
    files_out["MANIFEST.json"] = manifest(files, args.licenses)
    if args.check:
        stale = [n for n, data in files_out.items() if not (args.out / n).is_file() or (args.out / n).read_bytes() != data]
        for name in stale:
            print(f"{args.out / name}: differs from a fresh generation", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files_out.items():
        (args.out / name).write_bytes(data)
        lines = data.count(b"\n")
        print(f"wrote {args.out / name} ({lines} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
