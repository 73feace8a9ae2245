"""NIR export of a :class:`LoihiNetwork` (``nir`` 1.0; read back with ``nir.read``).

Each layer becomes ``Linear``/``Conv2d`` → ``CubaLIF`` (a ``Flatten`` goes between a 3-D layer and a
dense one). Forward-Euler correspondence with an explicit step ``dt`` (seconds), in state units
where one integer weight is one unit of current (Loihi's ``u / 64``, ``v / 64``):

- ``tau_syn = dt · 4096 / (du + 1)`` (Lava decays the current by ``du + 1``), ``w_in = tau_syn / dt``;
- ``tau_mem = dt · 4096 / dv``, ``r = tau_mem / dt`` (``dv = 0``, no leak, is written as
  ``tau_mem = 1e9 · dt``: NIR has no infinite time constant);
- ``v_leak = bias / 64 · tau_mem / dt`` (bias = ``bias_mant << bias_exp``), ``v_threshold = vth``,
  ``v_reset = 0``; weights are the effective integers (after Lava's clipping/truncation, times
  ``2^weight_exp``).

``dt`` is written in the graph's and every node's metadata. The graph describes the continuous
dynamics: Loihi's rounding toward zero and its one-step-per-layer pipeline are not part of NIR
(shortcut delays are, as ``Delay`` nodes). snnTorch's importer hard-codes ``dt = 1e-4`` and needs
``v_leak = 0``: export with ``dt=1e-4`` and no bias to import there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from neurohw.io import atomic_path

from .fixedpoint import effective_dense_weights
from .network import LoihiConfigError, ConvConn, CubaParams, DenseConn, LoihiNetwork

NO_LEAK_TAU_STEPS = 1e9


def _conn_node(conn, src_shape, dt):
    import nir

    meta = {"dt": dt, "source": "neurohw.loihi"}
    if isinstance(conn, DenseConn):
        w = effective_dense_weights(conn.weight, conn.sign_mode, conn.num_weight_bits).astype(np.float64)
        w = w * (2.0 ** int(conn.weight_exp))
        return nir.Linear(weight=w, metadata={**meta, "weight_exp": int(conn.weight_exp)})
    assert isinstance(conn, ConvConn)
    w = np.asarray(conn.weight, dtype=np.float64)
    g = int(conn.groups)
    if g > 1:  # NIR 1.0's type inference ignores groups: write the equivalent block-diagonal dense kernel
        co, ci_g = w.shape[0] // g, w.shape[1]
        full = np.zeros((w.shape[0], ci_g * g, *w.shape[2:]))
        for k in range(g):
            full[k * co:(k + 1) * co, k * ci_g:(k + 1) * ci_g] = w[k * co:(k + 1) * co]
        w, meta = full, {**meta, "groups_expanded": g}
    return nir.Conv2d(input_shape=tuple(src_shape[1:]), weight=w, stride=tuple(conn.stride), padding=tuple(conn.padding),
                      dilation=tuple(conn.dilation), groups=1, bias=np.zeros(w.shape[0]), metadata=meta)


def cuba_to_nir(p: CubaParams, shape, dt: float):
    """Lava CUBA parameters → ``nir.CubaLIF`` with step ``dt`` (arrays of the neuron shape)."""
    import nir

    shape = tuple(shape)
    tau_syn = dt * 4096.0 / (int(p.du) + 1)
    tau_mem = dt * 4096.0 / int(p.dv) if int(p.dv) > 0 else dt * NO_LEAK_TAU_STEPS
    bias = p.bias(shape).astype(np.float64) / 64.0
    full = lambda x: np.full(shape, x, dtype=np.float64)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                       v_leak=bias * tau_mem / dt, v_threshold=full(float(p.vth)), v_reset=full(0.0),
                       w_in=full(tau_syn / dt), metadata={"dt": dt, "du": int(p.du), "dv": int(p.dv), "vth": int(p.vth)})


def to_nir(net: LoihiNetwork, dt: float = 1e-3):
    """The network as a ``nir.NIRGraph`` (metadata holds ``dt`` and the Loihi conventions)."""
    import nir

    net.validate()
    shapes = net._shapes()
    nodes = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    edges = []
    out_name = {-1: "input"}
    src_shapes = {-1: net.input_shape}

    def wire(src: int, conn, target_lif: str, tag: str, delay: int = 0):
        prev = out_name[src]
        steps = np.full(tuple(src_shapes[src]), delay, dtype=np.int64)
        if isinstance(conn, DenseConn) and conn.has_delays:  # NIR's Delay acts per source neuron
            d = conn.delays()
            if not np.all(d == d[:1]):
                raise LoihiConfigError(f"layer '{tag}'", "delay", "per-synapse or per-output delays have no NIR form "
                                       "(NIR's Delay delays a source neuron); only per-input delays export")
            steps = steps + d[0].reshape(steps.shape)
        if steps.any():
            nodes[f"{tag}_delay"] = nir.Delay(delay=steps * dt)
            edges.append((prev, f"{tag}_delay"))
            prev = f"{tag}_delay"
        if isinstance(conn, DenseConn) and len(src_shapes[src]) == 3:
            nodes[f"{tag}_flatten"] = nir.Flatten(input_type={"input": np.array(src_shapes[src])}, start_dim=0, end_dim=-1)
            edges.append((prev, f"{tag}_flatten"))
            prev = f"{tag}_flatten"
        nodes[f"{tag}_syn"] = _conn_node(conn, src_shapes[src], dt)
        edges.append((prev, f"{tag}_syn"))
        edges.append((f"{tag}_syn", target_lif))

    for i, layer in enumerate(net.layers):
        lif = f"{layer.name}_lif"
        if not isinstance(layer.neuron, CubaParams):
            raise LoihiConfigError(f"layer {i} ({layer.name})", "neuron", "sigma-delta neurons have no NIR node; "
                                   "only CUBA layers export to NIR")
        nodes[lif] = cuba_to_nir(layer.neuron, shapes[i], dt)
        wire(i - 1, layer.conn, lif, layer.name)
        for j, sc in enumerate(layer.shortcuts):
            wire(sc.source, sc.conn, lif, f"{layer.name}_shortcut{j}", sc.delay)
        out_name[i] = lif
        src_shapes[i] = shapes[i]
        if getattr(layer, "recurrent", None) is not None:  # a cycle lif → Affine → lif (NIR's recurrence)
            wire(i, layer.recurrent, lif, f"{layer.name}_recurrent")
    nodes["output"] = nir.Output(output_type={"output": np.array(shapes[-1])})
    edges.append((out_name[len(net.layers) - 1], "output"))
    meta = {"dt": dt, "source": "neurohw.loihi", "network": net.name,
            "conventions": "Lava fixed_pt CUBA; state units = Loihi u/64 and v/64; strict threshold; reset to 0; "
                           "Loihi adds one step of latency per synapse group and rounds decays toward zero"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def write_nir(net: LoihiNetwork, path: str | Path, dt: float = 1e-3) -> Path:
    """Write the NIR graph to ``path`` (HDF5, atomically)."""
    import nir

    graph = to_nir(net, dt)
    path = Path(path)
    with atomic_path(path, suffix=".nir") as tmp:
        nir.write(str(tmp), graph)
    return path


def read_nir_graph(path: str | Path):
    """``nir.read`` of a file written by :func:`write_nir`."""
    import nir

    return nir.read(str(path))
