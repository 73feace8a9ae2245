"""lava-dl netx HDF5 files: write exactly what ``netx.hdf5.Network`` reads, and read them back.

Layout written (every entry an HDF5 dataset, as netx expects):

``/layer/0``: ``type`` = ``input``, ``shape`` (C, H, W) or (N,). Then per layer ``/layer/<k>``:

- dense: ``type`` ``dense``, ``shape`` (N,), ``inFeatures``, ``outFeatures``, ``weight`` (out, in)
  integers, optional ``bias``; a ``flatten`` layer precedes a dense layer that follows a 3-D one;
  a recurrent dense layer is ``type`` ``dense_rec`` with ``weight_rec`` (N, N) as well (netx
  optimises both matrices together: one weight exponent and bit width); synaptic delays are
  ``delay`` (out, in) integers 0..62 (netx builds a ``DelayDense``);
- conv: ``type`` ``conv``, ``shape`` (C, H, W), ``inChannels``, ``outChannels``, ``kernelSize``,
  ``stride``/``padding``/``dilation`` as (y, x), ``groups``, ``weight`` (C_out, C_in/g, kH, kW),
  optional ``bias`` (per channel, or per neuron in netx's (W, H, C) order);
- ``neuron/``: ``type`` CUBA, ``iDecay`` = du + 1, ``vDecay`` = dv, ``vThMant`` = vth,
  ``refDelay`` 1, ``gradedSpike`` 0; or for a sigma-delta layer ``type`` SDNN and ``vThMant``
  only (no ``messageBits``: netx 0.6 cannot read it; its default is 16 graded bits; netx builds ``SigmaDelta`` with spike_exp = state_exp = 6, ReLU; the layer's
  ``bias`` is the mantissa, scaled by netx's process).

netx re-derives weight exponent and bits from the integers (``optimize_weight_bits``) and fixes
``bias_exp = 6``, so the writer stores the *effective* integer weights (after Lava's clipping and
truncation, times ``2^weight_exp``) and ``bias = (bias_mant << bias_exp) >> 6``, and refuses what
netx cannot represent exactly (naming layer and field).

neurohw additions live under ``/neurohw`` (netx never looks there): ``format_version``,
``input_message_bits``, ``provenance`` (JSON text) and ``shortcut/<j>`` groups (``target``,
``source``, ``delay`` and the synapse fields, ``synapseDelay`` for per-synapse delays) — netx alone runs the main chain only; the Lava
bridge adds the shortcuts.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

from neurohw.io import atomic_path, provenance

from . import h5fields
from .fixedpoint import effective_dense_weights, netx_optimize_weight_bits
from .network import (ConvConn, ConvLayer, CubaParams, DenseConn, DenseLayer, LoihiConfigError,
                      LoihiNetwork, Shortcut, SigmaDeltaParams)

FORMAT_VERSION = 1
UNSUPPORTED_TYPES = ("pool", "average", "convT", "unpool", "concat", "dense_comp")


def _s(text: str) -> np.ndarray:
    return np.array([text.encode("ascii")], dtype="S10")


# ----------------------------------------------------------------------------- writing
def _file_weight(where: str, conn: DenseConn) -> np.ndarray:
    """The effective integer weights of ``conn`` times ``2^weight_exp`` (what a netx file holds)."""
    eff = effective_dense_weights(conn.weight, conn.sign_mode, conn.num_weight_bits)
    e = int(conn.weight_exp)
    if e >= 0:
        return eff << e
    if np.any(eff % (1 << -e)):
        raise LoihiConfigError(where, "weight_exp", f"{e} with weights that are not multiples of 2^{-e}: "
                               "the floor of the shifted sum has no integer-weight equivalent in netx")
    return eff >> -e


def netx_split(w_files: list[np.ndarray]):
    """What netx makes of weight matrices it optimises together (``dense_rec``: ``weight`` and
    ``weight_rec`` side by side): one ``optimize_weight_bits`` on the stacked columns, then each
    part a ``Dense`` whose sign mode Lava determines from that part. Returns (parts, NetxWeights)."""
    nw = netx_optimize_weight_bits(np.hstack(w_files))
    cuts = np.cumsum([w.shape[1] for w in w_files])[:-1]
    return np.split(nw.weight, cuts, axis=1), nw


def netx_dense_weights(where: str, conns: list[DenseConn]) -> list[np.ndarray]:
    """The integer matrices to store so that netx, optimising them together, reproduces every
    ``conn`` exactly; raises :class:`LoihiConfigError` if impossible."""
    w_files = [_file_weight(where, c) for c in conns]
    if not np.any(w_files[0]):
        raise LoihiConfigError(where, "weight", "all weights are zero; netx cannot load an all-zero weight matrix")
    try:
        parts, nw = netx_split(w_files)
    except ValueError as exc:
        lo, hi = min(int(w.min()) for w in w_files), max(int(w.max()) for w in w_files)
        raise LoihiConfigError(where, "weight", f"effective weights {lo}..{hi}: {exc}") from None
    s = -nw.weight_exp
    for k, (part, w_file) in enumerate(zip(parts, w_files)):
        eff2 = effective_dense_weights(part, None, nw.num_weight_bits)
        if np.any(eff2 % (1 << s)) or not np.array_equal(eff2 >> s, w_file):
            fname = "weight" if k == 0 else "recurrent.weight"
            raise LoihiConfigError(where, fname, f"effective weights {w_file.min()}..{w_file.max()} (weight × 2^weight_exp) "
                                   "do not survive netx's weight-bit optimisation exactly (netx range: mixed −256..254, "
                                   "excitatory 0..255, inhibitory −255..0"
                                   + ("; a dense_rec layer's two matrices share one exponent and bit width)" if len(conns) > 1 else ")"))
    return w_files


def netx_dense_weight(where: str, conn: DenseConn) -> np.ndarray:
    """The integer matrix to store so that netx reproduces ``conn`` exactly; raises if impossible."""
    return netx_dense_weights(where, [conn])[0]


def netx_bias(where: str, p: CubaParams, shape) -> np.ndarray | None:
    """Bias as netx stores it (``bias_mant`` with ``bias_exp = 6``), or None when zero."""
    eff = p.bias(tuple(shape))
    if not np.any(eff):
        return None
    if np.any(eff % 64):
        raise LoihiConfigError(where, "neuron.bias_mant", "netx fixes bias_exp = 6: the bias (bias_mant << bias_exp) "
                               "must be a multiple of 64")
    b = eff >> 6
    if b.min() < -4096 or b.max() > 4095:
        raise LoihiConfigError(where, "neuron.bias_mant", f"bias {b.min()}..{b.max()} (in units of 2^6) is outside −4096..4095")
    return b


def netx_sd_bias(where: str, p: SigmaDeltaParams, shape) -> np.ndarray | None:
    """A sigma-delta layer's bias as netx stores it (the mantissa; netx's ``SigmaDelta`` scales it by
    2^12), or None when zero; refuses settings netx's SDNN blocks cannot express."""
    for fname, want in (("spike_exp", 6), ("state_exp", 6), ("activation", "relu"), ("cum_error", False)):
        if getattr(p, fname) != want:
            raise LoihiConfigError(where, f"neuron.{fname}", f"netx's SDNN blocks fix {fname} = {want!r}, got {getattr(p, fname)!r}")
    b = np.broadcast_to(np.asarray(p.bias, dtype=np.int64), tuple(shape))
    return np.array(b) if np.any(b) else None


