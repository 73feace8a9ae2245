"""argparse ``type=`` functions that check ranges before any work starts.

Each takes the option's text and returns the value or raises
``argparse.ArgumentTypeError``, so argparse prints ``argument --steps: …`` and exits 2.
Negative numbers are accepted as values wherever the range allows them
(``--width-bias -4e-9``).

* :func:`count` — int ≥ 1 (steps, samples, epochs, sizes)
* :func:`nonneg_int` — int ≥ 0 (instances, shifts, seeds)
* :func:`threads` — int ≥ 0 (0: torch's default)
* :func:`finite` — any finite float; :func:`positive` > 0; :func:`nonneg` ≥ 0
* :func:`fraction` — float in (0, 1]; :func:`rate` — float in [0, 1]
* :func:`int_list` / :func:`fraction_list` — comma-separated lists
* :func:`parse_experiment_args` — the options of a ``python -m`` experiment script
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:  # "1e3" is an integer too; "2.5", "nan" and "inf" are not
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _require(value, ok: bool, want: str, text: str):
    """``value`` if ``ok``, else an ``ArgumentTypeError`` saying it ``must be <want>``."""
    if not ok:
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value


def count(text: str) -> int:
    """An integer ≥ 1."""
    v = _int(text)
    return _require(v, v >= 1, "an integer >= 1", text)


def nonneg_int(text: str) -> int:
    """An integer ≥ 0."""
    v = _int(text)
    return _require(v, v >= 0, "an integer >= 0", text)


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2**32)."""
    v = _int(text)
    return _require(v, 0 <= v < 2**32, "an integer in [0, 2**32)", text)


def threads(text: str) -> int:
    """Torch intra-op threads: an integer ≥ 0 (0: leave torch's default)."""
    return nonneg_int(text)


def finite(text: str) -> float:
    """Any finite float (negative allowed)."""
    return _float(text)


def positive(text: str) -> float:
    """A finite float > 0."""
    v = _float(text)
    return _require(v, v > 0, "> 0", text)


def nonneg(text: str) -> float:
    """A finite float ≥ 0."""
    v = _float(text)
    return _require(v, v >= 0, ">= 0", text)


def fraction(text: str) -> float:
    """A float in (0, 1]."""
    v = _float(text)
    return _require(v, 0 < v <= 1, "in (0, 1]", text)


def rate(text: str) -> float:
    """A probability: a float in [0, 1]."""
    v = _float(text)
    return _require(v, 0 <= v <= 1, "in [0, 1]", text)


def _list_of(item: Callable[[str], object], what: str) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        parts = [t.strip() for t in str(text).split(",") if t.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
        return tuple(item(t) for t in parts)

    parse.__name__ = f"{what.replace(' ', '_')}_list"
    return parse


#: Comma-separated integers ≥ 0 (seeds): ``"0,1,2"`` → ``(0, 1, 2)``.
int_list = _list_of(nonneg_int, "integers")
#: Comma-separated fractions in (0, 1]: ``"0.05,0.1"`` → ``(0.05, 0.1)``.
fraction_list = _list_of(fraction, "fractions")


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names: ``"ce, kd"`` → ``("ce", "kd")``; empty is an error."""
    parts = tuple(t.strip() for t in str(text).split(",") if t.strip())
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return parts


def parse_experiment_args(doc: str, argv, **options: tuple[Callable[[str], object], object]) -> argparse.Namespace:
    """Parse the options of a ``python -m`` experiment script.

    ``name=(type, default)`` becomes ``--name`` (underscores → dashes) with that ``type=``
    function (one of this module's) and default; the description is ``doc``'s first line.
    ``argv`` None: ``sys.argv[1:]``. Bad values exit 2 with argparse's message.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, (kind, default) in options.items():
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=f"(default {default})")
    return ap.parse_args(argv)


def add_threads(parser: argparse.ArgumentParser, default: int | None = None, help: str | None = None) -> None:
    """Add ``--threads N`` to a subcommand.

    The option's own value wins, then the global ``neurohw --threads``, then ``default``
    (``None``/0: torch's default). :func:`neurohw.cli.main` resolves ``args.threads`` and
    runs the command inside :func:`neurohw.runtime.torch_threads`.
    """
    parser.add_argument("--threads", type=threads, default=None,
                        help=help or f"torch CPU threads (default: {default or 'torch' + chr(39) + 's choice'}; 0: torch's default)")
    parser.set_defaults(threads_default=default)


def add_device(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    """Add ``--device cpu|cuda|auto|cuda:N`` to a subcommand (resolved like ``neurohw --device``)."""
    parser.add_argument("--device", type=device, default=None, help=f"torch device: cpu, cuda, cuda:N or auto (default {default})")
    parser.set_defaults(device_default=default)


def device(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (syntax only; availability is checked at run time)."""
    t = str(text).strip().lower()
    if t in ("cpu", "cuda", "auto") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
