"""Exact, batched integer simulator of Lava 0.10's ``fixed_pt`` CUBA networks, in PyTorch.

Timing follows Lava step for step: at step ``t`` every synapse group delivers what it computed
from its input spikes of step ``t − 1 − delay`` (zero before), so layer ``i`` first reacts to an
input spike ``i + 1`` steps later; ``result.spikes[i][:, t]`` equals what Lava's layer ``i``
sends at its step ``t + 1`` (Lava counts from 1).

The simulator runs layer by layer: one matrix product (or convolution) per synapse group
covers all samples and all steps, then the neuron recurrence runs over time in int64. The
products use float32 only when every partial sum is provably an integer below 2^24 (and
TF32 is off), else float64 (exact below 2^53), so results are exact on CPU and CUDA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cuba import cuba_sequence
from .fixedpoint import (ACT_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, MAX_UV, VTH_SHIFT,
                         effective_dense_weights, shift_exp, signed_clamp,
                         wrap32, wrap_current)
from .network import Conn, CubaParams, DenseConn, LoihiConfigError, LoihiNetwork


@dataclass
class SimResult:
    """What :func:`simulate` returns.

    spikes: one bool tensor per layer, (batch, steps, *neuron_shape).
    voltage / current: probed layers only, int64 (batch, steps, *neuron_shape), the state at
    the end of each step (voltage after reset), as Lava's ``v`` / ``u`` Vars.
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
    if x.dtype.is_floating_point:  # Lava's RingBuffer stores int32: floats are truncated toward zero
        x = x.to(torch.int64)
    if not graded:
        return x != 0  # Lava's binary synapses read s_in.astype(bool)
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
        self._cache: dict[torch.dtype, torch.Tensor] = {}

    def _w(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._cache:
            self._cache[dtype] = self.w_int.to(dtype)
        return self._cache[dtype]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Summed input for each (batch, step) from source spikes x (B, T, *src_shape), int64.
        Returns (B, T, *out) int64 — what the synapse computes in the same step (not delayed)."""
        B, T = x.shape[:2]
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
            flat = xin.reshape(B * T, -1).to(dt)
            s = (flat @ self._w(dt).t()).to(torch.int64)  # exact integers: no rounding needed
            if self.graded and bound >= 2**31:  # numpy int32 dot: wraps at 32 bits
                s = wrap32(s)
            if self.sum_exp:
                s = shift_exp(s, self.sum_exp)
            if bound * 2 ** max(self.sum_exp, 0) >= 2**31:  # the int32 channel
                s = wrap32(s)
            return s.reshape(B, T, -1)
        dt = _float_dtype(bound, x.device, conv=True)
        imgs = xin.reshape(B * T, *x.shape[2:]).to(dt)
        out = F.conv2d(imgs, self._w(dt), stride=conn.stride, padding=conn.padding,
                       dilation=conn.dilation, groups=conn.groups)
        s = out.to(torch.int64)
        if bound >= 2**23:  # Lava's Conv wraps its output to 24 bits
            s = signed_clamp(wrap32(s), 24)
        return s.reshape(B, T, *out.shape[1:])

    def syn_ops(self, x: torch.Tensor) -> int:
        """Synaptic events: active inputs times non-zero synapses they drive (summed)."""
        B, T = x.shape[:2]
        act = (x != 0).to(torch.float64)
        nz = (self.w_int != 0).to(torch.float64)
        if isinstance(self.conn, DenseConn):
            fan = nz.sum(dim=0)  # per input
            return int(torch.round((act.reshape(B * T, -1) @ fan).sum()).item())
        c = self.conn
        out = F.conv2d(act.reshape(B * T, *x.shape[2:]), nz, stride=c.stride, padding=c.padding,
                       dilation=c.dilation, groups=c.groups)
        return int(torch.round(out.sum()).item())


def delayed_input(syn: "_Synapse", x: torch.Tensor, steps: int) -> torch.Tensor:
    """What the synapse group delivers at each step: its sum over the source spikes of
    ``steps`` steps earlier (zeros before). Only the steps that arrive in time are computed."""
    B, T = x.shape[:2]
    keep = max(T - steps, 0)
    a = syn(x[:, :keep]) if keep else None
    if a is None:
        probe = syn(x[:, :1])
        return torch.zeros((B, T, *probe.shape[2:]), dtype=torch.int64, device=x.device)
    if steps <= 0:
        return a
    pad = torch.zeros((B, min(steps, T), *a.shape[2:]), dtype=a.dtype, device=a.device)
    return torch.cat([pad, a], dim=1)


def cuba_run(p: CubaParams, a_in: torch.Tensor, shape: Sequence[int], record_state: bool = False):
    """Run Lava's bit-accurate LIF over time.

    a_in: (B, T, N) int64 synaptic input as received by ``a_in`` (already delayed).
    Returns (spikes bool (B, T, N), v (B, T, N) or None, u (B, T, N) or None).
    """
    B, T, N = a_in.shape
    dev = a_in.device
    decay_u = DECAY_UNITY - (int(p.du) + DS_OFFSET)
    decay_v = DECAY_UNITY - (int(p.dv) + DM_OFFSET)
    bias = torch.as_tensor(p.bias(tuple(shape)).reshape(-1), dtype=torch.int64, device=dev)
    vth = int(p.vth) << VTH_SHIFT
    vmax = MAX_UV - 1
    amax = int(a_in.abs().max().item()) if a_in.numel() else 0
    bmax = int(bias.abs().max().item()) if bias.numel() else 0
    # Bound on |u| without the 24-bit wrap (which never increases |u| beyond max(|u|, 2^23)):
    # a geometric sum, |u| ≤ |a|·64·4096/(du+1).
    u_bound = (amax << ACT_SHIFT) * DECAY_UNITY / (int(p.du) + DS_OFFSET)
    # int32 stores in Lava can only wrap if a_in << 6, u or v can leave int32; otherwise the
    # recurrence runs in float64 (exact: all values are integers below 2^31 ≪ 2^53).
    overflow = amax >= 2**25 or bmax >= 2**24 or u_bound + 2**25 >= 2**31
    need_wrap = overflow or u_bound >= MAX_UV - 1
    # The voltage clip can only trigger if |v| can reach 2^23 − 1: |v| ≤ (|u| + |bias|)·4096/dv.
    v_bound = (u_bound + MAX_UV + bmax) * DECAY_UNITY / max(int(p.dv), 1e-9) if need_wrap else \
        (u_bound + bmax) * DECAY_UNITY / max(int(p.dv), 1e-9)
    need_clip = overflow or v_bound >= vmax
    act = (a_in << ACT_SHIFT).transpose(0, 1)  # (T, B, N)
    keep_u, keep_v = decay_u / DECAY_UNITY, decay_v / DECAY_UNITY
    if overflow:  # int64 with numpy's int32 wrap at every int32 store
        out = cuba_sequence(wrap32(act), keep_u, keep_v, vth, bias=bias, arith="int", return_states=record_state)
    else:  # exact in float64: every value is an integer far below 2^53, u·(d/4096) is exact
        out = cuba_sequence(act.to(torch.float64), keep_u, keep_v, float(vth), bias=bias.to(torch.float64),
                            arith="rounded", wrap=need_wrap, clip=need_clip, return_states=record_state)
    if not record_state:
        return out.transpose(0, 1), None, None
    spikes, us, vs = out
    return spikes.transpose(0, 1), vs.transpose(0, 1).to(torch.int64), us.transpose(0, 1).to(torch.int64)


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
    """
    net.validate()
    if device is None:
        device = spikes.device if isinstance(spikes, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    x = _prepare_input(net, spikes, device, graded=net.input_message_bits > 0)
    B, T = x.shape[:2]
    shapes = net._shapes()
    probe_set = set(range(len(net.layers))) if probe == "all" else {int(i) % len(net.layers) for i in probe}  # type: ignore[union-attr]
    outs: dict[int, torch.Tensor] = {-1: x}
    result = SimResult(spikes=[], batch=B, steps=T, ops=[] if count_ops else None)
    graded_in = net.input_message_bits > 0
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            groups = [(i - 1, layer.conn, 0)] + [(sc.source, sc.conn, sc.delay) for sc in layer.shortcuts]
            total = None
            syn = 0
            for src, conn, delay in groups:
                syn_mod = _Synapse(conn, graded=graded_in and src < 0, device=device, weight_exp_mode=weight_exp_mode)
                a = delayed_input(syn_mod, outs[src], 1 + delay)
                total = a if total is None else wrap32(total + a)  # LIF a_in sums int32 messages
                if count_ops:
                    syn += syn_mod.syn_ops(outs[src])
            shape = shapes[i]
            s, v, u = cuba_run(layer.neuron, total.reshape(B, T, -1), shape, record_state=i in probe_set)
            s = s.reshape(B, T, *shape)
            outs[i] = s
            result.spikes.append(s)
            if i in probe_set:
                result.voltage[i] = v.reshape(B, T, *shape)
                result.current[i] = u.reshape(B, T, *shape)
            if count_ops:
                result.ops.append({"syn_ops": syn, "neuron_updates": B * T * int(math.prod(shape)),
                                   "active_updates": int((total != 0).sum().item()),
                                   "spikes": int(s.sum().item())})
    return result
