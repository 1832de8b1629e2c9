"""`gate lock MODEL_PATH|SPEC [--out FILE] [--revision HEX]`: write a sha256 lockfile."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of
from gate.errors import InputError, SourceLocation

HELP = "pin every file of a model (path, size, sha256) in a lockfile to commit"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", type=Path, metavar="MODEL_PATH",
        help="model directory or GGUF file; or a spec (*.yaml), whose model and model.lockfile are used",
    )
    parser.add_argument("--out", type=Path, default=None, help="lockfile to write (default: the spec's model.lockfile, or MODEL_PATH.lock.json)")
    parser.add_argument("--revision", default=None, metavar="HEX", help="hub commit the files were downloaded at")
    add_repo_root(parser)


def run(args: argparse.Namespace) -> int:
    from gate.weights import write_lockfile

    model_path, out, revision = _targets(args)
    lock = write_lockfile(model_path, out, revision=revision)
    total = sum(e.size for e in lock.files)
    print(f"wrote {out}: {len(lock.files)} file(s), {total} bytes", file=sys.stderr)
    return 0


def _targets(args: argparse.Namespace) -> tuple[Path, Path, str | None]:
    target: Path = args.target
    if target.suffix in (".yaml", ".yml") and target.is_file():
        from gate.spec.loader import load_spec
        from gate.weights.confinement import check_path

        loaded = load_spec(target)
        model = loaded.spec.model
        root = repo_root_of(args, target.parent)
        if model.hub is not None:
            raise InputError(
                "a hub model is locked from its downloaded snapshot",
                hint="run `gate lock <snapshot dir> --revision <commit> --out <lockfile>`",
                location=loaded.source_map.locate(("model", "hub")),
            )
        local = model.path or model.gguf or ""
        key = "path" if model.path else "gguf"
        for name, value in ((key, local), ("lockfile", model.lockfile)):
            if value is not None and (problem := check_path(f"model.{name}", value, root)):
                raise InputError(f"model.{name}: {value!r} {problem.reason}", location=loaded.source_map.locate(("model", name)))
        out = args.out or (root / model.lockfile if model.lockfile else None)
        if out is None:
            raise InputError(
                "model.lockfile is not set and no --out was given",
                hint="add `model.lockfile: <path>` to the spec, or pass --out FILE",
                location=loaded.source_map.locate(("model",)),
            )
        return root / local, out, args.revision
    if not os.path.lexists(target):
        raise InputError("model path does not exist", hint="pass the model directory (or GGUF file) to lock",
                         location=SourceLocation(str(target)))
    # Default: next to the model, e.g. weights/support-assistant -> weights/support-assistant.lock.json
    out = args.out or target.with_name(target.name + ".lock.json")
    return target, out, args.revision
