"""``tinyevo`` entry point: discovers subcommand modules in :mod:`tinyevo.cli` and dispatches.

A subcommand module defines ``register(subparsers) -> None`` which adds its parser and sets
``func=handler`` where ``handler(args) -> int`` returns the exit code. Named tinyevo errors become one line on
stderr and exit code 2, as do argparse errors. ``-v`` / ``--verbose`` (before or after the command) shows debug
messages and third-party output, which is hidden otherwise (:mod:`tinyevo.cli._quiet`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterable, Sequence

from tinyevo import __version__
from tinyevo.cli._quiet import configure_logging
from tinyevo.cli._signals import Terminated, sigterm_as_interrupt
from tinyevo.errors import TinyEvoError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


#: Every subcommand with its one-line help: ``tinyevo.cli.<name>`` registers its full parser. Listed here so that
#: ``tinyevo --help`` and one command's run import only that command's module (start-up; tests/test_cli_main.py
#: checks this table against what the modules register).
COMMANDS: dict[str, str] = {
    "bench": "run a strategy on a tabular NAS benchmark (NB201, NAS-Bench-Macro)",
    "deepen": "add an identity-initialised residual layer to a retrained model (a derived model)",
    "devices": "list device profiles",
    "estimate": "MACs, params, weight bytes, flash, peak SRAM, latency and energy of one architecture",
    "export": "export a retrained model (int8 .tflite, C array, ONNX)",
    "profile": "per-op instructions of the native C model on an emulated Cortex-M",
    "report": "write plots and an HTML report of a run",
    "resume": "continue a stopped or killed run",
    "retrain": "redo a run's final retraining (longer, more models, on a GPU)",
    "search": "run a hardware-aware architecture search",
    "show": "show the trials of a run",
    "supernet": "train a weight-sharing supernet once; score genomes with it",
    "tinynas": "choose the blocks sub-space (width x resolution) for the limits (TinyNAS stage 1)",
    "zoo": "list known architectures (seeds for --init)",
}


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``tinyevo`` parser. ``commands=None`` registers every subcommand's full parser; otherwise only the named
    ones are imported and registered, and the rest appear by name and help only (enough for ``tinyevo --help``)."""
    parser = _Parser(prog="tinyevo", description="Hardware-aware evolutionary NAS for microcontrollers.")
    parser.add_argument("--version", action="version", version=f"tinyevo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show debug messages and third-party output (warnings, converter logs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    full = set(_discover() if commands is None else commands)
    names = sorted(set(COMMANDS) | full)
    for name in names:
        if name in full:
            module = importlib.import_module(f"tinyevo.cli.{name}")
            register = getattr(module, "register", None)
            if register is not None:
                register(sub)
        else:
            sub.add_parser(name, help=COMMANDS[name], add_help=False)
    for command in {id(p): p for p in sub.choices.values()}.values():  # `-v` after the command works too
        with contextlib.suppress(argparse.ArgumentError):  # a command that uses -v itself keeps it
            command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="show debug messages and third-party output")
    return parser


def _discover() -> list[str]:
    import pkgutil

    import tinyevo.cli as pkg

    return sorted(info.name for info in pkgutil.iter_modules(pkg.__path__)
                  if info.name != "main" and not info.name.startswith("_"))


def _command_of(argv: Sequence[str]) -> list[str]:
    """The subcommand that ``argv`` runs, as a list (empty for none or an unknown one). The top-level options take
    no values, so the first word that is not an option is the command."""
    for word in argv:
        if word == "--":
            return []
        if not word.startswith("-"):
            return [word] if word in COMMANDS else []
    return []


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():  # kill PID stops a search like Ctrl-C (workers stopped, resumable)
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except TinyEvoError as exc:
        sys.stderr.write(f"tinyevo: error: {exc}\n")
        return 2
    except Terminated:
        sys.stderr.write("tinyevo: terminated (SIGTERM)\n")
        return 143
    except KeyboardInterrupt:
        sys.stderr.write("tinyevo: interrupted\n")
        return 130


def _quiet_stdout() -> None:
    """The reader of stdout went away (``tinyevo estimate --json | head``): point stdout at devnull so that
    Python's flush at exit does not fail again, and exit without a traceback (the documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor (captured)
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
