"""Synapses (conv / dense with a weight precision), shortcuts and spiking layers.

All modules take sequences (N, T, ...) and apply the synapse to all T steps at once
(folded into the batch), so only the neuron recurrence loops over time.

A **shortcut** adds the layer's *input spikes*, through a fixed synapse, to the *synaptic
input* of its neurons (pre-activation), i.e. on Loihi it is a second synapse group into the
same compartments. Both paths are one synaptic hop long, so their latencies match without
any delay. Two kinds:

* ``identity`` (same shape): weight ``γ`` on the diagonal (dense) or a 1×1 diagonal conv;
* ``pool`` (stride-2 conv, channel growth by an integer factor): a fixed 2×2 stride-2 conv,
  output channel ``o`` reading input channel ``o mod C_in`` with weight ``γ/4`` per tap.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from snn.binary import ALPHA_MODES, PRECISIONS, channel_mean_abs, effective_weight
from neurohw.loihi.fixedpoint import WEIGHT_SCALE, WEIGHT_STEP
from snn.neurons import CubaLIF


def _fold(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _unfold(y: torch.Tensor, n: int, t: int) -> torch.Tensor:
    return y.reshape(n, t, *y.shape[1:])


class Synapse(nn.Module):
    """A conv (``kind="conv"``) or dense (``kind="dense"``) synapse with a weight precision.

    conv: weight (C_out, C_in, k, k), PyTorch cross-correlation with ``stride``/``padding``;
    dense: weight (out, in). No bias (deployed neurons have none). Input (N, T, ...).
    ``max_abs``: clip on |weight| in float units (the graded-input first layer, whose 24-bit
    current must hold 255 × Σ|w|; see :func:`snn.model.graded_weight_limit`).
    """

    def __init__(self, kind: str, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1,
                 precision: str = "binary", alpha: str = "mean", name: str = "synapse", max_abs: float | None = None):
        super().__init__()
        if kind not in ("conv", "dense"):
            raise ValueError(f"{name}: synapse kind must be 'conv' or 'dense', got {kind!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"{name}: unknown precision {precision!r}; choose one of {PRECISIONS}")
        if alpha not in ALPHA_MODES:
            raise ValueError(f"{name}: unknown alpha mode {alpha!r}; choose one of {ALPHA_MODES}")
        self.kind, self.cin, self.cout = kind, cin, cout
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.precision, self.alpha_mode, self.name = precision, alpha, name
        shape = (cout, cin, kernel, kernel) if kind == "conv" else (cout, cin)
        w = torch.empty(shape)
        fan_in = cin * (kernel * kernel if kind == "conv" else 1)
        # Spikes are 0/1 with rates well below 1: a wider init than Kaiming keeps layers active.
        nn.init.normal_(w, 0.0, 2.0 / math.sqrt(fan_in))
        self.weight = nn.Parameter(w)
        self.alpha = nn.Parameter(channel_mean_abs(w).flatten().clone()) if (precision == "binary" and alpha == "learned") else None
        self.hardness = 1.0
        self.max_abs = None if max_abs is None else float(max_abs)

    def effective_weight(self) -> torch.Tensor:
        """The weight used in the forward pass (on the Loihi grid unless precision is float).

        With ``max_abs`` (float units, on the grid) the latent weight is clipped to
        ``[−max_abs, max_abs]`` first (straight-through: the gradient is not cut)."""
        w = self.weight
        if self.max_abs is not None:
            w = w + (w.clamp(-self.max_abs, self.max_abs) - w).detach()
        return effective_weight(w, self.precision, self.alpha, self.hardness)

    def apply_weight(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return F.conv2d(x, w, stride=self.stride, padding=self.padding)
        return F.linear(x.flatten(1), w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        return _unfold(self.apply_weight(self.effective_weight(), _fold(x)), n, t)

    def extra_repr(self) -> str:
        geo = f", k={self.kernel}, stride={self.stride}, pad={self.padding}" if self.kind == "conv" else ""
        clip = f", max_abs={self.max_abs}" if self.max_abs is not None else ""
        return f"{self.kind} {self.cin}->{self.cout}{geo}, precision={self.precision}{clip}"


def snap_gamma(gamma: float, taps: int = 1) -> float:
    """Shortcut weight with ``γ/taps`` on the 2/64 weight grid (at least one grid step)."""
    per_tap = max(WEIGHT_STEP, round(gamma / taps * WEIGHT_SCALE / WEIGHT_STEP) * WEIGHT_STEP) / WEIGHT_SCALE
    return per_tap * taps


class Shortcut(nn.Module):
    """Fixed shortcut synapse from a layer's input spikes to its neurons (see module docstring).

    ``weight`` buffer holds the equivalent conv/dense weight (float, on the grid) used for
    deployment; the forward pass uses the cheap equivalent (scaling / pooling).
    """

    def __init__(self, kind: str, cin: int, cout: int, gamma: float = 1.0, pool: bool = False):
        super().__init__()
        self.kind, self.cin, self.cout, self.pool = kind, cin, cout, pool
        if pool:
            if kind != "conv" or cout % cin:
                raise ValueError(f"pool shortcut needs conv with C_out a multiple of C_in, got {cin}->{cout}")
            self.gamma = snap_gamma(gamma, taps=4)
            w = torch.zeros(cout, cin, 2, 2)
            for o in range(cout):
                w[o, o % cin] = self.gamma / 4
            self.stride, self.padding, self.kernel = 2, 0, 2
        else:
            if cin != cout:
                raise ValueError(f"identity shortcut needs equal sizes, got {cin}->{cout}")
            self.gamma = snap_gamma(gamma)
            if kind == "conv":
                w = torch.zeros(cout, cin, 1, 1)
                w[torch.arange(cout), torch.arange(cin), 0, 0] = self.gamma
                self.stride, self.padding, self.kernel = 1, 0, 1
            else:
                w = torch.eye(cout) * self.gamma
        self.register_buffer("weight", w)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        n, t = s.shape[:2]
        x = _fold(s)
        if self.pool:
            y = F.avg_pool2d(x, 2) * self.gamma
            y = y.repeat(1, self.cout // self.cin, 1, 1)
        elif self.kind == "dense":
            y = x.flatten(1) * self.gamma
        else:
            y = x * self.gamma
        return _unfold(y, n, t)

    def extra_repr(self) -> str:
        return f"{'pool' if self.pool else 'identity'} {self.cin}->{self.cout}, gamma={self.gamma}"


class SpikingLayer(nn.Module):
    """Synapse (+ optional shortcut) → CUBA LIF. Input spikes (N, T, ...) → spikes (N, T, ...)."""

    def __init__(self, synapse: Synapse, neuron: CubaLIF, shortcut: Shortcut | None = None):
        super().__init__()
        self.synapse, self.neuron, self.shortcut = synapse, neuron, shortcut

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = self.synapse(s)
        if self.shortcut is not None:
            x = x + self.shortcut(s)
        return self.neuron(x)
