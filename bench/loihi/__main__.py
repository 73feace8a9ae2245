"""Benchmark: neurohw's exact Loihi simulator vs Lava ``fixed_pt`` vs a float snnTorch network.

``python -m bench.loihi [--quick] [--batch N] [--device cpu|cuda] [--no-lava] [--out FILE]``

Two networks, 32 steps, rate-coded MNIST-5k test digits: a 784-512-10 dense net and a small conv
net (1×28×28 → conv 8 s2 → conv 16 s2 → dense 10). At batch 1 and batch 256 (quick: 32),
neurohw (``simulate``) and snnTorch (``nn.Linear``/``nn.Conv2d`` + ``snn.Synaptic``, float32,
same batch) are timed in interleaved rounds through :mod:`bench.harness`.

Lava (``Loihi2SimCfg(select_tag='fixed_pt')``) runs one sample at a time. Its per-sample-step
cost is the *marginal* cost: runs of 32 and 128 steps of one sample are timed in interleaved
repeats and ``(median t128 − median t32) / 96`` excludes compile and process start-up (also
from the minima). Lava's spikes are checked against neurohw's on ``--lava-samples`` (≥ 4)
samples. Figures go to ``results/bench/loihi.json``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

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
    """(batch, STEPS, *shape) rate-coded MNIST-5k test digits (float 0/1)."""
    from neurohw.data import load_mnist5k, rate_encode

    ds = load_mnist5k()
    x = torch.as_tensor(ds.x_test[:batch])
    g = torch.Generator().manual_seed(seed)
    s = rate_encode(x, STEPS, generator=g, gain=0.5)
    return s.reshape(batch, STEPS, *shape)


def syn_ops_per_sample(net: LoihiNetwork, x: torch.Tensor) -> float:
    """Synaptic events per sample over STEPS steps (mean over the samples of x)."""
    ops = simulate(net, x, count_ops=True).ops
    return sum(o["syn_ops"] for o in ops) / x.shape[0]


def bench_batch(net: LoihiNetwork, x: torch.Tensor, device: str, repeats: int) -> dict:
    """neurohw vs snnTorch at the batch of ``x``, interleaved; sample-steps per second."""
    from bench import harness

    dev = torch.device(device)
    xd = x.to(dev)
    mods = snntorch_model(net)
    for lin, lif, _ in mods:
        lin.to(dev)
        lif.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    sides = {"neurohw": lambda: simulate(net, xd, device=dev), "snntorch": lambda: run_snntorch(mods, xd)}
    st = harness.interleave(sides, repeats, warmup=1, sync=sync)
    B = x.shape[0]
    row = {"batch": B, "steps": STEPS, "timing": st}
    for side in sides:
        row[f"{side}_sample_steps_per_s"] = B * STEPS / st[side]["wall_s"]["median"]
        row[f"{side}_sample_steps_per_s_best"] = B * STEPS / st[side]["wall_s"]["min"]
    row["time_ratio_neurohw_over_snntorch"] = harness.ratio(st, "neurohw", "snntorch")
    row["time_ratio_neurohw_over_snntorch_min"] = harness.ratio(st, "neurohw", "snntorch", "min")
    return row


def bench_lava(net: LoihiNetwork, x: torch.Tensor, repeats: int, n_check: int, neurohw_sides=None) -> dict:
    """Lava's marginal per-sample-step cost (32- vs 128-step runs of one sample, interleaved
    repeats) and a spike check against neurohw on the first ``n_check`` samples.

    ``neurohw_sides``: name → (callable, sample-steps per call), timed in the *same* interleaved
    rounds as Lava, so that their ratio to Lava's marginal cost sees the same machine load
    (``neurohw_same_rounds``: name → speedup from the medians)."""
    from bench import harness
    from neurohw.loihi.lava_bridge import first_divergence, run_in_lava

    xs = x[:n_check].numpy()
    div = first_divergence(simulate(net, xs), run_in_lava(net, xs))
    x1 = xs[:1]
    x4 = np.concatenate([x1] * 4, axis=1)  # 128 steps
    sides = {"lava_32": lambda: run_in_lava(net, x1), "lava_128": lambda: run_in_lava(net, x4)}
    sides.update({name: fn for name, (fn, _) in (neurohw_sides or {}).items()})
    st = harness.interleave(sides, repeats, warmup=0)
    out = {"lava_samples_checked": int(xs.shape[0]), "lava_spikes_identical": div is None,
           "lava_first_divergence": div, "lava_timing": {k: st[k] for k in ("lava_32", "lava_128")}}
    for key in ("median", "min"):
        t32, t128 = st["lava_32"]["wall_s"][key], st["lava_128"]["wall_s"][key]
        per_step = (t128 - t32) / (3 * STEPS)
        out[f"lava_marginal_step_s_{key}"] = per_step if per_step > 0 else None
    per_step = out["lava_marginal_step_s_median"]
    out["neurohw_same_rounds"] = {
        name: {"timing": st[name], "sample_steps_per_call": n,
               "speedup_over_lava": n / st[name]["wall_s"]["median"] * per_step if per_step else None}
        for name, (_, n) in (neurohw_sides or {}).items()}
    out["lava_extrapolation"] = ("marginal cost per sample-step: (t(128 steps) − t(32 steps)) / 96 from the "
                                 "medians (and the minima) of interleaved repeats; compile and start-up excluded")
    return out


def _whole(x: float | None) -> int | None:
    return None if x is None else int(round(x))


def results_table(nets: list[dict], *, quick: bool, device: str, repeats: int) -> dict:
    """The table shown in README / docs/loihi.md (``figures.table``): one row per network and batch.

    ``nets`` are the per-network entries of :func:`run` (``rows`` from :func:`bench_batch`, the
    Lava keys from :func:`bench_lava` where Lava ran); Lava columns are None without Lava.
    """
    rows = []
    for e in nets:
        for r in e["rows"]:
            st = r["timing"]
            per_step = e.get("lava_marginal_step_s_median")
            checked = e.get("lava_samples_checked")
            rows.append({
                "net": e["network"], "batch": r["batch"], "T": r["steps"],
                "neurohw ms": 1e3 * st["neurohw"]["wall_s"]["median"],
                "snnTorch ms": 1e3 * st["snntorch"]["wall_s"]["median"],
                "neurohw / snnTorch time": r["time_ratio_neurohw_over_snntorch"],
                "(min)": r["time_ratio_neurohw_over_snntorch_min"],
                "× Lava": _whole(r.get("speedup_over_lava")),
                "× Lava (min)": _whole(r.get("speedup_over_lava_best")),
                "× Lava (same rounds)": _whole(r.get("speedup_over_lava_same_rounds")),
                "Lava ms / sample-step": 1e3 * per_step if per_step else None,
                "Lava samples checked": checked,
                "spikes = Lava": e.get("lava_spikes_identical")})
    caption = (f"neurohw's exact Loihi simulator vs the float snnTorch net (same batch) and Lava fixed_pt, "
               f"{STEPS} steps, {'quick' if quick else 'full'} mode, {repeats} interleaved repeats (×3 at batch 1), "
               f"device {device}; ms = median per run of B samples; neurohw / snnTorch = time ratio from medians "
               "(< 1: neurohw faster; min: from minima); × Lava = neurohw sample-steps/s times Lava's marginal "
               "cost per sample-step ((t128 − t32) / 96, one sample; neurohw from its own interleaved rounds); "
               "× Lava (same rounds): neurohw timed in the same interleaved rounds as Lava (same machine load); "
               "spikes = Lava: identical spikes on the samples checked.")
    return {"caption": caption,
            "columns": ["net", "batch", "T", "neurohw ms", "snnTorch ms", "neurohw / snnTorch time", "(min)",
                        "× Lava", "× Lava (min)", "× Lava (same rounds)", "Lava ms / sample-step", "Lava samples checked", "spikes = Lava"],
            "rows": rows, "digits": 2}


def run(quick: bool = False, device: str = "cpu", lava: bool = True, lava_samples: int = 4,
        batch: int | None = None, out: Path | None = None, argv=()) -> dict:
    from bench import harness

    load0, t_start = harness.loadavg(), time.perf_counter()
    torch.manual_seed(0)
    big = batch or (32 if quick else 256)
    repeats = 3 if quick else 7
    lava_repeats = 2 if quick else 3
    if lava:
        from neurohw.loihi.lava_bridge import lava_available

        lava = lava_available()
    nets = []
    for net in (dense_net(), conv_net()):
        x = mnist_spikes(big, net.input_shape)
        entry = {"network": net.name, "syn_ops_per_sample": syn_ops_per_sample(net, x[:8]),
                 "rows": [bench_batch(net, x[:1], device, repeats * 3), bench_batch(net, x, device, repeats)]}
        if lava:
            x1d, xd = x[:1].to(device), x.to(device)
            calls_b1 = 10  # a batch-1 run is milliseconds: ten per round

            def b1():
                for _ in range(calls_b1):
                    simulate(net, x1d, device=device)

            same = {"batch_1": (b1, calls_b1 * STEPS), f"batch_{big}": (lambda: simulate(net, xd, device=device), big * STEPS)}
            entry.update(bench_lava(net, x, lava_repeats, lava_samples, neurohw_sides=same))
            for r in entry["rows"]:
                r["speedup_over_lava_same_rounds"] = entry["neurohw_same_rounds"][f"batch_{r['batch']}"]["speedup_over_lava"]
            for key in ("median", "min"):
                per_step = entry[f"lava_marginal_step_s_{key}"]
                for r in entry["rows"]:
                    sfx = "" if key == "median" else "_best"
                    r[f"speedup_over_lava{sfx}"] = (r[f"neurohw_sample_steps_per_s{sfx}"] * per_step
                                                    if per_step else None)
        nets.append(entry)
    print(f"neurohw.loihi benchmark — {STEPS} steps, device {device}, torch threads {torch.get_num_threads()}, "
          f"{'quick' if quick else 'full'} mode, {repeats} interleaved repeats (×3 at batch 1)")
    hdr = f"{'network':<18}{'B':>5} {'neurohw ms':>26} {'snnTorch ms':>26} {'nh/snt':>7} {'(min)':>6} {'×Lava':>7} {'(min)':>7} {'(same)':>7}"
    print(hdr)
    print("-" * len(hdr))
    for e in nets:
        for r in e["rows"]:
            st = r["timing"]
            sp, spm = r.get("speedup_over_lava"), r.get("speedup_over_lava_best")
            print(f"{e['network']:<18}{r['batch']:>5} {harness.fmt_stats(st['neurohw']['wall_s']):>26} "
                  f"{harness.fmt_stats(st['snntorch']['wall_s']):>26} {r['time_ratio_neurohw_over_snntorch']:>6.2f}x "
                  f"{r['time_ratio_neurohw_over_snntorch_min']:>5.2f}x "
                  + (f"{sp:>6.0f}x {spm:>6.0f}x" if sp and spm else f"{'—':>7} {'—':>7}")
                  + (f" {r['speedup_over_lava_same_rounds']:>6.0f}x" if r.get("speedup_over_lava_same_rounds") else f" {'—':>7}"))
        if "lava_timing" in e:
            lt = e["lava_timing"]
            print(f"{'':<18}Lava 1 sample: 32 steps {harness.fmt_stats(lt['lava_32']['wall_s'])} ms, 128 steps "
                  f"{harness.fmt_stats(lt['lava_128']['wall_s'])} ms; marginal "
                  f"{(e['lava_marginal_step_s_median'] or float('nan')) * 1e3:.3g} ms/step; spikes identical on "
                  f"{e['lava_samples_checked']} samples: {e['lava_spikes_identical']}")
    print("ms: median (min, IQR) per full run of B samples × 32 steps; nh/snt = neurohw time / snnTorch time "
          "(targets ≤ 1.0 dense, ≤ 1.5 conv at batch 256); ×Lava = neurohw sample-steps/s over Lava's marginal "
          "(targets ≥ 100× batch 1, ≥ 1000× batched); (same): neurohw timed in Lava's interleaved rounds")
    config = {"quick": quick, "device": device, "steps": STEPS, "batches": [1, big], "repeats": repeats,
              "lava": lava, "lava_repeats": lava_repeats, "lava_samples": lava_samples, "seed": 0}
    res = {"networks": nets, "table": results_table(nets, quick=quick, device=device, repeats=repeats)}
    return harness.finish("loihi", res, config=config, argv=argv, load_before=load0, started=t_start, out=out)


def main(argv=None) -> int:
    from bench import harness

    ap = harness.arg_parser("loihi", __doc__)
    ap.add_argument("--quick", action="store_true", help="batch 32, fewer repeats")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="the batched row's size (default 256, quick 32)")
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--lava-samples", type=int, default=4, help="samples whose spikes are checked against Lava")
    args = ap.parse_args(argv)
    res = run(quick=args.quick, device=args.device, lava=not args.no_lava, lava_samples=args.lava_samples, batch=args.batch,
              out=args.out, argv=argv if argv is not None else sys.argv[1:])
    ok = all(e.get("lava_spikes_identical", True) for e in res["networks"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
