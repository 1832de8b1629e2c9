"""QG516: chat templates compile and render in Jinja's sandbox."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class ChatTemplateRenders(Rule):
    id = "QG516"
    slug = "weights.chat-template-renders"
    stage = "weights"
    summary = "Every chat template compiles and renders a sample conversation in Jinja's sandbox, within time and memory limits."
    why = (
        "A template that does not compile, loops past the render time limit or renders nothing for a\n"
        "plain system/user/assistant conversation breaks every request the server gets, and one the\n"
        "gate cannot render is one it cannot vouch for. (A template that rejects the sample through its\n"
        "own `raise_exception` on both sample conversations is reported too.)"
    )
    example = "# tokenizer_config.json\n{\"chat_template\": \"{% for m in messages %}{{ m.content }\"}\n"
    use_instead = "# tokenizer_config.json\n{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report, template in scan.chat_templates():
            if template.render_error is None:
                continue
            yield Violation(
                f"{report.path}: chat template `{template.name}` ({template.source}) {template.render_error}",
                path=report.path,
                hint="fix the template (test it with `tokenizer.apply_chat_template`), or restore the upstream one",
                detail={"source": template.source, "name": template.name, "sha256": template.sha256},
            )
