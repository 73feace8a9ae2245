"""Run a :class:`LoihiNetwork` (or a netx HDF5 file) in Lava 0.10 with ``fixed_pt`` models.

Lava is imported inside the functions only, so ``import neurohw.loihi`` works without it.
Two paths, both on ``Loihi2SimCfg(select_tag='fixed_pt')``:

- :func:`run_in_lava` builds the processes directly (``RingBuffer`` source → per layer
  ``Dense``/``Conv`` synapses → ``LIF``; extra synapse groups for shortcuts; a delayed shortcut
  goes through a chain of relay LIFs, ``du = dv = 4095, vth = 0``, each one step; a recurrent
  layer gets a ``Dense`` from its LIF's ``s_out`` back to its ``a_in``; synapses with delays are
  a ``DelayDense``);
- :func:`run_netx_in_lava` loads the exported file with ``lava.lib.dl.netx.hdf5.Network`` (and
  adds neurohw's shortcut extension, which netx itself ignores; recurrent layers are netx's own
  ``dense_rec`` blocks).

Lava runs one sample at a time (its runtime is one set of processes); results come back in
neurohw's layout: spikes (batch, steps, *shape) with ``[:, t]`` = Lava's step ``t + 1``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .network import ConvConn, DenseConn, LoihiNetwork, SigmaDeltaParams, is_graded_neuron

RELAY_PARAMS = {"du": 4095, "dv": 4095, "vth": 0}


def import_lava_runtime() -> None:
    """Import Lava's multiprocessing runtime even when the start method is already fixed.

    Lava's ``message_infrastructure.multiprocessing`` calls ``mp.set_start_method('fork')``
    without ``force`` at import time, which raises "context has already been set" once anything
    in the process (tqdm's lock, a DataLoader, another library) has fixed the default context.
    When that context already is ``fork`` the call changes nothing, so it is made with
    ``force=True``; any other start method is a real incompatibility and raises.
    """
    import importlib
    import multiprocessing as mp
    import sys

    name = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if name in sys.modules:
        return
    current = mp.get_start_method(allow_none=True)
    if current is None:
        importlib.import_module(name)
        return
    if current != "fork":
        raise RuntimeError(f"Lava needs the 'fork' multiprocessing start method; this process uses {current!r}")
    original = mp.set_start_method
    mp.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        importlib.import_module(name)
    finally:
        mp.set_start_method = original


def lava_available() -> bool:
    """True when lava-nc and lava-dl import."""
    import contextlib
    import io

    try:
        import_lava_runtime()
        with contextlib.redirect_stdout(io.StringIO()):  # lava-dl prints a dataset-toolbox warning on import
            import lava.lib.dl.netx  # noqa: F401
            import lava.magma.core.run_configs  # noqa: F401
    except Exception:  # pragma: no cover - environment dependent
        return False
    return True


def to_lava_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """neurohw (C, H, W) → Lava (W, H, C); (N,) unchanged."""
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def to_lava_array(a: np.ndarray, ndim: int) -> np.ndarray:
    """Move neurohw's (C, H, W) trailing axes to Lava's (W, H, C) (leading axes kept)."""
    if ndim != 3:
        return a
    lead = a.ndim - 3
    return np.transpose(a, tuple(range(lead)) + (lead + 2, lead + 1, lead))


def conv_weight_to_lava(w: np.ndarray) -> np.ndarray:
    """(C_out, C_in/g, kH, kW) cross-correlation → Lava's (C_out, W, H, C_in/g) true convolution
    (the same flip and transpose netx applies when it reads a file)."""
    return np.ascontiguousarray(np.asarray(w)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)


def _xy(pair: Sequence[int]) -> np.ndarray:
    return np.array([int(pair[1]), int(pair[0])])


def _port_for(port, src_shape: Sequence[int], conn) -> object:
    """The OutPort view a synapse group reads: flattened in (C, H, W) order for dense after 3-D."""
    if isinstance(conn, DenseConn) and len(src_shape) == 3:
        return port.transpose([2, 1, 0]).flatten()
    return port


def _make_synapse(conn, src_shape: Sequence[int], graded: bool):
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.utils.weightutils import SignMode

    bits = 24 if graded else 0
    if isinstance(conn, DenseConn):
        kwargs = dict(weights=np.asarray(conn.weight).astype(np.int32), weight_exp=int(conn.weight_exp),
                      num_weight_bits=int(conn.num_weight_bits), num_message_bits=bits)
        if conn.sign_mode is not None:
            kwargs["sign_mode"] = {"mixed": SignMode.MIXED, "excitatory": SignMode.EXCITATORY,
                                   "inhibitory": SignMode.INHIBITORY}[conn.sign_mode]
        if conn.has_delays:  # per-synapse delays: Lava's DelayDense (a ring of max_delay + 1 sums)
            return DelayDense(delays=np.ascontiguousarray(conn.delays()).astype(int), **kwargs)  # Lava checks dtype == int
        return Dense(**kwargs)
    assert isinstance(conn, ConvConn)
    return Conv(weight=conv_weight_to_lava(conn.weight), input_shape=to_lava_shape(src_shape),
                stride=_xy(conn.stride), padding=_xy(conn.padding), dilation=_xy(conn.dilation),
                groups=int(conn.groups), num_message_bits=bits)


def _lif(shape: Sequence[int], p) -> object:
    """The neuron process of a layer: Lava ``LIF`` (CUBA) or ``SigmaDelta`` (graded messages)."""
    from lava.proc.lif.process import LIF

    lshape = to_lava_shape(shape)
    if isinstance(p, SigmaDeltaParams):
        from lava.proc.sdn.process import ActivationMode, SigmaDelta

        bias = np.broadcast_to(np.asarray(p.bias, dtype=np.int64), tuple(shape))
        return SigmaDelta(shape=lshape, vth=int(p.vth), bias=to_lava_array(np.array(bias), len(shape)).astype(np.int32),
                          act_mode=ActivationMode.RELU if p.activation == "relu" else ActivationMode.UNIT,
                          cum_error=bool(p.cum_error), spike_exp=int(p.spike_exp), state_exp=int(p.state_exp))
    mant = np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), tuple(shape))
    exp = np.broadcast_to(np.asarray(p.bias_exp, dtype=np.int64), tuple(shape))
    return LIF(shape=lshape, du=int(p.du), dv=int(p.dv), vth=int(p.vth),
               bias_mant=to_lava_array(np.array(mant), len(shape)).astype(np.int32),
               bias_exp=to_lava_array(np.array(exp), len(shape)).astype(np.int32))


def _relay_chain(port, shape: Sequence[int], steps: int, procs: list):
    """``steps`` relay LIFs in a row; each repeats its binary input one step later."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    for _ in range(steps):
        if len(shape) == 3:
            c = shape[0]
            syn = Conv(weight=np.ones((c, 1, 1, 1), dtype=np.int32), input_shape=to_lava_shape(shape), groups=c)
        else:
            syn = Dense(weights=np.eye(shape[0], dtype=np.int32))
        lif = LIF(shape=to_lava_shape(shape), **RELAY_PARAMS)
        port.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        procs += [syn, lif]
        port = lif.s_out
    return port


def _input_to_lava(net: LoihiNetwork, x: np.ndarray) -> np.ndarray:
    """(T, *input_shape) → Lava RingBuffer data (*lava_shape, T), int32."""
    nd = len(net.input_shape)
    data = to_lava_array(np.asarray(x), nd)
    return np.moveaxis(data, 0, -1).astype(np.int32)


def _batched(net: LoihiNetwork, spikes) -> np.ndarray:
    """The same input conventions as ``simulate`` (validated there), as a numpy batch."""
    from .simulator import _prepare_input

    import torch

    return _prepare_input(net, spikes, torch.device("cpu"), graded=True).numpy()


def _collect(sinks, monitors, shapes, steps, graded=None) -> tuple[list[np.ndarray], dict, dict]:
    """Spikes (bool; int64 messages where ``graded[i]``) and probed states of one run."""
    spikes = []
    for i, (sink, shape) in enumerate(zip(sinks, shapes)):
        d = np.asarray(sink.data.get())  # (*lava_shape, T)
        d = np.moveaxis(d, -1, 0)
        if len(shape) == 3:
            d = np.transpose(d, (0, 3, 2, 1))
        spikes.append(d.astype(np.int64) if graded and graded[i] else d.astype(bool))
    volt, curr = {}, {}
    for i, (mon, lif, shape) in monitors.items():
        for key, store in (("v", volt), ("u", curr)):
            var = _state_names(lif)[key]
            data = mon[key].get_data()
            arr = np.asarray(list(data.values())[0][var])  # (T, *lava_shape)
            if len(shape) == 3:
                arr = np.transpose(arr, (0, 3, 2, 1))
            store[i] = arr.astype(np.int64)
    return spikes, volt, curr


def _run(sources_and_build, steps: int):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    src = sources_and_build
    src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))


