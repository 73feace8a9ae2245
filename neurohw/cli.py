"""The ``neurohw`` command line.

Subcommands come from modules with a ``register(subparsers)`` function: the hub's own
(:data:`HUB_MODULES`) and each registered backend's ``cli_modules``
(:mod:`neurohw.backend`); a backend that is not part of this checkout is simply absent
from ``neurohw --help``.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from neurohw import argtypes
from neurohw.backend import backends, import_optional
from neurohw.errors import is_user_error, one_line

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


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reads ``-4e-9``, ``-1E3`` and ``-inf`` as values, not options.

    (argparse alone only knows ``-4`` and ``-0.5``.) Subparsers inherit the class, so every
    command gets it; the argtypes then check the range.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="neurohw",
        description="Hardware-in-the-loop research toolkit: Loihi 2, optical and logic-gate backends.",
    )
    from neurohw import __version__

    parser.add_argument("--version", action="version", version=f"neurohw {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--threads", dest="global_threads", type=argtypes.threads, default=None,
                        help="torch CPU threads for the command (a command's own --threads wins; 0: torch's default)")
    parser.add_argument("--device", dest="global_device", type=argtypes.device, default=None,
                        help="torch device for commands that take one: cpu, cuda, cuda:N or auto (a command's own --device wins)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in subcommand_modules():
        mod = import_optional(name)
        if mod is not None:
            mod.register(sub)
    return parser


def resolve_runtime(args: argparse.Namespace) -> None:
    """Fill ``args.threads``/``args.device`` from the command's option, else the global one, else the default.

    Commands that take ``--device`` get a device string that exists on this machine
    (``auto`` resolved, ``cuda`` without a GPU refused).
    """
    from neurohw.runtime import resolve_device

    if hasattr(args, "threads_default"):
        for value in (args.threads, args.global_threads, args.threads_default):
            if value is not None:
                args.threads = value
                break
    if hasattr(args, "device_default"):
        given = args.device if args.device is not None else args.global_device
        where = "--device"
        args.device = resolve_device(given if given is not None else args.device_default, where)


#: Options that name something the command will write: checked before the command starts.
OUTPUT_OPTIONS = ("out", "json", "predictions", "labels_out", "all_layers", "report_json")


def check_outputs(args: argparse.Namespace) -> None:
    """Fail before any work when an output path cannot be written (its parent is a file, a
    folder is read-only …); :func:`neurohw.io.check_writable` names the option."""
    from pathlib import Path

    from neurohw.io import check_writable

    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            check_writable(value, "any", f"--{name.replace('_', '-')} {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status.

    The one error boundary of the CLI: a user error (any project error type, ``ValueError``,
    ``OSError``; see :mod:`neurohw.errors`) prints ``neurohw: error: <file/argument>: <problem>``
    on stderr and returns 2; any other exception prints one line and returns 1. ``--debug``
    re-raises instead, with the traceback.
    """
    from neurohw.runtime import torch_threads

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        resolve_runtime(args)
        check_outputs(args)
        threads = args.threads if hasattr(args, "threads_default") else args.global_threads
        with torch_threads(threads):
            status = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if is_user_error(exc):
            print(f"neurohw: error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"neurohw: internal error: {type(exc).__name__}: {one_line(exc)} (run 'neurohw --debug ...' for the traceback)",
              file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
