"""Process settings a command runs under: torch threads and the torch device.

One place for both (``neurohw --threads N --device cpu|cuda|auto``, and each subcommand's
own ``--threads``/``--device``), instead of a ``torch.set_num_threads`` call per command.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from neurohw.errors import UsageError


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)``, restoring the old value afterwards.

    ``None`` or 0 leaves torch's setting unchanged. Small tensors (the SNN, the calibration
    refit, logic nets) are often several times faster on one thread on a busy machine.
    """
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str | None, where: str = "--device") -> str:
    """``cpu``/``cuda``/``cuda:N``/``auto`` → a torch device string that exists here.

    ``auto`` picks ``cuda`` when a GPU is visible, else ``cpu``; asking for ``cuda`` on a
    machine without one is a :class:`UsageError` (before any work starts).
    """
    import torch

    name = (name or "cpu").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(where, f"{name!r} requested but CUDA is not available on this machine")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise UsageError(where, f"{name!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return name
    raise UsageError(where, f"expected cpu, cuda, cuda:N or auto, got {name!r}")
