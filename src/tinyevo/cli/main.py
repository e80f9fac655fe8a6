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
import pkgutil
import sys
from collections.abc import Sequence

from tinyevo import __version__
from tinyevo.cli._quiet import configure_logging
from tinyevo.errors import TinyEvoError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinyevo", description="Hardware-aware evolutionary NAS for microcontrollers.")
    parser.add_argument("--version", action="version", version=f"tinyevo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show debug messages and third-party output (warnings, converter logs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import tinyevo.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tinyevo.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for command in {id(p): p for p in sub.choices.values()}.values():  # `-v` after the command works too
        with contextlib.suppress(argparse.ArgumentError):  # a command that uses -v itself keeps it
            command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="show debug messages and third-party output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except TinyEvoError as exc:
        sys.stderr.write(f"tinyevo: error: {exc}\n")
        return 2
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
