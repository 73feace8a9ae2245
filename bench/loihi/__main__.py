"""Benchmark: neurohw's exact Loihi simulator vs Lava fixed_pt vs a float snnTorch network.

``python -m bench.loihi [--quick] [--batch N] [--device cpu]``

Two networks, 32 steps, rate-coded MNIST-5k test digits: a 784-512-10 dense net and a small conv
net (1×28×28 → conv 8 s2 → conv 16 s2 → dense 10). For each: neurohw (batched, CPU), Lava
(``Loihi2SimCfg(select_tag='fixed_pt')``, one sample at a time: its runtime is one set of
processes; the per-sample-step cost is taken from runs of 32 and 128 steps so that start-up is
separated, quick mode uses the 32-step run only), and snnTorch (``nn.Linear``/``nn.Conv2d`` +
``snn.Synaptic``, float32, same batch). Lava's spikes are checked against neurohw's for the
samples Lava ran. Prints a table and writes ``reports/bench/loihi.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from neurohw.io import atomic_write_json, provenance
from neurohw.loihi import ConvLayer, CubaParams, DenseLayer, LoihiNetwork, simulate

STEPS = 32


def dense_net(seed: int = 0) -> LoihiNetwork:
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-40, 56, size=(512, 784)) * 2
    w2 = rng.integers(-90, 100, size=(10, 512)) * 2
    return LoihiNetwork((784,), [DenseLayer(w1, CubaParams(du=1024, dv=256, vth=300), name="fc1"),
                                 DenseLayer(w2, CubaParams(du=1024, dv=256, vth=600), name="fc2")], name="dense_784_512_10")


def conv_net(seed: int = 0) -> LoihiNetwork:
    rng = np.random.default_rng(seed)
    return LoihiNetwork((1, 28, 28), [
        ConvLayer(rng.integers(-60, 90, size=(8, 1, 3, 3)), CubaParams(du=1024, dv=256, vth=200), stride=2, padding=1, name="conv1"),
        ConvLayer(rng.integers(-40, 60, size=(16, 8, 3, 3)), CubaParams(du=1024, dv=256, vth=300), stride=2, padding=1, name="conv2"),
        DenseLayer(rng.integers(-60, 70, size=(10, 16 * 7 * 7)) * 2, CubaParams(du=1024, dv=256, vth=500), name="fc"),
    ], name="conv_small")


def snntorch_model(net: LoihiNetwork):
    """The same shapes as a float snnTorch network (weights = the integers / 64, CUBA decays)."""
    import snntorch as snn

    mods = []
    for layer in net.layers:
        if isinstance(layer, DenseLayer):
            lin = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0], bias=False)
            lin.weight.data = torch.as_tensor(layer.weight / 64.0, dtype=torch.float32)
        else:
            w = torch.as_tensor(layer.weight / 64.0, dtype=torch.float32)
            lin = torch.nn.Conv2d(w.shape[1] * layer.groups, w.shape[0], w.shape[2:], stride=layer.stride,
                                  padding=layer.padding, bias=False)
            lin.weight.data = w
        p = layer.neuron
        lif = snn.Synaptic(alpha=1 - (p.du + 1) / 4096, beta=1 - p.dv / 4096, threshold=p.vth / 64.0, reset_mechanism="zero")
        mods.append((lin, lif, isinstance(layer, DenseLayer)))
    return mods


def run_snntorch(mods, x: torch.Tensor) -> torch.Tensor:
    B, T = x.shape[:2]
    states = [m[1].init_synaptic() for m in mods]
    out = []
    with torch.no_grad():
        for t in range(T):
            h = x[:, t]
            for k, (lin, lif, dense) in enumerate(mods):
                if dense and h.dim() > 2:
                    h = h.flatten(1)
                syn, mem = states[k]
                h, syn, mem = lif(lin(h), syn, mem)
                states[k] = (syn, mem)
            out.append(h)
    return torch.stack(out, 1)


def mnist_spikes(batch: int, shape, seed: int = 0) -> torch.Tensor:
    from neurohw.data import load_mnist5k, rate_encode

    ds = load_mnist5k()
    x = torch.as_tensor(ds.x_test[:batch])
    g = torch.Generator().manual_seed(seed)
    s = rate_encode(x, STEPS, generator=g, gain=0.5)
    return s.reshape(batch, STEPS, *shape)


def timed(fn, repeats: int = 3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_one(net: LoihiNetwork, batch: int, quick: bool, lava_ok: bool, device: str) -> dict:
    x = mnist_spikes(batch, net.input_shape)
    ops = simulate(net, x[:8], count_ops=True).ops
    syn_per_sample = sum(o["syn_ops"] for o in ops) / 8
    simulate(net, x[:2], device=device)  # warm-up
    t_nh, res = timed(lambda: simulate(net, x.to(device), device=device))
    mods = snntorch_model(net)
    run_snntorch(mods, x[:2])
    t_snn, _ = timed(lambda: run_snntorch(mods, x))
    row = {"network": net.name, "batch": batch, "steps": STEPS,
           "neurohw_s": t_nh, "neurohw_sample_steps_per_s": batch * STEPS / t_nh,
           "neurohw_syn_ops_per_s": syn_per_sample * batch / t_nh,
           "snntorch_s": t_snn, "snntorch_sample_steps_per_s": batch * STEPS / t_snn,
           "time_ratio_neurohw_over_snntorch": t_nh / t_snn,
           "syn_ops_per_sample": syn_per_sample,
           "spikes_per_layer_per_sample": [float(s.float().sum() / batch) for s in res.spikes]}
    if lava_ok:
        from neurohw.loihi.lava_bridge import first_divergence, run_in_lava

        xs = x[:1].numpy()
        t0 = time.perf_counter()
        lava = run_in_lava(net, xs)
        t32 = time.perf_counter() - t0
        div = first_divergence(simulate(net, xs), lava)
        row["lava_32_steps_s"] = t32
        per_step = t32 / STEPS
        how = "total wall time of one 32-step run / 32 (includes compile and process start-up)"
        if not quick:
            x2 = np.concatenate([xs, xs, xs, xs], axis=1)  # 128 steps
            t0 = time.perf_counter()
            lava128 = run_in_lava(net, x2)
            t128 = time.perf_counter() - t0
            div = div or first_divergence(simulate(net, x2), lava128)
            row["lava_128_steps_s"] = t128
            if t128 > t32:
                per_step = (t128 - t32) / (3 * STEPS)
                how = "marginal cost per step: (t(128 steps) − t(32 steps)) / 96, start-up excluded"
            else:
                how += " (the 128-step run was not slower: machine noise)"
        row["lava_sample_steps_per_s"] = 1.0 / per_step
        row["lava_syn_ops_per_s"] = syn_per_sample / STEPS / per_step
        row["lava_extrapolation"] = how
        row["speedup_neurohw_over_lava"] = row["neurohw_sample_steps_per_s"] / row["lava_sample_steps_per_s"]
        row["lava_spikes_identical"] = div is None
        row["lava_first_divergence"] = div
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loihi")
    ap.add_argument("--quick", action="store_true", help="smaller batch, Lava 32-step run only")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("reports/bench/loihi.json"))
    args = ap.parse_args(argv)
    batch = args.batch or (32 if args.quick else 256)
    lava_ok = False
    if not args.no_lava:
        from neurohw.loihi.lava_bridge import lava_available

        lava_ok = lava_available()
    torch.manual_seed(0)
    rows = [bench_one(net, batch, args.quick, lava_ok, args.device) for net in (dense_net(), conv_net())]
    import os

    load = os.getloadavg()
    print(f"\nneurohw.loihi benchmark — {STEPS} steps, batch {batch}, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (timings on a shared machine vary with its load)")
    hdr = f"{'network':<18}{'engine':<10}{'time (s)':>10}{'sample-steps/s':>16}{'synops/s':>12}  notes"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['network']:<18}{'neurohw':<10}{r['neurohw_s']:>10.4f}{r['neurohw_sample_steps_per_s']:>16.4g}{r['neurohw_syn_ops_per_s']:>12.4g}  exact integer")
        print(f"{'':<18}{'snnTorch':<10}{r['snntorch_s']:>10.4f}{r['snntorch_sample_steps_per_s']:>16.4g}{'':>12}  float32, same shapes")
        if "lava_sample_steps_per_s" in r:
            print(f"{'':<18}{'Lava':<10}{r['lava_32_steps_s']:>10.2f}{r['lava_sample_steps_per_s']:>16.4g}{r['lava_syn_ops_per_s']:>12.4g}  "
                  f"1 sample; spikes identical to neurohw: {r['lava_spikes_identical']}")
        print(f"{'':<18}ratios: neurohw time / snnTorch time = {r['time_ratio_neurohw_over_snntorch']:.2f} (target ≤ 2)"
              + (f"; neurohw / Lava throughput = {r['speedup_neurohw_over_lava']:.0f}× (target ≥ 1000×)" if "speedup_neurohw_over_lava" in r else "; Lava not run"))
    if lava_ok:
        print(f"Lava per-sample-step cost: {rows[0]['lava_extrapolation']}")
    report = {"rows": rows, "load_average_1min": load[0], "cpus": os.cpu_count(),
              "provenance": provenance(seed=0, config={"batch": batch, "steps": STEPS, "quick": args.quick,
                                                       "device": args.device, "lava": lava_ok})}
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    ok = all(r.get("lava_spikes_identical", True) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
