"""Chat templates: the Jinja source a server renders for every request.

``tokenizer_config.json``'s ``chat_template`` (a string, or a list of ``{name, template}``), a
``chat_template.jinja`` file and GGUF's ``tokenizer.chat_template[.<name>]`` are rendered by
transformers, vLLM, TGI and llama.cpp servers; llama-cpp-python rendered them outside a sandbox
and ran code (CVE-2024-34359). Each template is checked twice:

1. Statically, on Jinja's AST (``Environment.parse``; nothing renders): attribute or item access
   to underscore names (``__class__``, ``__globals__``, ``_TemplateReference__context``), the
   ``attr`` filter, strings holding ``__`` or starting with ``_`` (the pieces of a computed dunder), the globals that lead out of the template (``self``,
   ``lipsum``, ``cycler``, ``joiner``, ``namespace`` attributes, ``config``, ``request``...), and
   ``import``/``include``/``extends`` tags.
2. By rendering it in Jinja's ``ImmutableSandboxedEnvironment`` (what transformers uses) on a sample
   conversation, in a separate isolated Python process with a CPU-time, memory and wall-clock
   limit: a ``SecurityError`` is hostile; a template that compiles or renders nowhere is reported.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from gate.weights.interface import ChatTemplateReport
from gate.weights.limits import ScanLimits

RENDER_SECONDS = 5.0
RENDER_MEMORY_BYTES = 1 << 30
DIFF_LINES = 200
GGUF_TEMPLATE_KEY = "tokenizer.chat_template"

FORBIDDEN_NAMES = frozenset(
    {
        "self", "lipsum", "cycler", "joiner", "config", "request", "session", "g", "url_for",
        "get_flashed_messages", "os", "sys", "builtins", "__builtins__", "importlib", "subprocess",
        "getattr", "setattr", "eval", "exec", "compile", "open", "globals", "locals", "vars", "__import__",
    }
)
"""Names that reach Python objects outside the template context (or try to)."""
FORBIDDEN_TAGS = {"Import": "import", "FromImport": "from ... import", "Include": "include", "Extends": "extends"}


def templates_in_config(value: Any, source: str) -> list[tuple[str, str, str]]:
    """(source, name, template) of each chat template in a parsed tokenizer_config.json."""
    if not isinstance(value, dict) or "chat_template" not in value:
        return []
    raw = value["chat_template"]
    if isinstance(raw, str):
        return [(source, "default", raw)]
    found: list[tuple[str, str, str]] = []
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                found.append((source, str(item.get("name", index)), item["template"]))
    return found


def templates_in_gguf(metadata: dict[str, str], source: str) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for key, template in sorted(metadata.items()):
        if key == GGUF_TEMPLATE_KEY:
            out.append((source, "default", template))
        elif key.startswith(GGUF_TEMPLATE_KEY + "."):
            out.append((source, key[len(GGUF_TEMPLATE_KEY) + 1 :], template))
    return out


def check_template(source: str, name: str, template: str, limits: ScanLimits) -> ChatTemplateReport:
    digest = hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()
    if len(template.encode("utf-8", "surrogatepass")) > limits.template_bytes:
        return ChatTemplateReport(
            source=source, name=name, sha256=digest,
            render_error=f"template is over the `template_bytes` limit of {limits.template_bytes} bytes",
        )
    hostile, compile_error = hostile_constructs(template)
    if compile_error is not None:
        return ChatTemplateReport(source=source, name=name, sha256=digest, hostile=hostile, render_error=compile_error)
    security, render_error = render_in_sandbox(template)
    if security is not None:
        hostile = [*hostile, f"the sandbox refused it: {security}"]
    return ChatTemplateReport(source=source, name=name, sha256=digest, hostile=hostile, render_error=render_error)


def hostile_constructs(template: str) -> tuple[list[str], str | None]:
    """What in the template reaches outside it, with line numbers; and a compile error, if any."""
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        tree = ImmutableSandboxedEnvironment().parse(template)
    except TemplateSyntaxError as exc:
        return [], f"does not compile: {exc.message} (line {exc.lineno})"
    except RecursionError:
        return [], "does not compile: nests too deeply"
    found: list[str] = []

    def add(node: nodes.Node, what: str) -> None:
        entry = f"line {node.lineno}: {what}"
        if entry not in found:
            found.append(entry)

    for node in _walk(tree):
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                add(node, f"attribute `{node.attr}`")
            if isinstance(node.node, nodes.Name) and node.node.name == "namespace":
                add(node, f"attribute `{node.attr}` of `namespace`")
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
                add(node, f"item `{node.arg.value}`")
        elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name in FORBIDDEN_NAMES:
            add(node, f"global `{node.name}`")
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            add(node, "filter `attr` (attribute access by string)")
        elif isinstance(node, nodes.Const) and isinstance(node.value, str) and ("__" in node.value or node.value.startswith("_")):
            add(node, f"string {node.value[:40]!r} (underscore names are built from such strings)")
        elif type(node).__name__ in FORBIDDEN_TAGS:
            add(node, f"tag `{{% {FORBIDDEN_TAGS[type(node).__name__]} %}}`")
    return sorted(found, key=lambda entry: (int(entry.split(":", 1)[0][5:]), entry)), None


def _walk(tree: Any) -> Iterator[Any]:
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


_RENDERER = r"""
import json, sys
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