def _layer_bias(where: str, p, shape) -> np.ndarray | None:
    return netx_sd_bias(where, p, shape) if isinstance(p, SigmaDeltaParams) else netx_bias(where, p, shape)


def _write_neuron(g: h5py.Group, p) -> None:
    n = g.create_group("neuron")
    if isinstance(p, SigmaDeltaParams):
        n.create_dataset("type", data=_s("SDNN"))
        n.create_dataset("vThMant", data=np.int64(int(p.vth)))
        # no messageBits: netx 0.6's NetDict does not list it (it would hand over a group wrapper and
        # the build fails); SDNN's default, 16 bits, makes the next synapses graded
        return
    n.create_dataset("type", data=_s("CUBA"))
    n.create_dataset("iDecay", data=np.int64(int(p.du) + 1))
    n.create_dataset("vDecay", data=np.int64(int(p.dv)))
    n.create_dataset("vThMant", data=np.int64(int(p.vth)))
    n.create_dataset("refDelay", data=np.int64(1))
    n.create_dataset("gradedSpike", data=np.int64(0))


def _write_conv_fields(g: h5py.Group, conn: ConvConn, in_channels: int) -> None:
    w = np.asarray(conn.weight).astype(np.int64)
    g.create_dataset("inChannels", data=np.int64(in_channels))
    g.create_dataset("outChannels", data=np.int64(w.shape[0]))
    g.create_dataset("kernelSize", data=np.array(w.shape[2:], dtype=np.int64))
    g.create_dataset("stride", data=np.array(conn.stride, dtype=np.int64))
    g.create_dataset("padding", data=np.array(conn.padding, dtype=np.int64))
    g.create_dataset("dilation", data=np.array(conn.dilation, dtype=np.int64))
    g.create_dataset("groups", data=np.int64(conn.groups))
    g.create_dataset("weight", data=w)


