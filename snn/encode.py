"""Input spike encoders used by the BWSNN (time is axis 1).

``"if"`` (default): a deterministic integrate-and-fire code on 8-bit pixels. With
``X = round(255·x)``, step t (0-based) spikes iff
``⌊((t+1)·X + 127)/255⌋ − ⌊(t·X + 127)/255⌋ = 1`` — exactly ``round(T·X/255)`` spikes
spread evenly over T steps, computed in integers (identical on every device).
``"rate"``: Bernoulli rate code from :func:`neurohw.data.rate_encode` (seeded generator).
"""
from __future__ import annotations

import torch

from neurohw.data.encoders import rate_encode

ENCODINGS = ("if", "rate")


def if_encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Deterministic integrate-and-fire code. ``x`` (N, ...) in [0, 1] → float 0/1 (N, T, ...)."""
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("if_encode: input must lie in [0, 1]")
    X = torch.round(x * 255).long()
    t = torch.arange(steps + 1, device=x.device).view(1, steps + 1, *([1] * (x.dim() - 1)))
    cum = torch.div(t * X.unsqueeze(1) + 127, 255, rounding_mode="floor")
    return (cum[:, 1:] - cum[:, :-1]).to(torch.float32)


def encode(x: torch.Tensor, steps: int, encoding: str = "if", generator: torch.Generator | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] → spikes (N, T, C, H, W) with the named encoding."""
    if encoding == "if":
        return if_encode(x, steps)
    if encoding == "rate":
        return rate_encode(x, steps, generator=generator)
    raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
