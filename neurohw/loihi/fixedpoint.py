"""Loihi / Lava 0.10 fixed-point primitives, as integer functions (numpy and torch int64).

Every rule here was read from Lava's ``fixed_pt`` process models (``lava/proc/lif/models.py``
``AbstractPyLifModelFixed``, ``lava/proc/dense/models.py`` ``AbstractPyDenseModelBitAcc``,
``lava/proc/conv/models.py`` ``PyConvModelFixed``, ``lava/utils/weightutils.py``) and from
lava-dl's ``netx/utils.py`` ``optimize_weight_bits``; ``docs/loihi.md`` lists them.
The last section maps these grids to float models (lava-dl / SLAYER conventions, used by
:mod:`snn` for training on the grid). Nothing here imports Lava.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Decays are 12-bit fractions of ``DECAY_UNITY``.
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
#: Synaptic input and threshold are MSB-aligned by 6 bits (``act_shift``, ``vth_shift``).
ACT_SHIFT = 6
VTH_SHIFT = 6
#: Current and voltage are 24-bit registers.
UV_BITS = 24
MAX_UV = 1 << (UV_BITS - 1)  # 2**23
#: Lava's LIF current decay adds ``ds_offset`` = 1 to ``du``; voltage uses ``dm_offset`` = 0.
DS_OFFSET = 1
DM_OFFSET = 0

#: Parameter ranges of Lava's bit-accurate LIF (docstring of ``PyLifModelBitAcc``).
RANGES = {
    "du": (0, 4095),
    "dv": (0, 4095),
    "vth": (0, 131071),
    "bias_mant": (-4096, 4095),
    "bias_exp": (0, 7),
}

SIGN_MODES = ("mixed", "excitatory", "inhibitory")


# ----------------------------------------------------------------------------- torch integer ops
def to_int64(x: torch.Tensor) -> torch.Tensor:
    """int64 copy of ``x``; float values are rounded to the nearest integer first.

    Every float tensor the simulator casts holds exact integer sums on CPU, but a GPU kernel
    (or a future reordering of a sum) may return 2.9999 for 3; ``.to(torch.int64)`` alone would
    truncate that to 2. Rounding first makes every float→int cast safe.
    """
    if x.dtype.is_floating_point:
        return torch.round(x).to(torch.int64)
    return x.to(torch.int64)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of int64 values to int32 (what numpy does when it stores into int32)."""
    return ((x + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def wrap_current(x: torch.Tensor) -> torch.Tensor:
    """Lava's single 24-bit wrap of the current: ``x > 2^23 → x − 2^24``, else ``x ≤ −2^23 → x + 2^24``.

    It is one conditional correction, not a modulo (a value beyond ±3·2^23 stays outside 24 bits,
    exactly as in Lava).
    """
    hi = x > MAX_UV
    out = torch.where(hi, x - 2 * MAX_UV, x)
    return torch.where(out <= -MAX_UV, x + 2 * MAX_UV, out)


def signed_clamp(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Modular signed wrap to ``bits`` bits (Lava's ``conv.utils.signed_clamp``)."""
    base = 1 << bits
    return torch.remainder(x + base // 2, base) - base // 2


def shift_exp(x: torch.Tensor, exp: int) -> torch.Tensor:
    """``x << exp`` for ``exp > 0``, else arithmetic (floor) ``x >> -exp``."""
    return x << exp if exp > 0 else x >> (-exp)


# ----------------------------------------------------------------------------- weights (numpy)
def sign_mode_of(weight: np.ndarray) -> str:
    """Lava's ``determine_sign_mode``: all ≥ 0 → excitatory, all ≤ 0 → inhibitory, else mixed."""
    w = np.asarray(weight)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def clip_weights(weight: np.ndarray, sign_mode: str, num_bits: int = 8) -> np.ndarray:
    """Lava's ``clip_weights``: mixed → [−2^b, 2^b−1]; excitatory → [0, 2^b−1];
    inhibitory → magnitude [0, 2^b−1] (so −256 becomes −255 and positive weights 0)."""
    w = np.asarray(weight).astype(np.int64)
    if sign_mode == "inhibitory":
        return -np.clip(-w, 0, (1 << num_bits) - 1)
    lo = -(1 << num_bits) if sign_mode == "mixed" else 0
    return np.clip(w, lo, (1 << num_bits) - 1)


def truncate_weights(weight: np.ndarray, sign_mode: str, num_weight_bits: int) -> np.ndarray:
    """Lava's ``truncate_weights``: drop ``8 − num_weight_bits + is_mixed`` low bits (floor;
    on the magnitude for inhibitory weights). A negative count shifts by a negative amount in
    numpy, which Lava never reaches with valid settings; we reject it in validation."""
    w = np.asarray(weight).astype(np.int64)
    k = 8 - int(num_weight_bits) + int(sign_mode == "mixed")
    if k <= 0:
        return w
    if sign_mode == "inhibitory":
        return -(((-w) >> k) << k)
    return (w >> k) << k


def effective_dense_weights(weight: np.ndarray, sign_mode: str | None, num_weight_bits: int) -> np.ndarray:
    """The integer weights Lava's bit-accurate Dense actually uses (clip to 8 bits, then truncate)."""
    mode = sign_mode or sign_mode_of(weight)
    return truncate_weights(clip_weights(weight, mode, 8), mode, num_weight_bits)


@dataclass(frozen=True)
class NetxWeights:
    """What ``netx.hdf5.Network`` makes of an integer dense weight matrix."""

    weight: np.ndarray
    num_weight_bits: int
    weight_exp: int
    sign_mode: str  # as Lava's Dense will re-determine it (netx does not pass it on)


def netx_optimize_weight_bits(weight: np.ndarray) -> NetxWeights:
    """Re-implementation of lava-dl 0.6 ``netx.utils.optimize_weight_bits`` (no Lava import).

    Mixed sign: ``scale_bits = floor(log2(min(127/max, −128/min))) + 1``; inhibitory:
    ``floor(log2(−256/min))``; excitatory: ``floor(log2(255/max))``; weights ``<< scale_bits``;
    ``n`` = number of trailing zero bits shared by all weights (≤ 8), minus 1 if mixed;
    ``num_weight_bits = 8 − scale_bits − n``, ``weight_exp = −scale_bits``. Mixed weights
    outside [−256, 254] are clipped (netx prints a warning). An all-zero matrix makes netx
    fail (log2 of infinity); we raise ``ValueError`` instead.
    """
    w = np.asarray(weight).astype(np.int64)
    mx, mn = int(w.max()), int(w.min())
    if mx > 254 and mn < 0:
        w = np.clip(w, -256, 254)
        mx = int(w.max())
    if mn < -256 and mx > 0:
        w = np.clip(w, -256, 254)
        mn = int(w.min())
    if mx < 0:
        signed = 0
        scale = -256 / mn
    elif mn >= 0:
        signed = 0
        if mx == 0:
            raise ValueError("netx cannot load an all-zero weight matrix (log2 of an infinite scale)")
        scale = 255 / mx
    else:
        signed = 1  # netx calls max == 0 with negative weights "mixed" too
        scale = min(127 / mx if mx > 0 else np.inf, -128 / mn)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0:
        if np.sum(np.abs(w / (2**n) - np.round(w / (2**n)))) == 0:
            break
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    if scale_bits < 0:
        raise ValueError(f"weights up to {mx} exceed what netx can represent (scale_bits={scale_bits})")
    shifted = w << scale_bits
    return NetxWeights(shifted, int(num_weight_bits), int(-scale_bits), sign_mode_of(shifted))


# ----------------------------------------------------------------------------- float grids
# Units (SLAYER's ``scale = 64``): a float weight or threshold of 1.0 is 64 hardware units;
# neuron states (current ``u``, voltage ``v``) are float × 4096 in hardware. Decays are
# ``k/4096`` with integer ``k``.
#
# * weights: 8-bit mixed-sign Lava weights are even integers in [−256, 254] (Lava truncates
#   ``W = (W >> 1) << 1``), so float weights live on the grid ``2/64`` in ``[−4, 3.96875]``;
# * thresholds: ``vth`` integer 0..131071 → float grid ``1/64``;
# * decays: current decay ``(du + 1)/4096`` (Lava adds ``ds_offset = 1``), du 0..4095;
#   voltage decay ``dv/4096``, dv 0..4095.
#
# The quantisers use a straight-through estimator so that a model can train on the grid.

WEIGHT_SCALE = 1 << VTH_SHIFT              #: float weight 1.0 = 64 hardware weight units
STATE_SCALE = WEIGHT_SCALE << ACT_SHIFT    #: float state 1.0 = 4096 hardware state units
WEIGHT_STEP = 2                            #: mixed-sign 8-bit weights are even integers
WEIGHT_MIN, WEIGHT_MAX = -256, 254
VTH_MAX = RANGES["vth"][1]                 #: 17-bit threshold mantissa
STATE_LIMIT = MAX_UV                       #: 24-bit signed states


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