def write_netx(net: LoihiNetwork, path: str | Path, *, seed: int | None = None, config: dict | None = None) -> Path:
    """Write ``net`` as a lava-dl netx HDF5 file (atomically). Returns the path.

    ``config`` goes into the provenance (e.g. ``{"deploy": …}``, see :mod:`neurohw.loihi.chain`).
    """
    net.validate()
    shapes = net._shapes()
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            lay = f.create_group("layer")
            k = 0
            g = lay.create_group(str(k))
            g.create_dataset("type", data=_s("input"))
            g.create_dataset("shape", data=np.array(net.input_shape, dtype=np.int64))
            prev = net.input_shape
            for i, layer in enumerate(net.layers):
                where = f"layer {i} ({layer.name})"
                shape = shapes[i]
                if isinstance(layer, DenseLayer) and len(prev) == 3 and i > 0:
                    k += 1
                    lay.create_group(str(k)).create_dataset("type", data=_s("flatten"))
                k += 1
                g = lay.create_group(str(k))
                if isinstance(layer, DenseLayer):
                    rec = layer.recurrent
                    ws = netx_dense_weights(where, [layer.conn] + ([rec] if rec is not None else []))
                    w = ws[0]
                    g.create_dataset("type", data=_s("dense" if rec is None else "dense_rec"))
                    g.create_dataset("shape", data=np.array(shape, dtype=np.int64))
                    g.create_dataset("inFeatures", data=np.int64(w.shape[1]))
                    g.create_dataset("outFeatures", data=np.int64(w.shape[0]))
                    g.create_dataset("weight", data=w)
                    if rec is not None:
                        g.create_dataset("weight_rec", data=ws[1])
                    if layer.conn.has_delays:
                        if rec is not None:
                            raise LoihiConfigError(where, "delay", "netx 0.6 builds a dense_rec layer's delays wrongly (the "
                                                   "feed-forward delay matrix on the recurrent synapses, weight exponent "
                                                   "dropped): a recurrent layer with synaptic delays cannot be written")
                        g.create_dataset("delay", data=np.ascontiguousarray(layer.conn.delays()))
                    b = _layer_bias(where, layer.neuron, shape)
                    if b is not None:
                        g.create_dataset("bias", data=b)
                else:
                    g.create_dataset("type", data=_s("conv"))
                    g.create_dataset("shape", data=np.array(shape, dtype=np.int64))
                    _write_conv_fields(g, layer.conn, prev[0])
                    b = _layer_bias(where, layer.neuron, shape)
                    if b is not None:
                        per_channel = b.reshape(b.shape[0], -1)
                        if np.all(per_channel == per_channel[:, :1]):
                            g.create_dataset("bias", data=per_channel[:, 0].copy())
                        else:
                            g.create_dataset("bias", data=np.transpose(b, (2, 1, 0)).copy())  # netx: (W, H, C)
                _write_neuron(g, layer.neuron)
                prev = shape
            ext = f.create_group("neurohw")
            ext.create_dataset("format_version", data=np.int64(FORMAT_VERSION))
            ext.create_dataset("input_message_bits", data=np.int64(net.input_message_bits))
            ext.create_dataset("name", data=np.bytes_(net.name))
            ext.create_dataset("layer_names", data=np.array([l.name.encode() for l in net.layers]))
            ext.create_dataset("provenance", data=np.bytes_(json.dumps(provenance(seed=seed, config={"writer": "neurohw.loihi.netx_io", **(config or {})}), default=str)))
            scg = ext.create_group("shortcut")
            j = 0
            for i, layer in enumerate(net.layers):
                for sc in layer.shortcuts:
                    g = scg.create_group(str(j))
                    g.create_dataset("target", data=np.int64(i))
                    g.create_dataset("source", data=np.int64(sc.source))
                    g.create_dataset("delay", data=np.int64(sc.delay))
                    if isinstance(sc.conn, DenseConn):
                        g.create_dataset("type", data=_s("dense"))
                        g.create_dataset("weight", data=np.asarray(sc.conn.weight).astype(np.int64))
                        g.create_dataset("weightExp", data=np.int64(sc.conn.weight_exp))
                        g.create_dataset("numWeightBits", data=np.int64(sc.conn.num_weight_bits))
                        g.create_dataset("signMode", data=np.bytes_(sc.conn.sign_mode or ""))
                        if sc.conn.has_delays:
                            g.create_dataset("synapseDelay", data=np.ascontiguousarray(sc.conn.delays()))
                    else:
                        src_shape = net.input_shape if sc.source < 0 else shapes[sc.source]
                        g.create_dataset("type", data=_s("conv"))
                        _write_conv_fields(g, sc.conn, src_shape[0])
                    j += 1
    return path


