"""lm-eval steps show items done / total while they run, and the scores stay bit-identical.

- ``evaluate_tasks`` on a real tiny model reports each task's items (multiple choice, rolling
  perplexity split into several windows per document, generation) as they finish, *during* the
  call (between forward passes), and scores exactly what a bare HFLM scores;
- ``with_progress`` gives any lm-eval model the same: lm-eval's own ``local-completions`` API model
  against an OpenAI-style completions server on 127.0.0.1 reports each item after its HTTP
  response, with the same results as the unwrapped model.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gate.evaluate.harness import EvalSettings, MetricRequest, _scores, evaluate_tasks
from gate.evaluate.suites import materialize, resolve_task
from gate.report.progress import RunProgress, activated
from tests.evaluate.repo import write_tasks

SETTINGS = EvalSettings(batch_size=3, max_length=24)  # 24 tokens: most perplexity documents need 2+ windows


class Recorder(RunProgress):
    """The real progress (plain lines), also noting how much model work had happened at each count."""

    def __init__(self, work: list[int]) -> None:
        super().__init__(io.StringIO(), live=False, plain_interval=0.0, heartbeat=0, clock=lambda: 0.0)
        self.work = work
        self.seen: list[tuple[str, int, int | None, int]] = []

    def update(self, what: str, done: int, total: int | None) -> None:
        self.seen.append((what, done, total, self.work[0]))
        super().update(what, done, total)

    def counts(self, what: str) -> list[int]:
        return [done for name, done, _, _ in self.seen if name == what]

    def work_at(self, what: str) -> list[int]:
        return [work for name, _, _, work in self.seen if name == what]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    write_tasks(tmp_path, mc_items_n=12, ppl_docs=7)
    return tmp_path


def _bare(model: Any, tokenizer: Any, sources: list[Any], requests: list[MetricRequest],
          items: dict[str, list[int]], settings: EvalSettings, include_dir: Path) -> dict[tuple[str, str], Any]:
    """The same evaluation through lm-eval's plain HFLM, no gate wrapper."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    materialize([s for s in sources if s.local], include_dir)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=settings.batch_size, device="cpu",
              max_length=settings.max_length)
    output = lm_eval.simple_evaluate(
        model=lm, tasks=sorted(items), task_manager=TaskManager(include_path=str(include_dir), include_defaults=False,
                                                                verbosity="ERROR"),
        log_samples=True, bootstrap_iters=0, samples=items, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
        fewshot_random_seed=0, verbosity="ERROR")
    return {(r.task, r.metric): _scores(r, output["samples"][r.task]) for r in requests}


def _forward_counter(model: Any) -> tuple[list[int], Any]:
    work = [0]

    def count(*_: Any) -> None:
        work[0] += 1

    return work, model.register_forward_hook(count)


def test_items_are_reported_while_the_call_runs_and_scores_are_bit_identical(
        loaded: tuple[Any, Any], repo: Path, tmp_path: Path) -> None:
    model, tokenizer = loaded
    texts = [json.loads(line)["text"] for line in (repo / "tasks/data/tiny_ppl.jsonl").read_text().splitlines()]
    assert sum(len(tokenizer(t).input_ids) > SETTINGS.max_length for t in texts) >= 3  # several windows each
    sources = [resolve_task("tiny_mc", repo), resolve_task("tiny_ppl", repo)]
    requests = [MetricRequest("tiny_mc", "acc"), MetricRequest("tiny_ppl", "word_perplexity")]
    items = {"tiny_mc": list(range(12)), "tiny_ppl": list(range(7))}
    work, hook = _forward_counter(model)
    try:
        with Recorder(work) as progress, activated(progress):
            progress.stage("evaluate-quantized")
            got = evaluate_tasks(model, tokenizer, sources, requests, settings=SETTINGS, include_dir=tmp_path / "inc",
                                 items=items)
    finally:
        hook.remove()
    bare = _bare(model, tokenizer, sources, requests, items, SETTINGS, tmp_path / "inc-bare")
    assert got == bare  # exact floats, every item

    for what, total in (("tiny_mc items", 12), ("tiny_ppl items", 7)):
        assert progress.counts(what) == list(range(total + 1))  # every item, once, in order
        at = progress.work_at(what)
        # Reported between forward passes, not in a burst at the end: the first item was done
        # before the call's last batch ran.
        assert at[1] < at[-1], (what, at)
    lines = progress.stream.getvalue().splitlines()  # type: ignore[attr-defined]
    assert "gate run: evaluate-quantized: tiny_ppl items 0/7" in lines
    assert "gate run: evaluate-quantized: tiny_ppl items 3/7 · 0.0 s elapsed · ~0.0 s left" in lines
    assert "gate run: evaluate-quantized: tiny_ppl items 7/7 · 0.0 s elapsed" in lines


