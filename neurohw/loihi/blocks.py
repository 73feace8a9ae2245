"""Blocks netx cannot load, lowered to what it can: dense/conv layers plus shortcut synapse groups.

- :func:`avg_pool_layer` — average pooling: a depthwise conv whose every tap is
  ``weight / (kH·kW)`` (exact integers required), like :func:`~neurohw.loihi.network.pool_layer`
  for sum pooling;
- :func:`append_concat` — a layer reading the concatenation of several earlier layers (dense:
  their flattened outputs one after another; conv: their channels one after another). Since
  ``W·[a; b] = W_a·a + W_b·b``, it is lowered to the usual synapse group from the previous layer
  (its columns / input channels of ``W``) plus one :class:`Shortcut` per other source, each
  delayed so all sources arrive in step (:func:`matched_delay`);
- :func:`add_residual` — a residual addition: the target layer's neurons also receive an earlier
  layer's spikes through identity synapses of weight ``weight`` (dense: ``weight·I``; conv: a
  1×1 depthwise kernel), latency-matched.

All three produce ordinary :class:`LoihiNetwork` layers: ``write_netx`` writes the main chain as
netx layers and the shortcuts in neurohw's extension group; ``run_netx_in_lava`` adds them to
the netx-built blocks. Timing: a source ``j`` reaches layer ``i`` in ``i − j`` steps, exactly as
through the main chain.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .network import (ConvConn, ConvLayer, CubaParams, DenseConn, DenseLayer, LoihiConfigError, LoihiNetwork,
                      Shortcut, _pair, matched_delay)


def avg_pool_layer(channels: int, kernel: int | tuple[int, int], weight: int, neuron: CubaParams,
                   stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
                   name: str = "") -> ConvLayer:
    """Average pooling of ``weight`` per pooled unit: depthwise conv, each tap ``weight/(kH·kW)``.
    ``weight`` must be a multiple of ``kH·kW`` (else the average has no integer kernel)."""
    k = _pair(kernel)
    taps = k[0] * k[1]
    if int(weight) % taps:
        raise LoihiConfigError(name or "avg_pool", "weight", f"{weight} is not a multiple of the {taps} taps of a "
                               f"{k[0]}×{k[1]} window: the average has no integer kernel (use a multiple of {taps})")
    w = np.full((channels, 1, k[0], k[1]), int(weight) // taps, dtype=np.int64)
    return ConvLayer(w, neuron, stride=_pair(stride if stride is not None else k), padding=_pair(padding),
                     groups=channels, name=name)


def _shape(net: LoihiNetwork, index: int) -> tuple[int, ...]:
    return net.input_shape if index < 0 else net._shapes()[index]


def append_concat(net: LoihiNetwork, sources: Sequence[int], weight: np.ndarray, neuron: CubaParams, *,
                  kind: str = "dense", weight_exp: int = 0, num_weight_bits: int = 8, stride=(1, 1), padding=(0, 0),
                  dilation=(1, 1), name: str = "") -> LoihiNetwork:
    """Append a layer whose synapses read ``concat(sources)`` (layer indices, −1 = input, in
    concatenation order; the last layer of ``net`` must be one of them). ``weight``: dense
    (n_out, Σ N_j) or conv (C_out, Σ C_j, kH, kW) over the concatenated input. Returns ``net``."""
    i = len(net.layers)
    where = name or f"layer {i} (concat)"
    sources = [int(s) for s in sources]
    if len(set(sources)) != len(sources) or any(not -1 <= s < i for s in sources):
        raise LoihiConfigError(where, "sources", f"must be distinct earlier layers −1..{i - 1}, got {sources}")
    if i - 1 not in sources:
        raise LoihiConfigError(where, "sources", f"must include the previous layer {i - 1} (the main synapse group); "
                               "reorder the layers so the last source comes last")
    w = np.asarray(weight)
    shapes = [_shape(net, s) for s in sources]
    if kind == "dense":
        sizes = [math.prod(s) for s in shapes]
        if w.ndim != 2 or w.shape[1] != sum(sizes):
            raise LoihiConfigError(where, "weight", f"must be (n_out, {sum(sizes)}) for sources of sizes {sizes}, got {w.shape}")
        cut = np.cumsum([0] + sizes)
        parts = [w[:, cut[k]:cut[k + 1]] for k in range(len(sources))]
        conns = [DenseConn(p, weight_exp, num_weight_bits) for p in parts]
    elif kind == "conv":
        if any(len(s) != 3 or s[1:] != shapes[0][1:] for s in shapes):
            raise LoihiConfigError(where, "sources", f"channel concatenation needs (C, H, W) sources of one H×W, got {shapes}")
        chans = [s[0] for s in shapes]
        if w.ndim != 4 or w.shape[1] != sum(chans):
            raise LoihiConfigError(where, "weight", f"must be (C_out, {sum(chans)}, kH, kW) for source channels {chans}, got {w.shape}")
        cut = np.cumsum([0] + chans)
        conns = [ConvConn(w[:, cut[k]:cut[k + 1]], _pair(stride), _pair(padding), _pair(dilation)) for k in range(len(sources))]
    else:
        raise LoihiConfigError(where, "kind", f"must be 'dense' or 'conv', got {kind!r}")
    main = sources.index(i - 1)
    shortcuts = [Shortcut(s, c, delay=matched_delay(s, i)) for k, (s, c) in enumerate(zip(sources, conns)) if k != main]
    mc = conns[main]
    if kind == "dense":
        layer = DenseLayer(mc.weight, neuron, weight_exp=weight_exp, num_weight_bits=num_weight_bits, name=name, shortcuts=shortcuts)
    else:
        layer = ConvLayer(mc.weight, neuron, mc.stride, mc.padding, mc.dilation, name=name, shortcuts=shortcuts)
    net.layers.append(layer)
    if not layer.name:
        layer.name = f"layer{i}"
    return net


def add_residual(net: LoihiNetwork, target: int, source: int, weight: int) -> LoihiNetwork:
    """Add ``weight`` × the spikes of layer ``source`` (−1 = input) to the input of layer
    ``target``'s neurons (same neuron shape), latency-matched. Returns ``net``."""
    where = f"layer {target} residual"
    if not 0 <= target < len(net.layers) or not -1 <= source < target:
        raise LoihiConfigError(where, "source", f"needs −1 ≤ source < target < {len(net.layers)}, got source {source}, target {target}")
    src, dst = _shape(net, source), _shape(net, target)
    if tuple(src) != tuple(dst):
        raise LoihiConfigError(where, "source", f"layer {source} has shape {src}, layer {target} {dst}: a residual addition needs equal shapes")
    if len(dst) == 3:
        c = dst[0]
        conn = ConvConn(np.full((c, 1, 1, 1), int(weight), dtype=np.int64), groups=c)
    else:
        conn = DenseConn(np.eye(dst[0], dtype=np.int64) * int(weight))
    net.layers[target].shortcuts.append(Shortcut(source, conn, delay=matched_delay(source, target)))
    return net