# ----------------------------------------------------------------------------- reading
_get = h5fields.get
_text = h5fields.text
_int = h5fields.integer
_int_array = h5fields.int_array


def _pair_field(where: str, g: h5py.Group, key: str, default: int) -> tuple[int, int]:
    return h5fields.pair(where, g, key, default, minimum=1 if key in ("stride", "dilation") else 0)


def _read_neuron(where: str, g: h5py.Group, shape, bias) -> CubaParams:
    if "neuron" not in g:
        raise LoihiConfigError(where, "neuron", "missing; netx's default (non-leaky integrator, vThMant 2^17) is outside Lava's LIF ranges")
    n = g["neuron"]
    if not isinstance(n, h5py.Group):
        raise LoihiConfigError(where, "neuron", "must be a group of neuron parameters, found a dataset")
    nw = f"{where} neuron"
    kind = _text(nw, n, "type")
    if kind not in ("CUBA", "LOIHI", "SDNN"):
        raise LoihiConfigError(nw, "type", f"'{kind}' is not supported (CUBA/LOIHI LIF and SDNN sigma-delta neurons)")
    if kind == "SDNN":
        if "sigma_output" in n:
            raise LoihiConfigError(nw, "sigma_output", "sigma-only output neurons (netx's Sigma) are not supported")
        if "messageBits" in n:
            raise LoihiConfigError(nw, "messageBits", "netx 0.6 cannot read it (its NetDict does not list the key and "
                                   "the Lava build fails); leave it out: SDNN layers then send 16-bit graded messages")
    elif "messageBits" in n and _int(nw, n, "messageBits") != 0:
        raise LoihiConfigError(nw, "messageBits", "graded messages between LIF layers are not supported")
    vth = _int(nw, n, "vThMant")
    if bias is None:
        mant = 0
    else:
        b = bias
        if b.ndim == 0 and len(shape) == 3:
            raise LoihiConfigError(where, "bias", "a conv bias must be per channel (C,) or per neuron (W, H, C), "
                                   "got a scalar (netx 0.6 crashes on it)")
        if len(shape) == 1 and b.size not in (1, shape[0]):
            raise LoihiConfigError(where, "bias", f"has {b.size} values for {shape[0]} neurons")
        if len(shape) == 1:
            b = b.reshape(-1) if b.size == shape[0] else b.reshape(())
        if b.ndim == 0 or len(shape) == 1:
            mant = b
        elif b.ndim == 1 and b.shape[0] == shape[0]:
            mant = np.broadcast_to(b[:, None, None], shape).copy()
        elif b.shape == tuple(shape[::-1]):
            mant = np.transpose(b, (2, 1, 0)).copy()
        else:
            raise LoihiConfigError(where, "bias", f"shape {b.shape} does not broadcast to neurons (W, H, C) = {tuple(shape[::-1])}")
    if kind == "SDNN":  # netx: SigmaDelta(vth=vThMant, bias=bias, spike_exp=6, state_exp=6), ReLU
        return SigmaDeltaParams(vth=vth, bias=mant)
    du = _int(nw, n, "iDecay") - 1
    dv = _int(nw, n, "vDecay")
    return CubaParams(du=du, dv=dv, vth=vth, bias_mant=mant, bias_exp=6 if bias is not None else 0)