def _state_names(proc) -> dict[str, str]:
    """The Vars reported as neurohw's ``voltage`` ("v") and ``current`` ("u"): a LIF's ``v`` and
    ``u``; a sigma-delta neuron's activation ``act`` and dendrite ``sigma``."""
    return {"v": "act", "u": "sigma"} if hasattr(proc, "sigma") else {"v": "v", "u": "u"}


def _add_probes(lifs_and_shapes, probe: set[int], steps: int):
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.monitor.process import Monitor

    sinks, monitors = [], {}
    for i, (lif, shape) in enumerate(lifs_and_shapes):
        sink = Sink(shape=to_lava_shape(shape), buffer=steps)
        lif.s_out.connect(sink.a_in)
        sinks.append(sink)
        if i in probe:
            mv, mu = Monitor(), Monitor()
            names = _state_names(lif)
            mv.probe(target=getattr(lif, names["v"]), num_steps=steps)
            mu.probe(target=getattr(lif, names["u"]), num_steps=steps)
            monitors[i] = ({"v": mv, "u": mu}, lif, shape)
    return sinks, monitors


def _stack(per_sample: list[tuple[list, dict, dict]]):
    from .simulator import SimResult
    import torch

    n_layers = len(per_sample[0][0])
    spikes = [torch.as_tensor(np.stack([s[0][i] for s in per_sample])) for i in range(n_layers)]
    volt = {k: torch.as_tensor(np.stack([s[1][k] for s in per_sample])) for k in per_sample[0][1]}
    curr = {k: torch.as_tensor(np.stack([s[2][k] for s in per_sample])) for k in per_sample[0][2]}
    return SimResult(spikes=spikes, voltage=volt, current=curr, batch=len(per_sample), steps=spikes[0].shape[1])


