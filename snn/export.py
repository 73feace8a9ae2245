"""Export a trained BWSNN: netx HDF5 for Loihi/Lava, or NIR.

* ``loihi``: :func:`snn.deploy.to_loihi_network` → :func:`neurohw.loihi.netx_io.write_netx`
  (netx layers plus neurohw's shortcut extension, which ``neurohw.loihi.lava_bridge`` adds to
  the netx-built Lava network as second synapse groups).
* ``nir``: through ``neurohw.loihi.nir_io.write_nir`` when the Loihi backend provides it, else
  snn's own writer below (float units: weights W/64, threshold vth/64; CubaLIF by forward Euler
  with an explicit ``dt``: ``τ_syn = dt·4096/(du+1)``, ``τ_mem = dt·4096/dv``, ``w_in = τ_syn/dt``,
  ``r = τ_mem/dt``; a shortcut is a second Linear/Conv2d edge into the same CubaLIF node; the
  readout is a Linear whose output, summed over time, is the logits). NIR cannot express
  Loihi's truncation toward zero, reset-to-0 with strict ``>``, or the 24-bit wrap: these are
  written into the graph metadata.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snn.deploy import to_loihi_network
from snn.model import BWSNN

NIR_DT = 1e-3  #: seconds per time step written into the NIR graph


def export_model(model: BWSNN, to: str, path: str | Path) -> Path:
    """Write ``model`` as ``to`` = ``"loihi"`` (netx HDF5) or ``"nir"``; returns the path."""
    path = Path(path)
    net = to_loihi_network(model)
    if to == "loihi":
        from neurohw.loihi.netx_io import write_netx

        return write_netx(net, path, seed=model.cfg.seed, config={"deploy": deploy_info(model)})
    if to == "nir":
        try:
            from neurohw.loihi.nir_io import write_nir  # the backend's writer, when present
        except ImportError:
            write_nir = None
        if write_nir is not None:
            write_nir(net, path)
            return path
        return write_nir_graph(model, path)
    raise ValueError(f"export target must be 'loihi' or 'nir', got {to!r}")


def deploy_info(model: BWSNN, data: str = "mnist5k") -> dict:
    """How to feed the exported net and read its answer (:func:`neurohw.loihi.chain.deploy_info`).

    Input: ``cfg.encoding`` over ``cfg.steps`` steps plus one zero step per layer of latency;
    answer: the read-out's current summed over steps ``[L + 1, L + 1 + T)`` and shifted right
    by 6 (``snn.deploy``'s logits), L = number of spiking layers.
    """
    n_spiking = len(model.layers)
    return {"source": "snn", "data": data, "encoding": model.cfg.encoding, "steps": int(model.cfg.steps),
            "pad": n_spiking + 1, "readout": "current", "window_start": n_spiking + 1, "current_shift": 6}


def to_nir_graph(model: BWSNN, dt: float = NIR_DT):
    """The deployed network (integer weights in float units) as a ``nir.NIRGraph``."""
    import nir

    net = to_loihi_network(model)
    shapes = net.shapes()
    nodes: dict = {"input": nir.Input(input_type={"input": np.array(model.in_shape)})}
    edges: list = []
    prev, prev_shape = "input", tuple(model.in_shape)

    def synapse_node(conn_kind, w, stride, padding, in_shape):
        wf = np.asarray(w, dtype=np.float64) / 64.0
        if conn_kind == "conv":
            return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=wf, stride=tuple(stride), padding=tuple(padding),
                              dilation=(1, 1), groups=1, bias=np.zeros(wf.shape[0]))
        return nir.Linear(weight=wf)

    def flatten_if_needed(src, shape, name):
        if len(shape) == 3:
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
            edges.append((src, name))
            return name
        return src

    for i, layer in enumerate(net.layers):
        is_readout = i == len(net.layers) - 1
        kind = "dense" if hasattr(layer, "weight_exp") else "conv"
        src = flatten_if_needed(prev, prev_shape, f"flatten{i}") if kind == "dense" else prev
        stride = getattr(layer, "stride", (1, 1))
        padding = getattr(layer, "padding", (0, 0))
        nodes[f"syn{i}"] = synapse_node(kind, layer.weight, stride, padding, prev_shape)
        edges.append((src, f"syn{i}"))
        if is_readout:
            nodes["output"] = nir.Output(output_type={"output": np.array(shapes[i])})
            edges.append((f"syn{i}", "output"))
            break
        p = layer.neuron
        tau_syn = dt * 4096 / (p.du + 1)
        tau_mem = dt * 4096 / p.dv if p.dv else np.inf
        full = lambda v: np.full(shapes[i], v, dtype=np.float64)
        nodes[f"lif{i}"] = nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                                       v_leak=full(0.0), v_threshold=full(p.vth / 64.0), v_reset=full(0.0),
                                       w_in=full(tau_syn / dt))
        edges.append((f"syn{i}", f"lif{i}"))
        for j, sc in enumerate(layer.shortcuts):
            skind = "conv" if hasattr(sc.conn, "groups") else "dense"
            ssrc = prev if sc.source == i - 1 else ("input" if sc.source < 0 else f"lif{sc.source}")
            nodes[f"shortcut{i}_{j}"] = synapse_node(skind, sc.conn.weight, getattr(sc.conn, "stride", (1, 1)),
                                                     getattr(sc.conn, "padding", (0, 0)), prev_shape)
            edges.append((ssrc, f"shortcut{i}_{j}"))
            edges.append((f"shortcut{i}_{j}", f"lif{i}"))
        prev, prev_shape = f"lif{i}", shapes[i]
    meta = {"dt": dt, "source": "neurohw snn", "loihi_semantics": "CUBA fixed_pt: decays truncate toward zero on k/4096, "
            "reset v to 0 when v > vth (strict), current kept, 24-bit current wrap, voltage saturation; "
            "logits = output summed over the T model steps", "steps": model.cfg.steps}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def write_nir_graph(model: BWSNN, path: str | Path, dt: float = NIR_DT) -> Path:
    """Write :func:`to_nir_graph` to ``path`` atomically."""
    import nir

    from neurohw.io import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".nir") as tmp:
        nir.write(str(tmp), to_nir_graph(model, dt))
    return path
