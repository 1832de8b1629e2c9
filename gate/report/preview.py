"""See the PR comment as a reviewer does: GitHub-flavoured Markdown rendered in headless Chromium.

``html_page`` renders the Markdown with markdown-it-py (CommonMark plus GFM tables, the HTML
GitHub allows in comments) inside GitHub-like styles at the width of a PR conversation column;
``layout`` loads it in headless Chromium and measures what a reviewer would see (headings, tables
and their cell counts, visible text, open/closed ``<details>``, links, page height);
``screenshot`` writes a PNG. The layout tests and the committed screenshot
(``docs/images/pr-comment.png``) use these::

    python -m gate.report.preview docs/images/pr-comment.png          # the example comment
    python -m gate.report.preview shot.png results/*.json             # any saved results

Chromium is Debian's ``chromium`` (``apt-get install -y chromium``); ``find_chromium`` returns
None when it is missing, and callers say so.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

COLUMN_PX = 780
"""Width of the comment body in a GitHub PR conversation (the timeline column, desktop)."""

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 60

STYLE = """
body { margin: 0; background: #fff; }
.comment { box-sizing: border-box; width: %(width)dpx; margin: 16px; border: 1px solid #d0d7de;
  border-radius: 6px; }
.comment-header { background: #f6f8fa; border-bottom: 1px solid #d0d7de; padding: 8px 16px;
  font: 14px -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; color: #57606a; }
.markdown-body { padding: 16px; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial,
  sans-serif, "Noto Color Emoji"; color: #1f2328; word-wrap: break-word; }
.markdown-body h2 { font-size: 1.5em; font-weight: 600; border-bottom: 1px solid #d8dee4;
  padding-bottom: .3em; margin: 0 0 16px; line-height: 1.25; }
.markdown-body h3 { font-size: 1.25em; font-weight: 600; margin: 24px 0 16px; line-height: 1.25; }
.markdown-body p, .markdown-body ul, .markdown-body blockquote, .markdown-body table,
.markdown-body details { margin: 0 0 16px; }
.markdown-body blockquote { padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; margin-left: 0; }
.markdown-body table { display: block; width: max-content; max-width: 100%%; overflow: auto;
  border-spacing: 0; border-collapse: collapse; }
.markdown-body th, .markdown-body td { padding: 6px 13px; border: 1px solid #d1d9e0; }
.markdown-body th { font-weight: 600; }
.markdown-body tr:nth-child(2n) { background: #f6f8fa; }
.markdown-body code { font: 85%%/1.45 ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, monospace;
  background: rgba(175,184,193,.2); padding: .2em .4em; border-radius: 6px; white-space: break-spaces; }
.markdown-body td code { white-space: nowrap; }
.markdown-body pre { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }
.markdown-body pre code { background: none; padding: 0; }
.markdown-body a { color: #0969da; text-decoration: none; }
.markdown-body sub { font-size: 75%%; }
.markdown-body summary { cursor: pointer; }
"""

MEASURE = """
<script>
(function () {
  const body = document.querySelector('.markdown-body');
  const tables = [...body.querySelectorAll('table')].map(t => ({
    header: [...t.querySelectorAll('thead th')].map(c => c.textContent.trim()),
    rows: [...t.querySelectorAll('tbody tr')].map(r => r.children.length),
    width: t.getBoundingClientRect().width,
    scroll: t.scrollWidth,
    inDetails: !!t.closest('details'),
    gauges: [...t.querySelectorAll('td code')].filter(c => /[\\u25cf\\u2503]/.test(c.textContent))
      .map(c => c.getBoundingClientRect().width),
  }));
  const visible = [...body.childNodes].filter(n => n.nodeType !== 8 && n.nodeName !== 'DETAILS')
    .map(n => n.textContent).join('\\n');
  const out = {
    headings: [...body.querySelectorAll('h2, h3')].map(h => h.textContent.trim()),
    tables: tables,
    details: [...body.querySelectorAll('details')].map(d => ({
      summary: d.querySelector('summary').textContent.trim(), open: d.open })),
    links: [...body.querySelectorAll('a')].map(a => a.getAttribute('href')),
    images: body.querySelectorAll('img').length,
    visibleText: visible,
    height: Math.ceil(document.documentElement.scrollHeight),
    bodyWidth: body.getBoundingClientRect().width,
  };
  const pre = document.createElement('pre');
  pre.id = 'qg-layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
  pre.style.display = 'none';
})();
</script>
"""


def markdown_to_html(markdown: str) -> str:
    """GitHub-flavoured Markdown to HTML: CommonMark, GFM tables and strikethrough, inline HTML."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return md.render(markdown)


def html_page(markdown: str, *, measure: bool = False, width: int = COLUMN_PX) -> str:
    body = markdown_to_html(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>quant-gate comment</title>"
        f"<style>{STYLE % {'width': width}}</style></head><body>"
        "<div class='comment'><div class='comment-header'><b>github-actions</b> bot commented</div>"
        f"<div class='markdown-body'>{body}</div></div>"
        + (MEASURE if measure else "")
        + "</body></html>"
    )


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class PreviewError(RuntimeError):
    """Chromium is missing, failed or timed out."""


def _chromium(args: list[str], cwd: Path) -> str:
    binary = find_chromium()
    if binary is None:
        raise PreviewError("chromium is not installed (Debian: apt-get install -y chromium)")
    profile = cwd / "profile"
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--disable-sync", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(cwd)}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd, env=env,
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise PreviewError(f"chromium did not finish within {TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        raise PreviewError(f"chromium exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


@dataclass(frozen=True)
class Layout:
    """What the rendered comment looks like (measured in the browser, CSS pixels)."""

    headings: list[str]
    tables: list[dict[str, object]]
    details: list[dict[str, object]]
    links: list[str]
    images: int
    visible_text: str
    """Text outside ``<details>``: what a reviewer sees without clicking."""
    height: int
    body_width: float


def layout(markdown: str) -> Layout:
    """Load the rendered comment in headless Chromium and measure it."""
    with tempfile.TemporaryDirectory(prefix="qg-preview-") as tmp:
        page = Path(tmp) / "comment.html"
        page.write_text(html_page(markdown, measure=True), encoding="utf-8")
        dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], Path(tmp))
    start = dom.find('<pre id="qg-layout"')
    if start < 0:
        raise PreviewError("the page did not report its layout (JavaScript did not run)")
    text = dom[dom.index(">", start) + 1: dom.index("</pre>", start)]
    data = json.loads(html.unescape(text))
    return Layout(headings=data["headings"], tables=data["tables"], details=data["details"], links=data["links"],
                  images=data["images"], visible_text=data["visibleText"], height=data["height"],
                  body_width=data["bodyWidth"])


def screenshot(markdown: str, png: Path, *, height: int | None = None) -> Path:
    """A PNG of the comment as GitHub shows it (details closed), as tall as the page."""
    tall = height or layout(markdown).height
    with tempfile.TemporaryDirectory(prefix="qg-preview-") as tmp:
        page = Path(tmp) / "comment.html"
        page.write_text(html_page(markdown), encoding="utf-8")
        shot = Path(tmp) / "shot.png"
        _chromium([f"--window-size={COLUMN_PX + 32},{tall}", f"--screenshot={shot}", "--virtual-time-budget=5000",
                   page.as_uri()], Path(tmp))
        if not shot.is_file():
            raise PreviewError("chromium wrote no screenshot")
        png.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, png)
    return png


def example_markdown() -> str:
    """The comment of the documented example: the results in ``tests/report/samples.py``."""
    from gate.report import DeletedSpec, ReportContext, ReportFormat, render

    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "tests" / "report" / "samples.py").is_file():
        raise PreviewError("the example results live in the source checkout (tests/report/samples.py); "
                           "pass RESULT.json files instead")
    sys.path.insert(0, str(checkout))
    from tests.report.samples import failed_run, inconclusive_run, passed_check

    context = ReportContext(repo_url="https://github.com/acme/models", commit="0123abc",
                            details_url="https://github.com/acme/models/actions/runs/42",
                            deleted=(DeletedSpec("models/retired.yaml"),), planned=3)
    return render([failed_run(), inconclusive_run(), passed_check()], ReportFormat.markdown, context)


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m gate.report.preview OUT.png [RESULT.json ...]\n")
        return 2
    out = Path(argv[0])
    if len(argv) > 1:
        from gate.report import ReportFormat, render
        from gate.report.load import load_results

        markdown = render(load_results([Path(p) for p in argv[1:]]), ReportFormat.markdown)
    else:
        markdown = ""
    try:
        markdown = markdown if len(argv) > 1 else example_markdown()
        screenshot(markdown, out)
    except PreviewError as exc:
        sys.stderr.write(f"gate: error: {exc}\n")
        return 3
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
