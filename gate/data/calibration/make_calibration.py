"""Build ``calibration.jsonl``: real English prose plus varied synthetic prompts, deterministically.

Run from the repository root:  python gate/data/calibration/make_calibration.py

Sources: paragraphs of the license texts Debian ships under /usr/share/common-licenses (present
on every Debian/Ubuntu machine; real, edited English with long sentences), and instructions,
questions, dialogues, lists and short reports generated from templates with a fixed seed, so the
set covers the variety of lengths, topics and formats that calibration should mirror. The output
is byte-identical on every run on the same machine image; its sha256 is recorded in
``models/smollm2-135m.yaml`` (``calibration.sha256``) and verified before every use.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

LICENSES = ("Apache-2.0", "GPL-3", "GPL-2", "LGPL-2.1", "MPL-2.0", "GFDL-1.3", "Artistic", "CC0-1.0", "BSD")
LICENSE_DIR = Path("/usr/share/common-licenses")
OUT = Path(__file__).resolve().parent / "calibration.jsonl"
LICENSE_SAMPLES = 256
SYNTHETIC_SAMPLES = 256
SEED = 20261101

TOPICS = [
    "the water cycle", "a small bakery's weekly schedule", "how vaccines train the immune system",
    "the history of the printing press", "budgeting for a family holiday", "how a bicycle gear works",
    "planting tomatoes on a balcony", "the rules of chess castling", "why the sky looks blue",
    "writing a polite complaint letter", "the causes of inflation", "how to back up a laptop",
    "migrating birds in autumn", "the life of a honeybee colony", "a train timetable change",
    "how compound interest grows", "the structure of a short story", "preparing for a job interview",
    "recycling plastic at home", "the phases of the moon", "a football match report",
    "the basics of photosynthesis", "how elections count votes", "caring for an old dog",
    "learning a second language", "the safety rules of a chemistry lab", "a museum opening",
    "reading a weather forecast", "how a refrigerator keeps food cold", "organising a team meeting",
]
VERBS = ["Explain", "Summarise", "Describe", "Write a short note about", "Give three facts about", "Compare two views on"]
AUDIENCES = ["a ten-year-old", "a busy manager", "a new colleague", "a curious student", "a retired engineer"]
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Giulia", "Hiro", "Ines", "Jonas"]
PLACES = ["Lisbon", "Nairobi", "Oslo", "Kyoto", "Lima", "Montreal", "Pune", "Krakow", "Adelaide", "Tunis"]
FACTS = [
    "Water boils at 100 degrees Celsius at sea level.",
    "The heart pumps blood through arteries and veins.",
    "A year on Mars lasts about 687 Earth days.",
    "Bread rises because yeast releases carbon dioxide.",
    "Light from the Sun reaches Earth in about eight minutes.",
    "Most trees lose water through small pores in their leaves.",
    "A kilometre is a thousand metres.",
    "Copper conducts electricity well and is used in wiring.",
    "Sound travels faster in water than in air.",
    "The Pacific is the largest ocean on Earth.",
]


def license_paragraphs() -> list[str]:
    paragraphs: list[str] = []
    for name in LICENSES:
        text = (LICENSE_DIR / name).read_text(encoding="utf-8", errors="replace")
        for block in re.split(r"\n\s*\n", text):
            clean = " ".join(block.split())
            if len(clean) >= 160 and sum(c.isalpha() for c in clean) > 0.6 * len(clean):
                paragraphs.append(clean)
    return paragraphs


def synthetic(rng: random.Random, index: int) -> str:
    kind = index % 6
    topic = rng.choice(TOPICS)
    name, other = rng.sample(NAMES, 2)
    place = rng.choice(PLACES)
    facts = rng.sample(FACTS, 3)
    if kind == 0:
        return f"{rng.choice(VERBS)} {topic} for {rng.choice(AUDIENCES)}. Keep it under {rng.randint(3, 9)} sentences and avoid jargon."
    if kind == 1:
        return (
            f"Question: {name} lives in {place} and wants to understand {topic}. What should she read first, and why?\n"
            f"Answer: Start with a plain introduction to {topic}, then look for a worked example. {facts[0]}"
        )
    if kind == 2:
        return (
            f"{name}: Did you finish the notes on {topic}?\n{other}: Almost. I still need the part about the costs.\n"
            f"{name}: The meeting in {place} is on day {rng.randint(1, 28)}, so we have time.\n"
            f"{other}: Good. I will send a draft with {rng.randint(2, 7)} key points tonight."
        )
    if kind == 3:
        items = "\n".join(f"{i + 1}. {fact}" for i, fact in enumerate(facts))
        return f"List three facts a student should remember about science, one per line.\n{items}"
    if kind == 4:
        a, b = rng.randint(12, 480), rng.randint(3, 60)
        return (
            f"A shop in {place} sold {a} items on Monday and {b} more on Tuesday than on Monday. "
            f"How many items did it sell on the two days together? Think step by step. "
            f"Tuesday: {a} + {b} = {a + b}. Total: {a} + {a + b} = {2 * a + b}. The answer is {2 * a + b}."
        )
    return (
        f"Report from {place}, week {rng.randint(1, 52)}. The team led by {name} reviewed {topic}. "
        f"They found {rng.randint(2, 12)} open issues and closed {rng.randint(1, 9)}. {facts[1]} {facts[2]} "
        f"Next steps: {other} will write a summary, and the group will meet again in {rng.randint(2, 6)} weeks."
    )


def build() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    paragraphs = license_paragraphs()
    rng.shuffle(paragraphs)
    prose = paragraphs[:LICENSE_SAMPLES]
    samples = [{"text": p, "source": "debian-common-licenses"} for p in prose]
    samples += [{"text": synthetic(rng, i), "source": "synthetic"} for i in range(SYNTHETIC_SAMPLES)]
    rng.shuffle(samples)
    return samples


def main() -> None:
    samples = build()
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for sample in samples:
            fh.write(json.dumps(sample, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(samples)} samples to {OUT}")


if __name__ == "__main__":
    main()