class Refused(Exception):
    pass

def raise_exception(message):
    raise Refused(message)

job = json.loads(sys.stdin.read())
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = lambda fmt: "26 Jul 2024"
errors = []
try:
    template = env.from_string(job["template"])
except Exception as exc:
    print(json.dumps({"security": None, "error": "does not compile: " + str(exc)[:300]}))
    sys.exit(0)
for context in job["contexts"]:
    try:
        text = template.render(**context)
        if len(text) > 1 << 20:
            errors.append("renders over 1 MiB for a 4-message conversation")
            continue
        print(json.dumps({"security": None, "error": None}))
        sys.exit(0)
    except SecurityError as exc:
        print(json.dumps({"security": str(exc)[:300], "error": None}))
        sys.exit(0)
    except Refused as exc:
        errors.append("raise_exception: " + str(exc)[:200])
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc)[:200])
print(json.dumps({"security": None, "error": "does not render: " + errors[0]}))
"""

SAMPLE_CONTEXTS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3 + 3?"},
        ],
        "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>", "tools": None,
    },
    {
        "messages": [
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3 + 3?"},
        ],
        "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>", "tools": None,
    },
]


def _limit_child() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (RENDER_MEMORY_BYTES, RENDER_MEMORY_BYTES))
    cpu = int(RENDER_SECONDS) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def render_in_sandbox(template: str, seconds: float = RENDER_SECONDS) -> tuple[str | None, str | None]:
    """(sandbox SecurityError, other render error) of rendering ``template`` on the sample
    conversations in an isolated child process; both None when it renders."""
    job = json.dumps({"template": template, "contexts": SAMPLE_CONTEXTS})
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", _RENDERER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_child,
    )
    try:
        out, err = child.communicate(job.encode("utf-8", "surrogatepass"), timeout=seconds)
    except subprocess.TimeoutExpired:
        _kill(child)
        return None, f"rendering did not finish within {seconds:g} s (over the render time limit)"
    finally:
        if child.poll() is None:
            _kill(child)
    if child.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        if child.returncode < 0 or "MemoryError" in last[0]:
            return None, "rendering ran out of its CPU or memory limit"
        return None, f"rendering failed: {last[0][:200]}"
    try:
        result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "rendering produced no result"
    return result.get("security"), result.get("error")


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def template_diff(base: str, head: str, label: str) -> str:
    lines = list(
        difflib.unified_diff(base.splitlines(), head.splitlines(), fromfile=f"base:{label}", tofile=f"head:{label}", lineterm="")
    )
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... ({len(lines) - DIFF_LINES} more diff lines)"]
    return "\n".join(lines)


__all__ = [
    "GGUF_TEMPLATE_KEY",
    "check_template",
    "hostile_constructs",
    "render_in_sandbox",
    "template_diff",
    "templates_in_config",
    "templates_in_gguf",
]
