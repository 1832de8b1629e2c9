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
from gate.weights.interface import FileReport

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
    with contextlib.suppress(safetensors_check.SafetensorsInvalid):
        safetensors_check.parse_header(raw, data_size)
    assert time.monotonic() - start < TIME_BOUND_S


@FUZZ
@given(st.data())
def test_safetensors_header_on_mutated_headers(data: st.DataObject) -> None:
    raw = _mutate(VALID_HEADER, data)
    with contextlib.suppress(safetensors_check.SafetensorsInvalid):
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
