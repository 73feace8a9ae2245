"""Input spike encoders used by the BWSNN (time is axis 1).

``"if"`` (default): a deterministic integrate-and-fire code on 8-bit pixels. With
``X = round(255·x)``, step t (0-based) spikes iff
``⌊((t+1)·X + 127)/255⌋ − ⌊(t·X + 127)/255⌋ = 1`` — exactly ``round(T·X/255)`` spikes
spread evenly over T steps, computed in integers (identical on every device).
``"rate"``: Bernoulli rate code from :func:`neurohw.data.rate_encode` (seeded generator).
"""
from __future__ import annotations

import torch

from neurohw.data.encoders import if_encode, rate_encode  # noqa: F401  (if_encode re-exported)

ENCODINGS = ("if", "rate")


def encode(x: torch.Tensor, steps: int, encoding: str = "if", generator: torch.Generator | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] → spikes (N, T, C, H, W) with the named encoding."""
    if encoding == "if":
        return if_encode(x, steps)
    if encoding == "rate":
        return rate_encode(x, steps, generator=generator)
    raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
