"""QG533: templated task fields use plain field substitution unless the base branch vouches for the file."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.task_findings import task_violations


class VouchedTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Repository-relative task file, e.g. tasks/support_qa.yaml.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes (`sha256sum`).")


class TemplateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    trusted: tuple[VouchedTask, ...] = ()
    """Task files whose templates the platform team reviewed, pinned by content. Policies are read
    from the base branch in pull requests, so a PR cannot vouch for its own file; any edit changes
    the sha256 and the finding returns."""


class TaskTemplatePlain(Rule):
    id = "QG533"
    slug = "task.template-plain"
    stage = "tasks"
    waivable = False
    summary = ("`doc_to_*`, `gen_prefix`, `description` and the other fields lm-eval renders use only `{{ field }}` "
               "substitution, unless a base-branch policy vouches for the file by sha256.")
    why = (
        "lm-eval renders these fields with an unsandboxed Jinja2 environment:\n"
        "`{{ cycler.__init__.__globals__.os.system('...') }}` in `doc_to_text` runs a shell command on\n"
        "the GPU runner. The gate makes lm-eval render in Jinja's sandbox, and refuses anything but\n"
        "plain substitutions (`{{ question }}`, `{{ doc.choices[0] }}`) from a pull request. Richer\n"
        "templates need the platform team's review: a `trusted` entry (path and sha256) in a policy."
    )
    example = "task: support_qa\ndoc_to_text: \"{{ question | trim }}{% if hint %} {{ hint }}{% endif %}\"\n"
    use_instead = "task: support_qa\ndoc_to_text: \"{{ prompt }}\"   # precompute the text in the data file\n"
    params = TemplateParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, TemplateParams)
        yield from task_violations(facts, self.id, {(t.path, t.sha256) for t in params.trusted})
