"""Surrogate gradients for the spike nonlinearity ``s = (v − θ) > 0`` (strict, as on Loihi).

``atan`` and ``fast_sigmoid`` are snnTorch's own (:mod:`snntorch.surrogate`): forward
``(x > 0)``, backward ``α/2 / (1 + (π/2·α·x)²)`` and ``1/(1 + k|x|)²``.

``triangle`` is ours: snnTorch 1.0's ``surrogate.triangular`` returns ``±threshold`` in the
backward pass (a constant whose sign flips at 0, not a triangle), which is not the
triangle surrogate of the SEI-BWSNN authors' code conventions. Ours is
``max(0, 1 − |x|/w)/w`` with half-width ``w`` (default 1.0, i.e. one threshold).
"""
from __future__ import annotations

from typing import Callable

import torch
from snntorch import surrogate as _snt

SURROGATES = ("atan", "triangle", "fast_sigmoid")


class _Triangle(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        w = ctx.width
        return grad_out * (1.0 - x.abs() / w).clamp_min(0.0) / w, None


def triangle(width: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Heaviside forward, triangle ``max(0, 1 − |x|/width)/width`` backward."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        return _Triangle.apply(x, width)

    return inner


def get_surrogate(name: str, param: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The spike function ``x ↦ (x > 0)`` with the named surrogate gradient.

    ``param``: ATan's α (default 2), fast-sigmoid's slope k (default 25), triangle's half-width
    (default 1).
    """
    if name == "atan":
        return _snt.atan(alpha=2.0 if param is None else param)
    if name == "fast_sigmoid":
        return _snt.fast_sigmoid(slope=25.0 if param is None else param)
    if name == "triangle":
        return triangle(1.0 if param is None else param)
    raise ValueError(f"unknown surrogate {name!r}; choose one of {SURROGATES}")
