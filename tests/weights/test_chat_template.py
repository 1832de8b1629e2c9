"""Hostile chat templates (tokenizer_config.json, chat_template.jinja, GGUF metadata): the static
AST check, the sandboxed render in its own limited process, and what `gate scan` reports. The
payloads would run ``touch <canary>`` when rendered outside a sandbox; the canary never appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.weights.chat_template import hostile_constructs, render_in_sandbox
from gate.weights.files import scan_file
from gate.weights.interface import FileReport

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_STYLE = (
    "{% set ns = namespace(system=false) %}{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = true %}{% endif %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
STRICT_ROLES = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{{ m['content'] }}{% endfor %}"
)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a template executed code"


@pytest.mark.parametrize("template", [CHATML, LLAMA3_STYLE, STRICT_ROLES])
def test_real_world_templates_are_clean_and_render(template: str) -> None:
    assert hostile_constructs(template) == ([], None)
    assert render_in_sandbox(template) == (None, None)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
         ["line 1: attribute `__globals__`", "line 1: attribute `__init__`", "line 1: global `cycler`"]),
        ("{{ joiner.__init__.__globals__ }}", ["line 1: attribute `__globals__`", "line 1: attribute `__init__`", "line 1: global `joiner`"]),
        ("{{ namespace.__init__.__globals__ }}",
         ["line 1: attribute `__globals__`", "line 1: attribute `__init__`", "line 1: attribute `__init__` of `namespace`"]),
        ("{{ self._TemplateReference__context }}", ["line 1: attribute `_TemplateReference__context`", "line 1: global `self`"]),
        ("{{ lipsum.__globals__['os'] }}", ["line 1: attribute `__globals__`", "line 1: global `lipsum`"]),
        ("{{ ''|attr('__class__') }}", ["line 1: filter `attr` (attribute access by string)", "line 1: string '__class__' (underscore names are built from such strings)"]),
        ("{{ messages['__class__'] }}", ["line 1: item `__class__`", "line 1: string '__class__' (underscore names are built from such strings)"]),
        ("{% import 'os' as os %}", ["line 1: tag `{% import %}`"]),
        ("{% include 'x.html' %}", ["line 1: tag `{% include %}`"]),
        ("\n{{ config.items() }}", ["line 2: global `config`"]),
    ],
)
def test_hostile_constructs(template: str, expected: list[str]) -> None:
    assert hostile_constructs(template) == (expected, None)


def test_computed_dunders_are_flagged() -> None:
    template = "{% set u = '_' * 2 %}{{ (messages|first)[u ~ 'class' ~ u] }}"
    assert hostile_constructs(template) == (["line 1: string '_' (underscore names are built from such strings)"], None)


def test_sandbox_refuses_what_the_static_check_does_not_list() -> None:
    """Mutating the request in ImmutableSandboxedEnvironment (what transformers renders with)."""
    template = "{% set _ = messages.append({'role': 'system', 'content': 'obey'}) %}{{ messages|length }}"
    assert hostile_constructs(template) == ([], None)
    assert render_in_sandbox(template) == ("access to attribute 'append' of 'list' object is unsafe.", None)


def test_render_errors_and_limits() -> None:
    assert hostile_constructs("{% for m in messages %}{{ m.content }")[1] == (
        "does not compile: unexpected '}' (line 1)"
    )
    assert render_in_sandbox("{{ messages[9]['content'] }}") == (
        None, "does not render: UndefinedError: list object has no element 9"
    )
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert render_in_sandbox(loops, seconds=1.5) == (None, "rendering did not finish within 1.5 s (over the render time limit)")


def scan(path: Path) -> FileReport:
    return scan_file(path, path.name).report


def test_tokenizer_config_named_templates(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    hostile = f"{{{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}}}"
    path.write_text(json.dumps({"chat_template": [{"name": "default", "template": CHATML}, {"name": "tool_use", "template": hostile}]}))
    templates = {t.name: t for t in scan(path).chat_templates}
    assert templates["default"].hostile == [] and templates["default"].render_error is None
    assert templates["tool_use"].hostile[:3] == [
        "line 1: attribute `__globals__`", "line 1: attribute `__init__`", "line 1: global `cycler`"
    ]
    assert templates["tool_use"].hostile[3].startswith("the sandbox refused it: access to attribute '__init__'")


def test_jinja_file_and_gguf_metadata(tmp_path: Path, canary: Path) -> None:
    import gguf

    jinja = tmp_path / "chat_template.jinja"
    jinja.write_text("{{ self._TemplateReference__context }}")
    assert scan(jinja).chat_templates[0].hostile[:2] == ["line 1: attribute `_TemplateReference__context`", "line 1: global `self`"]
    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("tokenizer.chat_template", f"{{{{ lipsum.__globals__['os'].popen('touch {canary}') }}}}")
    writer.add_string("tokenizer.chat_template.rag", CHATML)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan(path)
    assert report.verdict.value == "ok"
    by_name = {t.name: t for t in report.chat_templates}
    assert set(by_name) == {"default", "rag"}
    assert {t.source for t in report.chat_templates} == {"tokenizer.chat_template"}
    assert "line 1: global `lipsum`" in by_name["default"].hostile
    assert by_name["rag"].hostile == []


def test_gate_scan_blocks_a_hostile_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ cycler.__init__ }}"}))
    assert main(["scan", str(tmp_path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["files"][0]["chat_templates"][0]["hostile"][:2] == ["line 1: attribute `__init__`", "line 1: global `cycler`"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    assert main(["scan", str(tmp_path)]) == 0
