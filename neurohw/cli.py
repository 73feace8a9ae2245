"""The ``neurohw`` command line.

Each backend registers its own subcommands from a ``cli`` module with a
``register(subparsers)`` function (see ``SUBCOMMAND_MODULES``); a backend that is not
part of this checkout is simply absent from ``neurohw --help``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: Modules that add subcommands. Each defines ``register(subparsers) -> None`` and sets
#: ``func`` on the parsers it adds (``args.func(args)`` returns the exit status).
SUBCOMMAND_MODULES = (
    "neurohw.commands",
    "neurohw.loihi.cli",
    "snn.cli",
    "optics.cli",
    "distill.cli",
    "calibration.cli",
    "logic.cli",
)


def _import_optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Absent only when the missing module is the one we asked for (or its package);
        # an ImportError from inside the module is a real bug and propagates.
        if exc.name and name.startswith(exc.name):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurohw",
        description="Hardware-in-the-loop research toolkit: Loihi 2, optical and logic-gate backends.",
    )
    from neurohw import __version__

    parser.add_argument("--version", action="version", version=f"neurohw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        mod = _import_optional(name)
        if mod is not None:
            mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
