"""All layers of a feed-forward dense CUBA chain in one time loop, for small batches on CPU.

:func:`~neurohw.loihi.simulator.simulate` normally runs layer by layer (one matrix product per
synapse group over all steps, then the neuron loop over time). At batch 1 every numpy call
costs far more than its arithmetic, and a 2-layer net pays for two neuron loops. Here the
neurons of every layer sit side by side in one float64 state vector, so one decay, one
threshold and one reset per step serve all layers; the first layer's input over all steps is
computed beforehand, and each later layer receives, per step, the sum of the weight rows of
the previous layer's spikes of the step before (Lava's one-step synapse latency).

Exactness: every value is an integer below 2^53 (the caller checks with
:func:`~neurohw.loihi.simulator.cuba_flags` that no int32 store can wrap), and each step
runs :func:`neurohw.loihi.cuba.rounded_numpy_steps` (the same per-step operations), so the spikes and states
are those of the layer-by-layer run, which the suite checks against Lava. The sum of a later
layer's inputs is ``Σ_j w_ij − Σ_j q_j w_ij`` with ``q`` the 0/1 "did not spike" mask the
reset multiplies by (an exact integer matrix product).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cuba import rounded_numpy_steps
from .fixedpoint import ACT_SHIFT, MAX_UV


@dataclass
class ChainLayer:
    """One layer of the chain: ``n`` neurons; keep_u, keep_v: retained fractions per step;
    theta: threshold ``vth << 6``; bias: the effective bias (an int, or an int64 array (n,)).
    Layers after the first: ``weight_t`` (n_prev, n) effective integer weights as float64 and
    ``sum_exp``, the exponent applied to each summed input (floor for negative exponents).
    ``bias_range``: (min, max) of the bias."""

    n: int
    keep_u: float
    keep_v: float
    theta: float
    bias: int | np.ndarray = 0
    weight_t: np.ndarray | None = None
    sum_exp: int = 0
    #: (min, max) of the bias (what the caller's bounds need)
    bias_range: tuple[int, int] = (0, 0)


def chain_run(x0: np.ndarray, lead0: int, layers: list[ChainLayer], wrap: bool, clip: bool,
              record_state: bool = False):
    """Run the chain for ``lead0 + len(x0)`` steps.

    x0: (T − lead0, B, n_0) the first layer's synaptic input (``a_in`` units, exact integers,
    any numeric dtype), preceded by ``lead0`` steps of zero input. wrap / clip: apply the
    24-bit current wrap / the voltage saturation (to every layer: they are Lava's arithmetic,
    skipping them is only a shortcut where bounds prove them no-ops).
    Returns ``(outs, ranges)``: one ``(spikes (T, B, n) bool, v, u)`` per layer as torch tensors
    (v, u int64 or None without ``record_state``), and per layer after the first the (min, max)
    of the input it received (``a_in`` units): a caller that skipped the wrap or the clip on
    the strength of the first layer's input checks with these that the later layers did not
    need them either.
    """
    T = lead0 + x0.shape[0]
    B = x0.shape[1]
    ns = [layer.n for layer in layers]
    starts = np.concatenate([[0], np.cumsum(ns)]).astype(int)
    n_tot = int(starts[-1])
    scale = float(2**ACT_SHIFT)
    keep = np.empty((2, 1, n_tot), dtype=np.float64)
    theta = np.empty(n_tot, dtype=np.float64)
    bias = np.zeros(n_tot, dtype=np.float64)
    # per step: the first layer's input, and for later layers with exponent ≥ 0 the constant
    # Σ_j w_ij · 2^(e+6) from which the per-step product over the quiet inputs is subtracted
    drive = np.zeros((T, B, n_tot), dtype=np.float64)
    drive[lead0:, :, :ns[0]] = x0
    drive[lead0:, :, :ns[0]] *= scale
    later = []
    for k, layer in enumerate(layers):
        a, b = int(starts[k]), int(starts[k + 1])
        keep[0, 0, a:b], keep[1, 0, a:b] = layer.keep_u, layer.keep_v
        theta[a:b] = layer.theta
        bias[a:b] = layer.bias
        if k == 0:
            continue
        wt = np.asarray(layer.weight_t, dtype=np.float64)
        e = int(layer.sum_exp)
        if e >= 0:  # scaling integers by 2^(e+6) is exact
            wq = wt * float(2 ** (e + ACT_SHIFT))
            drive[1:, :, a:b] = wq.sum(axis=0)
            col = None
        else:
            wq, col = np.ascontiguousarray(wt), wt.sum(axis=0)
        got = np.zeros((T, B, b - a), dtype=np.float64)  # per step: Σ_j q_j w_ij (e ≥ 0) or the input·64
        later.append((int(starts[k - 1]), a, b, wq, col, e, got))

    def later_inputs(t: int, u: np.ndarray, qp: np.ndarray) -> None:
        """Each later layer's input of step t from the previous layer's spikes of step t − 1."""
        for pa, a, b, wq, col, e, got in later:
            u_seg, d = u[:, a:b], got[t]
            np.dot(qp[:, pa:a], wq, d)  # Σ_j q_j w_ij (·2^(e+6) when e ≥ 0): exact integers
            if col is None:
                np.subtract(u_seg, d, u_seg)
            else:  # Lava's floor shift of the sum, then the 6-bit alignment
                np.subtract(col, d, d)
                np.multiply(d, 2.0**e, d)
                np.floor(d, d)
                np.multiply(d, scale, d)
                np.add(u_seg, d, u_seg)

    res = rounded_numpy_steps(drive, keep[0], keep[1], theta, bias=bias, wrap=wrap, clip=clip,
                              return_states=record_state, step_input=later_inputs if later else None)
    spikes, us, vs = res if record_state else (res, None, None)
    ranges = []  # what each later layer actually received, in a_in units
    for pa, a, b, wq, col, e, got in later:
        recv = (drive[1:, :, a:b] - got[1:]) if col is None else got[1:]
        ranges.append((float(recv.min()) / scale, float(recv.max()) / scale) if recv.size else (0.0, 0.0))
    out = []
    for k in range(len(layers)):
        a, b = int(starts[k]), int(starts[k + 1])
        s = torch.from_numpy(np.ascontiguousarray(spikes[:, :, a:b]))
        if record_state:
            out.append((s, torch.from_numpy(vs[:, :, a:b].astype(np.int64)),
                        torch.from_numpy(us[:, :, a:b].astype(np.int64))))
        else:
            out.append((s, None, None))
    return out, ranges
