"""CUBA LIF neurons in float whose constants live on Loihi's grids.

One step, float units (1.0 = 64 weight units = 4096 state units, see :mod:`neurohw.loihi.fixedpoint`)::

    u ← u·(1 − (du+1)/4096) + x        # synaptic current; x = Σ w·s of this step
    v ← v·(1 − dv/4096) + u            # membrane voltage (uses the new u)
    s = v > θ                          # strict, as on Loihi
    v ← 0 where s                      # u is kept; no refractory period

With ``exact=True`` (default) the forward pass reproduces Lava's fixed-point arithmetic
(decays truncated toward zero on the 1/4096 grid, 24-bit current wrap, voltage
saturation) while the backward pass differentiates the smooth decays (straight-through):
the float model in eval mode then spikes exactly as the integer simulator does, provided
the synaptic input is on the weight grid. Decay rounding is done in float64 (exact for
24-bit states), everything else stays in the input dtype.

snnTorch: :class:`snntorch.Leaky` (``reset_mechanism="zero"``) computes the same
spikes for ``du = 4095`` and ``exact=False`` (tests check this spike for spike); we do not
build on it because it steps one time slice per call with hidden state in the module,
which forbids batching the synapse over all T steps (see ``bench/snn``), and has no
notion of Loihi's truncation, wrap and saturation.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from neurohw.loihi.cuba import cuba_sequence, lava_keeps
from neurohw.loihi.fixedpoint import DECAY_UNITY, STATE_SCALE, VTH_MAX, current_decay_to_du, snap_threshold, voltage_decay_to_dv
from snn.surrogate import get_surrogate


def lif_sequence(
    x: torch.Tensor,
    du: int,
    dv: int,
    theta: float,
    spike_fn: Callable[[torch.Tensor], torch.Tensor],
    exact: bool = True,
    detach_reset: bool = True,
    return_states: bool = False,
):
    """Run CUBA LIF over time. ``x``: input current (N, T, ...) in float units.

    The recurrence is :func:`neurohw.loihi.cuba.cuba_sequence` (``"rounded"`` arithmetic when
    ``exact``, else ``"float"``). Returns spikes (N, T, ...) in ``x.dtype`` (0/1), and with
    ``return_states`` also the current and voltage after each step (post-reset voltage),
    both (N, T, ...).
    """
    if x.dim() < 2:
        raise ValueError(f"lif_sequence: input must be (N, T, ...), got shape {tuple(x.shape)}")
    keep_u, keep_v = lava_keeps(du, dv)
    return cuba_sequence(x, keep_u, keep_v, theta, arith="rounded" if exact else "float", unit=STATE_SCALE,
                         spike_fn=spike_fn, detach_reset=detach_reset, time_dim=1, return_states=return_states)


class CubaLIF(nn.Module):
    """A layer of CUBA LIF neurons on Loihi's grids. Input/output (N, T, ...).

    ``current_decay`` in (0, 1] (1 = no synaptic filter) and ``voltage_decay`` in [0, 1) are
    snapped to ``k/4096``; ``threshold`` to the 1/64 grid. The snapped integers are kept as
    ``du``, ``dv`` and ``vth`` (what Lava's LIF process receives). ``input_scale`` k > 1: the
    layer is fed integer payloads standing for ``x·k`` (graded ``direct`` input, k = 255): the
    threshold becomes ``k·θ`` (``vth = 64·k·θ``, at most 131071) and the surrogate gradient is
    taken at ``(v − kθ)/k``.
    """

    def __init__(
        self,
        current_decay: float = 1.0,
        voltage_decay: float = 0.25,
        threshold: float = 1.0,
        surrogate: str = "atan",
        surrogate_param: float | None = None,
        exact: bool = True,
        detach_reset: bool = True,
        input_scale: int = 1,
    ):
        super().__init__()
        self.du = current_decay_to_du(current_decay)
        self.dv = voltage_decay_to_dv(voltage_decay)
        self.input_scale = int(input_scale)
        self.threshold = snap_threshold(threshold) * self.input_scale
        self.vth = int(round(self.threshold * 64))
        if self.vth > VTH_MAX:
            raise ValueError(f"CubaLIF: threshold {threshold} × input scale {self.input_scale} gives vth {self.vth}, "
                             f"above Loihi's {VTH_MAX}")
        self.surrogate = surrogate
        base = get_surrogate(surrogate, surrogate_param)
        # Payload units (input_scale > 1): the surrogate sees (v − θ)/scale, so gradients match
        # a unit-scale layer fed x = payload/scale; the forward (x > 0) is unchanged.
        self.spike_fn = base if self.input_scale == 1 else (lambda z, f=base, k=float(self.input_scale): f(z / k))
        self.exact = exact
        self.detach_reset = detach_reset

    @property
    def current_decay(self) -> float:
        return (self.du + 1) / DECAY_UNITY

    @property
    def voltage_decay(self) -> float:
        return self.dv / DECAY_UNITY

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_sequence(x, self.du, self.dv, self.threshold, self.spike_fn, self.exact, self.detach_reset)

    def extra_repr(self) -> str:
        scale = f", input_scale={self.input_scale}" if self.input_scale != 1 else ""
        return f"du={self.du}, dv={self.dv}, vth={self.vth}, surrogate={self.surrogate}, exact={self.exact}{scale}"
