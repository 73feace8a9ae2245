"""Demo stage ``snn``: train a small SEI-BWSNN (KD from the demo's LeNet-5 when present),
deploy it to the Loihi simulator, report accuracy in both modes and spikes per inference."""
from __future__ import annotations

import time

import torch

from snn.model import BWSNNConfig


def run(ctx) -> dict:
    from neurohw.data import load_mnist5k
    from snn.experiments import evaluate_both, save_model
    from snn.train import fit_snn, torch_threads

    split = ctx.shared.get("mnist5k") or load_mnist5k()
    teacher = ctx.shared.get("teacher_lenet5")
    if ctx.quick:
        split = split.subset(600, 200)
        cfg = BWSNNConfig(arch="mlp", channels=(64,), steps=4, epochs=1, multi_shortcut=True, kd=teacher is not None,
                          seed=ctx.seed)
    else:
        split = split.subset(4000, 1000)
        cfg = BWSNNConfig(arch="mlp", channels=(256,), steps=4, epochs=8, multi_shortcut=True, kd=teacher is not None,
                          seed=ctx.seed)
    t0 = time.perf_counter()
    with torch_threads(1):
        res = fit_snn(cfg, split.x_train, split.y_train, teacher=teacher, progress=False)
        train_s = time.perf_counter() - t0
        m = evaluate_both(res.model, split.x_test, split.y_test, backend="loihi")
    save_model(ctx.path("snn/sei_bwsnn.safetensors"), res.model, extra=m)
    raster = _raster(res.model, split.x_test[:1], ctx.path("snn/raster.png"))
    figures = {"config": cfg.to_dict(), "train_s": round(train_s, 2), "kd": cfg.kd, **m, "raster": raster}
    ctx.section("Binary-weight SNN (SEI-BWSNN) on Loihi semantics", f"""
A {cfg.arch.upper()} BWSNN ({cfg.channels[0]} hidden, binary weights with a shortcut around every binary layer,
T = {cfg.steps}, {'KD from the LeNet-5 teacher' if cfg.kd else 'no teacher available: CE only'}), trained for
{cfg.epochs} epoch(s) on {len(split.x_train)} MNIST-5k images in {train_s:.1f} s.

| | accuracy |
|---|---|
| training mode (float forward, Loihi-exact rounding) | {100 * m['train_mode_accuracy']:.2f} % |
| deploy mode (integer network in `neurohw.loihi.simulate`) | {100 * m['deploy_mode_accuracy']:.2f} % |
| predictions that agree | {100 * m['prediction_agreement']:.2f} % |

Spikes per inference (all spiking layers): {m['spikes_per_inference']:.0f}. Spike raster: `snn/raster.png`.
The ablation table over seeds: `neurohw snn experiments --seeds 3 --out DIR` (docs/snn.md).
""")
    return figures


def _raster(model, x, path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snn.deploy import deploy_predict

    dep = deploy_predict(model, x, backend="loihi")
    fig, axes = plt.subplots(1, len(dep.spikes), figsize=(3 * len(dep.spikes), 2.5), squeeze=False)
    for k, s in enumerate(dep.spikes):
        t_idx, n_idx = torch.nonzero(s[0].flatten(1), as_tuple=True)
        axes[0, k].scatter(t_idx.numpy(), n_idx.numpy(), s=2, marker="|")
        axes[0, k].set_title(f"layer {k}")
        axes[0, k].set_xlabel("step")
    axes[0, 0].set_ylabel("neuron")
    fig.tight_layout()
    from neurohw.plotting import save

    save(fig, path, dpi=100)  # temp file + rename: a failing run never leaves half a PNG
    plt.close(fig)
    return str(path.name)
