"""Exact, batched integer simulator of Lava 0.10's ``fixed_pt`` CUBA networks, in PyTorch.

Timing follows Lava step for step: at step ``t`` every synapse group delivers what it computed
from its input spikes of step ``t − 1 − delay`` (zero before; ``delay`` = a shortcut's extra
steps plus a synapse's own delay), so layer ``i`` first reacts to an
input spike ``i + 1`` steps later; ``result.spikes[i][:, t]`` equals what Lava's layer ``i``
sends at its step ``t + 1`` (Lava counts from 1).

The simulator runs layer by layer: one matrix product (or convolution) per synapse group
covers all samples and all steps, then the neuron recurrence runs over time in int64. The
products use float32 only when every partial sum is provably an integer below 2^24 (and
TF32 is off), else float64 (exact below 2^53), so results are exact on CPU and CUDA.
"""
from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cuba import cuba_sequence
from .fused import ChainLayer, chain_run
from .netcache import NetCache
from .fixedpoint import (to_int64, ACT_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, MAX_UV, VTH_SHIFT,
                         effective_dense_weights, shift_exp, signed_clamp,
                         wrap32, wrap_current)
from .network import Conn, CubaParams, DenseConn, LoihiConfigError, LoihiNetwork, SigmaDeltaParams, is_graded_neuron


@dataclass
class SimResult:
    """What :func:`simulate` returns.

    spikes: one tensor per layer, (batch, steps, *neuron_shape): bool for CUBA layers, int64
    graded messages for sigma-delta layers.
    voltage / current: probed layers only, int64 (batch, steps, *neuron_shape), the state at
    the end of each step (voltage after reset), as Lava's ``v`` / ``u`` Vars; for sigma-delta
    layers ``voltage`` is the activation ``act`` and ``current`` the dendrite ``sigma``.
    ops: per-layer operation counts summed over the batch (``syn_ops``: synaptic events
    = active input × non-zero synapse; ``neuron_updates``; ``active_updates``: updates with
    non-zero synaptic input; ``spikes``), when requested.
    """

    spikes: list[torch.Tensor]
    voltage: dict[int, torch.Tensor] = field(default_factory=dict)
    current: dict[int, torch.Tensor] = field(default_factory=dict)
    ops: list[dict[str, int]] | None = None
    batch: int = 1
    steps: int = 0

    @property
    def output(self) -> torch.Tensor:
        """Spikes of the last layer (batch, steps, *shape)."""
        return self.spikes[-1]

    def as_numpy(self) -> dict[str, object]:
        return {
            "spikes": [s.cpu().numpy() for s in self.spikes],
            "voltage": {k: v.cpu().numpy() for k, v in self.voltage.items()},
            "current": {k: v.cpu().numpy() for k, v in self.current.items()},
        }


def _prepare_input(net: LoihiNetwork, spikes, device, graded: bool = True) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(spikes) if not isinstance(spikes, torch.Tensor) else spikes)
    shape = tuple(net.input_shape)
    nd = len(shape)
    n_flat = math.prod(shape)
    if nd > 1 and x.dim() in (2, 3) and x.shape[-1] == n_flat:  # trailing axes given flattened
        x = x.reshape(*x.shape[:-1], *shape)
    if x.dim() == nd + 1:
        x = x.unsqueeze(0)
    if x.dim() != nd + 2 or tuple(x.shape[2:]) != shape:
        raise LoihiConfigError("input", "spikes", f"expected (batch, steps, *{shape}) or (steps, *{shape}) "
                               f"(trailing axes may be flattened to {n_flat}), got {tuple(x.shape)}")
    x = x.to(device=device)
    if not graded:  # Lava's binary synapses read s_in.astype(bool) of the int32 buffer
        if not x.dtype.is_floating_point:
            return x != 0
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            # trunc(x) != 0 ⇔ |x| ≥ 1 ⇔ x ≥ 1 or x ≤ −1 (NaN: False, ±inf: True, as |x| ≥ 1);
            # numpy's two comparisons are several times faster than torch's abs + compare on CPU
            xn = x.detach().numpy()
            return torch.from_numpy((xn >= 1) | (xn <= -1))
        return x.abs() >= 1  # = trunc(x) != 0
    if x.dtype.is_floating_point:  # Lava's RingBuffer stores int32: floats are truncated toward zero
        x = x.to(torch.int64)
    return wrap32(x.to(torch.int64))


def _float_dtype(bound: float, device: torch.device, conv: bool) -> torch.dtype:
    """float32 when every partial sum is an integer below 2^24 and no TF32 can sneak in."""
    if bound >= 2**24:
        return torch.float64
    if device.type == "cuda":
        tf32 = torch.backends.cudnn.allow_tf32 if conv else torch.backends.cuda.matmul.allow_tf32
        if tf32 or (not conv and torch.get_float32_matmul_precision() != "highest"):
            return torch.float64
    return torch.float32


