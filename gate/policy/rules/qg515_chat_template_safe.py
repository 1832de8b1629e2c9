"""QG515: chat templates stay inside the template (no attribute, global or import tricks)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class ChatTemplateSafe(Rule):
    id = "QG515"
    slug = "weights.chat-template-safe"
    stage = "weights"
    waivable = False
    summary = "No chat template reaches outside itself: no dunder or underscore attributes, `attr`, `self`, `lipsum`, `cycler`, `joiner`, `namespace` attributes, imports or includes; and Jinja's sandbox accepts it."
    why = (
        "Servers render `tokenizer_config.json`'s `chat_template` and GGUF's `tokenizer.chat_template`\n"
        "for every request. Rendered outside a sandbox, `{{ cycler.__init__.__globals__.os.popen('id') }}`\n"
        "runs code (llama-cpp-python, CVE-2024-34359). The gate walks the template's Jinja AST for the\n"
        "constructs that lead to Python objects and renders it in `ImmutableSandboxedEnvironment` in an\n"
        "isolated, resource-limited process. No waiver can allow a hostile template."
    )
    example = "# tokenizer_config.json\n{\"chat_template\": \"{{ cycler.__init__.__globals__.os.popen('id').read() }}\"}\n"
    use_instead = "# tokenizer_config.json\n{\"chat_template\": \"{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}\"}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report, template in scan.chat_templates():
            if not template.hostile:
                continue
            shown = "; ".join(template.hostile[:5]) + ("; ..." if len(template.hostile) > 5 else "")
            yield Violation(
                f"{report.path}: chat template `{template.name}` ({template.source}) reaches outside the template: {shown}",
                path=report.path,
                hint="do not serve this model; restore the upstream chat template (no waiver applies)",
                detail={"source": template.source, "name": template.name, "hostile": template.hostile, "sha256": template.sha256},
            )
