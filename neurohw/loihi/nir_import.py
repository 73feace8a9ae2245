"""NIR graph → :class:`LoihiNetwork` (Loihi integers), with the quantisation report.

Supported graphs are chains ``Input → (synapses → neurons)+ → Output`` where "synapses" is
one or more of ``Affine``, ``Linear``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``, ``Flatten`` and
"neurons" is one of ``LIF``, ``CubaLIF``, ``IF``. Several linear nodes between two neuron
nodes are composed into one synapse group: a chain ending in ``Affine``/``Linear`` becomes one
dense matrix (the composed affine map, evaluated on the unit basis), a single ``Conv2d`` a conv
layer, a single pooling node a depthwise conv with a uniform kernel (sum: 1, average: 1/k²).

Discretisation (forward Euler, explicit step ``dt`` in seconds; NIR's own equations):

- ``CubaLIF``: ``I ← (1 − dt/τ_syn)·I + (dt/τ_syn)·w_in·x``, ``v ← (1 − dt/τ_mem)·v + (dt/τ_mem)·(v_leak + R·I)``:
  current decay ``dt/τ_syn``, voltage decay ``dt/τ_mem``, synaptic gain
  ``g = (dt/τ_syn)·w_in·(dt/τ_mem)·R`` on the weights, voltage bias ``(dt/τ_mem)·v_leak``;
- ``LIF``: the same with no current state (current decay 1), ``g = (dt/τ)·R``;
- ``IF``: ``v ← v + R·I`` per step (NIR's IF has no time constant), ``g = R``, no leak.

An ``Affine``/``Conv2d`` bias ``b`` is a constant input: before ``LIF``/``IF`` it adds ``g·b`` to the
voltage exactly; before ``CubaLIF`` it is applied to the voltage at its steady-state value
``g·b/(dt/τ_syn)`` (the current's rise is not modelled — reported). Loihi resets to 0 and
shares decays and threshold within a layer: ``v_reset ≠ 0`` or per-neuron time constants or
thresholds are refused. The float layers are then scaled by a power of two ``s`` (weights,
threshold and bias together, which changes no spike of the float model) so the largest weight
uses Loihi's 8-bit range, and quantised by :func:`neurohw.loihi.quantize.quantize_network`;
the report lists the scale and every rounding. Graphs written by neurohw's own export
(``metadata["source"] == "neurohw.loihi"``) are in Loihi integer units already and are imported
with ``s = 1/64`` (a round trip is exact). Network input is read as binary spikes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .network import LoihiConfigError, LoihiNetwork
from .quantize import W_SCALE, FloatLayer, QuantReport, quantize_network

SYNAPSE_NODES = ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")
NEURON_NODES = ("LIF", "CubaLIF", "IF")


def _arr(where: str, node, name: str) -> np.ndarray:
    v = getattr(node, name, None)
    if v is None:
        raise LoihiConfigError(where, name, "missing")
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise LoihiConfigError(where, name, f"must be numeric, got {type(v).__name__}") from None
    if not np.all(np.isfinite(a)):
        raise LoihiConfigError(where, name, "contains NaN or infinity")
    return a


def _uniform(where: str, node, name: str) -> float:
    a = _arr(where, node, name)
    if a.size == 0:
        raise LoihiConfigError(where, name, "is empty")
    if not np.allclose(a, a.reshape(-1)[0], rtol=1e-9, atol=0):
        raise LoihiConfigError(where, name, f"varies across neurons ({a.min():.6g}..{a.max():.6g}); Loihi shares it within a layer")
    return float(a.reshape(-1)[0])


def _pair(where: str, name: str, v, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    a = np.asarray(v).reshape(-1)
    if a.dtype.kind not in "iuf" or a.size not in (1, 2) or np.any(a != np.round(a)) or np.any(a < 0):
        raise LoihiConfigError(where, name, f"must be one or two non-negative integers, got {v!r}")
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


# ----------------------------------------------------------------------------- graph walking
def _chain(graph, label: str) -> list[tuple[str, Any]]:
    """The nodes from the single Input to the single Output, in order; refuses anything else."""
    import nir

    nodes = graph.nodes
    for name, node in nodes.items():
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            raise LoihiConfigError(f"{label}: node '{name}'", "type", "nested graphs (e.g. snnTorch's RLeaky/RSynaptic "
                                   "recurrent layers) are not supported by import-nir")
        if kind not in SYNAPSE_NODES + NEURON_NODES + ("Input", "Output"):
            raise LoihiConfigError(f"{label}: node '{name}'", "type", f"NIR node type {kind} is not supported (supported: "
                                   f"{', '.join(SYNAPSE_NODES + NEURON_NODES)})")
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise LoihiConfigError(label, "nodes", f"needs exactly one Input and one Output node, found {len(inputs)} and {len(outputs)}")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for e in graph.edges:
        if len(e) != 2 or e[0] not in nodes or e[1] not in nodes:
            raise LoihiConfigError(label, "edges", f"edge {e!r} names a node that is not in the graph")
        succ[e[0]].append(e[1])
        pred[e[1]].append(e[0])
    order = [inputs[0]]
    while order[-1] != outputs[0]:
        cur = order[-1]
        if len(succ[cur]) != 1:
            raise LoihiConfigError(f"{label}: node '{cur}'", "edges", f"has {len(succ[cur])} successors; import-nir reads "
                                   "chains only (no branches, residuals or recurrence)")
        nxt = succ[cur][0]
        if len(pred[nxt]) != 1 or nxt in order:
            raise LoihiConfigError(f"{label}: node '{nxt}'", "edges", f"has {len(pred[nxt])} inputs or closes a loop; "
                                   "import-nir reads chains only")
        order.append(nxt)
    unused = set(nodes) - set(order)
    if unused:
        raise LoihiConfigError(label, "nodes", f"nodes not on the Input → Output chain: {sorted(unused)}")
    return [(n, nodes[n]) for n in order]


def _input_shape(label: str, node) -> tuple[int, ...]:
    t = getattr(node, "input_type", None)
    shp = np.asarray(t.get("input") if isinstance(t, dict) and t.get("input") is not None else [])
    if shp.dtype.kind not in "iuf" or np.any(shp != np.round(shp)):
        raise LoihiConfigError(f"{label}: Input", "input_type", f"must hold integer sizes, got {shp!r}")
    s = tuple(int(v) for v in shp.reshape(-1))
    if len(s) not in (1, 3) or min(s) < 1:
        raise LoihiConfigError(f"{label}: Input", "input_type", f"must be (N,) or (C, H, W), got {list(s)}")
    return s


# ----------------------------------------------------------------------------- linear ops
def _conv_padding(where: str, node, kernel) -> tuple[int, int]:
    p = node.padding
    if isinstance(p, str):
        if p == "valid":
            return 0, 0
        if p == "same" and all(k % 2 == 1 for k in kernel) and _pair(where, "stride", node.stride, 1) == (1, 1):
            return kernel[0] // 2, kernel[1] // 2
        raise LoihiConfigError(where, "padding", f"'{p}' is supported only as 'valid' or 'same' (odd kernel, stride 1)")
    return _pair(where, "padding", p, 0)


def _op(where: str, node, in_shape: tuple[int, ...]):
    """(torch function x → y on (B, *in_shape), out_shape, conv geometry or None)."""
    import torch
    import torch.nn.functional as F

    kind = type(node).__name__
    if kind == "Flatten":
        n = math.prod(in_shape)
        return (lambda x: x.reshape(x.shape[0], n)), (n,), None
    if kind in ("Affine", "Linear"):
        w = _arr(where, node, "weight")
        if w.ndim != 2 or w.shape[1] != math.prod(in_shape):
            raise LoihiConfigError(where, "weight", f"shape {w.shape} does not take the {math.prod(in_shape)} inputs {in_shape}")
        b = _arr(where, node, "bias") if kind == "Affine" else np.zeros(w.shape[0])
        if b.size != w.shape[0]:
            raise LoihiConfigError(where, "bias", f"has {b.size} values for {w.shape[0]} outputs")
        wt, bt = torch.as_tensor(w), torch.as_tensor(b.reshape(-1))
        return (lambda x: x.reshape(x.shape[0], -1) @ wt.t() + bt), (w.shape[0],), None
    if len(in_shape) != 3:
        raise LoihiConfigError(where, "input", f"a {kind} node needs a (C, H, W) input, got {in_shape}")
    c = in_shape[0]
    if kind == "Conv2d":
        w = _arr(where, node, "weight")
        if w.ndim != 4:
            raise LoihiConfigError(where, "weight", f"must be (C_out, C_in/groups, kH, kW), got shape {w.shape}")
        groups = int(getattr(node, "groups", 1) or 1)
        if groups < 1 or c % groups or w.shape[1] * groups != c or w.shape[0] % groups:
            raise LoihiConfigError(where, "groups", f"{groups} groups with weight {w.shape} do not fit {c} input channels")
        geo = dict(stride=_pair(where, "stride", node.stride, 1), padding=_conv_padding(where, node, w.shape[2:]),
                   dilation=_pair(where, "dilation", node.dilation, 1), groups=groups)
        b = _arr(where, node, "bias") if getattr(node, "bias", None) is not None else np.zeros(w.shape[0])
        if b.size not in (1, w.shape[0]):
            raise LoihiConfigError(where, "bias", f"has {b.size} values for {w.shape[0]} output channels")
        b = np.broadcast_to(b.reshape(-1), (w.shape[0],))
        wt, bt = torch.as_tensor(w), torch.as_tensor(b.copy())
        fn = lambda x: F.conv2d(x, wt, bias=bt, **geo)  # noqa: E731
    elif kind in ("SumPool2d", "AvgPool2d"):
        k = _pair(where, "kernel_size", node.kernel_size, 1)
        if min(k) < 1:
            raise LoihiConfigError(where, "kernel_size", f"must be positive, got {k}")
        stride = _pair(where, "stride", node.stride if node.stride is not None else k, 1)
        val = 1.0 if kind == "SumPool2d" else 1.0 / (k[0] * k[1])
        w = np.full((c, 1, *k), val)
        geo = dict(stride=stride, padding=_pair(where, "padding", node.padding, 0), dilation=(1, 1), groups=c)
        b = np.zeros(c)
        wt = torch.as_tensor(w)
        fn = lambda x: F.conv2d(x, wt, **geo)  # noqa: E731
    else:  # pragma: no cover - _chain admits only the kinds above
        raise LoihiConfigError(where, "type", f"unsupported {kind}")
    probe = fn(torch.zeros((1, *in_shape), dtype=torch.float64))
    if probe.numel() == 0:
        raise LoihiConfigError(where, "kernel_size", f"gives an empty output for input {in_shape}")
    return fn, tuple(probe.shape[1:]), {"weight": w, "bias": b, **geo}


def _synapses(label: str, ops: list[tuple[str, Any]], in_shape: tuple[int, ...]):
    """Compose the linear nodes before one neuron node: (kind, weight, bias, geometry, out_shape)."""
    import torch

    fns, shape, convs = [], in_shape, []
    for name, node in ops:
        fn, shape, geo = _op(f"{label}: node '{name}'", node, shape)
        fns.append(fn)
        if geo is not None:
            convs.append((name, geo))
    real = [(n, nd) for n, nd in ops if type(nd).__name__ != "Flatten"]
    if not real:
        raise LoihiConfigError(f"{label}: node '{ops[-1][0] if ops else '?'}'", "edges",
                               "a neuron node needs a synapse node (Affine, Linear, Conv2d or pooling) before it")
    if type(real[-1][1]).__name__ in ("Affine", "Linear") or len(shape) == 1:
        n_in = math.prod(in_shape)
        with torch.no_grad():
            x = torch.cat([torch.zeros(1, n_in, dtype=torch.float64), torch.eye(n_in, dtype=torch.float64)]).reshape(-1, *in_shape)
            for fn in fns:
                x = fn(x)
        y = x.reshape(n_in + 1, -1)
        bias = y[0].numpy()
        return "dense", (y[1:] - y[0]).t().numpy().copy(), bias.copy(), {}, (y.shape[1],)
    if len(real) != 1:
        raise LoihiConfigError(f"{label}: node '{real[1][0]}'", "type", "two convolution/pooling nodes without a neuron "
                               "node between them cannot be one Loihi synapse group")
    geo = dict(convs[0][1])
    w, b = geo.pop("weight"), geo.pop("bias")
    return "conv", w, np.asarray(b, dtype=np.float64), geo, shape


# ----------------------------------------------------------------------------- neurons
def _neuron(where: str, node, dt: float, n_out: int):
    """(current_decay, voltage_decay, threshold, gain per neuron, voltage bias per neuron)."""
    kind = type(node).__name__

    def per_neuron(name):
        a = _arr(where, node, name).reshape(-1)
        if a.size not in (1, n_out):
            raise LoihiConfigError(where, name, f"has {a.size} values for {n_out} neurons")
        return np.broadcast_to(a, (n_out,)).astype(np.float64)

    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(_arr(where, node, "v_reset") != 0):
        raise LoihiConfigError(where, "v_reset", "must be 0 (Loihi resets the voltage to 0)")
    theta = _uniform(where, node, "v_threshold")
    if not theta > 0:
        raise LoihiConfigError(where, "v_threshold", f"must be positive, got {theta}")

    def rate(name):
        tau = _uniform(where, node, name)
        if not tau >= dt:
            raise LoihiConfigError(where, name, f"{tau:.6g} s is shorter than the step dt = {dt:.6g} s (forward Euler needs τ ≥ dt)")
        return dt / tau

    r = per_neuron("r")
    if kind == "IF":
        return 1.0, 0.0, theta, r, np.zeros(n_out)
    if kind == "LIF":
        vd = rate("tau")
        return 1.0, vd, theta, vd * r, vd * per_neuron("v_leak")
    cd, vd = rate("tau_syn"), rate("tau_mem")
    return cd, vd, theta, cd * per_neuron("w_in") * vd * r, vd * per_neuron("v_leak")


def _scale(label: str, w: np.ndarray, theta: float, bias: np.ndarray, integer_units: bool) -> float:
    """The power-of-two scale that puts the largest weight into Loihi's 8-bit range (or 1/64)."""
    if integer_units:
        return 1.0 / W_SCALE
    wmax = float(np.abs(w).max()) if w.size else 0.0
    limits = [131071 / (W_SCALE * theta)]
    if wmax > 0:
        limits.append(254 / (W_SCALE * wmax))
    bmax = float(np.abs(bias).max()) if bias.size else 0.0
    if bmax > 0:
        limits.append(4095 / (W_SCALE * bmax))
    lim = min(limits)
    s = 2.0 ** math.floor(math.log2(lim))
    if s * W_SCALE * theta < 1:
        raise LoihiConfigError(label, "v_threshold", f"threshold {theta:.4g} is too small against weights up to {wmax:.4g} "
                               "for Loihi's 17-bit threshold and 8-bit weights")
    return s


