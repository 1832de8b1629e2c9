"""The ``gate`` command line. The only place that maps errors to exit codes.

Subcommands live in ``gate.commands.<name>`` modules (``HELP``, ``configure(parser)``,
``run(args) -> int``). Command modules import heavy libraries (torch, transformers, lm-eval)
inside ``run`` only, so ``gate --help`` and ``gate check`` stay light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from gate import __version__
from gate.errors import ExitCode, GateError

COMMANDS: tuple[str, ...] = (
    "check",
    "run",
    "report",
    "plan",
    "scan",
    "lock",
    "policy",
    "explain",
    "schema",
    "init",
    "example",
    "registry",
    "revalidate",
    "stats",
    "version",
)


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"gate.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate",
        description="quant-gate: policy and validation gate for model quantization.",
    )
    parser.add_argument("--version", action="version", version=f"quant-gate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _command_module(name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code (never raises)."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
            return int(exc.code) if isinstance(exc.code, int) else ExitCode.BAD_INPUT
        if getattr(args, "_run", None) is None:
            parser.print_help(sys.stderr)
            return ExitCode.BAD_INPUT
        return int(args._run(args))
    except KeyboardInterrupt:
        print("gate: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except GateError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become exit 3
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"gate: unexpected error ({type(exc).__name__}): {exc}", file=sys.stderr)
        print("This is a bug in quant-gate; the verdict is blocking.", file=sys.stderr)
        return ExitCode.UNEXPECTED


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