def _graded_source(net: LoihiNetwork, source: int) -> bool:
    """Whether the messages of ``source`` (−1: the input) are graded."""
    return net.input_message_bits > 0 if source < 0 else is_graded_neuron(net.layers[source].neuron)


def _graded_layers(net: LoihiNetwork) -> list[bool]:
    return [is_graded_neuron(l.neuron) for l in net.layers]


def _probe_set(probe, n: int) -> set[int]:
    return set(range(n)) if probe == "all" else {int(i) % n for i in probe}


def _run_probed(src, lifs, probe_set, steps: int, shapes, net):
    """Probe ``lifs`` (the layers in ``probe_set``), run ``steps`` steps from ``src`` and read the
    probes back as one sample's ``SimResult``; the runtime is stopped whatever happens."""
    sinks, monitors = _add_probes(lifs, probe_set, steps)
    try:
        _run(src, steps)
        return _collect(sinks, monitors, shapes, steps, _graded_layers(net))
    finally:
        src.stop()


def run_in_lava(net: LoihiNetwork, spikes, *, probe: Iterable[int] | str = ()):
    """Build ``net`` from Lava processes and run it with ``fixed_pt`` models, one sample at a time.

    spikes: (batch, steps, *input_shape) or (steps, *input_shape). Returns a ``SimResult``
    (spikes per layer, and voltage/current of probed layers) in neurohw's layout.
    """
    import_lava_runtime()
    from lava.proc.io.source import RingBuffer as Source

    net.validate()
    x = _batched(net, spikes)
    shapes = net._shapes()
    probe_set = _probe_set(probe, len(net.layers))
    graded = net.input_message_bits > 0
    results = []
    for b in range(x.shape[0]):
        steps = x.shape[1]
        src = Source(data=_input_to_lava(net, x[b]))
        ports = {-1: src.s_out}
        src_shapes = {-1: net.input_shape}
        lifs, procs = [], [src]
        for i, layer in enumerate(net.layers):
            lif = _lif(shapes[i], layer.neuron)
            groups = [(i - 1, layer.conn, 0)] + [(sc.source, sc.conn, sc.delay) for sc in layer.shortcuts]
            for source, conn, delay in groups:
                port = ports[source]
                g_src = _graded_source(net, source)
                if delay:
                    if g_src:
                        raise ValueError(f"layer {i}: a delayed shortcut from a graded source cannot be relayed by LIF "
                                         "neurons (give its synapses a delay instead)")
                    port = _relay_chain(port, src_shapes[source], delay, procs)
                syn = _make_synapse(conn, src_shapes[source], g_src)
                _port_for(port, src_shapes[source], conn).connect(syn.s_in)
                syn.a_out.connect(lif.a_in)
                procs.append(syn)
            rec = getattr(layer, "recurrent", None)
            if rec is not None:  # the layer's own spikes back into its neurons (Dense sends last step's sum)
                syn = _make_synapse(rec, shapes[i], False)
                lif.s_out.connect(syn.s_in)
                syn.a_out.connect(lif.a_in)
                procs.append(syn)
            ports[i] = lif.s_out
            src_shapes[i] = shapes[i]
            lifs.append((lif, shapes[i]))
            procs.append(lif)
        results.append(_run_probed(src, lifs, probe_set, steps, shapes, net))
    return _stack(results)