# ----------------------------------------------------------------------------- public
def float_layers_from_nir(graph, *, dt: float | None = None, label: str = "nir graph"):
    """The NIR graph as scaled float layers: (input_shape, [FloatLayer], QuantReport with the scale rows)."""
    meta = getattr(graph, "metadata", None) or {}
    if dt is None:
        dt = meta.get("dt") if isinstance(meta, dict) else None
    if dt is None:
        raise LoihiConfigError(label, "dt", "no time step: give dt explicitly (snnTorch's export assumes 1e-4 s)")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise LoihiConfigError(label, "dt", f"must be a positive number of seconds, got {dt}")
    integer_units = isinstance(meta, dict) and meta.get("source") == "neurohw.loihi"
    chain = _chain(graph, label)
    shape = _input_shape(label, chain[0][1])
    input_shape = shape
    rep = QuantReport()
    layers: list[FloatLayer] = []
    ops: list[tuple[str, Any]] = []
    for name, node in chain[1:]:
        kind = type(node).__name__
        if kind in SYNAPSE_NODES:
            ops.append((name, node))
            continue
        if kind == "Output":
            if ops:
                raise LoihiConfigError(f"{label}: node '{ops[-1][0]}'", "edges", "the graph ends in synapses; every Loihi "
                                       "layer ends in neurons (LIF, CubaLIF or IF)")
            break
        where = f"{label}: node '{name}'"
        try:
            layer, out_shape = _layer(label, where, name, kind, node, ops, shape, dt, integer_units, rep)
        except LoihiConfigError:
            raise
        except (TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError) as exc:
            nodes = ", ".join(f"'{n}'" for n, _ in ops + [(name, node)])
            raise LoihiConfigError(f"{label}: nodes {nodes}", "parameters", f"malformed ({type(exc).__name__}: {exc})") from None
        layers.append(layer)
        ops = []
        shape = out_shape
    if not layers:
        raise LoihiConfigError(label, "nodes", "no neuron nodes (LIF, CubaLIF, IF)")
    return input_shape, layers, rep


