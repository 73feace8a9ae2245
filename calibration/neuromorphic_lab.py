"""The virtual neuromorphic lab: a perturbed Loihi chip, and capture files recorded on it.

:class:`VirtualNeuromorphicChip` runs a :class:`~neurohw.loihi.LoihiNetwork` layer by layer with
the kinds of sim-vs-silicon differences Lava users report, drawn once from a hidden seed:

- per-core mismatch: each layer is split into cores of ``neurons_per_core`` neurons (dense: output
  neurons; conv: whole output channels) and every core gets its own threshold and decays
  (``vth·(1 + σ_th·n)``, ``du``/``dv`` likewise, clipped to Lava's ranges);
- dropped spikes (each spike lost with probability ``drop``) and extra spikes (each silent
  neuron-step fires with probability ``extra``), applied to every layer's output, so they
  propagate downstream;
- timing jitter: each surviving spike is moved one step later with probability ``jitter``.

The drawn values (and the seed) are never written anywhere; capture files record only the
*magnitudes* (``extra`` root attribute), as the optical virtual lab does.
:func:`build_digits_model` makes a small network to capture with (8×8 digits, rate-coded), and
:func:`capture_neuromorphic` writes a schema-v1 capture file (``docs/captures.md``).
"""
from __future__ import annotations

import math
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from neurohw.loihi import ConvLayer, CubaParams, DenseLayer, LoihiConfigError, LoihiNetwork, simulate

#: Default perturbation magnitudes of the virtual chip.
MAGNITUDES: dict[str, float] = {"drop": 0.03, "extra": 0.002, "threshold_sigma": 0.10, "decay_sigma": 0.10,
                                "jitter": 0.05, "neurons_per_core": 16}


def rate_code(images: torch.Tensor | np.ndarray, steps: int, seed: int, max_rate: float = 0.5) -> np.ndarray:
    """Bernoulli rate code: (N, ...) intensities in [0, 1] → (N, steps, prod(...)) uint8 spikes."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1).clip(0, 1)
    rng = np.random.default_rng(seed)
    return (rng.random((x.shape[0], steps, x.shape[1])) < x[:, None, :] * max_rate).astype(np.uint8)


def _cores(layer, shape: tuple[int, ...], per_core: int) -> list[np.ndarray]:
    """Index arrays of the output units (dense neurons / conv channels) each core holds."""
    if isinstance(layer, ConvLayer):
        c, per_ch = shape[0], math.prod(shape[1:])
        if layer.groups != 1:
            return [np.arange(c)]
        step = max(1, per_core // per_ch)
        return [np.arange(i, min(i + step, c)) for i in range(0, c, step)]
    n = shape[0]
    return [np.arange(i, min(i + per_core, n)) for i in range(0, n, per_core)]


def _slice_neuron(p: CubaParams, shape, idx, conv: bool) -> CubaParams:
    def part(a):
        arr = np.asarray(a)
        if arr.ndim == 0:
            return a
        full = np.broadcast_to(arr, tuple(shape))
        return full[idx].copy()

    return replace(p, bias_mant=part(p.bias_mant), bias_exp=part(p.bias_exp))


class VirtualNeuromorphicChip:
    """A perturbed chip running ``net`` (no shortcuts). ``device_seed`` None draws a random one;
    it and the drawn per-core values stay inside this object."""

    def __init__(self, net: LoihiNetwork, device_seed: int | None = None, magnitudes: Mapping[str, float] | None = None):
        net.validate()
        if any(layer.shortcuts for layer in net.layers):
            raise LoihiConfigError(net.name, "shortcuts", "the virtual neuromorphic chip runs chains only (no shortcuts)")
        self.net = net
        self.magnitudes = {**MAGNITUDES, **dict(magnitudes or {})}
        for k in ("drop", "extra", "jitter"):
            if not 0 <= self.magnitudes[k] <= 1:
                raise LoihiConfigError("virtual chip", k, f"must be a probability in [0, 1], got {self.magnitudes[k]}")
        if int(self.magnitudes["neurons_per_core"]) < 1:
            raise LoihiConfigError("virtual chip", "neurons_per_core", "must be ≥ 1")
        self._rng = np.random.default_rng(secrets.randbits(63) if device_seed is None else device_seed)
        self._layers = self._draw()

    def _draw(self) -> list[list[tuple[np.ndarray, Any]]]:
        m, rng = self.magnitudes, self._rng
        shapes = self.net._shapes()
        out = []
        for layer, shape in zip(self.net.layers, shapes):
            conv = isinstance(layer, ConvLayer)
            cores = []
            for idx in _cores(layer, shape, int(m["neurons_per_core"])):
                p = layer.neuron
                jit = lambda v, hi, lo=0: int(np.clip(round(v * (1 + m["decay_sigma"] * rng.standard_normal())), lo, hi))  # noqa: E731
                q = _slice_neuron(p, shape, idx, conv)
                q = replace(q, du=jit(p.du, 4095), dv=jit(p.dv, 4095),
                            vth=int(np.clip(round(p.vth * (1 + m["threshold_sigma"] * rng.standard_normal())), 1, 131071)))
                if conv:
                    part = ConvLayer(np.asarray(layer.weight)[idx], q, layer.stride, layer.padding, layer.dilation, layer.groups)
                else:
                    part = DenseLayer(np.asarray(layer.weight)[idx], q, layer.weight_exp, layer.num_weight_bits, layer.sign_mode)
                cores.append((idx, part))
            out.append(cores)
        return out

    def run(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Input spikes (B, T, *input_shape or flattened) → every layer's measured spikes (B, T, *shape), bool."""
        m, rng = self.magnitudes, self._rng
        shapes = self.net._shapes()
        prev_shape = self.net.input_shape
        x = np.asarray(spikes)
        x = x.reshape(x.shape[0], x.shape[1], *prev_shape) != 0
        outs = []
        for cores, shape in zip(self._layers, shapes):
            s = np.zeros((x.shape[0], x.shape[1], *shape), dtype=bool)
            for idx, part in cores:
                one = LoihiNetwork(prev_shape, [part])
                s[:, :, idx] = simulate(one, x).spikes[0].numpy()
            s &= rng.random(s.shape) >= m["drop"]
            s |= rng.random(s.shape) < m["extra"]
            move = s & (rng.random(s.shape) < m["jitter"])
            s = (s & ~move)
            s[:, 1:] |= move[:, :-1]
            outs.append(s)
            x, prev_shape = s, shape
        return outs


