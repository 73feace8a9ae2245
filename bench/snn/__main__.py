"""``python -m bench.snn [--quick]``: BWSNN training throughput vs. snnTorch, side by side.

Both networks have the same architecture, the same binarised weights (``snn.binary``), the
same ATan surrogate and zero reset; they differ in how time is handled:

* **snn**: each synapse runs once over all T steps (time folded into the batch), then the
  LIF recurrence loops over T on elementwise tensors (``snn.neurons.lif_sequence``);
  measured with Loihi-exact rounding (``exact=True``, the default used for training) and
  without it (``exact=False``, same arithmetic as snnTorch);
* **snnTorch**: the usual snnTorch loop — for t in T: synapse → ``snntorch.Leaky``.

The snnTorch side is therefore snnTorch's ``Leaky`` neuron driven by the same binarised
synapses in the loop snnTorch's tutorials use (snnTorch has no binary-weight layer of its
own); its weights are a separate copy trained by its own Adam.

Each sample is one forward + backward + Adam step on random MNIST-shaped input; the three
sides are timed in interleaved rounds (``bench.harness``), at batch 1 and batched.
Figures go to ``results/bench/snn.json``.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neurohw.seeding import seed_everything
from snn.model import BWSNN, BWSNNConfig


class SnnTorchBWSNN(nn.Module):
    """The BWSNN's architecture from snnTorch parts: per-step synapse + ``snntorch.Leaky``.

    Weights are taken from (and binarised exactly like) a :class:`snn.model.BWSNN`, so both
    compute the same spikes when the BWSNN runs with ``exact=False``.
    """

    def __init__(self, ref: BWSNN):
        super().__init__()
        import snntorch

        self.ref = ref
        beta = 1.0 - ref.layers[0].neuron.dv / 4096
        self.lifs = nn.ModuleList(
            snntorch.Leaky(beta=beta, threshold=l.neuron.threshold, spike_grad=snntorch.surrogate.atan(),
                           reset_mechanism="zero", init_hidden=False) for l in ref.layers)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        ws = [l.synapse.effective_weight() for l in self.ref.layers]
        wr = self.ref.readout.effective_weight()
        mems = [lif.init_leaky() for lif in self.lifs]
        out = []
        for t in range(spikes.shape[1]):
            s = spikes[:, t]
            for k, layer in enumerate(self.ref.layers):
                cur = layer.synapse.apply_weight(ws[k], s)
                if layer.shortcut is not None:
                    cur = cur + layer.shortcut(s.unsqueeze(1)).squeeze(1)
                s, mems[k] = self.lifs[k](cur, mems[k])
            out.append(F.linear(s.flatten(1), wr))
        return torch.stack(out, 1).mean(1)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One forward + backward + Adam step of ``model`` on ``(x, y)`` (a zero-argument callable)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


SIDES = ("snntorch", "snn", "snn_exact")


def run(quick: bool = False, device: str | None = None, out: Path | None = None, argv=()) -> dict:
    import snntorch

    from bench import harness

    load0, t_start = harness.loadavg(), time.perf_counter()
    seed_everything(0)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    steps = 4 if quick else 8
    batches = (1, 32) if quick else (1, 64)
    repeats = 3 if quick else 15
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    archs = {"mlp-256": BWSNNConfig(arch="mlp", channels=(256,), multi_shortcut=True, steps=steps),
             "conv-8-16": BWSNNConfig(arch="conv", channels=(8, 16), multi_shortcut=True, steps=steps)}
    rows = []
    for name, cfg in archs.items():
        for batch in batches:
            x = (torch.rand(batch, steps, 1, 28, 28, device=dev) < 0.2).float()
            y = torch.randint(0, 10, (batch,), device=dev)
            m_exact = BWSNN(cfg).to(dev)
            m_plain = BWSNN(BWSNNConfig(**{**cfg.to_dict(), "exact": False})).to(dev)
            m_plain.load_state_dict(m_exact.state_dict())
            m_ref = copy.deepcopy(m_plain)  # the snnTorch side trains its own copy of the weights
            m_snt = SnnTorchBWSNN(m_ref).to(dev)
            with torch.no_grad():  # same function: check before timing
                same = torch.equal(m_plain(x), m_snt(x))
            sides = {"snntorch": _train_step(m_snt, x, y), "snn": _train_step(m_plain, x, y),
                     "snn_exact": _train_step(m_exact, x, y)}
            st = harness.interleave(sides, repeats, warmup=2, sync=sync)
            r = {"arch": name, "batch": batch, "steps": steps, "same_output": bool(same), "timing": st}
            for side in SIDES:
                r[f"{side}_sps"] = batch / st[side]["wall_s"]["median"]
                r[f"{side}_sps_best"] = batch / st[side]["wall_s"]["min"]
            r["ratio"] = harness.ratio(st, "snntorch", "snn")
            r["ratio_exact"] = harness.ratio(st, "snntorch", "snn_exact")
            r["ratio_min"] = harness.ratio(st, "snntorch", "snn", "min")
            r["ratio_exact_min"] = harness.ratio(st, "snntorch", "snn_exact", "min")
            rows.append(r)
    print(f"BWSNN training step (forward+backward+Adam), device {dev}, {torch.get_num_threads()} torch thread(s), "
          f"{'quick' if quick else 'full'} mode, {repeats} interleaved repeats per side; snnTorch {snntorch.__version__}")
    print(f"{'arch':<10} {'B':>4} {'T':>3} {'snnTorch ms':>24} {'snn ms':>24} {'snn exact ms':>24} "
          f"{'ratio':>6} {'(min)':>6} {'exact':>6} {'(min)':>6} same")
    for r in rows:
        st = r["timing"]
        print(f"{r['arch']:<10} {r['batch']:>4} {r['steps']:>3} " + " ".join(
            f"{harness.fmt_stats(st[s]['wall_s']):>24}" for s in SIDES)
              + f" {r['ratio']:>5.2f}x {r['ratio_min']:>5.2f}x {r['ratio_exact']:>5.2f}x {r['ratio_exact_min']:>5.2f}x"
              f" {r['same_output']}")
    print("ms: median (min, IQR) per step; ratio = snnTorch time / snn time (> 1: snn is faster), from medians "
          "(min: from minima); target: not slower (ratio ≥ 1)")
    config = {"quick": quick, "device": str(dev), "steps": steps, "batches": list(batches), "repeats": repeats,
              "seed": 0, "baseline": f"snntorch {snntorch.__version__}: per-step synapse + snntorch.Leaky "
                                     "(ATan surrogate, zero reset), same binarised weights"}
    table = {
        "caption": (f"BWSNN training step (forward + backward + Adam) vs the same net from snnTorch layers, "
                    f"{'quick' if quick else 'full'} mode, {repeats} interleaved repeats per side, device {dev}; "
                    "ratio = snnTorch time / snn time from medians (> 1: neurohw faster), min: from minima."),
        "columns": ["net", "batch", "T", "snnTorch ms", "snn ms", "ratio", "ratio (min)", "exact-mode ratio", "same output"],
        "rows": [{"net": r["arch"], "batch": r["batch"], "T": r["steps"],
                  "snnTorch ms": 1e3 * r["timing"]["snntorch"]["wall_s"]["median"],
                  "snn ms": 1e3 * r["timing"]["snn"]["wall_s"]["median"],
                  "ratio": r["ratio"], "ratio (min)": r["ratio_min"], "exact-mode ratio": r["ratio_exact"],
                  "same output": r["same_output"]} for r in rows]}
    res = {"rows": rows, "snntorch_version": snntorch.__version__, "table": table}
    return harness.finish("snn", res, config=config, argv=argv, load_before=load0, started=t_start, out=out)


def main(argv=None) -> int:
    from bench import harness

    ap = harness.arg_parser("snn", __doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    run(quick=args.quick, device=args.device, out=args.out, argv=argv if argv is not None else sys.argv[1:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
