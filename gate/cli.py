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
    "runtime",
    "version",
)


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"gate.commands.{name.replace('-', '_')}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` (a command name), only that command's module is imported.

    ``gate check`` is a pre-commit hook: importing all fifteen command modules (and what they
    import) to run one of them cost more CPU than the check itself. The other commands stay
    registered by name, so usage errors still list them.
    """
    parser = argparse.ArgumentParser(
        prog="gate",
        description="quant-gate: policy and validation gate for model quantization.",
    )
    parser.add_argument("--version", action="version", version=f"quant-gate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        module = _command_module(name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when it names one before any option (``gate check ...``)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code (never raises).

    The one place errors become exit codes: ``GateError`` -> its ``exit_code`` (2 bad input, 1
    blocked, 3 backend bug), ``KeyboardInterrupt`` -> 130, anything else -> 3 (a bug: traceback).
    """
    try:
        arguments = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(_named_command(arguments))
        try:
            args = parser.parse_args(arguments)
        except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
            return _system_exit_code(exc)
        if getattr(args, "_run", None) is None:
            parser.print_help(sys.stderr)
            return ExitCode.BAD_INPUT
        return int(args._run(args))
    except KeyboardInterrupt:
        print("gate: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except GateError as exc:
        from gate.report.safe import plain  # messages quote spec values: no escape sequence reaches the terminal

        print(f"gate: error: {plain(exc)}", file=sys.stderr)
        return int(exc.exit_code)
    except BrokenPipeError:  # `gate check ... | head`: stop quietly, and keep Python from complaining at exit
        _silence_stdout()
        return ExitCode.OK
    except SystemExit as exc:  # a command that called sys.exit (it should return a code instead)
        return _system_exit_code(exc)
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"gate: unexpected error ({type(exc).__name__}): {exc}", file=sys.stderr)
        print("This is a bug in quant-gate; the verdict is blocking.", file=sys.stderr)
        return ExitCode.UNEXPECTED


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return ExitCode.OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return ExitCode.BAD_INPUT


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # ``python -m gate.cli`` (benchmarks run the gate as a fresh process this way)
    entry()
