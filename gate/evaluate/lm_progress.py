"""Items done / total for any lm-eval model: ``with_progress(lm)``.

lm-eval hands a model all requests of one kind in a single call (``loglikelihood``,
``loglikelihood_rolling``, ``generate_until``) and the model answers them all before it returns,
so from outside a call is one long silence. Every lm-eval model does report each answer as it
finishes, though, through the ``LM`` interface's cache hook (``self.cache_hook.add_partial``, the
channel lm-eval's own response cache uses): HFLM after each batch, the API models
(``local-completions``, ``openai-completions``, ...) after each HTTP response, vLLM after each
generation. ``ProgressLM`` wraps a model, installs a counting hook for the length of each call
(chained to any hook already there, so a ``CachingLM`` keeps caching) and reports the call's
*items* (documents: every request of a multiple-choice question is done) as they complete.

The wrapped model receives exactly the requests it would have received, in one call, in the same
order: batching, padding and therefore every score are unchanged (bit-identical; a test checks it).
Feeding the requests in chunks would have given progress for any model, but it changes how a
model batches and pads, and with that the last bits of its scores.

Use it around any lm-eval ``LM`` before ``simple_evaluate``::

    from gate.evaluate.lm_progress import with_progress

    lm = with_progress(LocalCompletionsAPI(base_url=url, model=name, tokenizer=path))
    lm_eval.simple_evaluate(model=lm, tasks=[...])

During ``gate run`` the counts reach the gate's own progress (``gate.report.progress.report``):
a bar per call on a terminal, plain lines in CI logs, with elapsed time and an estimate. Outside a
run they go nowhere unless ``report=`` is given.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from lm_eval.api.model import LM, CacheHook

Report = Callable[[str, int, int | None], None]
"""``report(what, done, total)``: the signature of ``gate.report.progress.report``."""

METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
_ALIASES = {"greedy_until": "generate_until"}  # the old name a few lm-eval models still report under


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for request arguments (``generate_until`` carries a dict of kwargs)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class ItemTracker:
    """Which items of one call are done; reports ``what`` as done / total items."""

    def __init__(self, method: str, requests: Sequence[Any], what: str, report: Report) -> None:
        self.method = method
        self.what = what
        self._report = report
        self._lock = threading.Lock()
        self._by_args: dict[Hashable, deque[Hashable]] = {}
        self._left: dict[Hashable, int] = {}
        for index, request in enumerate(requests):
            item = _item(request, index)
            self._left[item] = self._left.get(item, 0) + 1
            self._by_args.setdefault(_frozen(request.args), deque()).append(item)
        self.total = len(self._left)
        self.done = 0

    def start(self) -> None:
        self._report(self.what, 0, self.total)

    def request_done(self, method: str, args: Iterable[Any]) -> None:
        """One request (identified by its arguments) is answered; a repeat report is ignored."""
        if _ALIASES.get(method, method) != self.method:
            return  # e.g. the per-window loglikelihood calls inside a rolling call
        with self._lock:
            waiting = self._by_args.get(_frozen(args))
            if not waiting:
                return  # answered already (reported twice), or arguments this call never had
            item = waiting.popleft()
            self._left[item] -= 1
            if self._left[item]:
                return
            self.done += 1
            done = self.done
        self._report(self.what, done, self.total)

    def finish(self) -> None:
        """The call returned: every item is done (also those the model answered without reporting)."""
        if self.done < self.total:
            self.done = self.total
            self._report(self.what, self.total, self.total)


def _item(request: Any, index: int) -> Hashable:
    task, doc = getattr(request, "task_name", None), getattr(request, "doc_id", None)
    return (task, doc) if task is not None and doc is not None else ("request", index)


def default_label(requests: Sequence[Any]) -> str:
    """``tiny_mc items``: the tasks of a call (one call can hold several tasks of one request type)."""
    tasks = sorted({str(r.task_name) for r in requests if getattr(r, "task_name", None) is not None})
    return f"{', '.join(tasks) or 'lm-eval'} items"


class CountingHook(CacheHook):
    """A cache hook that tells a tracker about each answer, then passes it on to the previous hook."""

    def __init__(self, previous: CacheHook, tracker: ItemTracker) -> None:
        self.previous = previous
        self.tracker = tracker
        self.dbdict = getattr(previous, "dbdict", None)

    def add_partial(self, attr: str, req: Iterable[Any], res: Any) -> None:
        self.previous.add_partial(attr, req, res)
        self.tracker.request_done(attr, req)


class ProgressLM(LM):
    """``lm`` with progress reports for each ``loglikelihood`` / ``loglikelihood_rolling`` /
    ``generate_until`` call; everything else is the wrapped model's."""

    def __init__(self, lm: LM, *, report: Report | None = None, label: str | None = None) -> None:
        # No ``LM.__init__``: it would reset the wrapped model's cache hook (see ``cache_hook``).
        self.lm = lm
        self.report = report
        """Where counts go (default: the active ``gate run`` progress, looked up at each call)."""
        self.label = label
        """The step's name (default: the tasks of the call, ``tiny_mc items``)."""

    def loglikelihood(self, requests: list[Any], *args: Any, **kwargs: Any) -> list[tuple[float, bool]]:
        return self._counted("loglikelihood", requests, args, kwargs)

    def loglikelihood_rolling(self, requests: list[Any], *args: Any, **kwargs: Any) -> list[float]:
        return self._counted("loglikelihood_rolling", requests, args, kwargs)

    def generate_until(self, requests: list[Any], *args: Any, **kwargs: Any) -> list[str]:
        return self._counted("generate_until", requests, args, kwargs)

    def _counted(self, method: str, requests: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        report = self.report
        if report is None:
            from gate.report.progress import report as report_to_run

            report = report_to_run
        tracker = ItemTracker(method, requests, self.label or default_label(requests), report)
        previous = self.lm.cache_hook
        self.lm.set_cache_hook(CountingHook(previous, tracker))
        tracker.start()
        try:
            answers = getattr(self.lm, method)(requests, *args, **kwargs)
        finally:
            self.lm.set_cache_hook(previous)
        tracker.finish()
        return answers

    # -- the rest of the LM interface is the wrapped model's ---------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "lm":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.lm, name)

    @property
    def device(self) -> Any:
        return self.lm.device

    @property
    def rank(self) -> int:
        return self.lm.rank

    @property
    def world_size(self) -> int:
        return self.lm.world_size

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_name

    def all_gather(self, tensor: Any) -> Any:
        return self.lm.all_gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> Any:
        return self.lm.gather_object(obj, dst=dst)

    def barrier(self) -> None:
        self.lm.barrier()

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.lm.chat_template(chat_template)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.lm.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def cache_hook(self) -> CacheHook:
        return self.lm.cache_hook

    @cache_hook.setter
    def cache_hook(self, hook: CacheHook) -> None:
        self.lm.set_cache_hook(hook)

    def set_cache_hook(self, cache_hook: CacheHook) -> None:
        self.lm.set_cache_hook(cache_hook)


def with_progress(lm: LM, *, report: Report | None = None, label: str | None = None) -> ProgressLM:
    """``lm`` reporting items done / total of every call to the gate's progress (or to ``report``)."""
    return lm if isinstance(lm, ProgressLM) else ProgressLM(lm, report=report, label=label)
