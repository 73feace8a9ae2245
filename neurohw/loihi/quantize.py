"""From a trained float CUBA network (lava-dl's conventions) to Loihi integers, with a report.

Float model (lava-dl / SLAYER CUBA, per step):
``u = (1 − current_decay)·u + W·s``, ``v = (1 − voltage_decay)·v + u + bias``, spike when
``v > threshold`` (Loihi is strict; SLAYER's CUDA kernel uses ``>=``), then ``v = 0``.

Hardware mapping (SLAYER ``scale = 64``; states are float × 4096):

- weight ``w`` → integer ``round(w·64/2)·2`` clamped to [−256, 254] (SLAYER's 8-bit grid of 2/64);
  dense mantissa, ``weight_exp`` and ``num_weight_bits`` are then chosen as netx does
  (:func:`netx_weight_choice`, lossless);
- ``current_decay`` → ``iDecay = round(4096·cd)``, ``du = iDecay − 1`` (Lava adds the 1 back);
- ``voltage_decay`` → ``dv = round(4096·vd)``;
- ``threshold`` θ → ``vth = int(θ·64)`` (SLAYER truncates);
- ``bias`` b → ``bias_mant = round(b·64)``, ``bias_exp = 6``.

Binary weights ``W = α·sign(B)``: the dynamics are linear in (W, bias, θ), so dividing all three by
α changes no spike. ``fold="threshold"`` stores ±q (q the largest even integer ≤ 254 that keeps
``vth`` and ``bias_mant`` in range) and ``vth = int(θ/α·q)``; ``fold="exponent"`` (dense only)
stores ±2 with ``weight_exp = round(log2(α·32))`` and leaves θ alone (α is rounded to a power of 2).
Every rounding is listed in :class:`QuantReport`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .network import ConvLayer, CubaParams, DenseLayer, LoihiConfigError, LoihiNetwork

W_SCALE = 64


@dataclass
class QuantReport:
    """Rows of (layer, field, float value, value the integers represent, error, note)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, layer: str, name: str, want: float, got: float, note: str = "") -> None:
        err = got - want
        rel = abs(err) / abs(want) if want else (0.0 if got == 0 else math.inf)
        self.rows.append({"layer": layer, "field": name, "float": float(want), "quantised": float(got),
                          "abs_error": float(err), "rel_error": float(rel), "note": note})

    def text(self) -> str:
        lines = [f"{'layer':<12}{'field':<18}{'float':>12}{'quantised':>12}{'rel.err':>10}  note"]
        for r in self.rows:
            lines.append(f"{r['layer']:<12}{r['field']:<18}{r['float']:>12.5g}{r['quantised']:>12.5g}{r['rel_error']:>10.2%}  {r['note']}")
        return "\n".join(lines)


def quantize_cuba(threshold: float, current_decay: float, voltage_decay: float, bias=None, *,
                  gain: float = 1.0, report: QuantReport | None = None, layer: str = "") -> CubaParams:
    """Float CUBA parameters → ``CubaParams`` (``gain`` multiplies threshold and bias, see module doc)."""
    rep = report if report is not None else QuantReport()
    for name, val in (("current_decay", current_decay), ("voltage_decay", voltage_decay)):
        if not 0.0 <= float(val) <= 1.0:
            raise LoihiConfigError(layer or "neuron", name, f"{val} is outside [0, 1]")
    if not float(threshold) > 0:
        raise LoihiConfigError(layer or "neuron", "threshold", f"must be positive, got {threshold}")
    i_decay = int(round(4096 * float(current_decay)))
    du = i_decay - 1
    note = ""
    if du < 0:
        du, note = 0, "iDecay 0 is not representable (du ≥ 0): current decay raised to 1/4096"
    if du > 4095:
        du = 4095
    rep.add(layer, "current_decay", float(current_decay), (du + 1) / 4096, note)
    dv = min(int(round(4096 * float(voltage_decay))), 4095)
    rep.add(layer, "voltage_decay", float(voltage_decay), dv / 4096, "4096 (full decay) is not representable" if round(4096 * voltage_decay) > 4095 else "")
    vth_f = float(threshold) * gain * W_SCALE
    vth = int(vth_f)
    if vth > 131071:
        raise LoihiConfigError(layer or "neuron", "threshold", f"{threshold}·gain {gain} → vth {vth} exceeds 17 bits (131071)")
    rep.add(layer, "threshold", float(threshold), vth / (gain * W_SCALE), "truncated like SLAYER's int(θ·64)")
    mant: Any = 0
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64) * gain * W_SCALE
        m = np.round(b).astype(np.int64)
        if m.size and (m.min() < -4096 or m.max() > 4095):
            raise LoihiConfigError(layer or "neuron", "bias", f"bias·gain·64 = {m.min()}..{m.max()} is outside −4096..4095")
        bf = np.asarray(bias, dtype=np.float64).reshape(-1)
        worst = int(np.argmax(np.abs(m.reshape(-1) / (gain * W_SCALE) - bf))) if bf.size else 0
        rep.add(layer, "bias (worst)", float(bf[worst]) if bf.size else 0.0, float(m.reshape(-1)[worst]) / (gain * W_SCALE) if bf.size else 0.0, "")
        mant = m if m.ndim else int(m)
    return CubaParams(du=du, dv=dv, vth=vth, bias_mant=mant, bias_exp=6 if bias is not None else 0)


