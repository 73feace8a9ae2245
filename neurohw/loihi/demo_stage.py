"""Demo stage ``loihi``: quantise a small float CUBA network (teacher conv1 → pooling → read-out),
simulate it exactly on MNIST-5k spikes, export netx + NIR, report deployability/energy, and — when
Lava is installed — run the exported file in Lava and check every spike."""
from __future__ import annotations

import time

import numpy as np
import torch

from neurohw.io import atomic_write_text


def run(ctx) -> dict:
    from neurohw.data import load_mnist5k, rate_encode

    from .netx_io import write_netx
    from .nir_io import write_nir
    from .report import format_report, full_report
    from .simulator import simulate
    from .workflow import build_demo_network, plot_raster, plot_voltages, quantisation_gap

    samples, steps = (8, 16) if ctx.quick else (64, 32)
    teacher = ctx.shared.get("teacher_lenet5")
    net, qrep, float_layers = build_demo_network(teacher, seed=ctx.seed)
    split = ctx.shared.get("mnist5k") or load_mnist5k()
    x = torch.as_tensor(np.asarray(split.x_test[:samples]))
    spikes = rate_encode(x, steps, generator=torch.Generator().manual_seed(ctx.seed), gain=0.5)

    t0 = time.perf_counter()
    res = simulate(net, spikes, probe=[0, 2], count_ops=True)
    sim_s = time.perf_counter() - t0
    gap = quantisation_gap(float_layers, net, spikes, result=res)

    netx_path = write_netx(net, ctx.path("loihi/demo_net.net"), seed=ctx.seed)
    nir_path = write_nir(net, ctx.path("loihi/demo_net.nir"), dt=1e-3)
    rep = full_report(net, spikes, steps=steps, result=res)
    atomic_write_text(ctx.path("loihi/report.txt"), format_report(rep) + "\n\nquantisation:\n" + qrep.text() + "\n")
    plot_raster(res, layer=2, path=ctx.path("loihi/raster_readout.png"), title="read-out spikes, sample 0")
    plot_voltages(res, layer=2, neurons=(0, 1, 2), vth=net.layers[2].neuron.vth, path=ctx.path("loihi/voltages_readout.png"))

    lava = {"run": False}
    from .lava_bridge import compare_with_lava, lava_available

    if lava_available():
        lava_steps = 8 if ctx.quick else 32
        t0 = time.perf_counter()
        cmp_ = compare_with_lava(netx_path, spikes[:1, :lava_steps].numpy(), probe=[2])
        lava = {"run": True, "samples": 1, "steps": lava_steps, "identical": bool(cmp_["identical"]),
                "first_divergence": cmp_["first_divergence"], "wall_s": round(time.perf_counter() - t0, 2)}

    figures = {
        "network": net.name, "samples": samples, "steps": steps,
        "teacher_conv1_used": teacher is not None,
        "simulate_s": round(sim_s, 4),
        "spikes_per_sample_per_layer": [float(s.float().sum() / samples) for s in res.spikes],
        "float_vs_integer_spike_agreement": gap,
        "loihi2_cores": rep["loihi2"]["total_cores"], "loihi1_cores": rep["loihi1"]["total_cores"],
        "deployable_loihi2": rep["loihi2"]["deployable_on_one_chip"],
        "energy_nJ_per_inference": rep["energy"]["energy_J"]["total_davies"] * 1e9,
        "syn_ops_per_inference": rep["energy"]["per_inference"]["syn_ops"],
        "lava": lava,
        "files": [str(netx_path.name), str(nir_path.name), "report.txt", "raster_readout.png", "voltages_readout.png"],
    }
    lava_line = (f"Lava (fixed_pt, netx-loaded, {lava['samples']} sample × {lava['steps']} steps): "
                 f"{'identical spikes and voltages' if lava['identical'] else 'DIVERGES: ' + str(lava['first_divergence'])}"
                 if lava["run"] else "Lava not installed: equality check skipped")
    ctx.section("Loihi 2 deployment", f"""
Float CUBA network (conv1 from {'the LeNet-5 teacher' if teacher is not None else 'random weights'} → 2×2 pooling lowered
to a depthwise conv → untrained random read-out; a pipeline demonstration, no accuracy claimed), quantised
to Loihi integers and simulated exactly on {samples} rate-coded MNIST-5k test digits × {steps} steps
({sim_s:.3f} s).

- float vs integer spike agreement per layer (quantisation gap): {', '.join(f'{g:.3f}' for g in gap)}
- Loihi 2: {rep['loihi2']['total_cores']} cores, deployable on one chip: {rep['loihi2']['deployable_on_one_chip']};
  Loihi 1: {rep['loihi1']['total_cores']} cores
- per inference: {rep['energy']['per_inference']['syn_ops']:.0f} synaptic ops,
  {rep['energy']['per_inference']['spikes']:.0f} spikes, ≈ {figures['energy_nJ_per_inference']:.1f} nJ
  (Davies et al. 2018 pre-silicon constants; see loihi/report.txt for every constant's source)
- {lava_line}
- exports: `loihi/demo_net.net` (lava-dl netx HDF5), `loihi/demo_net.nir` (NIR, dt = 1 ms)

![read-out raster](loihi/raster_readout.png) ![read-out voltages](loihi/voltages_readout.png)
""")
    return figures
