"""The gate's own progress: stage, step, items done / total, elapsed and an estimate; bars on a TTY, lines in CI."""

from __future__ import annotations

import io

from gate.report.progress import RunProgress, active, duration, estimate_left, report, run_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_in_ci_logs_say_stage_step_counts_elapsed_and_estimate() -> None:
    out, clock = io.StringIO(), Clock()
    with RunProgress(out, live=False, plain_interval=10.0, clock=clock) as progress:
        progress.stage("quantize")
        progress.say("int8 w8 on cpu")
        progress.update("layers quantized", 0, 30)
        for done in range(1, 31):
            clock.now += 1.0
            progress.update("layers quantized", done, 30)
        progress.stage("evaluate-quantized")
        progress.say("evaluate-quantized: look 1: tiny_mc items 1-75")
    assert out.getvalue().splitlines() == [
        "gate run: quantize: int8 w8 on cpu",
        "gate run: quantize: layers quantized 0/30",
        "gate run: quantize: layers quantized 10/30 · 10.0 s elapsed · ~20.0 s left",
        "gate run: quantize: layers quantized 20/30 · 20.0 s elapsed · ~10.0 s left",
        "gate run: quantize: layers quantized 30/30 · 30.0 s elapsed",
        "gate run: evaluate-quantized: look 1: tiny_mc items 1-75",
    ]


def test_bars_on_a_terminal_show_counts_elapsed_and_eta() -> None:
    out = io.StringIO()
    with RunProgress(out, live=True) as progress:
        progress.stage("evaluate-baseline")
        for done in range(1, 8):
            progress.update("speed and memory (decode passes)", done, 7)
        progress.say("baseline: fidelity reference")
    text = out.getvalue()
    assert "evaluate-baseline" in text and "speed and memory (decode passes)" in text and "7/7" in text
    assert "eta" in text
    assert "gate run baseline: fidelity reference" in text
    assert any(line.startswith("✓ evaluate-baseline") and "fidelity reference" in line  # the stage's own line
               for line in text.splitlines())
    assert "gate run: " not in text  # no plain lines on a terminal


def test_report_reaches_the_active_run_only() -> None:
    report("layers quantized", 1, 2)  # no run: nothing happens
    out = io.StringIO()
    with run_progress(out, live=False) as progress:
        assert active() is progress
        progress.stage("quantize")
        report("layers quantized", 2, 2)
    assert active() is None
    assert out.getvalue().splitlines()[-1].startswith("gate run: quantize: layers quantized 2/2 · ")


def test_estimates_and_durations() -> None:
    assert estimate_left(10.0, 5, 20) == 30.0
    assert estimate_left(10.0, 0, 20) is None
    assert estimate_left(10.0, 3, 0) is None
    assert [duration(s) for s in (4.21, 185, 3725)] == ["4.2 s", "3 min 05 s", "1 h 02 min"]


def test_ci_logs_get_a_heartbeat_while_an_uncounted_step_runs() -> None:
    import time

    out = io.StringIO()
    with RunProgress(out, live=False, heartbeat=0.05) as progress:
        progress.stage("evaluate-baseline")
        progress.say("baseline: qg_license_ppl (48 items)")
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert lines[0] == "gate run: baseline: qg_license_ppl (48 items)"
    assert lines[1].startswith("gate run: baseline: qg_license_ppl (48 items) · still running, ")
    assert lines[1].endswith(" s elapsed")


def test_a_finished_step_that_reports_again_starts_over_with_its_own_clock() -> None:
    out, clock = io.StringIO(), Clock()
    with RunProgress(out, live=False, plain_interval=100.0, heartbeat=0, clock=clock) as progress:
        progress.stage("evaluate-quantized")
        for look in range(2):  # two looks: one lm-eval call each for the same task
            progress.update("tiny_mc items", 0, 20)
            clock.now += 4.0 + look
            progress.update("tiny_mc items", 20, 20)
    assert out.getvalue().splitlines() == [
        "gate run: evaluate-quantized: tiny_mc items 0/20",
        "gate run: evaluate-quantized: tiny_mc items 20/20 · 4.0 s elapsed",
        "gate run: evaluate-quantized: tiny_mc items 0/20",
        "gate run: evaluate-quantized: tiny_mc items 20/20 · 5.0 s elapsed",
    ]


def test_on_a_terminal_each_lm_eval_call_gets_its_own_bar() -> None:
    out = io.StringIO()
    with RunProgress(out, live=True) as progress:
        progress.stage("evaluate-quantized")
        for _look in range(2):
            progress.update("tiny_mc items", 0, 20)
            progress.update("tiny_mc items", 20, 20)
    bars = [line for line in out.getvalue().splitlines() if "tiny_mc items" in line]
    assert len(bars) == 2 and all("20/20" in line for line in bars)