def quantize_weights(weight: np.ndarray, *, gain: float = 1.0, report: QuantReport | None = None, layer: str = "") -> np.ndarray:
    """Float weights → SLAYER's 8-bit grid: ``round(w·gain·64/2)·2`` clamped to [−256, 254]."""
    w = np.asarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise LoihiConfigError(layer or "weights", "weight", "contains NaN or infinity")
    q = np.clip(np.round(w * gain * W_SCALE / 2) * 2, -256, 254).astype(np.int64)
    if report is not None:
        back = q / (gain * W_SCALE)
        clipped = int(np.sum(np.abs(w * gain * W_SCALE) > 256))
        scale = float(np.abs(w).max()) or 1.0
        report.add(layer, "weight (max err)", scale, scale + float(np.abs(back - w).max()),
                   f"{clipped} weights clipped" if clipped else "rounded to 2/64 steps")
    return q


def _binary_q(theta: float, alpha: float, bias) -> int:
    """Largest even q ≤ 254 with vth = θ/α·q ≤ 131071 and |bias/α·q·64|… within 13 bits."""
    q = 254
    lim = 131071 / (theta / alpha * W_SCALE / W_SCALE) if theta > 0 else q
    q = min(q, int(lim))
    if bias is not None:
        bmax = float(np.abs(np.asarray(bias)).max()) / alpha
        if bmax > 0:
            q = min(q, int(4095 / bmax))
    q -= q % 2
    if q < 2:
        raise LoihiConfigError("binary weights", "alpha", f"threshold/alpha = {theta / alpha:.4g} leaves no room for integer weights")
    return q


def netx_weight_choice(w: np.ndarray, weight_exp: int = 0) -> tuple[np.ndarray, int, int]:
    """Mantissa, exponent and weight bits as netx chooses them (``optimize_weight_bits``), with
    an existing ``weight_exp`` folded in; the effective synaptic input is unchanged because
    ``(Σ w·2^s) >> (s − e) = floor(Σ w · 2^e)``. Falls back to (w, weight_exp, 8) when the
    combined exponent would leave −8..7 or the matrix is all zero."""
    from .fixedpoint import netx_optimize_weight_bits

    if not np.any(w):
        return w, weight_exp, 8
    nw = netx_optimize_weight_bits(w)
    exp = nw.weight_exp + int(weight_exp)
    if not -8 <= exp <= 7:
        return w, weight_exp, 8
    return nw.weight, exp, nw.num_weight_bits


@dataclass
class FloatLayer:
    """A trained float layer: ``kind`` "dense" or "conv", float weights (PyTorch layout), CUBA
    parameters, optional bias, optional binary scale ``alpha`` (then ``weight`` holds ±1 or any
    array whose sign is used), conv geometry in (y, x) pairs."""

    kind: str
    weight: np.ndarray
    threshold: float
    current_decay: float
    voltage_decay: float
    bias: Any = None
    alpha: float | None = None
    stride: Sequence[int] = (1, 1)
    padding: Sequence[int] = (0, 0)
    dilation: Sequence[int] = (1, 1)
    groups: int = 1
    name: str = ""