#: Binary dense inputs sparser than this go through ``embedding_bag`` (a sum of the weight
#: columns of the active inputs) instead of a dense matrix product; both are exact.
SPARSE_DENSITY = 0.25
#: Convolutions run on this many images at a time.
CONV_CHUNK = 256


class _Synapse:
    """One synapse group prepared for a device: effective integer weights and the sum rule."""

    def __init__(self, conn: Conn, graded: bool, device: torch.device, weight_exp_mode: str = "lava"):
        self.conn = conn
        self.graded = graded
        self.device = device
        self.sum_exp = 0
        if isinstance(conn, DenseConn):
            w = effective_dense_weights(conn.weight, conn.sign_mode, conn.num_weight_bits)
            e = int(conn.weight_exp)
            if weight_exp_mode == "loihi1":  # exponent applied to every synapse (floor), then summed
                w = (w << e) if e > 0 else (w >> -e)
            elif weight_exp_mode == "lava":  # exponent applied to the sum (Lava's Dense)
                self.sum_exp = e
            else:
                raise ValueError(f"weight_exp_mode must be 'lava' or 'loihi1', got {weight_exp_mode!r}")
            self.w_int = torch.as_tensor(w, dtype=torch.int64, device=device)
            self.row_abs = float(np.abs(w).sum(axis=1).max()) if w.size else 0.0
        else:
            w = np.asarray(conn.weight).astype(np.int64)
            self.w_int = torch.as_tensor(w, dtype=torch.int64, device=device)
            self.row_abs = float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max())
        self._cache: dict[tuple[torch.dtype, bool], torch.Tensor] = {}
        self.out_bound = 0.0  # bound on |output| of the last call

    def _w(self, dtype: torch.dtype, transposed: bool = False) -> torch.Tensor:
        """The weights in ``dtype``; dense ``transposed``: (n_in, n_out) contiguous."""
        key = (dtype, transposed)
        if key not in self._cache:
            w = self.w_int.to(dtype)
            self._cache[key] = w.t().contiguous() if transposed else w
        return self._cache[key]

    def _dense_sum(self, x: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
        """x (R, n_in) → (R, n_out) in ``dt``, exact integers. Sparse binary rows are summed
        with ``embedding_bag`` over the active inputs' weight rows."""
        wt = self._w(dt, transposed=True)
        if x.dtype == torch.bool and wt.shape[1] >= 64 and x.numel() >= 2**14:
            nz = x.nonzero()
            if nz.shape[0] <= SPARSE_DENSITY * x.numel():
                counts = torch.bincount(nz[:, 0], minlength=x.shape[0])
                offsets = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
                torch.cumsum(counts[:-1], 0, out=offsets[1:])
                return F.embedding_bag(nz[:, 1], wt, offsets, mode="sum")
        return x.to(dt) @ wt

    def _conv(self, imgs: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
        """Cross-correlation of (R, C, H, W) images in chunks of ``CONV_CHUNK`` images (several
        times faster on CPU than one call on all T·B images; exact: integer sums)."""
        c, w = self.conn, self._w(dt)
        out = None
        for i in range(0, imgs.shape[0], CONV_CHUNK):
            o = F.conv2d(imgs[i:i + CONV_CHUNK].to(dt), w, stride=c.stride, padding=c.padding,
                         dilation=c.dilation, groups=c.groups)
            if out is None:
                if imgs.shape[0] <= CONV_CHUNK:
                    return o
                out = torch.empty((imgs.shape[0], *o.shape[1:]), dtype=o.dtype, device=o.device)
            out[i:i + CONV_CHUNK] = o
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Summed input for each (step, sample) from source spikes x (T, B, *src_shape).

        Returns (T, B, N_out) exact integer sums — what the synapse computes in the same step
        (not delayed) — as float32/float64 when no int32 wrap can occur, else int64.
        ``self.out_bound`` is then a bound on the returned magnitudes."""
        T, B = x.shape[:2]
        if self.graded:
            xin = x
            bound = self.row_abs * float(x.abs().max().item() if x.numel() else 0)
        else:
            xin = x if x.dtype == torch.bool else (x != 0)
            bound = self.row_abs
        if bound >= 2**53:
            raise LoihiConfigError("synapse", "input", f"sums up to {bound:.3g} exceed exact float64 integers (2^53)")
        conn = self.conn
        if isinstance(conn, DenseConn):
            dt = _float_dtype(bound, x.device, conv=False)
            s = self._dense_sum(xin.reshape(T * B, -1), dt)
            e = self.sum_exp
            wraps = bound * 2 ** max(e, 0) >= 2**31  # the int32 channel
            if wraps or (self.graded and bound >= 2**31):
                s = to_int64(s)
                if self.graded and bound >= 2**31:  # numpy int32 dot: wraps at 32 bits
                    s = wrap32(s)
                if e:
                    s = shift_exp(s, e)
                if wraps:
                    s = wrap32(s)
                self.out_bound = float(2**31)
            else:
                if e > 0:
                    s = s * float(2**e)  # scaling by a power of two is exact
                elif e < 0:
                    s = torch.floor(s * 2.0**e)  # Lava's arithmetic right shift
                self.out_bound = _shifted_bound(bound, e)
            return s.reshape(T, B, -1)
        dt = _float_dtype(bound, x.device, conv=True)
        out = self._conv(xin.reshape(T * B, *x.shape[2:]), dt)
        self.out_bound = bound
        if bound >= 2**23:  # Lava's Conv wraps its output to 24 bits
            out = signed_clamp(wrap32(to_int64(out)), 24)
            self.out_bound = float(2**23)
        return out.reshape(T, B, -1)

    def syn_ops(self, x: torch.Tensor) -> int:
        """Synaptic events: active inputs times non-zero synapses they drive (summed)."""
        R = x.shape[0] * x.shape[1]
        act = (x != 0).to(torch.float64)
        nz = (self.w_int != 0).to(torch.float64)
        if isinstance(self.conn, DenseConn):
            fan = nz.sum(dim=0)  # per input
            return int(torch.round((act.reshape(R, -1) @ fan).sum()).item())
        c = self.conn
        out = F.conv2d(act.reshape(R, *x.shape[2:]), nz, stride=c.stride, padding=c.padding,
                       dilation=c.dilation, groups=c.groups)
        return int(torch.round(out.sum()).item())


#: Prepared synapses kept between ``simulate`` calls (small networks run at batch 1 spend a
#: third of their time preparing weights otherwise). Bounded; oldest entries go first.
_PREPARED: "OrderedDict[tuple, tuple]" = OrderedDict()
PREPARED_MAX = 64


def _conn_state(conn: Conn) -> tuple:
    """Every field of ``conn`` but its weight (which is compared by content)."""
    return tuple((k, (v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v)
                 for k, v in sorted(vars(conn).items()) if k != "weight")


def synapse_groups(conn: Conn, graded: bool, device: torch.device, weight_exp_mode: str = "lava") -> list[tuple["_Synapse", int]]:
    """``conn`` as prepared synapse groups with their extra delays: one group, delay 0, without
    synaptic delays; otherwise one group per distinct delay ``k`` holding the synapses with that
    delay (Lava's ``DelayDense`` sums and shifts each delay's partial sum separately, then adds
    them in its int32 buffer). The split keeps the whole matrix's clipping and truncation: the
    groups are built from its effective weights with its sign mode."""
    if not (isinstance(conn, DenseConn) and conn.has_delays):
        return [(prepared_synapse(conn, graded=graded, device=device, weight_exp_mode=weight_exp_mode), 0)]
    from .fixedpoint import sign_mode_of

    mode = conn.sign_mode or sign_mode_of(np.asarray(conn.weight))
    eff = effective_dense_weights(conn.weight, mode, conn.num_weight_bits)
    d = conn.delays()
    out = []
    for k in np.unique(d):
        part = DenseConn(np.where(d == k, eff, 0), conn.weight_exp, conn.num_weight_bits, mode)
        out.append((_Synapse(part, graded=graded, device=device, weight_exp_mode=weight_exp_mode), int(k)))
    return out


def prepared_synapse(conn: Conn, graded: bool, device: torch.device, weight_exp_mode: str = "lava") -> "_Synapse":
    """A :class:`_Synapse` for ``conn``, reused from an earlier call when ``conn`` has the same
    fields and the same live weight array (layers build a new ``conn`` object per access), with
    content equal to the one it was prepared from (so in-place edits of the weights are seen)."""
    w = conn.weight
    key = (type(conn).__name__, id(w), _conn_state(conn), bool(graded), str(torch.device(device)), weight_exp_mode)
    hit = _PREPARED.get(key)
    if hit is not None:
        ref, w0, syn = hit
        if ref() is w and np.array_equal(w, w0):
            _PREPARED.move_to_end(key)
            return syn
    syn = _Synapse(conn, graded=graded, device=device, weight_exp_mode=weight_exp_mode)
    try:
        ref = weakref.ref(w)
    except TypeError:  # not an array (a list): nothing to key on, no reuse
        return syn
    _PREPARED[key] = (ref, np.array(w, copy=True), syn)
    while len(_PREPARED) > PREPARED_MAX:
        _PREPARED.popitem(last=False)
    return syn


def layer_input(groups: Sequence[tuple["_Synapse", torch.Tensor, int]], T: int, B: int, N: int,
                device: torch.device) -> tuple[torch.Tensor, int, float]:
    """What a layer's ``a_in`` receives at each step and a bound on its magnitude.

    groups: (synapse, source spikes (T, B, *src), steps of delay ≥ 1). Each group delivers at
    step t its sum over the source spikes of step ``t − delay`` (zero before); only the steps
    that arrive in time are computed. Returns ``(a, lead, bound)``: a (T − lead, B, N) holds
    steps ``lead..T−1`` (steps before ``lead`` receive nothing). Lava sums the int32 messages:
    exact in float while the bound stays below 2^31, else int64 with the int32 wrap."""
    parts, bound = [], 0.0
    for syn, x, d in groups:
        keep = T - d
        if keep > 0:
            parts.append((syn(x[:keep]), d))
            bound += syn.out_bound
    if not parts:
        return torch.zeros((1, B, N), dtype=torch.float64, device=device), T - 1, 0.0
    lead = min(d for _, d in parts)
    if len(parts) == 1:
        return parts[0][0], lead, bound
    exact_float = bound < 2**31 and all(a.dtype.is_floating_point for a, _ in parts)
    total = torch.zeros((T - lead, B, N), dtype=torch.float64 if exact_float else torch.int64, device=device)
    for a, d in parts:
        o = d - lead
        if exact_float:
            total[o:] += a
        else:
            total[o:] = wrap32(total[o:] + to_int64(a))
    return total, lead, min(bound, 2.0**31)


def cuba_run(p: CubaParams, a_in: torch.Tensor, shape: Sequence[int], record_state: bool = False):
    """Run Lava's bit-accurate LIF over time.

    a_in: (B, T, N) int64 synaptic input as received by ``a_in`` (already delayed).
    Returns (spikes bool (B, T, N), v (B, T, N) or None, u (B, T, N) or None).
    """
    s, v, u = neuron_run(p, a_in.transpose(0, 1), shape, record_state=record_state)
    if record_state:
        v, u = v.transpose(0, 1), u.transpose(0, 1)
    return s.transpose(0, 1), v, u


def cuba_flags(p: CubaParams, lo: float, hi: float, b_lo: int = 0, b_hi: int = 0) -> tuple[bool, bool, bool]:
    """What Lava's CUBA arithmetic can reach for synaptic input in ``[lo, hi]`` (``a_in`` units)
    and biases in ``[b_lo, b_hi]``: ``(overflow, need_wrap, need_clip)``.

    overflow: an int32 store could wrap (the recurrence must then run in int64 with the wraps);
    else every value is an integer below 2^31 and float64 is exact. need_wrap: the 24-bit
    current wrap can trigger. need_clip: the voltage saturation can change a result. Bounds are
    geometric sums: ``u`` stays within ``[lo, hi]·64·4096/(du + 1)``; a negative voltage within
    ``(u_lo + bias_lo)·4096/dv``. A voltage above ``vth << 6`` spikes and is reset to 0 whether
    it was saturated at 2^23 − 1 or not, so only the lower saturation matters while the
    threshold is below 2^23 − 1 (always for Lava's 17-bit ``vth``)."""
    k = 2**ACT_SHIFT * DECAY_UNITY / (int(p.du) + DS_OFFSET)
    u_hi, u_lo = max(hi, 0.0) * k, max(-lo, 0.0) * k  # bounds on u above and below zero
    u_bound = max(u_hi, u_lo)
    amax = max(abs(lo), abs(hi))
    overflow = amax >= 2**25 or max(abs(b_lo), abs(b_hi)) >= 2**24 or u_bound + 2**25 >= 2**31
    need_wrap = overflow or u_bound >= MAX_UV - 1
    if need_wrap:  # a wrapped current lies anywhere in the 24-bit range
        u_hi = u_lo = u_bound + MAX_UV
    dv = max(int(p.dv), 1e-9)
    need_clip = overflow or (u_lo + max(-b_lo, 0)) * DECAY_UNITY / dv >= MAX_UV - 1
    if (int(p.vth) << VTH_SHIFT) >= MAX_UV - 1:  # the upper saturation could then matter too
        need_clip = need_clip or (u_hi + max(b_hi, 0)) * DECAY_UNITY / dv >= MAX_UV - 1
    return overflow, need_wrap, need_clip


def neuron_run(p: CubaParams, a_in: torch.Tensor, shape: Sequence[int], record_state: bool = False,
               bound: float | None = None, lead: int = 0, owned: bool = False):
    """:func:`cuba_run` on time-major input: a_in (T − lead, B, N) exact integers (int64 or
    float), preceded by ``lead`` steps of zero input; ``bound`` an optional known bound on
    ``|a_in|``; ``owned``: a_in may be overwritten. Returns (spikes (T, B, N), v, u)."""
    dev = a_in.device
    decay_u = DECAY_UNITY - (int(p.du) + DS_OFFSET)
    decay_v = DECAY_UNITY - (int(p.dv) + DM_OFFSET)
    bias = p.scalar_bias()  # one bias for all neurons: added as a scalar
    if bias is not None:
        b_lo = b_hi = bias
    else:
        bias = torch.as_tensor(p.bias(tuple(shape)).reshape(-1), dtype=torch.int64, device=dev)
        b_lo, b_hi = (int(bias.min().item()), int(bias.max().item())) if bias.numel() else (0, 0)
    bmax = max(abs(b_lo), abs(b_hi))
    vth = int(p.vth) << VTH_SHIFT
    big = float("inf") if bound is None else float(bound)
    overflow, need_wrap, need_clip = cuba_flags(p, -big, big, b_lo, b_hi)
    if overflow or need_wrap or need_clip:  # the bound is not enough: look at the data
        if a_in.numel():
            lo, hi = torch.aminmax(a_in)
            lo, hi = float(lo.item()), float(hi.item())
        else:
            lo = hi = 0.0
        overflow, need_wrap, need_clip = cuba_flags(p, lo, hi, b_lo, b_hi)
    keep_u, keep_v = decay_u / DECAY_UNITY, decay_v / DECAY_UNITY
    if overflow:  # int64 with numpy's int32 wrap at every int32 store
        act = wrap32(to_int64(a_in) << ACT_SHIFT)
        out = cuba_sequence(act, keep_u, keep_v, vth, bias=bias, arith="int", lead=lead, return_states=record_state)
    else:  # exact in float: every value is an integer far below 2^53, u·(d/4096) is exact
        if not a_in.dtype.is_floating_point:
            act = a_in.to(torch.float64).mul_(float(2**ACT_SHIFT))
        else:  # a power-of-two scaling is exact in float32 too; the recurrence runs in float64
            act = a_in.mul_(float(2**ACT_SHIFT)) if owned else a_in * float(2**ACT_SHIFT)
        fbias = (float(bias) if isinstance(bias, int) else bias.to(torch.float64)) if bmax else None
        out = cuba_sequence(act, keep_u, keep_v, float(vth), bias=fbias,
                            arith="rounded", wrap=need_wrap, clip=need_clip, lead=lead, return_states=record_state)
    if not record_state:
        return out, None, None
    spikes, us, vs = out
    return spikes, to_int64(vs), to_int64(us)


def sigma_delta_run(p: SigmaDeltaParams, a_in: torch.Tensor, lead: int, shape: Sequence[int],
                    record_state: bool = False):
    """Lava's fixed-point ``SigmaDelta`` (``PySigmaDeltaModelFixed``) over time, int64 with the
    int32 wrap of its numpy stores.

    a_in: (T − lead, B, N) exact integer input, preceded by ``lead`` steps of zero input.
    Returns (messages (T, B, N) int64, act, sigma (T, B, N) int64 or None, active: steps × neurons
    with non-zero input)."""
    T = lead + a_in.shape[0]
    B, N = a_in.shape[1], a_in.shape[2]
    dev = a_in.device
    bias = torch.as_tensor(p.scaled_bias(tuple(shape)).reshape(-1), dtype=torch.int64, device=dev)
    vth = p.scaled_vth
    relu = p.activation == "relu"
    sigma = torch.zeros((B, N), dtype=torch.int64, device=dev)
    act_prev = torch.zeros_like(sigma)
    residue = torch.zeros_like(sigma)
    error = torch.zeros_like(sigma)
    msgs = torch.empty((T, B, N), dtype=torch.int64, device=dev)
    acts = torch.empty_like(msgs) if record_state else None
    sigmas = torch.empty_like(msgs) if record_state else None
    active = 0
    for t in range(T):
        if t >= lead:
            a = to_int64(a_in[t - lead])
            active += int((a != 0).sum().item())
            sigma = wrap32(sigma + a)
        act = wrap32(sigma + bias)
        if relu:
            act = act.clamp(min=0)
        delta = wrap32(act - act_prev + residue)
        if p.cum_error:
            error = wrap32(error + delta)
            out = torch.where(error.abs() >= vth, delta, torch.zeros_like(delta))
            error = error * (out == 0)
        else:
            out = torch.where(delta.abs() >= vth, delta, torch.zeros_like(delta))
        residue = wrap32(delta - out)
        act_prev = act
        msgs[t] = out >> int(p.state_exp)
        if record_state:
            acts[t] = act
            sigmas[t] = sigma
    return msgs, acts, sigmas, active


def recurrent_run(p: CubaParams, a_ff: torch.Tensor, lead: int, rec: "_Synapse", shape: Sequence[int],
                  record_state: bool = False):
    """A layer with a recurrent synapse group, step by step in int64 (Lava's arithmetic).

    a_ff: (T − lead, B, N) exact integer feed-forward input (float or int64), preceded by
    ``lead`` steps of zero input; rec: the prepared (N, N) recurrent synapse group. At step t
    the neurons receive ``wrap32(a_ff[t] + rec(s[t − 1]))`` (Lava sums both ``Dense`` messages
    into ``a_in``; the recurrent ``Dense`` sends what it computed from the spikes of the step
    before). Returns (spikes (T, B, N) bool, v, u (T, B, N) int64 or None, active: steps × neurons
    with non-zero input).
    """
    T = lead + a_ff.shape[0]
    B, N = a_ff.shape[1], a_ff.shape[2]
    dev = a_ff.device
    ku = DECAY_UNITY - (int(p.du) + DS_OFFSET)
    kv = DECAY_UNITY - (int(p.dv) + DM_OFFSET)
    bias = torch.as_tensor(p.bias(tuple(shape)).reshape(-1), dtype=torch.int64, device=dev)
    vth = int(p.vth) << VTH_SHIFT
    wt = rec._w(torch.float64, transposed=True)  # (N_in, N_out); sums of ≤ N weights ≤ 2^8 are exact
    u = torch.zeros((B, N), dtype=torch.int64, device=dev)
    v = torch.zeros_like(u)
    s_prev = torch.zeros((B, N), dtype=torch.bool, device=dev)
    spikes = torch.empty((T, B, N), dtype=torch.bool, device=dev)
    us = torch.empty((T, B, N), dtype=torch.int64, device=dev) if record_state else None
    vs = torch.empty_like(us) if record_state else None
    active = 0
    for t in range(T):
        a = to_int64(a_ff[t - lead]) if t >= lead else torch.zeros_like(u)
        if t > 0 and bool(s_prev.any()):
            r = to_int64(s_prev.to(torch.float64) @ wt)
            a = wrap32(a + wrap32(shift_exp(r, rec.sum_exp)))
        active += int((a != 0).sum().item())
        u = wrap_current(wrap32(torch.div(u * ku, DECAY_UNITY, rounding_mode="trunc") + wrap32(a << ACT_SHIFT)))
        v = torch.div(v * kv, DECAY_UNITY, rounding_mode="trunc") + u
        v = wrap32(v + bias).clamp_(-(MAX_UV - 1), MAX_UV - 1)
        s = v > vth
        v = v.masked_fill(s, 0)
        spikes[t] = s
        if record_state:
            us[t] = u
            vs[t] = v
        s_prev = s
    return spikes, vs, us, active


@dataclass
class _Plan:
    """What :func:`simulate` derives from a network before it sees any input: the validated
    neuron shapes, per layer its synapse groups as (prepared synapse, source layer (−1: input),
    steps of delay) and its prepared recurrent synapse group (or None)."""

    shapes: list[tuple[int, ...]]
    groups: list[list[tuple["_Synapse", int, int]]]
    recurrent: list["_Synapse | None"]
    #: the layers as one :mod:`~neurohw.loihi.fused` chain, when the network is one (else None),
    #: with (need_wrap, need_clip) of the layers after the first from their static bounds
    chain: list[ChainLayer] | None = None
    chain_flags: tuple[bool, bool] = (False, False)


#: :func:`simulate` runs a feed-forward dense CUBA chain on CPU in one time loop
#: (:mod:`~neurohw.loihi.fused`) up to this batch size; larger batches go layer by layer.
CHAIN_MAX_BATCH = 1


def _chain_of(net: LoihiNetwork, groups, recurrent, shapes) -> tuple[list[ChainLayer] | None, tuple[bool, bool]]:
    """The network as a :class:`ChainLayer` list when it is a plain chain: CUBA layers, each
    fed only by the layer before (no shortcuts, synaptic delays or recurrence), dense after
    the first, with no int32 wrap possible after the first. Else ``(None, …)``."""
    chain, wrap, clip = [], False, False
    for i, layer in enumerate(net.layers):
        p = layer.neuron
        if not isinstance(p, CubaParams) or recurrent[i] is not None or len(groups[i]) != 1:
            return None, (False, False)
        syn, src, d = groups[i][0]
        if src != i - 1 or d != 1:
            return None, (False, False)
        scalar = p.scalar_bias()
        bias = scalar if scalar is not None else p.bias(tuple(shapes[i])).reshape(-1)
        b_lo, b_hi = (scalar, scalar) if scalar is not None else (int(bias.min()), int(bias.max()))
        ku = (DECAY_UNITY - (int(p.du) + DS_OFFSET)) / DECAY_UNITY
        kv = (DECAY_UNITY - (int(p.dv) + DM_OFFSET)) / DECAY_UNITY
        entry = ChainLayer(int(math.prod(shapes[i])), ku, kv, float(int(p.vth) << VTH_SHIFT), bias,
                           bias_range=(b_lo, b_hi))
        if i:
            if not isinstance(syn.conn, DenseConn) or syn.graded or syn.row_abs * 2.0 ** max(syn.sum_exp, 0) >= 2**31:
                return None, (False, False)
            bound = _shifted_bound(syn.row_abs, syn.sum_exp)
            overflow, w, c = cuba_flags(p, -bound, bound, b_lo, b_hi)
            if overflow:
                return None, (False, False)
            wrap, clip = wrap or w, clip or c
            entry.weight_t = syn._w(torch.float64, transposed=True).numpy()
            entry.sum_exp = syn.sum_exp
        chain.append(entry)
    return chain, (wrap, clip)


#: Plans of recently simulated networks, reused while a network's content is unchanged.
_PLANS = NetCache(maxsize=16)


def _plan(net: LoihiNetwork, device: torch.device, weight_exp_mode: str) -> _Plan:
    """The validated, prepared :class:`_Plan` of ``net`` (from :data:`_PLANS` when ``net`` is
    unchanged since it was built; raises :class:`LoihiConfigError` for an invalid network)."""

    def build() -> _Plan:
        net.validate()
        graded_in = net.input_message_bits > 0

        def graded_source(src: int) -> bool:
            return graded_in if src < 0 else is_graded_neuron(net.layers[src].neuron)

        groups, recurrent = [], []
        for i, layer in enumerate(net.layers):
            groups.append([(syn, src, 1 + delay + k)
                           for src, conn, delay in [(i - 1, layer.conn, 0)] + [(sc.source, sc.conn, sc.delay) for sc in layer.shortcuts]
                           for syn, k in synapse_groups(conn, graded_source(src), device, weight_exp_mode)])
            rec = getattr(layer, "recurrent", None)
            recurrent.append(None if rec is None or is_graded_neuron(layer.neuron) else
                             prepared_synapse(rec, graded=False, device=device, weight_exp_mode=weight_exp_mode))
        shapes = net._shapes()
        chain, flags = _chain_of(net, groups, recurrent, shapes) if device.type == "cpu" else (None, (False, False))
        return _Plan(shapes, groups, recurrent, chain, flags)

    return _PLANS.get(net, (str(device), weight_exp_mode), build)


def _run_chain(net: LoihiNetwork, plan: _Plan, first, probe_set: set[int], result: SimResult, T: int, B: int) -> bool:
    """Fill ``result`` from one :func:`~neurohw.loihi.fused.chain_run` of the plan's chain,
    given the first layer's input ``first = (a, lead, bound)``; False (nothing done) when an
    int32 store could wrap in the first layer (the layer-by-layer int64 path handles that)."""
    total, lead, bound = first
    p0, c0 = net.layers[0].neuron, plan.chain[0]
    b_lo, b_hi = c0.bias_range
    overflow, wrap, clip = cuba_flags(p0, -bound, bound, b_lo, b_hi)
    if overflow or wrap or clip:  # the bound is not enough: look at the data
        lo, hi = torch.aminmax(total) if total.numel() else (torch.zeros(()), torch.zeros(()))
        overflow, wrap, clip = cuba_flags(p0, float(lo.item()), float(hi.item()), b_lo, b_hi)
    if overflow:
        return False
    record = bool(probe_set)
    x0 = total.numpy()
    # the later layers' static bounds are loose: run without their wrap / clip unless the first
    # layer needs them, then check what they actually received (and rerun with both if needed)
    outs, ranges = chain_run(x0, lead, plan.chain, wrap, clip, record_state=record)
    if not (wrap and clip) and plan.chain_flags != (False, False):
        for k, (lo, hi) in enumerate(ranges, start=1):
            p = net.layers[k].neuron
            over, w, c = cuba_flags(p, lo, hi, *plan.chain[k].bias_range)
            if over:
                return False
            if (w and not wrap) or (c and not clip):
                outs, _ = chain_run(x0, lead, plan.chain, True, True, record_state=record)
                break
    for i, (s, v, u) in enumerate(outs):
        shape = plan.shapes[i]
        result.spikes.append(s.reshape(T, B, *shape).transpose(0, 1))
        if i in probe_set:
            result.voltage[i] = v.reshape(T, B, *shape).transpose(0, 1)
            result.current[i] = u.reshape(T, B, *shape).transpose(0, 1)
    return True


def _shifted_bound(bound: float, e: int) -> float:
    """A bound on ``|floor(s · 2^e)|`` for ``|s| ≤ bound`` (for e < 0 the floor of a negative
    sum can be one further from zero)."""
    return bound * 2.0**e if e >= 0 else math.ceil(bound * 2.0**e)


def simulate(net: LoihiNetwork, spikes, *, probe: Iterable[int] | str = (), device=None,
             count_ops: bool = False, weight_exp_mode: str = "lava") -> SimResult:
    """Simulate ``net`` exactly as Lava's ``fixed_pt`` models would, for a batch of inputs.

    spikes: (batch, steps, *input_shape) or (steps, *input_shape); binary (any non-zero is a
    spike) or, with ``net.input_message_bits > 0``, graded integers. numpy or torch; floats are
    truncated toward zero first, as Lava's int32 ``RingBuffer`` source does (0.5 is no spike).
    probe: layer indices whose voltage and current are recorded, or ``"all"``.
    device: torch device (default: the input tensor's device, else CPU).
    count_ops: also count synaptic events, neuron updates and spikes per layer.
    weight_exp_mode: ``"lava"`` (Lava's Dense: the sum is shifted by ``weight_exp``) or
    ``"loihi1"`` (Loihi 1 / nengo-loihi: each weight is shifted, then summed); they agree when
    every effective weight is a multiple of ``2^-weight_exp``.

    Internally every tensor is time-major (steps, batch, ...); the returned tensors are
    (batch, steps, ...) views of them.
    """
    if device is None:
        device = spikes.device if isinstance(spikes, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    plan = _plan(net, device, weight_exp_mode)
    x = _prepare_input(net, spikes, device, graded=net.input_message_bits > 0)
    B, T = x.shape[:2]
    shapes = plan.shapes
    probe_set = set(range(len(net.layers))) if probe == "all" else {int(i) % len(net.layers) for i in probe}  # type: ignore[union-attr]
    outs: dict[int, torch.Tensor] = {-1: x.transpose(0, 1).contiguous()}
    result = SimResult(spikes=[], batch=B, steps=T, ops=[] if count_ops else None)
    first = None  # the first layer's input, when computed for the chain run
    with torch.no_grad():
        if plan.chain is not None and B <= CHAIN_MAX_BATCH and not count_ops:
            first = layer_input([(syn, outs[src], d) for syn, src, d in plan.groups[0]], T, B, plan.chain[0].n, device)
            if _run_chain(net, plan, first, probe_set, result, T, B):
                return result
        for i, layer in enumerate(net.layers):
            shape = shapes[i]
            N = int(math.prod(shape))
            groups = [(syn, outs[src], d) for syn, src, d in plan.groups[i]]
            total, lead, bound = first if i == 0 and first is not None else layer_input(groups, T, B, N, device)
            rec_syn = plan.recurrent[i]
            if is_graded_neuron(layer.neuron):
                s, v, u, active = sigma_delta_run(layer.neuron, total, lead, shape, record_state=i in probe_set)
            elif rec_syn is not None:
                s, v, u, active = recurrent_run(layer.neuron, total, lead, rec_syn, shape, record_state=i in probe_set)
            else:
                if count_ops:  # before neuron_run, which scales total in place
                    active = int((total != 0).sum().item())
                s, v, u = neuron_run(layer.neuron, total, shape, record_state=i in probe_set, bound=bound,
                                     lead=lead, owned=True)
            outs[i] = s.reshape(T, B, *shape)
            result.spikes.append(outs[i].transpose(0, 1))
            if i in probe_set:
                result.voltage[i] = v.reshape(T, B, *shape).transpose(0, 1)
                result.current[i] = u.reshape(T, B, *shape).transpose(0, 1)
            if count_ops:
                syn_ops = sum(g.syn_ops(src) for g, src, _ in groups)
                if rec_syn is not None:  # every spike of the layer drives its recurrent synapses
                    syn_ops += rec_syn.syn_ops(s.reshape(T, B, N))
                result.ops.append({"syn_ops": syn_ops,
                                   "neuron_updates": B * T * N,
                                   "active_updates": active,
                                   "spikes": int((s != 0).sum().item())})
    return result