def run_netx_in_lava(path: str | Path, spikes, *, probe: Iterable[int] | str = ()):
    """Load a netx HDF5 file with ``netx.hdf5.Network`` and run it with ``fixed_pt`` models.

    neurohw's shortcut extension (``/neurohw/shortcut``), which netx ignores, is added as extra
    synapse groups into the loaded blocks' neurons. Returns a ``SimResult`` in neurohw's layout.
    """
    import contextlib
    import io

    import_lava_runtime()
    with contextlib.redirect_stdout(io.StringIO()):  # lava-dl prints an unrelated dataset-toolbox warning
        from lava.lib.dl.netx import hdf5
    from lava.proc.io.source import RingBuffer as Source

    from .netx_io import read_netx

    net = read_netx(path)  # validates the file and gives shapes / extensions
    x = _batched(net, spikes)
    shapes = net._shapes()
    probe_set = _probe_set(probe, len(net.layers))
    results = []
    for b in range(x.shape[0]):
        steps = x.shape[1]
        lava_net = hdf5.Network(net_config=str(path), input_message_bits=int(net.input_message_bits))
        if len(lava_net.layers) != len(net.layers):
            raise RuntimeError(f"netx built {len(lava_net.layers)} blocks, neurohw read {len(net.layers)} layers")
        src = Source(data=_input_to_lava(net, x[b]))
        in_port = src.s_out
        if len(net.input_shape) == 3 and isinstance(net.layers[0].conn, DenseConn):
            in_port = in_port.transpose([2, 1, 0]).flatten()
        in_port.connect(lava_net.inp)
        procs = [src]
        ports = {-1: src.s_out}
        for i, block in enumerate(lava_net.layers):
            ports[i] = block.neuron.s_out
        src_shapes = {-1: net.input_shape, **{i: s for i, s in enumerate(shapes)}}
        for i, layer in enumerate(net.layers):
            for sc in layer.shortcuts:
                port = ports[sc.source]
                if sc.delay:
                    if _graded_source(net, sc.source):
                        raise ValueError(f"layer {i}: a delayed shortcut from a graded source cannot be relayed by LIF neurons")
                    port = _relay_chain(port, src_shapes[sc.source], sc.delay, procs)
                syn = _make_synapse(sc.conn, src_shapes[sc.source], _graded_source(net, sc.source))
                _port_for(port, src_shapes[sc.source], sc.conn).connect(syn.s_in)
                syn.a_out.connect(lava_net.layers[i].neuron.a_in)
        lifs = [(block.neuron, shapes[i]) for i, block in enumerate(lava_net.layers)]
        results.append(_run_probed(src, lifs, probe_set, steps, shapes, net))
    return _stack(results)


