"""lm-eval harness on a real tiny model: per-item scores, item selection, metric errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.evaluate.harness import EvalSettings, MetricRequest, evaluate_tasks
from gate.evaluate.interface import EvaluateError
from gate.evaluate.suites import resolve_task
from tests.evaluate.repo import write_tasks


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    write_tasks(tmp_path, mc_items_n=12, ppl_docs=5)
    return tmp_path


def test_per_item_scores_for_chosen_items(loaded: tuple, repo: Path, tmp_path: Path) -> None:
    model, tokenizer = loaded
    sources = [resolve_task("tiny_mc", repo), resolve_task("tiny_ppl", repo)]
    got = evaluate_tasks(model, tokenizer, sources,
                         [MetricRequest("tiny_mc", "acc"), MetricRequest("tiny_ppl", "word_perplexity")],
                         settings=EvalSettings(batch_size=4), include_dir=tmp_path / "inc",
                         items={"tiny_mc": [7, 2, 9], "tiny_ppl": [4, 0, 3, 1, 2]})
    acc = got[("tiny_mc", "acc")]
    assert acc.kind == "binary" and acc.doc_ids == [2, 7, 9]
    assert all(v in (0.0, 1.0) for v in acc.values)
    ppl = got[("tiny_ppl", "word_perplexity")]
    assert ppl.kind == "perplexity" and ppl.doc_ids == [0, 1, 2, 3, 4]
    words = [float(len(line.split())) for line in
             [__import__("json").loads(x)["text"] for x in (repo / "tasks/data/tiny_ppl.jsonl").read_text().splitlines()]]
    assert [p[1] for p in ppl.values] == words  # type: ignore[index]
    assert all(p[0] > 0 for p in ppl.values)  # type: ignore[index]
    assert ppl.aggregate() > 1.0
    # Each doc id carries its own score whatever order the items were asked in (lm-eval labels
    # doc ids by position in an unsorted `samples=` list; the harness must not inherit that).
    alone = evaluate_tasks(model, tokenizer, sources, [MetricRequest("tiny_ppl", "word_perplexity")],
                           settings=EvalSettings(batch_size=4), include_dir=tmp_path / "inc2",
                           items={"tiny_ppl": [3]})[("tiny_ppl", "word_perplexity")]
    assert alone.doc_ids == [3]
    assert alone.values[0] == pytest.approx(ppl.values[3], rel=1e-5)  # type: ignore[arg-type]


def test_unknown_metric_names_the_task_metrics(loaded: tuple, repo: Path, tmp_path: Path) -> None:
    model, tokenizer = loaded
    with pytest.raises(EvaluateError) as info:
        evaluate_tasks(model, tokenizer, [resolve_task("tiny_mc", repo)], [MetricRequest("tiny_mc", "f1")],
                       settings=EvalSettings(batch_size=4), include_dir=tmp_path / "inc", items={"tiny_mc": [0]})
    assert info.value.message == "task 'tiny_mc' has no metric 'f1'"
    assert info.value.hint == "metrics of this task: acc"
