"""``tinyevo`` entry point: discovers subcommand modules in :mod:`tinyevo.cli` and dispatches.

A subcommand module defines ``register(subparsers) -> None`` which adds its parser and sets
``func=handler`` where ``handler(args) -> int`` returns the exit code. Named tinyevo errors become one line on
stderr and exit code 2, as do argparse errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from tinyevo import __version__
from tinyevo.errors import TinyEvoError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinyevo", description="Hardware-aware evolutionary NAS for microcontrollers.")
    parser.add_argument("--version", action="version", version=f"tinyevo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import tinyevo.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tinyevo.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
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
