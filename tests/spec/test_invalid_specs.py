"""Every bad spec gets one exact, positioned message with a hint, and `gate check` exits 2.

Committed cases: ``tests/spec/invalid/NAME.yaml`` with the exact error text in ``NAME.expected``.
Byte-level cases (non-UTF-8, oversize, alias bombs ...) are generated here instead of committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import SpecError
from gate.spec.loader import load_spec
from gate.spec.yaml_source import MAX_DEPTH, MAX_NODES, MAX_YAML_BYTES

INVALID = Path(__file__).parent / "invalid"
CASES = sorted(p.stem for p in INVALID.glob("*.yaml"))

VALID_HEAD = b"apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata:\n  name: tiny\n  owner: team-a\n  tier: internal\n"


def check_json(name: str, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(["check", name, "--format", "json", "--repo-root", str(repo_root)])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def assert_rejected(name: str, expected: str, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, err = check_json(name, repo_root, capsys)
    assert code == 2, err
    assert result["exit_code"] == 2
    assert result["verdict"]["decision"] == "error"
    assert result["error"] + "\n" == expected
    lines = [ln for ln in expected.splitlines() if not ln.startswith("  Hint: ")]
    assert [f["rule_id"] for f in result["findings"]] == ["QG000"] * len(lines)
    assert "Traceback" not in err
    # The terminal report (owned by the report module, which may wrap lines) exits the same way.
    code = main(["check", name, "--repo-root", str(repo_root)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err


def test_every_case_has_expected_text() -> None:
    assert len(CASES) >= 30
    missing = [c for c in CASES if not (INVALID / f"{c}.expected").exists()]
    assert missing == []
    orphans = [p.name for p in INVALID.glob("*.expected") if not (INVALID / f"{p.stem}.yaml").exists()]
    assert orphans == []


@pytest.mark.parametrize("case", CASES)
def test_committed_invalid_spec(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(INVALID)
    expected = (INVALID / f"{case}.expected").read_text(encoding="utf-8")
    assert_rejected(f"{case}.yaml", expected, tmp_path, capsys)


# Positions of the budget errors follow from the documents: the root mapping is level 1 (so the
# first `[` at column 12 is level 3), and 11 values precede the list's items.
def _deep(depth: int) -> bytes:
    return VALID_HEAD + b"model:\n  path: x\nquantization:\n  options: " + b"[" * depth + b"]" * depth + b"\n"


def _many_nodes() -> bytes:
    items = b", ".join([b"1"] * (MAX_NODES + 10))
    return VALID_HEAD + b"model:\n  path: x\nquantization:\n  keep_full_precision: [" + items + b"]\n"


def _billion_laughs() -> bytes:
    lines = [b'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9).encode()
        lines.append(f"a{i}: &a{i} [".encode() + refs + b"]")
    return b"\n".join(lines) + b"\n"


GENERATED: dict[str, tuple[Callable[[], bytes | None], str]] = {
    "not_utf8": (
        lambda: VALID_HEAD + b"model:\n  path: caf\xe9\n",
        "not_utf8.yaml:8:12: file is not valid UTF-8 (byte 0xe9 at offset 116)\n"
        "  Hint: save the spec as UTF-8 text\n",
    ),
    "latin1_owner": (
        lambda: b"apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata:\n  owner: \xff\xfe\n",
        "latin1_owner.yaml:4:10: file is not valid UTF-8 (byte 0xff at offset 61)\n"
        "  Hint: save the spec as UTF-8 text\n",
    ),
    "oversize": (
        lambda: VALID_HEAD + b"# " + b"x" * MAX_YAML_BYTES + b"\n",
        f"oversize.yaml: file is {len(VALID_HEAD) + MAX_YAML_BYTES + 3} bytes, over the {MAX_YAML_BYTES} byte limit for a spec\n"
        "  Hint: a spec is a small YAML document; check that this is the right file\n",
    ),
    "billion_laughs": (
        _billion_laughs,
        "billion_laughs.yaml:1:5: anchors and aliases are not allowed (found anchor `&a0`)\n"
        "  Hint: write the value out in full; specs are read by reviewers\n",
    ),
    "alias_only": (
        lambda: b"a: *undefined\n",
        "alias_only.yaml:1:4: anchors and aliases are not allowed (found alias `*undefined`)\n"
        "  Hint: write the value out in full; specs are read by reviewers\n",
    ),
    "null_anchor": (
        lambda: VALID_HEAD + b"model:\n  path: &p ~\n  gguf: *p\n",
        "null_anchor.yaml:8:9: anchors and aliases are not allowed (found anchor `&p`)\n"
        "  Hint: write the value out in full; specs are read by reviewers\n",
    ),
    "nul_byte": (
        lambda: VALID_HEAD + b"model:\n  path: a\x00b\n",
        "nul_byte.yaml:8:10: control character U+0000 is not allowed in YAML\n"
        '  Hint: remove it (is this a binary file?); use escapes like "\\t" in a quoted string\n',
    ),
    "deep_nesting": (
        lambda: _deep(MAX_DEPTH + 20),
        f"deep_nesting.yaml:10:{12 + MAX_DEPTH - 2}: document is nested more than {MAX_DEPTH} levels deep\n"
        "  Hint: flatten it\n",
    ),
    "very_deep_nesting": (
        lambda: _deep(2_000),
        f"very_deep_nesting.yaml:10:{12 + MAX_DEPTH - 2}: document is nested more than {MAX_DEPTH} levels deep\n"
        "  Hint: flatten it\n",
    ),
    "too_many_nodes": (
        _many_nodes,
        f"too_many_nodes.yaml:10:{25 + 3 * (MAX_NODES - 11)}: document has more than {MAX_NODES} values\n"
        "  Hint: split or shrink it\n",
    ),
    "missing_file": (
        lambda: None,
        "missing_file.yaml: file not found\n"
        "  Hint: check the path (relative paths are resolved from the current directory)\n",
    ),
    "lone_surrogate": (
        lambda: VALID_HEAD + b'model:\n  path: "weights/\\udad7"\n',
        "lone_surrogate.yaml:8:3: model.path: invalid unicode escape \\udad7 (a lone surrogate)\n"
        "  Hint: remove the escape, or write the character itself\n",
    ),
    "lone_surrogate_key": (
        lambda: VALID_HEAD + b'model:\n  "\\udad7": x\n',
        "lone_surrogate_key.yaml:8:3: model: invalid unicode escape \\udad7 (a lone surrogate)\n"
        "  Hint: remove the escape, or write the character itself\n",
    ),
    "utf16": (
        lambda: (VALID_HEAD + b"model:\n  path: x\n").decode().encode("utf-16"),
        "utf16.yaml:1:1: file is not valid UTF-8 (byte 0xff at offset 0)\n"
        "  Hint: save the spec as UTF-8 text\n",
    ),
}


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_invalid_spec(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make, expected = GENERATED[case]
    work = tmp_path / "specs"
    work.mkdir()
    content = make()
    if content is not None:
        (work / f"{case}.yaml").write_bytes(content)
    monkeypatch.chdir(work)
    assert_rejected(f"{case}.yaml", expected, tmp_path, capsys)


def test_utf8_bom_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bom.yaml").write_bytes(b"\xef\xbb\xbf" + VALID_HEAD + b"model:\n  path: weights/tiny\n")
    loaded = load_spec(Path("bom.yaml"))
    assert loaded.spec.metadata.name == "tiny"


def test_directory_where_a_file_is_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("specs").mkdir()
    with pytest.raises(SpecError) as caught:
        load_spec(Path("specs"))
    assert str(caught.value) == (
        "specs: is a directory, not a file\n"
        "  Hint: pass a spec file (`gate check` also accepts directories and expands them)"
    )


def test_empty_directory_given_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("specs").mkdir()
    Path("specs/notes.txt").write_text("not a spec\n")
    code = main(["check", "specs", "--repo-root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        "gate: error: specs: directory has no spec files (*.yaml, *.yml)\n"
        "  Hint: pass a spec file or a directory of specs\n"
    )


def test_missing_file_suggests_a_close_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("models").mkdir()
    Path("models/support.yaml").write_bytes(VALID_HEAD)
    with pytest.raises(SpecError) as caught:
        load_spec(Path("models/suport.yaml"))
    assert str(caught.value) == "models/suport.yaml: file not found\n  Hint: did you mean `models/support.yaml`?"


def test_fifo_is_refused_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe.yaml")
    with pytest.raises(SpecError) as caught:
        load_spec(Path("pipe.yaml"))
    assert str(caught.value) == (
        "pipe.yaml: is not a regular file\n  Hint: pass the spec file itself, not a pipe or device"
    )


def test_paths_in_messages_are_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    spec = tmp_path / "a" / "b" / "bad.yaml"
    spec.write_bytes(VALID_HEAD + b"model:\n  path: x\n  hub: y\n")
    monkeypatch.chdir(tmp_path / "a")
    shown = {
        str(err_location(Path("b/bad.yaml"))),
        str(err_location(Path("./b/bad.yaml"))),
        str(err_location(spec)),  # absolute, under the working directory -> relative
    }
    assert shown == {"b/bad.yaml:9:3"}
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert str(err_location(Path("../b/bad.yaml"))) == "../b/bad.yaml:9:3"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert str(err_location(spec)) == f"{spec}:9:3"  # absolute, outside the working directory


def err_location(path: Path) -> object:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.location
