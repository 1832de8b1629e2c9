"""Adoption metrics, measured honestly (DOMAIN.md "Team standards").

- Coverage: models ranked by inference volume (``metadata.traffic_share``), counted from the
  top; a model counts as covered when its newest registered run passed.
- Time-to-quantize: from a model's first registered run to its first passing run, with the
  number of attempts; the trend groups models by the month they were first run.
- Regression incidents that reached production, per model (``gate registry incident``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from gate.registry.store import Incident, Registry


@dataclass(frozen=True)
class CoverageRow:
    rank: int
    model: str
    traffic_share: float
    validated: bool
    latest_verdict: str | None
    cumulative_share: float
    """Volume of this model and every larger one."""
    cumulative_validated_share: float
    """Volume of the validated models among them."""


@dataclass(frozen=True)
class TimeToQuantize:
    model: str
    first_run: str
    first_pass: str | None
    attempts: int
    """Runs up to and including the first pass (all runs when none passed)."""
    hours_to_pass: float | None
    pass_run_seconds: float | None
    """Wall time of the passing ``gate run`` itself."""


@dataclass(frozen=True)
class AdoptionStats:
    coverage: list[CoverageRow]
    covered_share: float
    total_share: float
    time_to_quantize: list[TimeToQuantize]
    trend: list[tuple[str, float, int]]
    """(month of first run, median hours to first pass, models) — should fall over time."""
    incidents: dict[str, list[Incident]] = field(default_factory=dict)


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def compute_stats(registry: Registry, traffic: dict[str, float] | None = None) -> AdoptionStats:
    """``traffic`` (model -> share, e.g. from the specs under models/) overrides recorded shares."""
    histories = {h.model: h for h in registry.model_histories()}
    shares = {h.model: h.traffic_share for h in histories.values() if h.traffic_share is not None}
    shares.update(traffic or {})

    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))
    coverage: list[CoverageRow] = []
    cumulative = cumulative_validated = 0.0
    for rank, (model, share) in enumerate(ranked, start=1):
        latest = histories[model].latest_verdict if model in histories else None
        validated = latest == "pass"
        cumulative += share
        cumulative_validated += share if validated else 0.0
        coverage.append(CoverageRow(rank, model, share, validated, latest, cumulative, cumulative_validated))

    ttq: list[TimeToQuantize] = []
    for model, h in sorted(histories.items()):
        hours = None
        if h.first_pass is not None:
            hours = (_parse(h.first_pass) - _parse(h.first_run)).total_seconds() / 3600
        ttq.append(TimeToQuantize(model, h.first_run, h.first_pass, h.attempts, hours, h.pass_duration_s))

    months: dict[str, list[float]] = {}
    for item in ttq:
        if item.hours_to_pass is not None:
            months.setdefault(item.first_run[:7], []).append(item.hours_to_pass)
    trend = [(month, statistics.median(values), len(values)) for month, values in sorted(months.items())]

    incidents: dict[str, list[Incident]] = {}
    for incident in registry.incidents():
        incidents.setdefault(incident.model, []).append(incident)
    return AdoptionStats(
        coverage=coverage,
        covered_share=cumulative_validated,
        total_share=cumulative,
        time_to_quantize=ttq,
        trend=trend,
        incidents=incidents,
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _hours(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1f} h" if x < 48 else f"{x / 24:.1f} d"


def render_markdown(stats: AdoptionStats) -> str:
    lines = ["## quant-gate adoption", ""]
    share = _pct(stats.covered_share / stats.total_share) if stats.total_share else "n/a"
    lines.append(
        f"Validated quantized models cover **{_pct(stats.covered_share)}** of inference volume "
        f"({share} of the volume declared by {len(stats.coverage)} specs)."
    )
    lines += ["", "### Coverage (ranked by volume)", "",
              "| # | model | share | latest verdict | validated | cumulative validated |",
              "|---:|---|---:|---|:---:|---:|"]
    for row in stats.coverage:
        lines.append(
            f"| {row.rank} | {row.model} | {_pct(row.traffic_share)} | {row.latest_verdict or 'never run'} | "
            f"{'yes' if row.validated else 'no'} | {_pct(row.cumulative_validated_share)} of {_pct(row.cumulative_share)} |"
        )
    lines += ["", "### Time to quantize", "", "| model | first run | first pass | attempts | time to pass | run time |",
              "|---|---|---|---:|---:|---:|"]
    for item in stats.time_to_quantize:
        run_time = f"{item.pass_run_seconds:.0f} s" if item.pass_run_seconds is not None else "—"
        lines.append(
            f"| {item.model} | {item.first_run[:10]} | {(item.first_pass or '—')[:10]} | {item.attempts} | "
            f"{_hours(item.hours_to_pass)} | {run_time} |"
        )
    if stats.trend:
        lines += ["", "Trend (median time to first pass, by month of first run): "
                  + ", ".join(f"{m}: {_hours(h)} ({n} models)" for m, h, n in stats.trend)]
    lines += ["", "### Regression incidents in production", ""]
    if not stats.incidents:
        lines.append("None recorded.")
    else:
        lines += ["| model | incidents | latest note |", "|---|---:|---|"]
        for model, items in sorted(stats.incidents.items()):
            lines.append(f"| {model} | {len(items)} | {items[-1].note} |")
    return "\n".join(lines) + "\n"


def render_terminal(stats: AdoptionStats, width: int | None = None) -> str:
    """The report as text, once (a recording console that also printed it wrote it twice)."""
    import io

    from rich.console import Console
    from rich.table import Table

    from gate.registry.listing import output_width

    buffer = io.StringIO()
    console = Console(file=buffer, width=width or output_width(), force_terminal=False, color_system=None,
                      highlight=False, soft_wrap=False)
    share = _pct(stats.covered_share / stats.total_share) if stats.total_share else "n/a"
    console.print(
        f"Validated quantized models cover {_pct(stats.covered_share)} of inference volume "
        f"({share} of the volume declared by {len(stats.coverage)} specs)."
    )
    coverage = Table(title="Coverage (ranked by volume)")
    for col in ("#", "model", "share", "latest verdict", "validated", "cumulative validated"):
        coverage.add_column(col, no_wrap=col != "model", overflow="fold")
    for row in stats.coverage:
        coverage.add_row(str(row.rank), row.model, _pct(row.traffic_share), row.latest_verdict or "never run",
                         "yes" if row.validated else "no",
                         f"{_pct(row.cumulative_validated_share)} of {_pct(row.cumulative_share)}")
    console.print(coverage)
    ttq = Table(title="Time to quantize")
    for col in ("model", "first run", "first pass", "attempts", "time to pass", "run time"):
        ttq.add_column(col, no_wrap=col != "model", overflow="fold")
    for item in stats.time_to_quantize:
        ttq.add_row(item.model, item.first_run[:10], (item.first_pass or "—")[:10], str(item.attempts),
                    _hours(item.hours_to_pass),
                    f"{item.pass_run_seconds:.0f} s" if item.pass_run_seconds is not None else "—")
    console.print(ttq)
    if stats.trend:
        console.print("Trend (median time to first pass, by month of first run): "
                      + ", ".join(f"{m}: {_hours(h)} ({n} models)" for m, h, n in stats.trend))
    total = sum(len(v) for v in stats.incidents.values())
    console.print(f"Regression incidents in production: {total}")
    for model, items in sorted(stats.incidents.items()):
        console.print(f"  {model}: {len(items)} — latest: {items[-1].note}")
    return buffer.getvalue()