def netx_delay(where: str, d: np.ndarray, shape: tuple[int, int], key: str = "delay") -> np.ndarray:
    """A file's ``delay`` as netx 0.6 expands it for weights of ``shape`` (n_out, n_in): a scalar
    for every synapse; 1-D of n_out values per output neuron (checked first, as netx does), of
    n_in values per input; else (n_out, n_in). netx clamps values above 62 with only a warning
    and Lava refuses negative ones: both are refused here."""
    n_out, n_in = shape
    if d.size == 0:
        raise LoihiConfigError(where, key, "is empty")
    if d.ndim == 0:
        full = np.full(shape, int(d.reshape(-1)[0]), dtype=np.int64)
    elif d.ndim == 1 and d.size == n_out:
        full = np.repeat(d.reshape(-1, 1), n_in, axis=1)
    elif d.ndim == 1 and d.size == n_in:
        full = np.repeat(d.reshape(1, -1), n_out, axis=0)
    elif d.shape == tuple(shape):
        full = d
    else:
        raise LoihiConfigError(where, key, f"shape {d.shape} fits neither the weight {tuple(shape)} nor its "
                               f"{n_out} outputs or {n_in} inputs")
    if full.min() < 0 or full.max() > 62:
        raise LoihiConfigError(where, key, f"values {int(full.min())}..{int(full.max())} are outside 0..62 "
                               "(netx clamps larger delays with only a printed warning)")
    return full


def _read_conv_conn(where: str, g: h5py.Group) -> ConvConn:
    w = _int_array(where, g, "weight", ndim=4)
    return ConvConn(w, stride=_pair_field(where, g, "stride", 1), padding=_pair_field(where, g, "padding", 0),
                    dilation=_pair_field(where, g, "dilation", 1), groups=_int(where, g, "groups", 1))