def first_divergence(ours, theirs) -> dict | None:
    """The first (layer, step, sample, neuron) where two ``SimResult``s' spikes (or graded
    messages) differ, or None."""
    for i, (a, b) in enumerate(zip(ours.spikes, theirs.spikes)):
        a = np.asarray(a.cpu() if hasattr(a, "cpu") else a)
        b = np.asarray(b.cpu() if hasattr(b, "cpu") else b)
        graded = a.dtype != bool or b.dtype != bool
        a, b = (a.astype(np.int64), b.astype(np.int64)) if graded else (a.astype(bool), b.astype(bool))
        if a.shape != b.shape:
            return {"layer": i, "reason": f"shape {a.shape} vs {b.shape}"}
        diff = a != b
        if diff.any():
            T = a.shape[1]
            for t in range(T):
                d = diff[:, t].reshape(diff.shape[0], -1)
                if d.any():
                    sample, neuron = map(int, np.argwhere(d)[0])
                    conv = int if graded else bool
                    return {"layer": i, "step": t, "sample": sample, "neuron": neuron,
                            "neurohw": conv(a[:, t].reshape(a.shape[0], -1)[sample, neuron]),
                            "lava": conv(b[:, t].reshape(b.shape[0], -1)[sample, neuron])}
    return None


def compare_with_lava(net_or_path, spikes, *, probe: Iterable[int] | str = (), netx: bool | None = None) -> dict:
    """Run in neurohw and in Lava on the same input; report ``identical`` or the first divergence.

    ``net_or_path``: a ``LoihiNetwork`` (process-built Lava network) or a netx file path
    (loaded by netx). Voltages of probed layers are compared too.
    """
    from .netx_io import read_netx
    from .simulator import simulate

    if isinstance(net_or_path, LoihiNetwork):
        net = net_or_path
        lava = run_in_lava(net, spikes, probe=probe)
    else:
        net = read_netx(net_or_path)
        lava = run_netx_in_lava(net_or_path, spikes, probe=probe)
    ours = simulate(net, spikes, probe=probe)
    div = first_divergence(ours, lava)
    volt_equal = all(np.array_equal(ours.voltage[k].cpu().numpy(), lava.voltage[k].numpy()) for k in lava.voltage)
    curr_equal = all(np.array_equal(ours.current[k].cpu().numpy(), lava.current[k].numpy()) for k in lava.current)
    spikes_total = [int(s.sum()) for s in ours.spikes]
    return {"identical": div is None and volt_equal and curr_equal, "first_divergence": div,
            "voltage_equal": volt_equal, "current_equal": curr_equal, "spikes_per_layer": spikes_total,
            "ours": ours, "lava": lava}