def test_generation_items_are_reported_and_identical(loaded: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = loaded
    sources = [resolve_task("qg_instructions_gen", None)]
    requests = [MetricRequest("qg_instructions_gen", "exact_match")]
    items = {"qg_instructions_gen": [0, 1]}
    settings = EvalSettings(batch_size=1)
    work, hook = _forward_counter(model)
    try:
        with Recorder(work) as progress, activated(progress):
            got = evaluate_tasks(model, tokenizer, sources, requests, settings=settings, include_dir=tmp_path / "inc",
                                 items=items)
    finally:
        hook.remove()
    assert got == _bare(model, tokenizer, sources, requests, items, settings, tmp_path / "inc-bare")
    assert progress.counts("qg_instructions_gen items") == [0, 1, 2]
    at = progress.work_at("qg_instructions_gen items")
    assert at[1] < at[-1]


# --- any lm-eval model: the API model C and D use against a served runtime -------------------------

class _Completions(BaseHTTPRequestHandler):
    """OpenAI-style ``/v1/completions`` with echoed log-probabilities, a pure function of the tokens."""

    served: list[int]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
        choices = []
        for index, tokens in enumerate(prompts):
            logprobs = [-0.1 * (1 + token % 7) for token in tokens] + [-0.5]
            choices.append({"index": index, "text": "", "logprobs": {
                "token_logprobs": logprobs, "top_logprobs": [{"x": -0.1}] * len(logprobs)}})
        self.served[0] += 1
        payload = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture()
def completions_server() -> Iterator[tuple[str, list[int]]]:
    served = [0]
    handler = type("Handler", (_Completions,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/completions", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_with_progress_gives_an_api_model_the_same_counts(
        tiny_llama_dir: Path, repo: Path, tmp_path: Path, completions_server: tuple[str, list[int]]) -> None:
    import lm_eval
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from lm_eval.tasks import TaskManager

    from gate.evaluate.lm_progress import ProgressLM, with_progress

    url, served = completions_server
    sources = [resolve_task("tiny_mc", repo), resolve_task("tiny_ppl", repo)]
    materialize(sources, tmp_path / "inc")
    manager = TaskManager(include_path=str(tmp_path / "inc"), include_defaults=False, verbosity="ERROR")

    def run(model: Any) -> dict[str, Any]:
        output = lm_eval.simple_evaluate(
            model=model, tasks=["tiny_mc", "tiny_ppl"], task_manager=manager, log_samples=True, bootstrap_iters=0,
            samples={"tiny_mc": list(range(6)), "tiny_ppl": list(range(4))}, random_seed=0, numpy_random_seed=0,
            torch_random_seed=0, fewshot_random_seed=0, verbosity="ERROR")
        return {task: [(s["doc_id"], s["acc"] if task == "tiny_mc" else s["word_perplexity"]) for s in samples]
                for task, samples in output["samples"].items()}

    def api() -> Any:
        return LocalCompletionsAPI(base_url=url, model="tiny", tokenizer=str(tiny_llama_dir),
                                   tokenizer_backend="huggingface", batch_size=1, max_retries=1, max_length=24)

    seen: list[tuple[str, int, int | None, int]] = []
    wrapped = with_progress(api(), report=lambda what, done, total: seen.append((what, done, total, served[0])))
    assert isinstance(wrapped, ProgressLM) and with_progress(wrapped) is wrapped
    assert run(wrapped) == run(api())
    for what, total in (("tiny_mc items", 6), ("tiny_ppl items", 4)):
        assert [(w, d, t) for w, d, t, _ in seen if w == what] == [(what, i, total) for i in range(total + 1)]
        at = [s for w, _, _, s in seen if w == what]
        assert at[1] < at[-1]  # counted as responses came back, not at the end
