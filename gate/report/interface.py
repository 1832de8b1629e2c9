"""What every report format shares: the format enum, the render context and the renderer shape.

Renderers are pure functions ``render(results, context) -> str`` over ``GateResult``s; the CLI
decides where the text goes (stdout, a file, ``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gate.result import GateResult


class ReportFormat(StrEnum):
    """Output formats of ``gate check``, ``gate run`` and ``gate report``."""

    terminal = "terminal"
    json = "json"
    markdown = "markdown"
    sarif = "sarif"
    junit = "junit"
    github = "github"


@dataclass(frozen=True)
class DeletedSpec:
    """A spec the change removed: reported, never run."""

    path: str
    """The spec's path before the change."""
    renamed_to: str | None = None


@dataclass(frozen=True)
class ReportContext:
    """Facts about where a report is shown that are not part of any one result."""

    repo_url: str | None = None
    """``https://github.com/org/repo``; with ``commit`` it turns ``path:line`` into links."""
    commit: str | None = None
    """The commit the specs were read at (the PR head)."""
    details_url: str | None = None
    """Where the full report lives (the workflow run with its artifacts)."""
    deleted: tuple[DeletedSpec, ...] = ()
    """Specs the change deleted (reported so the required check still says something)."""
    planned: int | None = None
    """How many specs the plan selected (None when no plan was given)."""
    color: bool = False
    """Terminal only: emit ANSI colours."""
    width: int | None = None
    """Terminal only: line width; None = the real terminal's (``terminal.terminal_width``)."""
    extra_notes: tuple[str, ...] = field(default_factory=tuple)
    """Lines shown under the verdict (e.g. why GPU jobs were skipped)."""

    @classmethod
    def from_github_env(cls, env: Mapping[str, str], **overrides: object) -> ReportContext:
        """The context GitHub Actions provides (``GITHUB_SERVER_URL``, ``GITHUB_REPOSITORY``, ...)."""
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repo = env.get("GITHUB_REPOSITORY")
        run_id = env.get("GITHUB_RUN_ID")
        values: dict[str, object] = {
            "repo_url": f"{server}/{repo}" if repo else None,
            "commit": env.get("GATE_HEAD_SHA") or env.get("GITHUB_SHA"),
            "details_url": f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def link(self, path: str, line: int | None = None) -> str | None:
        """A browser link to ``path`` (at ``line``) in the repository, when the context knows one."""
        if not self.repo_url or not self.commit:
            return None
        anchor = f"#L{line}" if line else ""
        return f"{self.repo_url}/blob/{self.commit}/{path}{anchor}"


class Renderer(Protocol):
    """The shape of every format's ``render`` function."""

    def __call__(self, results: list[GateResult], context: ReportContext) -> str: ...
