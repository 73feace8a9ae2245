"""Weight precisions: float, 8-bit Loihi grid, and 1-bit ``α·sign(w)``.

Binary weights (XNOR-Net / Bi-Real style, as METHODS.md §1): ``w_b = α_c · sign(w)`` with
one scale per output channel ``c``:

* ``alpha="mean"``: ``α_c = mean |w_c|`` over the channel's fan-in (gradient flows into w);
* ``alpha="learned"``: ``α_c`` is a parameter (initialised to mean |w_c|, used as |α_c|).

``α`` is rounded onto the 8-bit weight grid (multiples of 2/64, at least 2/64) so the
deployed synapse row is ``±α_c`` in hardware units. ``sign(0) = +1`` (no zero weights).
Backward: the clipped straight-through estimator, ``∂sign(w)/∂w = 1{|w| ≤ 1}``.

Hardening (∂B-style, optional): with ``hardness h`` in [0, 1] the forward weight is
``α·(h·sign(w) + (1−h)·clip(w/α, −1, 1))``; a schedule raises h to 1 during training so the
network ends exactly binary (h = 1 is the plain binary forward). With h = 1 the hard
and soft weights agree, so the accuracy measured at the end is the binary accuracy.
"""
from __future__ import annotations

import torch

from neurohw.loihi.fixedpoint import WEIGHT_MAX, WEIGHT_SCALE, WEIGHT_STEP, _ste, quantize_weight

PRECISIONS = ("float", "int8", "binary")
ALPHA_MODES = ("mean", "learned")


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (w,) = ctx.saved_tensors
        return g * (w.abs() <= 1).to(g.dtype)


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    """±1 (sign(0) = +1) forward, clipped straight-through backward."""
    return _SignSTE.apply(w)


def quantize_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Round scales onto the weight grid (even multiples of 1/64 in [2/64, 254/64]), STE."""
    q = (torch.round(alpha * (WEIGHT_SCALE / WEIGHT_STEP)) * WEIGHT_STEP).clamp(WEIGHT_STEP, WEIGHT_MAX) / WEIGHT_SCALE
    return _ste(alpha, q)


def channel_mean_abs(w: torch.Tensor) -> torch.Tensor:
    """Mean |w| over every axis but the first (output channel), shaped to broadcast with w."""
    return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


def binarize(w: torch.Tensor, alpha: torch.Tensor | None = None, hardness: float = 1.0) -> torch.Tensor:
    """``α·sign(w)`` with α on the grid; ``alpha`` None → per-channel mean |w|.

    ``alpha``: learned scales of shape (C_out,), used as ``|alpha|``. ``hardness`` < 1 blends in
    the clipped latent weight (see module docstring).
    """
    a = channel_mean_abs(w) if alpha is None else alpha.abs().view(-1, *([1] * (w.dim() - 1)))
    a = quantize_alpha(a)
    hard = sign_ste(w)
    if hardness >= 1.0:
        return a * hard
    soft = torch.clamp(w / a.detach(), -1.0, 1.0)
    return a * (hardness * hard + (1.0 - hardness) * soft)


def effective_weight(w: torch.Tensor, precision: str, alpha: torch.Tensor | None = None, hardness: float = 1.0) -> torch.Tensor:
    """The weight the forward pass uses for a given precision (float, int8 grid, binary)."""
    if precision == "float":
        return w
    if precision == "int8":
        return quantize_weight(w)
    if precision == "binary":
        return binarize(w, alpha, hardness)
    raise ValueError(f"unknown weight precision {precision!r}; choose one of {PRECISIONS}")
