"""snnTorch → NIR (snnTorch's own exporter) → neurohw → netx → Lava: the figures of docs/loihi.md.

``python -m neurohw.loihi.nir_experiment`` exports :func:`snntorch_example_model` with
``snntorch.export_to_nir``, imports it with :func:`neurohw.loihi.nir_import.import_nir` (dt 1e-4 s),
simulates the integer network on seeded Bernoulli spikes and compares every spiking layer with
snnTorch's own float run (after shifting by Loihi's one step per layer); with Lava installed it
also runs the netx file in Lava on one sample and checks spikes and voltages of every layer.
Writes ``results/loihi-nir-snntorch.json``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

INPUT_SHAPE = (1, 8, 8)


def snntorch_example_model(seed: int = 0):
    """Conv → Leaky → AvgPool → Leaky → Flatten → Linear → Synaptic, with per-neuron parameter
    tensors (snnTorch 1.0's exporter needs them: a scalar ``beta`` fails NIR's type inference).
    Returns (model, [its three spiking modules])."""
    import snntorch as snn

    torch.manual_seed(seed)

    def leaky(*shape, beta):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True, reset_mechanism="zero")

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), leaky(4, 8, 8, beta=0.8), torch.nn.AvgPool2d(2), leaky(4, 4, 4, beta=0.5),
        torch.nn.Flatten(), torch.nn.Linear(64, 10),
        snn.Synaptic(alpha=torch.full((10,), 0.5), beta=torch.full((10,), 0.7), threshold=torch.ones(10),
                     init_hidden=True, reset_mechanism="zero", output=True))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[5].weight.mul_(3.0)
    return model, [model[1], model[3], model[6]]


def export_snntorch(model, path: str | Path) -> Path:
    """snnTorch's own NIR export (``ignore_dims=[0]``: without it its type inference fails)."""
    import nir
    from snntorch.export_nir import export_to_nir

    graph = export_to_nir(model, torch.zeros(1, *INPUT_SHAPE), ignore_dims=[0])
    nir.write(str(path), graph)
    return Path(path)


def snntorch_run(model, neurons, x: np.ndarray) -> list[np.ndarray]:
    """Every spiking layer's spikes (B, T, *shape), bool, of snnTorch's own float run on x (B, T, *input)."""
    from snntorch import utils

    rec: list[list[torch.Tensor]] = [[] for _ in neurons]
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: rec[k].append((o[0] if isinstance(o, tuple) else o).clone()))
             for k, m in enumerate(neurons)]
    utils.reset(model)
    try:
        with torch.no_grad():
            for t in range(x.shape[1]):
                model(torch.as_tensor(x[:, t], dtype=torch.float32))
    finally:
        for h in hooks:
            h.remove()
    return [torch.stack(r, 1).numpy().astype(bool) for r in rec]


def agreement(ours: list[np.ndarray], theirs: list[np.ndarray]) -> list[float]:
    """Per layer, the fraction of (sample, step, neuron) decisions equal once layer i's Loihi
    spikes are shifted i + 1 steps earlier (Loihi's one step per synapse group)."""
    out = []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        T = a.shape[1]
        out.append(float((a[:, i + 1:] == b[:, :T - i - 1]).mean()))
    return out


def main(argv=None) -> int:
    from neurohw import argtypes as at
    from neurohw.results import save_result

    from .lava_bridge import lava_available, run_netx_in_lava
    from .netx_io import read_netx, write_netx
    from .nir_import import import_nir
    from .random_nets import random_spikes
    from .simulator import simulate

    args = at.parse_experiment_args(__doc__, argv, samples=(at.count, 4), steps=(at.count, 40), seed=(at.seed, 0))
    t0 = time.time()
    model, neurons = snntorch_example_model(args.seed)
    with tempfile.TemporaryDirectory() as d:
        nir_path = export_snntorch(model, Path(d) / "model.nir")
        net, rep = import_nir(nir_path, dt=1e-4)
        netx = write_netx(net, Path(d) / "model.net")
        net = read_netx(netx)
        x = random_spikes(args.seed, args.steps, INPUT_SHAPE, batch=args.samples, rate=0.3)
        ours = [s.numpy() for s in simulate(net, x).spikes]
        theirs = snntorch_run(model, neurons, x)
        agree = agreement(ours, theirs)
        lava = None
        if lava_available():
            x1 = x[:1, :30]
            a, b = simulate(net, x1, probe="all"), run_netx_in_lava(netx, x1, probe="all")
            lava = all(np.array_equal(a.spikes[i].numpy(), b.spikes[i].numpy()) and
                       np.array_equal(a.voltage[i].numpy(), b.voltage[i].numpy()) for i in range(len(net.layers)))
    rows = [{"layer": f"{i} ({net.layers[i].name}, {type(neurons[i]).__name__})", "neurons": int(np.prod(ours[i].shape[2:])),
             "agreement": 100 * agree[i], "snnTorch rate": theirs[i].mean(), "neurohw rate": ours[i].mean(),
             "Lava identical (1 sample, 30 steps)": "n/a" if lava is None else ("yes" if lava else "NO")}
            for i in range(len(ours))]
    caption = (f"snnTorch 1.0 `export_to_nir` → `neurohw loihi import-nir --dt 1e-4` → netx; spike agreement (%) with "
               f"snnTorch's float run, {args.samples} samples × {args.steps} steps, Bernoulli input rate 0.3, seed {args.seed}")
    path = save_result("loihi-nir-snntorch", {"rows": rows, "columns": list(rows[0]), "caption": caption, "digits": 3,
                                               "quantisation": rep.rows},
                       config=vars(args), command="python -m neurohw.loihi.nir_experiment", seed=args.seed,
                       wall_time_s=time.time() - t0)
    print(f"agreement per layer {agree}; Lava identical: {lava}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