def quantize_layer(fl: FloatLayer, *, fold: str = "threshold", report: QuantReport | None = None):
    """One ``FloatLayer`` → ``DenseLayer`` / ``ConvLayer``."""
    rep = report if report is not None else QuantReport()
    name = fl.name or fl.kind
    exp = 0
    if fl.alpha is not None:
        alpha = float(fl.alpha)
        if alpha <= 0:
            raise LoihiConfigError(name, "alpha", f"must be positive, got {alpha}")
        signs = np.where(np.asarray(fl.weight) >= 0, 1, -1).astype(np.int64)
        if fold == "threshold":
            q = _binary_q(fl.threshold, alpha, fl.bias)
            w = signs * q
            neuron = quantize_cuba(fl.threshold / alpha, fl.current_decay, fl.voltage_decay,
                                   None if fl.bias is None else np.asarray(fl.bias) / alpha,
                                   gain=q / W_SCALE, report=rep, layer=name)
            rep.add(name, "alpha", alpha, alpha, f"folded into the threshold: weights ±{q}, vth = θ/α·{q}")
        elif fold == "exponent":
            if fl.kind != "dense":
                raise LoihiConfigError(name, "fold", "Lava's Conv ignores weight_exp: use fold='threshold' for conv layers")
            exp = int(round(math.log2(alpha * W_SCALE / 2)))
            if not -8 <= exp <= 7:
                raise LoihiConfigError(name, "alpha", f"α·32 = {alpha * 32:.4g} needs weight_exp {exp} outside −8..7")
            w = signs * 2
            neuron = quantize_cuba(fl.threshold, fl.current_decay, fl.voltage_decay, fl.bias, report=rep, layer=name)
            rep.add(name, "alpha", alpha, 2.0 * 2**exp / W_SCALE, f"folded into weight_exp = {exp} (power of two)")
        else:
            raise LoihiConfigError(name, "fold", f"must be 'threshold' or 'exponent', got {fold!r}")
    else:
        w = quantize_weights(fl.weight, report=rep, layer=name)
        neuron = quantize_cuba(fl.threshold, fl.current_decay, fl.voltage_decay, fl.bias, report=rep, layer=name)
    if fl.kind == "dense":
        w, exp, bits = netx_weight_choice(w, exp)
        return DenseLayer(w, neuron, weight_exp=exp, num_weight_bits=bits, name=name)
    if fl.kind == "conv":
        return ConvLayer(w, neuron, stride=tuple(fl.stride), padding=tuple(fl.padding), dilation=tuple(fl.dilation),
                         groups=fl.groups, name=name)
    raise LoihiConfigError(name, "kind", f"unsupported layer kind {fl.kind!r} (dense or conv; lower pooling first)")


def quantize_network(input_shape: Sequence[int], layers: Sequence[FloatLayer], *, fold: str = "threshold",
                     name: str = "quantised") -> tuple[LoihiNetwork, QuantReport]:
    """Quantise a list of float layers into a validated ``LoihiNetwork`` and the report of changes."""
    rep = QuantReport()
    out = [quantize_layer(fl, fold=fold, report=rep) for fl in layers]
    net = LoihiNetwork(tuple(input_shape), out, name=name)
    net.validate()
    return net, rep


def float_cuba_reference(layers: Sequence[FloatLayer], spikes: np.ndarray, strict: bool = True) -> list[np.ndarray]:
    """Float reference of the same network with Lava's timing (one step of delay per layer),
    in float64: for measuring what quantisation changed. spikes (B, T, *input). Returns per-layer
    spikes (B, T, *shape)."""
    import torch
    import torch.nn.functional as F

    from .cuba import cuba_sequence

    x = torch.as_tensor(np.asarray(spikes), dtype=torch.float64)
    B, T = x.shape[:2]
    outs = []
    for fl in layers:
        w = np.asarray(fl.weight, dtype=np.float64)
        if fl.alpha is not None:
            w = np.where(w >= 0, 1.0, -1.0) * fl.alpha
        wt = torch.as_tensor(w)
        if fl.kind == "dense":
            a = x.reshape(B * T, -1) @ wt.t()
        else:
            a = F.conv2d(x.reshape(B * T, *x.shape[2:]), wt, stride=tuple(fl.stride), padding=tuple(fl.padding),
                         dilation=tuple(fl.dilation), groups=fl.groups)
        shape = a.shape[1:]
        a = a.reshape(B, T, -1)
        a = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], dim=1)
        bias = torch.zeros(a.shape[-1], dtype=torch.float64) if fl.bias is None else torch.as_tensor(np.broadcast_to(np.asarray(fl.bias, dtype=np.float64).reshape(-1, *([1] * (len(shape) - 1))) if len(shape) == 3 else np.asarray(fl.bias, dtype=np.float64), tuple(shape)).reshape(-1).copy())
        s_all = cuba_sequence(a, 1 - fl.current_decay, 1 - fl.voltage_decay, fl.threshold, bias=bias,
                              arith="float", strict=strict, time_dim=1)
        x = s_all.reshape(B, T, *shape).to(torch.float64)
        outs.append(s_all.reshape(B, T, *shape).numpy())
    return outs
