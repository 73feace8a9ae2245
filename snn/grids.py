"""Loihi's number grids, as seen from a float model (lava-dl conventions).

Units (SLAYER's ``scale = 64``): a float weight or threshold of 1.0 is 64 hardware units;
neuron states (current ``u``, voltage ``v``) are float × 4096 in hardware. Decays are
``k/4096`` with integer ``k``.

* weights: 8-bit mixed-sign Lava weights are even integers in [−256, 254] (Lava truncates
  ``W = (W >> 1) << 1``), so float weights live on the grid ``2/64`` in ``[−4, 3.96875]``;
* thresholds: ``vth`` integer 0..131071 → float grid ``1/64``;
* decays: current decay ``(du + 1)/4096`` (Lava adds ``ds_offset = 1``), du 0..4095;
  voltage decay ``dv/4096``, dv 0..4095.

The quantisers here use a straight-through estimator so that a model can train on the grid.
"""
from __future__ import annotations

import torch

WEIGHT_SCALE = 64          #: float weight 1.0 = 64 hardware weight units
STATE_SCALE = 4096         #: float state 1.0 = 4096 hardware state units (64 << 6)
DECAY_UNITY = 4096         #: decays are k / 4096
WEIGHT_STEP = 2            #: mixed-sign 8-bit weights are even integers
WEIGHT_MIN, WEIGHT_MAX = -256, 254
VTH_MAX = 131071           #: 17-bit threshold mantissa
STATE_LIMIT = 2 ** 23      #: 24-bit signed states


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward ``q``, backward identity to ``x``."""
    return x + (q - x).detach()


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Round float weights onto the 8-bit Loihi grid (multiples of 2/64 in [−4, 3.96875]), STE."""
    q = (torch.round(w * (WEIGHT_SCALE / WEIGHT_STEP)) * WEIGHT_STEP).clamp(WEIGHT_MIN, WEIGHT_MAX) / WEIGHT_SCALE
    return _ste(w, q)


def weight_to_int(w: torch.Tensor) -> torch.Tensor:
    """Float weights already on the grid → int64 hardware weights; raises if off-grid."""
    q = torch.round(w.detach().double() * WEIGHT_SCALE)
    if not torch.equal(q, w.detach().double() * WEIGHT_SCALE):
        raise ValueError("weight_to_int: weights are not on the 1/64 grid (quantise first)")
    q = q.long()
    if q.numel() and (q.min() < WEIGHT_MIN or q.max() > WEIGHT_MAX or (q % WEIGHT_STEP != 0).any()):
        raise ValueError(f"weight_to_int: weights outside Lava's mixed 8-bit range (even, [{WEIGHT_MIN}, {WEIGHT_MAX}])")
    return q


def threshold_to_int(theta: float) -> int:
    """Float threshold → ``vth`` mantissa (θ·64); must be on the 1/64 grid and in 0..131071."""
    vth = theta * WEIGHT_SCALE
    if vth != round(vth) or not 0 <= vth <= VTH_MAX:
        raise ValueError(f"threshold {theta} is not on the 1/64 grid within [0, {VTH_MAX}/64]")
    return int(round(vth))


def snap_threshold(theta: float) -> float:
    """Nearest threshold on the 1/64 grid (at least 1/64)."""
    return max(1, min(VTH_MAX, round(theta * WEIGHT_SCALE))) / WEIGHT_SCALE


def current_decay_to_du(decay: float) -> int:
    """Float current decay in (0, 1] → Lava ``du`` with ``(du + 1)/4096 ≈ decay`` (du 0..4095)."""
    if not 0 < decay <= 1:
        raise ValueError(f"current decay {decay} must lie in (0, 1]")
    return int(min(4095, max(0, round(decay * DECAY_UNITY) - 1)))


def voltage_decay_to_dv(decay: float) -> int:
    """Float voltage decay in [0, 1) → Lava ``dv`` with ``dv/4096 ≈ decay`` (dv 0..4095)."""
    if not 0 <= decay < 1:
        raise ValueError(f"voltage decay {decay} must lie in [0, 1)")
    return int(min(4095, max(0, round(decay * DECAY_UNITY))))
