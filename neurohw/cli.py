"""The ``neurohw`` command line.

Subcommands come from modules with a ``register(subparsers)`` function: the hub's own
(:data:`HUB_MODULES`) and each registered backend's ``cli_modules``
(:mod:`neurohw.backend`); a backend that is not part of this checkout is simply absent
from ``neurohw --help``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from neurohw.backend import backends, import_optional

#: Subcommand modules that belong to no hardware backend: first the hub's, then the
#: cross-backend workflows (after the backends' own). Each defines
#: ``register(subparsers) -> None`` and sets ``func`` on the parsers it adds
#: (``args.func(args)`` returns the exit status).
HUB_MODULES = ("neurohw.commands",)
WORKFLOW_MODULES = ("distill.cli", "calibration.cli")


def subcommand_modules() -> tuple[str, ...]:
    """Every module that adds subcommands: the hub's, each backend's ``cli_modules``, the workflows'."""
    per_backend = tuple(m for b in backends().values() for m in b.cli_modules)
    return HUB_MODULES + per_backend + WORKFLOW_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurohw",
        description="Hardware-in-the-loop research toolkit: Loihi 2, optical and logic-gate backends.",
    )
    from neurohw import __version__

    parser.add_argument("--version", action="version", version=f"neurohw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in subcommand_modules():
        mod = import_optional(name)
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
