"""GitHub Actions output: workflow-command annotations and the job's step summary.

GitHub shows at most 10 error and 10 warning annotations per step (and 10 notices); the most
severe are kept and the rest are counted in the step summary. The step summary is the Markdown
report, kept under GitHub's 1 MiB cap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gate.report import markdown
from gate.report.interface import ReportContext
from gate.report.safe import one_line, plain
from gate.report.summary import DECISION_LABEL, Level, plural, ranked_findings, verdict_needs_note, waiver_text
from gate.result import GateResult

ANNOTATIONS_PER_LEVEL = 10
"""GitHub displays at most this many annotations of each level per step."""

STEP_SUMMARY_LIMIT = 1_000_000
"""GitHub's step-summary cap is 1 MiB (1,048,576 bytes); keep a margin."""

COMMAND = {Level.error: "error", Level.warning: "warning", Level.notice: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: Level
    file: str
    line: int | None
    col: int | None
    title: str
    message: str

    def command(self) -> str:
        """The workflow command; control characters are removed first (they would reach the log raw)."""
        props = [f"file={escape_property(one_line(self.file))}"]
        if self.line is not None:
            props.append(f"line={self.line}")
            if self.col is not None:
                props.append(f"col={self.col}")
        props.append(f"title={escape_property(one_line(self.title))}")
        return f"::{COMMAND[self.level]} {','.join(props)}::{escape_data(plain(self.message))}"


def all_annotations(results: list[GateResult]) -> list[Annotation]:
    """One annotation per finding (most severe first), plus one per blocked spec without a blocking finding."""
    out: list[Annotation] = []
    for item in ranked_findings(results):
        f = item.finding
        loc = f.location
        message = f.message + (f"\nHint: {f.hint}" if f.hint else "")
        waiver = waiver_text(f, item.result)
        if waiver:
            message += "\n" + waiver[0].upper() + waiver[1:]
        out.append(Annotation(
            level=item.level,
            file=loc.path if loc else item.result.spec.path,
            line=loc.line if loc else None,
            col=loc.col if loc else None,
            title=f"{f.rule_id} {f.slug}" + (" (audit)" if f.mode == "audit" else ""),
            message=message,
        ))
    verdicts = [
        Annotation(
            level=Level.error,
            file=r.spec.path,
            line=None,
            col=None,
            title=f"quant-gate {DECISION_LABEL[r.verdict.decision]}",
            message="\n".join(r.verdict.reasons) or DECISION_LABEL[r.verdict.decision],
        )
        for r in results
        if verdict_needs_note(r)
    ]
    errors = [a for a in out if a.level is Level.error]
    return verdicts + errors + [a for a in out if a.level is not Level.error]


def select_annotations(results: list[GateResult]) -> tuple[list[Annotation], dict[Level, int]]:
    """The annotations GitHub will show, and how many of each level were left out."""
    shown: list[Annotation] = []
    omitted = dict.fromkeys(Level, 0)
    per_level = dict.fromkeys(Level, 0)
    for a in all_annotations(results):
        if per_level[a.level] < ANNOTATIONS_PER_LEVEL:
            shown.append(a)
            per_level[a.level] += 1
        else:
            omitted[a.level] += 1
    return shown, omitted


def omitted_line(omitted: dict[Level, int]) -> str | None:
    parts = [plural(n, level.value) for level, n in omitted.items() if n]
    if not parts:
        return None
    return (
        f"{', '.join(parts)} not shown as annotations (GitHub shows {ANNOTATIONS_PER_LEVEL} per level); "
        "every finding is listed in the report below."
    )


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    """Workflow commands for the log: annotations, then a plain line counting those left out.

    No line the gate prints may start a workflow command of its own: messages are escaped (a
    newline in a message is ``%0A``) and stripped of control characters.
    """
    shown, omitted = select_annotations(results)
    lines = [a.command() for a in shown]
    note = omitted_line(omitted)
    if note:
        lines.append(f"quant-gate: {note}")
    return "\n".join(lines) + ("\n" if lines else "")


def step_summary(results: list[GateResult], context: ReportContext | None = None) -> str:
    """The Markdown report for ``$GITHUB_STEP_SUMMARY`` (with the annotation overflow counted)."""
    ctx = context or ReportContext()
    _, omitted = select_annotations(results)
    note = omitted_line(omitted)
    if note:
        ctx = replace(ctx, extra_notes=(*ctx.extra_notes, note))
    return markdown.render(results, ctx, limit=STEP_SUMMARY_LIMIT)


# ---- the sticky comment ---------------------------------------------------------------------------

STICKY_AUTHOR = "github-actions[bot]"
"""The account the workflow's ``GITHUB_TOKEN`` comments as: only its comments are ever updated."""


def sticky_jq(author: str = STICKY_AUTHOR) -> str:
    """The ``gh api --paginate .../comments --jq`` filter that finds the gate's own comment.

    Marker AND author: anyone can post a comment that starts with the marker, and the workflow
    must never rewrite (or be steered by) a comment it does not own.
    """
    from gate.report.markdown import MARKER

    return (f'.[] | select(.user.login == "{author}" and .user.type == "Bot" '
            f'and (.body | startswith("{MARKER}"))) | .id')


def sticky_comment_id(comments: list[dict[str, object]], author: str = STICKY_AUTHOR) -> int | None:
    """The id of the gate's comment among an issue's comments (oldest first), as ``sticky_jq`` selects it."""
    from gate.report.markdown import MARKER

    for comment in comments:
        user = comment.get("user")
        body = comment.get("body")
        if (isinstance(user, dict) and user.get("login") == author and user.get("type") == "Bot"
                and isinstance(body, str) and body.startswith(MARKER) and isinstance(comment.get("id"), int)):
            return int(comment["id"])  # type: ignore[call-overload]
    return None
