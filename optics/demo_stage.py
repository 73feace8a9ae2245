"""Demo stage ``optics``: the MNIST compressed meta-optic, end to end on a small grid.

Trains the hybrid model in kernel mode, designs the metasurface (small grid), evaluates in
kernel / device / wave mode and over a few fabricated instances, and saves the PSF, kernel
and accuracy-distribution plots into the report folder.
"""
from __future__ import annotations

from neurohw.runtime import torch_threads
from optics.design import OpticsConfig
from optics.pipeline import run_mnist_pipeline


def run(ctx) -> dict:
    # The optical stage's operations are small (7×7 convolutions, 288² FFTs): on a shared
    # 2-core machine one thread was 2.3× faster than two (40 s vs 92 s for the full stage).
    with torch_threads(1):
        return _run(ctx)


def _run(ctx) -> dict:
    split = ctx.shared.get("mnist5k")
    if split is None:
        from neurohw.data import load_mnist5k

        split = load_mnist5k()
    if ctx.quick:
        kw = dict(n_train=1000, n_test=300, epochs=1, iterations=30, n_instances=2)
    else:
        kw = dict(n_train=None, n_test=None, epochs=4, iterations=100, n_instances=8)
    res = run_mnist_pipeline(split, ctx.out, optics=OpticsConfig(grid=144), seed=ctx.seed, **kw)
    ctx.shared["optics_hybrid_mnist"] = res["model"]
    ctx.shared["optics_design"] = res["design"]
    f = res["figures"]
    acc, fab = f["accuracy"], f["fabricated"]
    ctx.section(
        "Optics: compressed meta-optic (MNIST-5k)",
        f"""
8 signed 7×7 kernels realised as 16 PSF tiles of one metasurface ({f['optics_config']['grid']}² cells of
{f['optics_config']['dx'] * 1e9:.0f} nm, z = {f['optics_config']['z'] * 1e6:.0f} µm), back-end 2 FC
({f['parameters']['backend']} parameters). Trained {f['epochs']} epoch(s) on {f['n_train']} images; tested on {f['n_test']}.

| mode | test accuracy |
|---|---|
| kernel (training face) | {100 * acc['kernel']:.1f} % |
| device (designed tiles + sensor) | {100 * acc['device']:.1f} % |
| wave (whole PSF, crosstalk + sensor) | {100 * acc['wave']:.1f} % |
| fabricated, {len(fab['accuracies'])} instances | {100 * fab['mean']:.1f} ± {100 * fab['std']:.1f} % (min {100 * fab['min']:.1f} %) |

Kernel fidelity (normalised correlation): mean {f['design']['mean_ncc']:.4f}; light inside the tile
windows: {100 * f['design']['window_efficiency']:.1f} %; kernel→wave feature gap (relative RMS):
{f['accuracy']['feature_gap_rel']:.3f}.

![PSF](optics_psf.png) ![kernels](optics_kernels.png) ![accuracy](optics_accuracy_distribution.png)
""",
    )
    return f