def read_netx(path: str | Path) -> LoihiNetwork:
    """Read a netx HDF5 file into a ``LoihiNetwork`` that runs exactly as netx builds it in Lava
    (dense weights re-optimised as netx does). Malformed files raise ``LoihiConfigError``
    naming the file, layer and field."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise LoihiConfigError(label, "file", "does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LoihiConfigError(label, "file", f"is not a readable HDF5 file ({exc})") from None
    with f:
        if "layer" not in f or not isinstance(f["layer"], h5py.Group):
            raise LoihiConfigError(label, "layer", "missing group /layer")
        lay = f["layer"]
        n = len(lay)
        for k in range(n):
            if str(k) not in lay:
                raise LoihiConfigError(label, f"layer/{k}", f"missing (layer groups must be numbered 0..{n - 1})")
        input_shape = None
        layers = []
        prev_shape = None
        flatten = False
        file_shapes: list[tuple[int, ...]] = []
        for k in range(n):
            g = lay[str(k)]
            where = f"{label}: layer/{k}"
            kind = _text(where, g, "type")
            if kind in UNSUPPORTED_TYPES:
                raise LoihiConfigError(where, "type", f"'{kind}' layers cannot be loaded by netx; export them lowered "
                                       "(pool → conv with a uniform kernel, shortcuts → neurohw extension)")
            if kind == "input":
                if "neuron" in g:
                    raise LoihiConfigError(where, "neuron", "input layers with neurons (netx Input blocks) are not supported")
                if "shape" in g:
                    input_shape = h5fields.shape(where, g)
                prev_shape = input_shape
                continue
            if kind == "flatten":
                flatten = True
                continue
            if kind in ("dense", "dense_rec"):
                w = _int_array(where, g, "weight")
                shape = (math.prod(h5fields.shape(where, g)),)
                if w.ndim == 1 and w.size and w.size % shape[0] == 0:
                    w = w.reshape(shape[0], -1)
                if w.ndim != 2 or w.shape[0] != shape[0]:
                    raise LoihiConfigError(where, "weight", f"shape {w.shape} does not match layer shape {shape}")
                if input_shape is None:
                    input_shape = (w.shape[1],)
                    prev_shape = input_shape
                if layers and len(prev_shape) == 3 and not flatten:
                    raise LoihiConfigError(where, "type", "a dense layer after a conv layer needs a 'flatten' layer before it")
                if w.size and w.min() < 0 < w.max() and (w.min() < -256 or w.max() > 254):
                    raise LoihiConfigError(where, "weight", f"mixed-sign weights {w.min()}..{w.max()} are outside netx's range "
                                           "−256..254 (netx would clip them with only a printed warning)")
                mats = [w]
                if kind == "dense_rec":
                    wr = _int_array(where, g, "weight_rec")
                    if wr.ndim == 1 and wr.size == shape[0] ** 2:
                        wr = wr.reshape(shape[0], shape[0])
                    if wr.shape != (shape[0], shape[0]):
                        raise LoihiConfigError(where, "weight_rec", f"shape {wr.shape} must be ({shape[0]}, {shape[0]}) for {shape[0]} neurons")
                    if wr.size and wr.min() < 0 < wr.max() and (wr.min() < -256 or wr.max() > 254):
                        raise LoihiConfigError(where, "weight_rec", f"mixed-sign weights {wr.min()}..{wr.max()} are outside netx's range "
                                               "−256..254 (netx would clip them with only a printed warning)")
                    mats.append(wr)
                try:
                    parts, nw = netx_split(mats)
                except ValueError as exc:
                    raise LoihiConfigError(where, "weight", str(exc)) from None
                bias = _int_array(where, g, "bias", required=False)
                neuron = _read_neuron(where, g, shape, bias)
                file_shapes.append(shape)
                rec = DenseConn(parts[1], nw.weight_exp, nw.num_weight_bits) if kind == "dense_rec" else None
                delay = 0
                if "delay" in g:
                    if kind == "dense_rec":
                        raise LoihiConfigError(where, "delay", "netx 0.6 builds a dense_rec layer's delays wrongly (the "
                                               "feed-forward delay matrix on the recurrent synapses, weight exponent dropped); "
                                               "not supported")
                    delay = netx_delay(where, _int_array(where, g, "delay"), w.shape)
                layers.append(DenseLayer(parts[0], neuron, weight_exp=nw.weight_exp, num_weight_bits=nw.num_weight_bits,
                                         recurrent=rec, delay=delay))
                flatten = False
                prev_shape = shape
                continue
            if kind == "conv":
                if prev_shape is None or len(prev_shape) != 3:
                    raise LoihiConfigError(where, "shape", "a conv layer needs a (C, H, W) input shape (give the input layer a 'shape')")
                conn = _read_conv_conn(where, g)
                shape = h5fields.shape(where, g, ndims=(3,))
                bias = _int_array(where, g, "bias", required=False)
                neuron = _read_neuron(where, g, shape, bias)
                file_shapes.append(shape)
                layers.append(ConvLayer(conn.weight, neuron, conn.stride, conn.padding, conn.dilation, conn.groups))
                prev_shape = shape
                continue
            raise LoihiConfigError(where, "type", f"unknown layer type '{kind}'")
        if not layers:
            raise LoihiConfigError(label, "layer", "no dense or conv layers")
        ext = f.get("neurohw")
        input_bits = 0
        name = path.stem
        if isinstance(ext, h5py.Group):
            input_bits = _int(f"{label}: neurohw", ext, "input_message_bits", 0)
            names = _get(f"{label}: neurohw", ext, "layer_names", required=False)
            if names is not None:
                names = [x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x) for x in np.asarray(names).reshape(-1)]
                if len(names) == len(layers):
                    for layer, nm in zip(layers, names):
                        layer.name = nm
            scg = ext.get("shortcut", {})
            if not isinstance(scg, (h5py.Group, dict)):
                raise LoihiConfigError(f"{label}: neurohw", "shortcut", "must be a group of shortcut groups, found a dataset")
            keys = list(scg)
            if any(not k.isdigit() for k in keys):
                raise LoihiConfigError(f"{label}: neurohw", "shortcut", f"members must be numbered 0, 1, …; found {keys}")
            for j in sorted(keys, key=int):
                g = scg[j]
                where = f"{label}: neurohw/shortcut/{j}"
                target = _int(where, g, "target")
                if not 0 <= target < len(layers):
                    raise LoihiConfigError(where, "target", f"{target} is not a layer index 0..{len(layers) - 1}")
                kind = _text(where, g, "type")
                if kind == "dense":
                    mode = _text(where, g, "signMode", required=False) or None
                    sw = _int_array(where, g, "weight", ndim=2)
                    sd = _int_array(where, g, "synapseDelay", required=False)
                    conn = DenseConn(sw, _int(where, g, "weightExp", 0), _int(where, g, "numWeightBits", 8), mode,
                                     0 if sd is None else netx_delay(where, sd, sw.shape, key="synapseDelay"))
                elif kind == "conv":
                    conn = _read_conv_conn(where, g)
                else:
                    raise LoihiConfigError(where, "type", f"unknown shortcut type '{kind}'")
                layers[target].shortcuts.append(Shortcut(_int(where, g, "source"), conn, _int(where, g, "delay", 0)))
        net = LoihiNetwork(input_shape, layers, input_message_bits=input_bits, name=name)
    try:
        net.validate()
    except LoihiConfigError as exc:
        raise LoihiConfigError(f"{label}: {exc.where}", exc.field, exc.message) from None
    for i, (declared, actual) in enumerate(zip(file_shapes, net._shapes())):
        if math.prod(declared) != math.prod(actual) or (len(declared) == 3 and tuple(declared) != tuple(actual)):
            raise LoihiConfigError(f"{label}: layer {i}", "shape", f"declares {tuple(declared)} but its synapses produce {tuple(actual)}")
    return net
