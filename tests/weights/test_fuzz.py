"""hypothesis fuzzing: arbitrary (and mutated valid) bytes never make the safetensors validator or
the pickle analyser raise anything but their own errors, and never hang."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import struct
import time
from collections import OrderedDict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.weights import pickle_scan, safetensors_check
from gate.weights.files import scan_file
from gate.weights.interface import FileReport, FileVerdict
from gate.weights.limits import LimitExceeded

# No hypothesis deadline (the machine is shared; timing noise would flake): each check asserts
# its own generous time bound instead, which still catches a hang or a quadratic blow-up.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TIME_BOUND_S = 5.0

VALID_PICKLES = [
    pickle.dumps(OrderedDict(a=[1, 2.0, "x"], b={"c": (None, True, b"\x00")}), protocol=p) for p in range(6)
]
VALID_HEADER = json.dumps(
    {"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
).encode()


def _mutate(base: bytes, data: st.DataObject) -> bytes:
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        if not out:
            break
        index = data.draw(st.integers(0, len(out) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            out[index] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del out[index]
        elif action == "insert":
            out[index:index] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del out[index:]
    return bytes(out)


def _analyse_ok(raw: bytes) -> None:
    start = time.monotonic()
    result = pickle_scan.analyse_bytes(raw)  # must not raise
    assert time.monotonic() - start < TIME_BOUND_S
    assert result.error is None or isinstance(result.error, str)


@FUZZ
@given(st.binary(max_size=2048))
def test_pickle_analyser_on_arbitrary_bytes(raw: bytes) -> None:
    _analyse_ok(raw)


@FUZZ
@given(st.sampled_from(VALID_PICKLES), st.data())
def test_pickle_analyser_on_mutated_pickles(base: bytes, data: st.DataObject) -> None:
    _analyse_ok(_mutate(base, data))


@FUZZ
@given(st.binary(max_size=2048), st.integers(0, 4096))
def test_safetensors_header_on_arbitrary_bytes(raw: bytes, data_size: int) -> None:
    start = time.monotonic()
    with contextlib.suppress(safetensors_check.SafetensorsInvalid, LimitExceeded):
        safetensors_check.parse_header(raw, data_size)
    assert time.monotonic() - start < TIME_BOUND_S


@FUZZ
@given(st.data())
def test_safetensors_header_on_mutated_headers(data: st.DataObject) -> None:
    raw = _mutate(VALID_HEADER, data)
    with contextlib.suppress(safetensors_check.SafetensorsInvalid, LimitExceeded):
        safetensors_check.read_header(io.BytesIO(struct.pack("<Q", len(raw)) + raw + b"\0" * 8), 8 + len(raw) + 8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=1024), st.sampled_from(VALID_PICKLES).map(lambda b: b[: len(b) // 2])))
def test_scan_file_never_raises(tmp_path: Path, content: bytes) -> None:
    for prefix in (b"", b"PK\x03\x04", struct.pack("<Q", 40) + b"{", b"GGUF\x03\x00\x00\x00", b"\x93NUMPY\x01\x00"):
        path = tmp_path / "fuzz.bin"
        path.write_bytes(prefix + content)
        start = time.monotonic()
        assert isinstance(scan_file(path, "fuzz.bin").report, FileReport)
        assert time.monotonic() - start < TIME_BOUND_S


def _valid_files() -> dict[str, bytes]:
    """One valid file of each container/weight format, built in memory once."""
    import tempfile
    import zipfile

    from tests.weights import payloads as pl
    from tests.weights.test_gguf_check import write_gguf

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gguf_bytes = write_gguf(root / "m.gguf", tensors=2).read_bytes()
        torch_zip = pl.torch_like_zip(root / "m.pt", pl.clean_pickle()).read_bytes()
        plain = root / "plain.zip"
        with zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("config.json", '{"a": 1}')
            archive.writestr("inner/clean.pkl", pl.clean_pickle())
        zip_bytes = plain.read_bytes()
    safetensors = struct.pack("<Q", len(VALID_HEADER)) + VALID_HEADER + b"\0" * 8
    return {"model.safetensors": safetensors, "model.gguf": gguf_bytes, "model.pt": torch_zip, "bundle.zip": zip_bytes,
            "model.pkl": VALID_PICKLES[4]}


VALID_FILES = _valid_files()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(VALID_FILES)), data=st.data())
def test_mutated_valid_files_get_a_verdict_in_bounded_time(tmp_path: Path, name: str, data: st.DataObject) -> None:
    """Mutated safetensors, GGUF, zip and pickle files: a verdict, never a traceback or a hang."""
    path = tmp_path / name
    path.write_bytes(_mutate(VALID_FILES[name], data))
    start = time.monotonic()
    report = scan_file(path, name, templates=False).report
    assert time.monotonic() - start < TIME_BOUND_S
    assert isinstance(report.verdict, FileVerdict)
    if report.verdict in (FileVerdict.invalid, FileVerdict.unparseable, FileVerdict.unknown, FileVerdict.limit):
        assert report.reason


def test_valid_fuzz_seeds_are_accepted(tmp_path: Path) -> None:
    verdicts = {}
    for name, content in VALID_FILES.items():
        (tmp_path / name).write_bytes(content)
        verdicts[name] = scan_file(tmp_path / name, name, templates=False).report.verdict
    assert verdicts == {
        "model.safetensors": FileVerdict.ok, "model.gguf": FileVerdict.ok, "model.pt": FileVerdict.safe_by_allowlist,
        "bundle.zip": FileVerdict.container, "model.pkl": FileVerdict.safe_by_allowlist,
    }
