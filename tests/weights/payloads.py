"""Hostile files built by hand for the scanner tests. Every executing payload runs
``touch <canary>``: a test asserts the canary never appears after scanning.

The opcodes are assembled byte by byte so each attack is exactly the one named."""

from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from pathlib import Path


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def proto0_global(cmd: str) -> bytes:
    """Protocol 0 text pickle, no 0x80 magic: GLOBAL os.system + REDUCE."""
    return f"cos\nsystem\n(S'{cmd}'\ntR.".encode()


def proto1_global(cmd: str) -> bytes:
    """Protocol 1 (binary, still no PROTO opcode): GLOBAL + BINUNICODE + TUPLE1-free MARK/TUPLE."""
    raw = cmd.encode()
    return b"cposix\nsystem\n(X" + struct.pack("<I", len(raw)) + raw + b"tR."


def stack_global(cmd: str, module: str = "os", name: str = "system") -> bytes:
    return b"\x80\x04" + sbu(module) + sbu(name) + b"\x93" + sbu(cmd) + b"\x85R."


def memo_stack_global(cmd: str) -> bytes:
    """STACK_GLOBAL whose operands come from the memo, with decoys in between."""
    return (
        b"\x80\x04"
        + sbu("os") + b"\x94"            # memo 0 = "os"
        + sbu("system") + b"\x94"        # memo 1 = "system"
        + b"0" + b"0"                   # pop both
        + sbu("collections") + b"\x94"   # memo 2 (decoy)
        + b"0"
        + b"h\x00h\x01\x93"              # BINGET 0, BINGET 1, STACK_GLOBAL
        + sbu(cmd) + b"\x85R."
    )


def inst(cmd: str) -> bytes:
    return f"(S'{cmd}'\nios\nsystem\n.".encode()


def obj(cmd: str) -> bytes:
    return f"(cos\nsystem\nS'{cmd}'\no.".encode()


def newobj() -> bytes:
    """NEWOBJ on subprocess.Popen (protocol 2)."""
    return b"\x80\x02csubprocess\nPopen\n" + sbu("x") + b"\x85\x81."


def newobj_ex() -> bytes:
    return b"\x80\x04" + sbu("subprocess") + sbu("Popen") + b"\x93" + sbu("x") + b"\x85}\x92."


def build_gadget() -> bytes:
    """BUILD with a state dict on an object from a non-allowlisted class."""
    return b"\x80\x02cbuiltins\nobject\n)R}" + sbu("x") + b"K\x01sb."


def partial_gadget(cmd: str) -> bytes:
    """functools.partial(os.system, cmd)() -- the callable is a partial, not os.system itself."""
    return f"cfunctools\npartial\n(cos\nsystem\nS'{cmd}'\ntR)R.".encode()


def attrgetter_gadget(cmd: str) -> bytes:
    """operator.attrgetter('system')(importlib.import_module('os'))(cmd)."""
    return (
        "coperator\nattrgetter\n(S'system'\ntR"
        "(cimportlib\nimport_module\n(S'os'\ntRtR"
        f"(S'{cmd}'\ntR."
    ).encode()


def dotted_name(cmd: str) -> bytes:
    """STACK_GLOBAL ("pathlib", "os.system"): protocol 4 resolves dotted names attribute by attribute."""
    return stack_global(cmd, module="pathlib", name="os.system")


def builtins_eval(cmd: str) -> bytes:
    return f"cbuiltins\neval\n(S\"__import__('os').system('{cmd}')\"\ntR.".encode()


def builtins_exec(cmd: str) -> bytes:
    return f"cbuiltins\nexec\n(S\"__import__('os').system('{cmd}')\"\ntR.".encode()


def builtins_getattr(cmd: str) -> bytes:
    return f"cbuiltins\ngetattr\n(cos\nsystem\nS'__call__'\ntR(S'{cmd}'\ntR.".encode()


def nested_loads(cmd: str) -> bytes:
    inner = proto0_global(cmd)
    return b"\x80\x04cpickle\nloads\nC" + bytes([len(inner)]) + inner + b"\x85R."


def extension_code() -> bytes:
    return b"\x80\x02\x82\x01)R."


def unresolved_stack_global() -> bytes:
    """STACK_GLOBAL whose operands are results of calls (not strings the scanner can read)."""
    return b"\x80\x04" + sbu("x") + b"\x85" + sbu("y") + b"\x85\x93."


def clean_pickle() -> bytes:
    return pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=4)


def torch_like_zip(path: Path, data_pkl: bytes, *, prefix: str = "archive", compress: bool = False) -> Path:
    """A zip laid out like ``torch.save``'s archive, with ``data_pkl`` as its pickle."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr(f"{prefix}/data.pkl", data_pkl)
        archive.writestr(f"{prefix}/byteorder", "little")
        archive.writestr(f"{prefix}/data/0", b"\x00" * 64)
        archive.writestr(f"{prefix}/version", "3\n")
    return path


def set_encrypted_flag(path: Path) -> None:
    """Set the 'encrypted' flag bit on every local and central header (Python's zipfile then
    refuses to read the members; a tolerant loader does not care)."""
    raw = bytearray(path.read_bytes())
    for sig, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (index := raw.find(sig, start)) != -1:
            raw[index + flag_offset] |= 0x01
            start = index + 4
    path.write_bytes(bytes(raw))


def hide_member_from_central_directory(path: Path, payload: bytes) -> None:
    """Prepend a stored member holding ``payload`` that only a local-header walk finds."""
    name = b"archive/extra.pkl"
    header = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(payload), len(payload), len(payload), len(name), 0
    )
    original = path.read_bytes()
    # zipfile tolerates bytes before the archive (self-extracting zips), so the result still opens.
    path.write_bytes(header + name + payload + original)


def zip_bomb(path: Path, inflated_bytes: int) -> Path:
    """A deflated data.pkl that inflates to ``inflated_bytes`` (zeros)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\x00" * (1 << 20)
    body = b"".join(compressor.compress(chunk) for _ in range(inflated_bytes // len(chunk))) + compressor.flush()
    name = b"archive/data.pkl"
    crc = 0
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), inflated_bytes, len(name), 0)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(body), inflated_bytes, len(name), 0, 0, 0, 0, 0, 0
    )
    cd_offset = len(local) + len(name) + len(body)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), cd_offset, 0)
    path.write_bytes(local + name + body + central + name + end)
    return path
