"""The deploy workflow used by the demo stage and the notebook: a small float CUBA network
(first conv from the LeNet-5 teacher when available), quantised to Loihi integers, plus plots.

The float network is conv 5×5 (6 channels, padding 2) → 2×2 sum pooling (lowered to a depthwise
conv) → dense 10 (seeded random read-out). It is a pipeline demonstration: its read-out is not
trained, so no accuracy is claimed; what it measures is the quantisation gap (float CUBA vs the
exact integer model) and the equality with Lava.
"""
from __future__ import annotations

import numpy as np
import torch

from .network import LoihiNetwork
from .quantize import FloatLayer, QuantReport, float_cuba_reference, quantize_network


def demo_float_layers(teacher: torch.nn.Module | None = None, seed: int = 0) -> list[FloatLayer]:
    """Float CUBA layers for 1×28×28 inputs. ``teacher``: a module with ``conv1`` (6, 1, 5, 5)."""
    rng = np.random.default_rng(seed)
    w1 = None
    if teacher is not None and hasattr(teacher, "conv1"):
        w = teacher.conv1.weight.detach().cpu().numpy()
        if w.shape == (6, 1, 5, 5):
            w1 = w
    source = "teacher conv1" if w1 is not None else "random"
    if w1 is None:
        w1 = rng.standard_normal((6, 1, 5, 5))
    w1 = w1 / np.abs(w1).max() * 1.5  # float weights within the 8-bit grid (|w| ≤ 254/64)
    pool = np.ones((6, 1, 2, 2))
    w3 = rng.standard_normal((10, 6 * 14 * 14)) * 0.25
    return [
        FloatLayer("conv", w1, threshold=1.0, current_decay=0.5, voltage_decay=0.25, padding=(2, 2), name=f"conv1 ({source})"),
        FloatLayer("conv", pool, threshold=1.5, current_decay=1.0, voltage_decay=0.5, stride=(2, 2), groups=6, name="pool2x2"),
        FloatLayer("dense", w3, threshold=2.0, current_decay=0.25, voltage_decay=0.1, name="readout"),
    ]


def build_demo_network(teacher=None, seed: int = 0) -> tuple[LoihiNetwork, QuantReport, list[FloatLayer]]:
    """Quantised demo network, the quantisation report and the float layers it came from."""
    layers = demo_float_layers(teacher, seed)
    net, rep = quantize_network((1, 28, 28), layers, name="demo_conv_pool_dense")
    for layer, fl in zip(net.layers, layers):
        layer.name = fl.name.split(" ")[0]
    return net, rep, layers


def quantisation_gap(layers: list[FloatLayer], net: LoihiNetwork, spikes, result=None) -> list[float]:
    """Per-layer fraction of (sample, step, neuron) spike decisions on which the float CUBA
    network (Lava timing, float64) and the exact integer network agree (``result``: an
    existing ``simulate(net, spikes)`` result to reuse)."""
    from .simulator import simulate

    ref = float_cuba_reference(layers, np.asarray(spikes))
    sim = result if result is not None else simulate(net, spikes)
    return [float((a == b.cpu().numpy()).mean()) for a, b in zip(ref, sim.spikes)]


def plot_raster(result, layer: int = -1, sample: int = 0, path=None, title: str | None = None):
    """Spike raster (neuron index vs step) of one layer of one sample."""
    from neurohw.plotting import plt, save

    s = result.spikes[layer][sample].reshape(result.steps, -1).cpu().numpy()
    t, n = np.nonzero(s)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.scatter(t, n, s=4, marker="|", color="k")
    ax.set_xlabel("step")
    ax.set_ylabel("neuron (flat index)")
    ax.set_xlim(-0.5, result.steps - 0.5)
    ax.set_title(title or f"layer {layer % len(result.spikes)} spikes, sample {sample}")
    return save(fig, path)


def plot_voltages(result, layer: int, neurons=(0, 1, 2), sample: int = 0, vth: int | None = None, path=None):
    """Voltage traces (hardware units) of a few neurons of a probed layer; threshold dashed."""
    from neurohw.plotting import plt, save

    v = result.voltage[layer][sample].reshape(result.steps, -1).cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 3))
    for n in neurons:
        ax.plot(v[:, n], label=f"neuron {n}")
    if vth is not None:
        ax.axhline(vth << 6, color="k", ls="--", lw=0.8, label="vth << 6")
    ax.set_xlabel("step")
    ax.set_ylabel("v (Loihi units)")
    ax.legend(fontsize=7)
    ax.set_title(f"layer {layer} voltages, sample {sample}")
    return save(fig, path)
