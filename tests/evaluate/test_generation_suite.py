"""The generation stress suite ``qg_instructions_gen`` (lm-eval ``generate_until``, ``exact_match``).

- the shipped YAML and data load offline, the data is the manifest's, and every target is the
  exact answer to its instruction;
- on a tiny Llama trained to answer the suite, ``exact_match`` per-item scores are binary, keyed
  by document id, identical for an identical model whatever items are asked together (greedy
  decoding), and go through the same paired statistics as ``acc``;
- a deliberately broken model (2-bit RTN, random weights) scores lower than its baseline;
- ``quality.stress: [instructions_gen]`` plans the suite at its default tolerance, and ``gate run``
  on such a spec passes a faithful 8-bit quantization end to end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gate.evaluate.harness import EvalSettings, MetricRequest, evaluate_tasks
from gate.evaluate.interface import TaskScores
from gate.evaluate.suites import SHIPPED_DIR, STRESS_TASKS, resolve_task, stress_default
from gate.spec.models import MetricTolerance

TASK = "qg_instructions_gen"
METRIC = "exact_match"
DATA = SHIPPED_DIR / "data" / f"{TASK}.jsonl"
MANIFEST = json.loads((SHIPPED_DIR / "data" / "MANIFEST.json").read_text())
REQUEST = [MetricRequest(TASK, METRIC)]
# Training stops at this loss, not after a fixed number of steps: fp32 training from scratch is
# chaotic in the CPU's kernels (80 fixed steps answered 70% of the items on one Xeon and 28% on a
# Sapphire Rapids with AMX), while the loss reached tracks accuracy: 0.3 answered 69-78% over
# seeds 0-2 there.
TARGET_LOSS = 0.3
SETTINGS = EvalSettings(batch_size=8)


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


# --- the shipped suite (no model) ---------------------------------------------------------------

def test_suite_resolves_offline_with_its_manifest_hash_and_generation_settings(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager, get_task_dict

    from gate.evaluate.suites import materialize

    source = resolve_task(TASK, None)
    entry = MANIFEST["suites"][TASK]
    assert source.shipped and source.local and source.n_items == entry["items"] == 120
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == entry["sha256"]
    assert source.data_files == (DATA.resolve(),)
    assert STRESS_TASKS["instructions_gen"] == TASK

    # lm-eval itself loads it from the shipped YAML, offline (conftest sets HF_*_OFFLINE).
    materialize([source], tmp_path / "inc")
    task = get_task_dict([TASK], TaskManager(include_path=str(tmp_path / "inc"), include_defaults=False,
                                             verbosity="ERROR"))[TASK]
    assert task.OUTPUT_TYPE == "generate_until"
    assert len(list(task.eval_docs)) == 120
    kwargs = task.config.generation_kwargs
    assert kwargs["until"] == ["\n"] and kwargs["do_sample"] is False and kwargs["max_gen_toks"] == 16
    [metric] = task.config.metric_list
    assert metric["metric"] == METRIC and metric["ignore_case"] is False and metric["ignore_punctuation"] is False
    doc = next(iter(task.eval_docs))
    assert task.doc_to_target(doc) == _rows()[0]["answer"]


_PARSE = {
    "uppercase": (r'Write the word "(\w+)" in capital letters\.', lambda m: m[1].upper()),
    "repeat": (r'Repeat the word "(\w+)" exactly (\w+) times, separated by commas\.',
               lambda m: ", ".join([m[1]] * {"two": 2, "three": 3, "four": 4}[m[2]])),
    "hyphenate": (r'Spell the word "(\w+)" with a hyphen between letters\.', lambda m: "-".join(m[1])),
    "reverse_order": (r"Write these three words in reverse order: (\w+) (\w+) (\w+)",
                      lambda m: f"{m[3]} {m[2]} {m[1]}"),
    "backwards": (r'Write the word "(\w+)" backwards\.', lambda m: m[1][::-1]),
    "digits": (r"Write the number ([a-z-]+) using digits only\.", lambda m: str(_words_to_number(m[1]))),
}


def _words_to_number(text: str) -> int:
    tens = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
            "ninety": 90}
    ones = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
    head, _, tail = text.partition("-")
    return tens[head] + (ones[tail] if tail else 0)


def test_every_item_is_two_solved_examples_then_an_instruction_with_its_exact_answer() -> None:
    rows = _rows()
    assert Counter(r["kind"] for r in rows) == dict.fromkeys(_PARSE, 20)
    asked = set()
    for row in rows:
        blocks = row["question"].split("\n\n")
        assert len(blocks) == 3 and blocks[-1].startswith("Instruction: ") and blocks[-1].endswith("\nAnswer:")
        pattern, solve = _PARSE[row["kind"]]
        for block in blocks:
            instruction, answer = block.removeprefix("Instruction: ").split("\nAnswer:")
            match = re.fullmatch(pattern, instruction)
            assert match, block
            expected = solve(match)
            if block is blocks[-1]:
                assert answer == "" and row["answer"] == expected
                asked.add(instruction)
            else:  # a solved demonstration of the same kind, with another answer
                assert answer == f" {expected}" and expected != row["answer"]
        assert row["answer"] and "\n" not in row["answer"] and row["answer"] == row["answer"].strip()
    assert len(asked) == len(rows)


def test_default_stress_tolerance_is_planned_and_resolvable(tmp_path: Path) -> None:
    from gate.evaluate.design import build_design, planned_metrics, sample_size_findings
    from gate.spec.loader import load_spec
    from gate.verdict.sample_size import check_resolvable
    from tests.evaluate.repo import spec_text, write_tasks

    assert stress_default("instructions_gen") == (METRIC, 10.0)
    assert stress_default("instructions") == ("acc", 5.0)
    write_tasks(tmp_path, mc_items_n=20, ppl_docs=5)
    path = tmp_path / "tiny.yaml"

    path.write_text(spec_text(quality="quality:\n  stress: [instructions, instructions_gen]\n")
                    .replace("{CAL_SHA}", "0" * 64))
    loaded = load_spec(path)
    assert [(m.tolerance.task, m.tolerance.metric, m.tolerance.tolerance, m.default_tolerance)
            for m in planned_metrics(loaded)] == [("qg_instructions", "acc", 5.0, True), (TASK, METRIC, 10.0, True)]
    plan = build_design(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    assert plan.tasks[TASK].n_total == 120 and sorted(plan.tasks[TASK].order) == list(range(120))
    assert sample_size_findings(plan) == []
    tight = MetricTolerance(task=TASK, metric=METRIC, max_drop=5.0)
    assert not check_resolvable(tight, n_available=120, confidence=0.95, assumed_discordance=0.10).resolvable

    # Named as a metric task: its own entry (tolerance, limit) replaces the stress default.
    path.write_text(spec_text(quality=(
        "quality:\n"
        "  metrics:\n"
        f"    - {{task: {TASK}, metric: {METRIC}, max_drop: 15.0, limit: 60}}\n"
        "  stress: [instructions_gen]\n"
    )).replace("{CAL_SHA}", "0" * 64))
    loaded = load_spec(path)
    [metric] = planned_metrics(loaded)
    assert (metric.tolerance.task, metric.tolerance.tolerance, metric.default_tolerance) == (TASK, 15.0, False)
    plan = build_design(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    assert plan.tasks[TASK].n_total == 60 and sample_size_findings(plan) == []


# --- a tiny model that can answer the suite ------------------------------------------------------

def build_generation_model(out_dir: Path, *, target_loss: float = TARGET_LOSS, max_steps: int = 300,
                           seed: int = 0) -> Path:
    """A tiny Llama (2 layers, hidden 64) trained from scratch on the suite's own prompts, loss on the
    answer and its newline only, with a BPE tokenizer trained on the same text (prompts ~62 tokens,
    answers <= 13). Full-batch steps until the loss is ``target_loss`` (~10 s on two CPU cores) answer
    ~70% of the items exactly: enough signal for a broken quantization to lose, and headroom either
    way."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rows = _rows()
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([f"{r['question']} {r['answer']}" for r in rows], trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>").save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    prompts = [tokenizer(r["question"])["input_ids"] for r in rows]
    answers = [tokenizer(f" {r['answer']}\n")["input_ids"] for r in rows]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        ids[i, :len(p) + len(a)] = torch.tensor(p + a)
        labels[i, len(p):len(p) + len(a)] = torch.tensor(a)
        mask[i, :len(p) + len(a)] = 1
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(max_steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if loss.item() <= target_loss:
            break
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@pytest.fixture(scope="module")
def gen_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_generation_model(tmp_path_factory.mktemp("tiny-gen"))


@pytest.fixture(scope="module")
def baseline_scores(gen_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TaskScores:
    """The trained model's scores on the whole suite (one lm-eval run, all 120 items)."""
    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(gen_model_dir)
    return evaluate_tasks(model, tokenizer, [resolve_task(TASK, None)], REQUEST, settings=SETTINGS,
                          include_dir=tmp_path_factory.mktemp("inc"))[(TASK, METRIC)]


def _evaluate(model_dir: Path, tmp_path: Path, items: list[int] | None = None) -> TaskScores:
    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(model_dir)
    return evaluate_tasks(model, tokenizer, [resolve_task(TASK, None)], REQUEST, settings=SETTINGS,
                          include_dir=tmp_path / "inc", items={TASK: items} if items is not None else None,
                          )[(TASK, METRIC)]


def _compare(base: TaskScores, quant: TaskScores, max_drop: float = 10.0) -> Any:
    """The verdict machinery exactly as ``gate run`` calls it (``session.paired`` + ``compare_metric``)."""
    from gate.errors import SourceLocation
    from gate.evaluate.design import PlannedMetric
    from gate.evaluate.session import paired
    from gate.verdict.decide import compare_metric

    tolerance = MetricTolerance(task=base.task, metric=base.metric, max_drop=max_drop)
    order = tuple(quant.doc_ids)
    scores = paired(PlannedMetric(tolerance=tolerance, location=SourceLocation("t.yaml")), order, base, quant,
                    len(order))
    return compare_metric(tolerance, scores, confidence=0.95, seed=0, resamples=2000, n_total=len(order))


def test_exact_match_is_binary_per_document_and_deterministic(
    gen_model_dir: Path, baseline_scores: TaskScores, tmp_path: Path
) -> None:
    from gate.verdict.sequential import item_order

    base = baseline_scores
    assert base.kind == "binary" and base.doc_ids == list(range(120))
    assert set(base.values) <= {0.0, 1.0}  # type: ignore[arg-type]
    assert 0.4 < base.aggregate() < 1.0  # signal, and room to lose it
    # The same model asked in the gate's seeded order, a look of 30 items at a time (other batch
    # neighbours, other padding): every document gets the same greedy answer and score.
    order = [int(i) for i in item_order(120, 0)]
    looks = [_evaluate(gen_model_dir, tmp_path / f"look{k}", order[k * 30:(k + 1) * 30]) for k in range(2)]
    for look, asked in zip(looks, (order[:30], order[30:60]), strict=True):
        assert look.doc_ids == sorted(asked)  # keyed by document id, not by the order asked
        assert look.values == [base.values[i] for i in look.doc_ids]
    # Identical scores: PASS through the paired score interval, exactly as for acc.
    again = looks[0].model_copy(update={"doc_ids": [*looks[0].doc_ids, *looks[1].doc_ids],
                                        "values": [*looks[0].values, *looks[1].values]})
    result = _compare(base, again)
    as_acc = _compare(base.model_copy(update={"metric": "acc"}), again.model_copy(update={"metric": "acc"}))
    assert result.outcome.value == "pass" and result.difference == 0.0 and result.n == 60
    assert result.method == as_acc.method and result.ci_high == as_acc.ci_high


def test_broken_models_score_lower_and_fail(gen_model_dir: Path, baseline_scores: TaskScores, tmp_path: Path) -> None:
    from transformers import AutoConfig, LlamaForCausalLM

    from gate.quantize import prepare_baseline, produce_artifact
    from tests.quantize.helpers import make_repo

    # 2-bit RTN through the gate's own quantize stage (the sanity guard is raised: a model this
    # small trained on one task loses its perplexity wholesale at 2 bits, which is the point here).
    loaded = make_repo(tmp_path / "repo", gen_model_dir, method="rtn", bits=2, group_size=32,
                       options={"sanity_max_ratio": 1e9})
    baseline = prepare_baseline(loaded, tmp_path / "repo", tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path / "repo", tmp_path / "cache", progress=False)
    two_bit = _evaluate(artifact.path, tmp_path / "rtn2")
    assert two_bit.kind == "binary" and two_bit.doc_ids == baseline_scores.doc_ids
    assert two_bit.aggregate() < baseline_scores.aggregate() - 0.2, (two_bit.aggregate(), baseline_scores.aggregate())
    result = _compare(baseline_scores, two_bit)
    assert result.outcome.value == "fail" and result.ci_low > 10.0 and result.n == 120

    # Random weights (same architecture and tokenizer): no answer survives.
    random_dir = tmp_path / "random"
    LlamaForCausalLM(AutoConfig.from_pretrained(gen_model_dir)).save_pretrained(random_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (gen_model_dir / name).is_file():
            (random_dir / name).write_bytes((gen_model_dir / name).read_bytes())
    noise = _evaluate(random_dir, tmp_path / "random-eval", list(range(0, 120, 4)))
    assert noise.aggregate() == 0.0 < baseline_scores.aggregate()


# --- gate run -----------------------------------------------------------------------------------

def test_gate_run_gates_the_generation_stress_suite(gen_model_dir: Path, tmp_path: Path) -> None:
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set
    from gate.result import Decision
    from tests.evaluate.repo import make_repo, spec_text

    quality = (
        "quality:\n"
        "  confidence: 0.95\n"
        "  sequential: true\n"
        "  metrics:\n"
        "    - {task: tiny_mc, metric: acc, max_drop: 10.0}\n"
        "  stress: [instructions_gen]\n"
        "  fidelity: {max_kl: 0.3, max_flip_rate: 0.35, texts: tasks/data/tiny_ppl.jsonl, tokens: 1024}\n"
    )
    repo = tmp_path / "repo"
    spec = make_repo(repo, gen_model_dir, spec_text(bits=8, quality=quality))
    options = RunOptions(repo_root=repo, cache_dir=repo / ".gate" / "cache", device="cpu", progress=False,
                         resamples=2000)
    result = run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))

    assert result.verdict.decision is Decision.passed, result.verdict.reasons
    mc, metric = result.criteria[:2]
    assert (mc.task, mc.outcome) == ("tiny_mc", Decision.passed)
    assert metric.limit is not None
    assert (metric.task, metric.metric, metric.n_total, metric.limit.value) == (TASK, METRIC, 120, 10.0)
    assert metric.outcome is Decision.passed and metric.n in (30, 60, 90, 120)
    assert (metric.baseline or 0) > 0.4 and (metric.method or "").startswith("paired score interval")
    assert metric.note is not None and "stress suite at the default tolerance" in metric.note
    stages = {s.stage: s.status for s in result.stages}
    assert stages["evaluate-baseline"] == stages["evaluate-quantized"] == "ok"