def _layer(label, where, name, kind, node, ops, shape, dt, integer_units, rep):
    """One neuron node and the synapse nodes before it → (scaled FloatLayer, neuron shape)."""
    skind, w, b, geo, out_shape = _synapses(label, ops, shape)
    n_out = math.prod(out_shape)
    cd, vd, theta, gain, vbias = _neuron(where, node, dt, n_out)
    b_full = b if skind == "dense" else np.repeat(b, n_out // out_shape[0])
    b_eff = gain * b_full
    if kind == "CubaLIF" and np.any(b_full):
        b_eff = b_eff / cd
        rep.add(name, "synaptic bias", float(np.abs(b_full).max()), float(np.abs(b_full).max()),
                "applied to the voltage at its steady state (current rise over τ_syn not modelled)")
    vb = vbias + b_eff
    if skind == "dense":
        w = w * gain[:, None]
        bias_arg = vb if np.any(vb) else None
    else:
        per_ch = gain.reshape(out_shape[0], -1)
        if not np.allclose(per_ch, per_ch[:, :1]):
            raise LoihiConfigError(where, "r", "per-neuron gains (r, w_in) must be equal within a channel for a conv layer")
        w = w * per_ch[:, 0].reshape(-1, 1, 1, 1)
        bias_arg = vb.reshape(out_shape) if np.any(vb) else None  # per neuron (C, H, W)
    s = _scale(where, w, theta, vb, integer_units)
    rep.add(name, "scale", s, s, "weights, threshold and bias multiplied by this power of two before quantisation")
    fl = FloatLayer(skind, w * s, threshold=theta * s, current_decay=cd, voltage_decay=vd,
                    bias=None if bias_arg is None else np.asarray(bias_arg) * s, name=name, **geo)
    return fl, out_shape


def import_nir(graph_or_path, *, dt: float | None = None, name: str | None = None) -> tuple[LoihiNetwork, QuantReport]:
    """A NIR graph (``nir.NIRGraph`` or a ``.nir`` file) → validated ``LoihiNetwork`` and the
    report of what quantisation changed. ``dt`` (seconds) overrides the graph's ``metadata["dt"]``;
    one of them is required. Unsupported nodes raise ``LoihiConfigError`` naming the node."""
    import nir

    label = "nir graph"
    graph = graph_or_path
    if isinstance(graph_or_path, (str, Path)):
        path = Path(graph_or_path)
        label = str(path)
        if not path.exists():
            raise LoihiConfigError(label, "file", "does not exist")
        try:
            graph = nir.read(str(path))
        except Exception as exc:  # nir.read raises many types on malformed files
            raise LoihiConfigError(label, "file", f"is not a readable NIR file ({type(exc).__name__}: {exc})") from None
        name = name or path.stem
    if not isinstance(graph, nir.NIRGraph):
        raise LoihiConfigError(label, "graph", f"expected a nir.NIRGraph, got {type(graph).__name__}")
    input_shape, layers, rep = float_layers_from_nir(graph, dt=dt, label=label)
    net, qrep = quantize_network(input_shape, layers, name=name or "nir_import")
    rep.rows.extend(qrep.rows)
    integer_units = isinstance(graph.metadata, dict) and graph.metadata.get("source") == "neurohw.loihi"
    for layer, fl in zip(net.layers, layers):
        layer.name = str(fl.name)
        if integer_units and fl.kind == "conv":  # Lava's Conv takes any integer: no 2/64 grid
            layer.weight = np.round(np.asarray(fl.weight) * W_SCALE).astype(np.int64)
            rep.add(layer.name, "weight (integer units)", 0.0, 0.0, "conv weights kept as the graph's integers")
    net.validate()
    return net, rep

