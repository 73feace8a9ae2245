"""The one CUBA LIF recurrence of neurohw, in three arithmetics.

Per step ``t`` (``x`` the synaptic input of that step, all in one unit)::

    u ← decay_u(u) + x                 # synaptic current
    v ← decay_v(v) + u + bias          # membrane voltage (uses the new u)
    s = v > θ                          # strict, as on Loihi (``strict=False``: v ≥ θ)
    v ← 0 where s                      # u is kept; no refractory period

``decay(x) = x · keep`` with ``keep`` the retained fraction per step (Lava: ``keep_u =
(4096 − du − 1)/4096``, ``keep_v = (4096 − dv)/4096``). The arithmetics:

* ``"float"`` — plain float (lava-dl / snnTorch style), differentiable.
* ``"rounded"`` — float whose forward pass is Lava's fixed-point rounding: each decay is
  truncated toward zero on the state grid, the current wraps at 24 bits, the voltage saturates
  at ±(2^23 − 1); when the input requires grad, the backward pass is straight-through the
  smooth decays. ``unit`` is the number of hardware state units in 1.0 of the input (4096 for
  snn's float units, 1 for hardware units). The rounding is computed in float64, which is exact
  for all 24-bit states.
* ``"int"`` — int64 with numpy's int32 wrap-around at every store, bit-identical to Lava's
  ``PyLifModelBitAcc`` for any input (hardware units, ``keep·4096`` must be an integer).

Used by :mod:`snn.neurons` (float / rounded, training), :mod:`snn.deploy` (int),
:mod:`neurohw.loihi.simulator` (rounded in float64 when no int32 store can wrap, else int) and
:func:`neurohw.loihi.quantize.float_cuba_reference` (float).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .fixedpoint import DECAY_UNITY, MAX_UV, wrap32, wrap_current

ARITHMETICS = ("float", "rounded", "int")


def _trunc_decay(x: torch.Tensor, keep: float, unit: float) -> torch.Tensor:
    """``trunc(X·keep)/unit`` with ``X = x·unit`` in float64 (Lava's ``sign·(|X·k| >> 12)``)."""
    if x.dtype == torch.float64 and unit == 1:
        return torch.mul(x, keep).trunc_()
    X = x.detach().double() * unit
    return (torch.trunc(X * keep) / unit).to(x.dtype)


def _ste(smooth: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Forward ``exact``, gradient of ``smooth`` (when it needs one)."""
    return smooth + (exact - smooth).detach() if smooth.requires_grad else exact


def _decay(x: torch.Tensor, keep: float, rounded: bool, unit: float) -> torch.Tensor:
    """``x·keep``; rounded: truncated on the state grid (straight-through when x needs grad)."""
    if not rounded:
        return x * keep
    exact = _trunc_decay(x, keep, unit)
    return _ste(x * keep, exact) if x.requires_grad else exact


def cuba_sequence(
    x: torch.Tensor,
    keep_u: float,
    keep_v: float,
    theta: float,
    *,
    bias: torch.Tensor | float | None = None,
    arith: str = "rounded",
    unit: float = 1.0,
    spike_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    strict: bool = True,
    detach_reset: bool = True,
    wrap: bool = True,
    clip: bool = True,
    time_dim: int = 0,
    lead: int = 0,
    return_states: bool = False,
):
    """Run the recurrence over ``x``'s axis ``time_dim``; see the module docstring.

    x: synaptic input per step in the state unit (any shape with a time axis; int64 for
    ``arith="int"``). keep_u, keep_v: retained fractions (``"int"``: multiples of 1/4096).
    theta: threshold in the same unit. bias: added to v every step (broadcast to one step).
    spike_fn: surrogate spike function of ``v − θ`` (float arithmetics; spikes are then in
    ``x.dtype``, reset multiplies by ``1 − s``); None: bool spikes ``v > θ`` (or ``≥``).
    wrap / clip: apply the 24-bit current wrap / voltage saturation (rounded and int only;
    callers may skip them when bounds prove them no-ops).
    lead: steps of zero input before ``x`` (a synaptic delay); the output has ``lead`` more steps.
    Returns spikes shaped like x, and with ``return_states`` also (u, v) after each step
    (voltage after reset).

    The rounded arithmetic in hardware units without autograd (the simulator's case) runs the
    same steps in place on float64 buffers (:func:`_rounded_inplace`).
    """
    if arith not in ARITHMETICS:
        raise ValueError(f"arith must be one of {ARITHMETICS}, got {arith!r}")
    if x.shape[time_dim] == 0:
        raise ValueError("cuba_sequence: the input has no time steps")
    inplace = arith == "rounded" and unit == 1 and spike_fn is None and not x.requires_grad and time_dim == 0
    if inplace and x.device.type == "cpu":
        return _rounded_numpy(x, keep_u, keep_v, theta, bias, strict, wrap, clip, lead, return_states)
    steps = x.unbind(time_dim)
    if inplace:
        return _rounded_inplace(steps, keep_u, keep_v, theta, bias, strict, wrap, clip, lead, return_states)
    if lead:
        zero = torch.zeros_like(steps[0])
        steps = (zero,) * lead + steps
    if arith == "int":
        ku, kv = round(keep_u * DECAY_UNITY), round(keep_v * DECAY_UNITY)
        if ku != keep_u * DECAY_UNITY or kv != keep_v * DECAY_UNITY:
            raise ValueError("integer CUBA needs decays that are multiples of 1/4096")
    lim = MAX_UV / unit
    vmax = (MAX_UV - 1) / unit
    rounded = arith == "rounded"
    u = torch.zeros_like(steps[0])
    v = torch.zeros_like(steps[0])
    spikes, us, vs = [], [], []
    for xt in steps:
        if arith == "int":
            u = wrap32(torch.div(u * ku, DECAY_UNITY, rounding_mode="trunc") + xt)
            if wrap:
                u = wrap_current(u)
            v = torch.div(v * kv, DECAY_UNITY, rounding_mode="trunc") + u
            v = wrap32(v + bias if bias is not None else v)
            if clip:
                v = v.clamp(-(MAX_UV - 1), MAX_UV - 1)
        else:
            u = xt if keep_u == 0 else _decay(u, keep_u, rounded, unit) + xt
            if rounded and wrap:
                u = _ste(u, wrap_current(u * unit) / unit if unit != 1 else wrap_current(u))
            v = (v if keep_v == 1 else _decay(v, keep_v, rounded, unit)) + u
            if bias is not None:
                v = v + bias
            if rounded and clip:
                v = _ste(v, v.clamp(-vmax, vmax))
        if spike_fn is None:
            s = v > theta if strict else v >= theta
            v.masked_fill_(s, 0)  # v is always a fresh tensor of this step
        else:
            s = spike_fn(v - theta)
            v = v * (1.0 - (s.detach() if detach_reset else s))
        spikes.append(s)
        if return_states:
            us.append(u)
            vs.append(v)
    out = torch.stack(spikes, time_dim)
    if return_states:
        return out, torch.stack(us, time_dim), torch.stack(vs, time_dim)
    return out


def _rounded_inplace(steps, keep_u, keep_v, theta, bias, strict, wrap, clip, lead, return_states):
    """The rounded arithmetic of :func:`cuba_sequence` in hardware units, in place on float64
    buffers (no autograd): the same operations in the same order, without a fresh tensor per
    step. Exact while every value is an integer below 2^53 (the simulator checks bounds)."""
    T = lead + len(steps)
    shape = steps[0].shape
    dev = steps[0].device
    u = torch.zeros(shape, dtype=torch.float64, device=dev)
    v = torch.zeros_like(u)
    quiet = torch.empty((T, *shape), dtype=torch.bool, device=dev)  # no spike; inverted at the end
    keep = torch.empty_like(u)  # 1.0 where the neuron does not spike
    us = torch.empty((T, *shape), dtype=torch.float64, device=dev) if return_states else None
    vs = torch.empty_like(us) if return_states else None
    vmax = float(MAX_UV - 1)
    if bias is not None and not torch.is_tensor(bias):
        bias = None if bias == 0 else bias
    cmp = torch.le if strict else torch.lt  # the complement of the spike condition
    for t in range(T):
        xt = steps[t - lead] if t >= lead else None
        if keep_u == 0:
            u.zero_() if xt is None else u.copy_(xt)
        else:
            u.mul_(keep_u).div_(1.0, rounding_mode="trunc")  # = trunc_(), several times faster on CPU
            if xt is not None:
                u.add_(xt)
        if wrap:
            u.copy_(wrap_current(u))
        if keep_v != 1:
            v.mul_(keep_v).div_(1.0, rounding_mode="trunc")
        v.add_(u)
        if bias is not None:
            v.add_(bias)
        if clip:
            v.clamp_(-vmax, vmax)
        # reset by multiplying with a float mask: much faster on CPU than masked_fill_ / bool
        # comparisons (v > θ ≥ 0 where it spikes, so the product is +0)
        cmp(v, theta, out=keep)
        v.mul_(keep)
        quiet[t] = keep
        if return_states:
            us[t] = u
            vs[t] = v
    spikes = quiet.logical_not_()
    if return_states:
        return spikes, us, vs
    return spikes


def _rounded_numpy(x, keep_u, keep_v, theta, bias, strict, wrap, clip, lead, return_states):
    """:func:`_rounded_inplace` for CPU tensors: :func:`rounded_numpy_steps` on numpy views
    of the same memory. Returns torch tensors like :func:`cuba_sequence`."""
    if torch.is_tensor(bias):
        bias = bias.detach().cpu().to(torch.float64).numpy()
    out = rounded_numpy_steps(x.detach().numpy(), keep_u, keep_v, theta, bias=bias, strict=strict, wrap=wrap,
                              clip=clip, lead=lead, return_states=return_states)
    return tuple(torch.from_numpy(o) for o in out) if return_states else torch.from_numpy(out)


def rounded_numpy_steps(xn: np.ndarray, keep_u, keep_v, theta, *, bias=None, strict: bool = True,
                        wrap: bool = True, clip: bool = True, lead: int = 0, return_states: bool = False,
                        step_input: Callable[[int, np.ndarray, np.ndarray], None] | None = None):
    """The rounded arithmetic in hardware units on numpy float64 arrays, in place.

    xn: (T − lead, *shape) input per step (already ``<< 6``), preceded by ``lead`` zero steps.
    keep_u, keep_v, theta, bias: scalars or arrays broadcasting to ``shape`` (per neuron).
    step_input: called as ``step_input(t, u, quiet_before)`` at every step t ≥ 1 after the
    step's input was added to ``u``, with the previous step's 0/1 "did not spike" mask; it may
    add more input to ``u`` in place (the fused chain's later layers).
    Returns spikes (T, *shape) bool, and with ``return_states`` also u and v (float64).

    The same exact IEEE float64 operations as :func:`_rounded_inplace` (multiply by the keep,
    truncate, add, clip, compare, multiply by the 0/1 mask), so the results are bit-identical;
    numpy's per-call overhead is a fraction of torch's, which dominates at small batch. ``u``
    and ``v`` live in one (2, *shape) buffer so that one multiply and one truncation decay both
    (every value is an integer below 2^53 and each keep a multiple of 2^-12: each product is
    exact). With θ < 2^23 − 1 a voltage above the upper clip spikes and is reset to 0 whether
    clipped or not, so only the lower clip is applied then."""
    T = lead + xn.shape[0]
    shape = xn.shape[1:]
    state = np.zeros((2, *shape), dtype=np.float64)
    u, v = state[0], state[1]
    kshape = np.broadcast_shapes(np.shape(keep_u), np.shape(keep_v))
    keep = np.empty((2,) + (1,) * (len(shape) - len(kshape)) + kshape, dtype=np.float64)  # broadcasts
    keep[0], keep[1] = keep_u, keep_v
    # 1 where a neuron does not spike: bool (an eighth of the memory traffic), float64 when a
    # step_input needs it for a matrix product
    quiet = np.empty((T, *shape), dtype=np.float64 if step_input is not None else bool)
    us = np.empty((T, *shape), dtype=np.float64) if return_states else None
    vs = np.empty_like(us) if return_states else None
    vmax = float(MAX_UV - 1)
    if bias is not None and not np.any(bias):
        bias = None
    cmp = np.less_equal if strict else np.less  # the complement of the spike condition
    theta = np.asarray(theta, dtype=np.float64) if np.ndim(theta) else float(theta)
    clip_hi = clip and not bool(np.all(theta < vmax))
    mul, trunc, add = np.multiply, np.trunc, np.add
    x_steps = [None] * lead + list(xn)
    for t in range(T):
        xt = x_steps[t]
        mul(state, keep, state)
        trunc(state, state)
        if xt is not None:
            add(u, xt, u)
        if step_input is not None and t:
            step_input(t, u, quiet[t - 1])
        if wrap:
            _wrap_current_np(u)
        add(v, u, v)
        if bias is not None:
            add(v, bias, v)
        if clip:
            if clip_hi:
                np.minimum(v, vmax, v)
            np.maximum(v, -vmax, v)
        q = quiet[t]
        cmp(v, theta, q)
        mul(v, q, v)  # v > θ ≥ 0 where it spikes: the product is +0, as in torch
        if return_states:
            us[t] = u
            vs[t] = v
    spikes = np.logical_not(quiet, out=quiet) if quiet.dtype == bool else quiet == 0.0
    if return_states:
        return spikes, us, vs
    return spikes


def _wrap_current_np(u: np.ndarray) -> None:
    """:func:`~neurohw.loihi.fixedpoint.wrap_current` in place on a float64 array of integers:
    ``u > 2^23 → u − 2^24``, else ``u ≤ −2^23 → u + 2^24`` (exclusive cases: one correction)."""
    hi = u > MAX_UV
    lo = u <= -MAX_UV
    np.subtract(u, float(2 * MAX_UV), out=u, where=hi)
    np.add(u, float(2 * MAX_UV), out=u, where=lo)


def lava_keeps(du: int, dv: int) -> tuple[float, float]:
    """Lava's retained fractions for 12-bit ``du``/``dv``: ``(4096 − du − 1)/4096, (4096 − dv)/4096``."""
    return (DECAY_UNITY - int(du) - 1) / DECAY_UNITY, (DECAY_UNITY - int(dv)) / DECAY_UNITY