def capture_neuromorphic(net: LoihiNetwork, spikes: np.ndarray, labels: np.ndarray, path: str | Path, *,
                         num_classes: int, device_seed: int | None = None, magnitudes: Mapping[str, float] | None = None,
                         provenance: Mapping[str, Any] | None = None) -> Path:
    """Run ``spikes`` (N, T, C_in) on a freshly drawn virtual chip; write a capture file with the
    input spikes, the output raster and counts, labels and timestamps (atomically)."""
    import time

    from .captures import CaptureWriter

    chip = VirtualNeuromorphicChip(net, device_seed, magnitudes)
    x = np.asarray(spikes).astype(np.uint8)
    out = chip.run(x)[-1]
    raster = out.reshape(out.shape[0], out.shape[1], -1).astype(np.uint8)
    with CaptureWriter(path, device_kind="neuromorphic", device_id=f"virtual-loihi-{secrets.token_hex(4)}",
                       num_classes=num_classes, attrs={"virtual_chip_magnitudes": chip.magnitudes, "network": net.name},
                       provenance=provenance) as w:
        w.append({"inputs/spikes": x.reshape(x.shape[0], x.shape[1], -1), "measured/spike_raster": raster,
                  "measured/spike_counts": raster.sum(axis=1).astype(np.int32), "labels": np.asarray(labels, dtype=np.int64),
                  "timestamps": time.time() + np.arange(len(x), dtype=np.float64) * 1e-3})
    return Path(path)


def build_digits_model(seed: int = 0, steps: int = 32, hidden: int = 96, per_class: int = 2):
    """A small network for the lab: 8×8 digits (rate-coded) → random dense LIF layer → read-out of
    ``per_class`` LIF neurons per class, its weights fitted by ridge regression on the hidden
    layer's simulated spike counts (train split) and quantised. Returns (net, test spikes, test labels)."""
    from neurohw.data import load_dataset

    ds = load_dataset("digits8x8")
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-40, 61, size=(hidden, 64)).astype(np.int64) * 2
    n1 = CubaParams(du=2048, dv=512, vth=300)
    x_tr = rate_code(ds.x_train, steps, seed)
    h = simulate(LoihiNetwork((64,), [DenseLayer(w1, n1)]), x_tr).spikes[0].numpy().sum(axis=1).astype(np.float64)
    y = ds.y_train.numpy()
    target = np.repeat(np.eye(10)[y], per_class, axis=1)
    hm = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    beta = np.linalg.solve(hm.T @ hm + 1.0 * np.eye(hm.shape[1]), hm.T @ target)
    w2 = beta[:-1].T
    w2 = np.round(w2 / np.abs(w2).max() * 127).astype(np.int64) * 2
    best = None
    for vth in (50, 100, 200, 400, 800):
        net = LoihiNetwork((64,), [DenseLayer(w1, n1, name="hidden"), DenseLayer(w2, CubaParams(du=2048, dv=256, vth=vth), name="readout")],
                           name=f"digits_lif_{seed}")
        counts = simulate(net, x_tr[:400]).spikes[1].numpy().sum(axis=1)
        acc = float((counts.reshape(len(counts), 10, per_class).sum(-1).argmax(1) == y[:400]).mean())
        if best is None or acc > best[0]:
            best = (acc, net)
    return best[1], rate_code(ds.x_test, steps, seed + 1), ds.y_test.numpy()
