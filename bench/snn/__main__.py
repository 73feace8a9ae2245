"""``python -m bench.snn [--quick]``: BWSNN training throughput vs. snnTorch, side by side.

Both networks have the same architecture, the same binarised weights (``snn.binary``), the
same ATan surrogate and zero reset; they differ in how time is handled:

* **snn**: each synapse runs once over all T steps (time folded into the batch), then the
  LIF recurrence loops over T on elementwise tensors (``snn.neurons.lif_sequence``);
  measured with Loihi-exact rounding (``exact=True``, the default used for training) and
  without it (``exact=False``, same arithmetic as snnTorch);
* **snnTorch**: the usual snnTorch loop — for t in T: synapse → ``snntorch.Leaky``.

Throughput = samples/s for forward + backward + optimiser step on random MNIST-shaped input.
Figures go to ``reports/bench/snn.json``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neurohw.io import atomic_write_json, provenance
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


def _throughput(model: nn.Module, params, x: torch.Tensor, y: torch.Tensor, iters: int, warmup: int = 2) -> float:
    opt = torch.optim.Adam(params, lr=1e-3)
    for i in range(warmup + iters):
        if i == warmup:
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iters * len(x) / (time.perf_counter() - t0)


def run(quick: bool = False, device: str | None = None) -> dict:
    seed_everything(0)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch, steps = (32, 4) if quick else (64, 8)
    iters = 2 if quick else 8
    archs = {"mlp-256": BWSNNConfig(arch="mlp", channels=(256,), multi_shortcut=True, steps=steps),
             "conv-8-16": BWSNNConfig(arch="conv", channels=(8, 16), multi_shortcut=True, steps=steps)}
    rows = []
    for name, cfg in archs.items():
        x = (torch.rand(batch, steps, 1, 28, 28, device=dev) < 0.2).float()
        y = torch.randint(0, 10, (batch,), device=dev)
        m_exact = BWSNN(cfg).to(dev)
        m_plain = BWSNN(BWSNNConfig(**{**cfg.to_dict(), "exact": False})).to(dev)
        m_plain.load_state_dict(m_exact.state_dict())
        m_snt = SnnTorchBWSNN(m_plain).to(dev)
        with torch.no_grad():  # same function: check before timing
            same = torch.equal(m_plain(x), m_snt(x))
        r = {"arch": name, "batch": batch, "steps": steps, "same_output": bool(same),
             "snntorch_sps": _throughput(m_snt, m_plain.parameters(), x, y, iters),
             "snn_sps": _throughput(m_plain, m_plain.parameters(), x, y, iters),
             "snn_exact_sps": _throughput(m_exact, m_exact.parameters(), x, y, iters)}
        r["ratio"] = r["snn_sps"] / r["snntorch_sps"]
        r["ratio_exact"] = r["snn_exact_sps"] / r["snntorch_sps"]
        rows.append(r)
    print(f"BWSNN training throughput (forward+backward+Adam, samples/s), device {dev}, "
          f"{'quick' if quick else 'full'} mode")
    print(f"{'arch':<10} {'B':>4} {'T':>3} {'snnTorch':>10} {'snn':>10} {'snn exact':>10} {'ratio':>7} {'ratio exact':>12} same")
    for r in rows:
        print(f"{r['arch']:<10} {r['batch']:>4} {r['steps']:>3} {r['snntorch_sps']:>10.1f} {r['snn_sps']:>10.1f} "
              f"{r['snn_exact_sps']:>10.1f} {r['ratio']:>6.2f}x {r['ratio_exact']:>11.2f}x {r['same_output']}")
    print("ratio = snn / snnTorch (> 1: snn is faster); target: not slower (ratio ≥ 1)")
    res = {"provenance": provenance(seed=0, config={"quick": quick, "device": str(dev)}), "rows": rows}
    out = Path(__file__).resolve().parents[2] / "reports" / "bench" / "snn.json"
    atomic_write_json(out, res)
    print(f"wrote {out}")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.snn", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    run(quick=args.quick, device=args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
